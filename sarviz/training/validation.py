"""Validation during geo training: generate held-out (val) patches, score them, log the results.

For each of the first ``validation_count`` val patches (sorted by id, so the same patches
every time) the model being trained generates an image with the reference sampler (fewer
steps), a fixed seed per patch (so images of successive steps are comparable), decoded to
dB through the run's calibration and resampled onto the patch grid (in linear power, as the
generator does). Outputs:

* ``RUN/validation/step-N/<id>.png`` — real VV | generated VV | real VH | generated VH,
  each mapped to grey with ``calibration.to_unit``;
* ``RUN/validation.csv`` — one row per patch and polarisation with the inspection metrics of
  :func:`sarviz.metrics.report.compare` (SSIM, FSIM, KL, Mean/Std similarity, ENL, mean dB);
* TensorBoard scalars ``val/<metric>_<pol>`` (mean over patches) and the PNG strips.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.atomic import atomic_path
from sarviz.formats.training_run import VALIDATION_CSV, VALIDATION_DIR, validation_step_dir  # noqa: F401 - re-exported

FIELDS = (
    "step",
    "id",
    "pol",
    "ssim",
    "fsim",
    "kl",
    "mean_similarity",
    "std_similarity",
    "enl_real",
    "enl_generated",
    "real_mean_db",
    "generated_mean_db",
    "sampler_steps",
    "resolution",
)


def to_patch_grid(db: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A generated dB image resampled onto the patch grid, averaging in linear power."""
    import torch
    import torch.nn.functional as F

    if db.shape == shape:
        return db.astype(np.float32)
    power = torch.from_numpy(10.0 ** (db / 10.0))[None, None].float()
    down = shape[0] < db.shape[0]
    power = F.interpolate(power, size=shape, mode="bilinear", align_corners=False, antialias=down)
    return (10.0 * np.log10(np.maximum(power[0, 0].numpy(), 1e-12))).astype(np.float32)


def strip_png(calibration, real_vv, gen_vv, real_vh, gen_vh) -> bytes:
    from PIL import Image

    tiles = [
        calibration.to_unit(np.nan_to_num(a, nan=-100.0), pol)
        for a, pol in ((real_vv, "VV"), (gen_vv, "VV"), (real_vh, "VH"), (gen_vh, "VH"))
    ]
    image = (np.concatenate(tiles, axis=1) * 255.0).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _rows_from_report(step: int, pid: str, report, sampler_steps: int, resolution: int) -> list[dict[str, Any]]:
    d = report.to_dict()
    rows = []
    for pol in ("VV", "VH"):
        ms = d["mean_std_similarity"].get(pol) or {}
        stats = d["db_stats"][pol]
        rows.append(
            {
                "step": step,
                "id": pid,
                "pol": pol,
                "ssim": d["ssim"][pol],
                "fsim": d["fsim"][pol],
                "kl": d["kl"][pol],
                "mean_similarity": ms.get("mean"),
                "std_similarity": ms.get("std"),
                "enl_real": d["enl"][pol]["real"],
                "enl_generated": d["enl"][pol]["generated"],
                "real_mean_db": (stats["real"] or {}).get("mean_db"),
                "generated_mean_db": stats["generated"]["mean_db"],
                "sampler_steps": sampler_steps,
                "resolution": resolution,
            }
        )
    return rows


def write_validation_rows(
    out: Path, step: int, rows: list[dict[str, Any]], fields: tuple[str, ...] | None = None
) -> None:
    """Replace this step's rows in RUN/validation.csv (and any rows after it: a resumed run).

    ``fields``: the columns (default: the geo trainer's ``FIELDS``; the SAR→SAR trainer has its own)."""
    fields = fields or FIELDS
    path = Path(out) / VALIDATION_CSV
    old: list[dict[str, Any]] = []
    if path.is_file():
        with open(path, newline="") as f:
            old = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) < step]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(old + [{k: ("" if r.get(k) is None else r.get(k)) for k in fields} for r in rows])


def generate_patch(pipe, vae, cond: np.ndarray, resolution: int, steps: int, seed: int, sampler: dict[str, Any]):
    """One generation → decoded image in [−1, 1], (3, R, R) float32."""
    import torch

    generator = torch.Generator("cpu").manual_seed(seed)
    with torch.no_grad():
        latents = pipe(
            prompt=sampler["prompt"],
            negative_prompt=sampler["negative_prompt"],
            image=torch.from_numpy(cond)[None],
            height=resolution,
            width=resolution,
            num_inference_steps=steps,
            guidance_scale=sampler["guidance"],
            controlnet_conditioning_scale=sampler["controlnet_scale"],
            generator=generator,
            output_type="latent",
            return_dict=True,
        ).images
        z = latents.to(device=vae.device, dtype=vae.dtype) / vae.config.scaling_factor
        image = vae.decode(z, return_dict=False)[0]
    return image[0].float().clamp(-1, 1).cpu().numpy()


def validate_geo(trainer, step: int) -> list[dict[str, Any]]:
    """Generate, score and log the val patches for ``trainer`` (a set-up GeoTrainer) at ``step``."""
    import sys

    from diffusers import StableDiffusionControlNetPipeline

    from sarviz.generators.condition import build_condition
    from sarviz.generators.diffusion import REFERENCE_SAMPLER, make_scheduler
    from sarviz.metrics.report import compare
    from sarviz.scene import read_scene

    c, acc = trainer.config, trainer.accelerator
    controlnet = acc.unwrap_model(trainer.controlnet)
    peft_unet = acc.unwrap_model(trainer.unet)
    cal = trainer.calibration
    pipe = StableDiffusionControlNetPipeline(
        vae=trainer.vae,
        text_encoder=trainer.text_encoder,
        tokenizer=trainer.tokenizer,
        unet=peft_unet.get_base_model(),
        controlnet=controlnet,
        scheduler=make_scheduler(REFERENCE_SAMPLER["scheduler"], dict(trainer.noise_scheduler.config)),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    sampler = {**REFERENCE_SAMPLER, "prompt": trainer.prompt}
    folder = validation_step_dir(c.out, step)
    rows: list[dict[str, Any]] = []
    images = []
    controlnet.eval()
    peft_unet.eval()
    try:
        for n, row in enumerate(trainer.info.split("val")[: c.validation_count]):
            scene = read_scene(trainer.info.folder / row["file"])
            cond = build_condition(scene, trainer.spec).array
            with acc.autocast():  # the frozen parts may be in half precision, the trained ones in float32
                image = generate_patch(pipe, trainer.vae, cond, c.resolution, c.validation_steps, c.seed + n, sampler)
            gen_vv = to_patch_grid(cal.from_signed(image[0], "VV"), scene.shape)
            gen_vh = to_patch_grid(cal.from_signed(image[1], "VH"), scene.shape)
            report = compare(scene.vv_db, scene.vh_db, gen_vv, gen_vh)
            rows += _rows_from_report(step, row["id"], report, c.validation_steps, c.resolution)
            png = strip_png(cal, scene.vv_db, gen_vv, scene.vh_db, gen_vh)
            with atomic_path(folder / f"{row['id']}.png") as tmp:
                tmp.write_bytes(png)
            images.append((row["id"], png))
    finally:
        controlnet.train()
        peft_unet.train()
    write_validation_rows(c.out, step, rows)
    _log_tensorboard(acc, step, rows, images)
    summary = ", ".join(f"{k} {np.nanmean([_f(r[k]) for r in rows]):.3f}" for k in ("ssim", "kl")) if rows else ""
    print(f"[train geo] validation at step {step}: {len(images)} patches ({summary})", file=sys.stderr, flush=True)
    return rows


def _f(x) -> float:
    return float("nan") if x is None or x == "" else float(x)


def _log_tensorboard(acc, step: int, rows: list[dict[str, Any]], images: list[tuple[str, bytes]]) -> None:
    scalars = {}
    for metric in ("ssim", "fsim", "kl", "mean_similarity", "std_similarity"):
        for pol in ("VV", "VH"):
            values = [_f(r[metric]) for r in rows if r["pol"] == pol]
            if values and np.isfinite(values).any():
                scalars[f"val/{metric}_{pol}"] = float(np.nanmean(values))
    if scalars:
        acc.log(scalars, step=step)
    try:
        tracker = acc.get_tracker("tensorboard", unwrap=True)
    except Exception:  # no TensorBoard tracker (not installed)
        return
    if not hasattr(tracker, "add_image"):
        return
    from PIL import Image

    for pid, png in images:
        arr = np.asarray(Image.open(io.BytesIO(png)))
        tracker.add_image(f"val/{pid}", arr[None], global_step=step, dataformats="CHW")
