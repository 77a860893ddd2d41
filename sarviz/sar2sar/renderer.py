"""SAR→SAR rendering (seed 002): ControlNet image-to-image at a finer pixel spacing, tiled.

``Sar2SarRenderer.transform(source, request)`` (the image-transformer interface) and
:func:`render_file` (``sarviz render``) do, per polarisation:

1. read the input σ⁰ dB; A/(μ+3σ) statistics **once for the scene** (the input's, as in
   training — see :mod:`sarviz.sar2sar.pairs`);
2. up-sample it to the target spacing in the frequency domain (seed 001 §6) — the
   **condition** and the img2img **init image**;
3. denoise a latent canvas of the whole scene in overlapping tiles, the tiles' noise
   predictions **averaged in latent space at every step** (MultiDiffusion, Bar-Tal et al.
   2023) — one consistent speckle field, no seam; UNet/ControlNet/VAE memory is that of one
   tile (the canvas itself is 4 latent channels at 1/8 of the pixels);
4. decode the canvas tile by tile, each output pixel from the tile whose centre is nearest
   (no pixel averaging: it would raise ENL in the overlaps);
5. σ⁰ dB through the inverse normalisation; the clipped tail (> μ+3σ, which the model's [0, 1]
   range cannot carry) taken from the up-sampled input (``tail="keep"``) or flagged in a mask band
   (``tail="mask"``);
6. the consistency gate (:mod:`sarviz.sar2sar.consistency`) against the input, threshold from
   the run's training pairs; with K seeds a per-pixel spread band.

Seed 002 names none of the sampler settings; the defaults below are our choices
(docs/sar2sar.md): DDIM, 20 steps, strength 0.6, ControlNet scale 1.0, guidance 1.0 (no
classifier-free guidance: the ControlNet carries the content; ``--guidance`` > 1 turns it on).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.generators.base import GenerationResult, Generator, ProgressCallback
from sarviz.sar2sar.artifacts import RenderOutput, Sar2SarError, Sar2SarRun, SarGeoTiff
from sarviz.sar2sar.consistency import consistency, disagreement_map, seed_spread_map
from sarviz.sar2sar.pairs import fill_missing
from sarviz.sar2sar.resample import (
    check_factor,
    denormalise_amplitude,
    factor_for_pixel_size,
    normalise_amplitude,
    output_shape,
    resample_db,
    scaled_transform,
)

DEFAULTS: dict[str, Any] = {"steps": 20, "strength": 0.6, "controlnet_scale": 1.0, "guidance": 1.0,
                            "scheduler": "DDIMScheduler", "tile": 512, "overlap": 128, "tail": "keep",
                            "prompt": "<SAR> SAR image"}
PIPELINES = {"sd15": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline"}


@dataclass
class TransformRequest:
    """What the user asked for (minimal; core-interfaces' TransformRequest replaces it)."""

    seed: int = 0
    steps: int | None = None
    strength: float | None = None
    guidance: float | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    device: str | None = None
    dtype: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # factor | pixel_size, controlnet_scale, tile, overlap, seeds, tail


# -- model loading (shared with the trainer) -----------------------------------------------------------
@dataclass
class Components:
    kind: str
    unet: Any
    vae: Any
    tokenizers: list
    text_encoders: list
    scheduler_config: dict[str, Any]
    token: str | None
    info: dict[str, Any]


def base_kind(base: str | Path) -> str:
    from sarviz.errors import GenerationError, WeightsMissing
    from sarviz.generators.text import base_kind as _kind

    try:
        return _kind(base)
    except (WeightsMissing, GenerationError) as exc:  # one line
        raise Sar2SarError(str(exc).splitlines()[0]) from None


def load_components(base: str | Path, text_weights: str | Path | None = None, device: str = "cpu") -> Components:
    """The base SD 1.5 / SDXL parts, or those of a ``sarviz train text`` run on it (token + LoRAs merged)."""
    import diffusers
    import torch

    base = Path(base)
    if not (base / "model_index.json").is_file():
        raise Sar2SarError(f"base model {base}: no model_index.json (give a local SD 1.5 or SDXL diffusers folder)")
    kind = base_kind(base)
    token, info = None, {"base": str(base.resolve()), "base_kind": kind}
    if text_weights:
        from sarviz.errors import GenerationError, WeightsMissing
        from sarviz.generators.text import TextModelPaths, load_text_pipeline

        try:
            loaded = load_text_pipeline(TextModelPaths(str(text_weights), str(base)), device=device)
        except (WeightsMissing, GenerationError, OSError, ValueError) as exc:
            raise Sar2SarError(f"--text-weights {text_weights}: {str(exc).splitlines()[0]}") from None
        pipe, token = loaded.pipe, loaded.token
        info.update(text_weights=str(Path(text_weights).resolve()), text_weights_sha256=loaded.info.get("weights_sha256"))
    else:
        import diffusers.utils.logging as dlog

        from sarviz.generators.diffusion import _quiet_loading

        dlog.disable_progress_bar()  # "Loading pipeline components…" bars are not our progress
        extra = {"safety_checker": None, "requires_safety_checker": False} if kind == "sd15" else {}
        try:
            with _quiet_loading():
                pipe = getattr(diffusers, PIPELINES[kind]).from_pretrained(str(base), torch_dtype=torch.float32,
                                                                           **extra)
        except (OSError, ValueError) as exc:
            raise Sar2SarError(f"cannot load the base model {base}: {str(exc).splitlines()[0]}") from None
    encoders = [e for e in (pipe.text_encoder, getattr(pipe, "text_encoder_2", None)) if e is not None]
    tokenizers = [t for t in (pipe.tokenizer, getattr(pipe, "tokenizer_2", None)) if t is not None]
    for tok, enc in zip(tokenizers, encoders):
        limit = int(enc.config.max_position_embeddings)
        if not 0 < tok.model_max_length <= limit:
            tok.model_max_length = limit
    return Components(kind, pipe.unet, pipe.vae, tokenizers, encoders, dict(pipe.scheduler.config), token, info)


def encode_prompt(comp: Components, texts: list[str], device, resolution: int):
    """(encoder hidden states, SDXL added conditions or None) — the same in training and rendering."""
    import torch

    ids = [tok(texts, padding="max_length", max_length=tok.model_max_length, truncation=True,
               return_tensors="pt").input_ids.to(device) for tok in comp.tokenizers]
    if comp.kind == "sd15":
        return comp.text_encoders[0](input_ids=ids[0])[0], None
    hidden, pooled = [], None
    for enc, i in zip(comp.text_encoders, ids):
        out = enc(input_ids=i, output_hidden_states=True)
        hidden.append(out.hidden_states[-2])
        pooled = out[0]
    r = resolution
    time_ids = torch.tensor([[r, r, 0, 0, r, r]], device=device, dtype=pooled.dtype).repeat(len(texts), 1)
    return torch.cat(hidden, dim=-1), {"text_embeds": pooled, "time_ids": time_ids}


# -- the tiled sampler ------------------------------------------------------------------------------------
@dataclass
class TilePlan:
    tile_px: int
    overlap_px: int
    canvas_px: tuple[int, int]  # padded to the model's multiple
    starts: tuple[list[int], list[int]]  # latent tile origins per axis
    latent_tile: tuple[int, int]

    @property
    def count(self) -> int:
        return len(self.starts[0]) * len(self.starts[1])

    def to_dict(self) -> dict[str, Any]:
        return {"tile_px": self.tile_px, "overlap_px": self.overlap_px, "canvas_px": list(self.canvas_px),
                "tiles": self.count, "grid": [len(self.starts[0]), len(self.starts[1])],
                "blending": "MultiDiffusion: noise predictions averaged in latent space at every step; decode: "
                            "nearest tile centre per pixel"}


def plan_tiles(shape: tuple[int, int], tile: int, overlap: int, multiple: int) -> TilePlan:
    """Tiles of ``tile`` px overlapping by ``overlap`` px over a canvas padded to ``multiple`` px."""
    if tile < multiple or tile % multiple:
        raise Sar2SarError(f"--tile {tile} px: this model needs a multiple of {multiple} px (at least {multiple})")
    if not 0 <= overlap < tile or overlap % 8:
        raise Sar2SarError(f"--overlap {overlap} px must be a multiple of 8 in [0, tile)")
    canvas = tuple(max(multiple, math.ceil(n / multiple) * multiple) for n in shape)
    lt = tuple(min(tile, c) // 8 for c in canvas)
    stride = max(1, (tile - overlap) // 8)
    starts = []
    for c, t in zip(canvas, lt):
        n = c // 8
        s = list(range(0, max(1, n - t + 1), stride))
        if s[-1] + t < n:
            s.append(n - t)
        starts.append(s)
    return TilePlan(tile, overlap, canvas, (starts[0], starts[1]), lt)  # type: ignore[arg-type]


#: torch.compile break-even, from benchmarks/RESULTS_cpu_speed.md (full-size SD 1.5 UNet + ControlNet on a
#: 2-core CPU, float32): 176 s of compilation, ~20 s per step, 1.25× faster compiled → ~4 s saved per
#: tile·step → pays back after ~44 tile·steps. Not measured for tiny models or together with bf16.
COMPILE_SECONDS, STEP_SECONDS, COMPILE_SPEEDUP = 176.0, 20.0, 1.25


def compile_decision(mode: str, tiles: int, steps: int, full_size: bool) -> dict[str, Any]:
    """Whether to ``torch.compile`` the UNet/ControlNet/VAE decoder for a render, and why (for provenance)."""
    import os

    mode = (mode or os.environ.get("SARVIZ_COMPILE", "off")).lower()
    if mode not in ("on", "off", "auto"):
        raise Sar2SarError(f"compile must be on, off or auto, got {mode!r}")
    work = tiles * steps
    saved = work * STEP_SECONDS * (1 - 1 / COMPILE_SPEEDUP)
    if mode == "auto":
        on = full_size and saved > COMPILE_SECONDS
        why = (f"auto: {work} tile·steps × ~{STEP_SECONDS * (1 - 1 / COMPILE_SPEEDUP):.0f} s saved each "
               f"{'>' if saved > COMPILE_SECONDS else '≤'} {COMPILE_SECONDS:.0f} s compile (RESULTS_cpu_speed.md, "
               "full-size SD 1.5, 2-core CPU)" if full_size else "auto: off for a small model (numbers are for "
               "full-size SD 1.5)")
    else:
        on, why = mode == "on", f"{mode} (requested)"
    return {"compile": on, "why": why, "tile_steps": work, "measured_with_bf16": False}


def _model_multiple(comp: Components) -> int:
    vae_scale = 2 ** (len(comp.vae.config.block_out_channels) - 1)
    unet_factor = 2 ** (len(comp.unet.config.block_out_channels) - 1)
    return vae_scale * unet_factor


def _pad_to(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.pad(a, ((0, shape[0] - a.shape[0]), (0, shape[1] - a.shape[1])), mode="symmetric")


def denoise_canvas(comp: Components, controlnet, cond_unit: np.ndarray, init_unit: np.ndarray, prompt: str,
                   negative_prompt: str, steps: int, strength: float, guidance: float, controlnet_scale: float,
                   plan: TilePlan, seed: int, device: str = "cpu", progress: ProgressCallback | None = None,
                   cancel: threading.Event | None = None) -> np.ndarray:
    """The rendered normalised amplitude on the padded canvas (one grey plane)."""
    import diffusers
    import torch

    from sarviz.generators.runtime import check_cancel, report

    H, W = plan.canvas_px
    cond = torch.from_numpy(_pad_to(cond_unit, (H, W))).float()[None, None].repeat(1, 3, 1, 1)  # [0, 1]
    init = torch.from_numpy(_pad_to(init_unit, (H, W))).float()[None, None].repeat(1, 3, 1, 1) * 2 - 1
    vae, unet = comp.vae, comp.unet
    sf = vae.config.scaling_factor
    th, tw = plan.latent_tile
    windows = [(r, c) for r in plan.starts[0] for c in plan.starts[1]]
    use_cfg = guidance > 1.0
    with torch.no_grad():
        ehs, added = encode_prompt(comp, [prompt], device, plan.tile_px)
        if use_cfg:
            n_ehs, n_added = encode_prompt(comp, [negative_prompt or ""], device, plan.tile_px)
            ehs = torch.cat([n_ehs, ehs])
            if added is not None:
                added = {k: torch.cat([n_added[k], v]) for k, v in added.items()}
        # init latents: encoder means, averaged where tiles overlap (deterministic, not speckle)
        lat = torch.zeros(1, 4, H // 8, W // 8)
        cnt = torch.zeros(1, 1, H // 8, W // 8)
        for r, c in windows:
            px = init[:, :, r * 8:(r + th) * 8, c * 8:(c + tw) * 8].to(device)
            lat[:, :, r:r + th, c:c + tw] += vae.encode(px).latent_dist.mean.cpu() * sf
            cnt[:, :, r:r + th, c:c + tw] += 1
        lat = lat / cnt
        scheduler = getattr(diffusers, DEFAULTS["scheduler"]).from_config(comp.scheduler_config)
        scheduler.set_timesteps(steps)
        start = min(steps, max(1, round(steps * strength)))
        timesteps = scheduler.timesteps[steps - start:]
        g = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(lat.shape, generator=g)
        latents = scheduler.add_noise(lat, noise, timesteps[:1])
        total = len(timesteps) * len(windows)
        done = 0
        for t in timesteps:
            eps = torch.zeros_like(latents)
            for r, c in windows:
                check_cancel(cancel)
                x = latents[:, :, r:r + th, c:c + tw].to(device)
                x = scheduler.scale_model_input(x, t)
                cx = cond[:, :, r * 8:(r + th) * 8, c * 8:(c + tw) * 8].to(device)
                if use_cfg:
                    x, cx = torch.cat([x, x]), torch.cat([cx, cx])
                kw = {"added_cond_kwargs": added} if added is not None else {}
                down, mid = controlnet(x, t, encoder_hidden_states=ehs, controlnet_cond=cx,
                                       conditioning_scale=controlnet_scale, return_dict=False, **kw)
                pred = unet(x, t, encoder_hidden_states=ehs, down_block_additional_residuals=down,
                            mid_block_additional_residual=mid, return_dict=False, **kw)[0]
                if use_cfg:
                    un, co = pred.chunk(2)
                    pred = un + guidance * (co - un)
                eps[:, :, r:r + th, c:c + tw] += pred.float().cpu()
                done += 1
                report(progress, done, total, f"denoising: step {done // len(windows) + (done % len(windows) > 0)}"
                                              f"/{len(timesteps)}, tile {(done - 1) % len(windows) + 1}/{len(windows)}")
            latents = scheduler.step(eps / cnt, t, latents, return_dict=False)[0]
        # decode: each pixel from the tile whose centre is nearest (a hard cut inside the overlap)
        out = np.zeros((H, W), np.float32)
        best = np.full((H, W), np.inf, np.float32)
        yy, xx = np.mgrid[0:th * 8, 0:tw * 8]
        for r, c in windows:
            check_cancel(cancel)
            img = vae.decode(latents[:, :, r:r + th, c:c + tw].to(device) / sf, return_dict=False)[0]
            grey = ((img.float().cpu().clamp(-1, 1) + 1) / 2).mean(dim=1)[0].numpy()
            d = np.maximum(np.abs(yy + 0.5 - th * 4), np.abs(xx + 0.5 - tw * 4)).astype(np.float32)
            sl = (slice(r * 8, (r + th) * 8), slice(c * 8, (c + tw) * 8))
            take = d < best[sl]
            out[sl][take] = grey[take]
            best[sl][take] = d[take]
    return out


# -- the renderer -----------------------------------------------------------------------------------------
class _Card:
    def __init__(self, run: Sar2SarRun) -> None:
        self.id = f"sar2sar:{run.folder.name}"
        self.name = f"SAR→SAR ControlNet {run.folder.name}"


@dataclass
class RenderResult:
    output: RenderOutput
    consistency: dict[str, dict[str, Any]]
    input_db: dict[str, np.ndarray]
    upsampled_db: dict[str, np.ndarray]
    disagreement: dict[str, np.ndarray]


class Sar2SarRenderer(Generator):
    """An image transformer: a SAR image in, the same ground at a finer spacing out."""

    kind = "sar2sar"

    def __init__(self, run: str | Path, checkpoint: int | None = None, base: str | Path | None = None) -> None:
        self.run = Sar2SarRun.open(run, checkpoint)
        super().__init__(_Card(self.run))
        self.base = Path(base or self.run.meta.get("base", ""))
        if not (self.base / "model_index.json").is_file():
            raise Sar2SarError(f"base model {self.base} is missing (no model_index.json); give --base BASE")
        self._loaded: tuple[Components, Any] | None = None

    def readiness(self) -> str | None:
        return None

    def load(self, device: str = "cpu"):
        if self._loaded is None:
            from diffusers import ControlNetModel

            comp = load_components(self.base, self.run.meta.get("text_weights"), device)
            try:
                cn = ControlNetModel.from_pretrained(str(self.run.folder / "controlnet"))
            except (OSError, ValueError) as exc:
                raise Sar2SarError(f"cannot load {self.run.folder / 'controlnet'}: {str(exc).splitlines()[0]}") from None
            for m in (comp.unet, comp.vae, cn, *comp.text_encoders):
                m.to(device).eval().requires_grad_(False)
            self._loaded = (comp, cn)
        return self._loaded

    # the scene-based interface: a scene's real S1 is the source
    def generate(self, scene, request, progress=None, cancel=None) -> GenerationResult:
        if scene.vv_db is None or scene.vh_db is None:
            raise Sar2SarError("the scene has no Sentinel-1 VV/VH to render")
        src = GenerationResult(scene.vv_db, scene.vh_db, scene.crs, scene.transform,
                               {"scene_id": scene.scene_id, "source": "Sentinel-1 of the scene"})
        return self.transform(src, TransformRequest(seed=request.seed, steps=request.steps,
                                                    guidance=request.guidance, prompt=request.prompt),
                              progress, cancel)

    def transform(self, source: GenerationResult, request: TransformRequest, progress: ProgressCallback | None = None,
                  cancel: threading.Event | None = None) -> GenerationResult:
        img = SarGeoTiff({"VV": source.vv_db, "VH": source.vh_db}, source.crs, source.transform,
                         path=str(source.provenance.get("scene_id", "source")))
        res = self.render(img, request, progress, cancel)
        b = res.output.bands
        return GenerationResult(b["VV"], b["VH"], res.output.crs, res.output.transform, res.output.provenance)

    def render(self, img: SarGeoTiff, request: TransformRequest, progress: ProgressCallback | None = None,
               cancel: threading.Event | None = None) -> RenderResult:
        o = request.options
        if o.get("pixel_size") is not None:
            factor = factor_for_pixel_size(img.transform, float(o["pixel_size"]))
        else:
            factor = o.get("factor", 2.0)
        factor = check_factor(factor)
        steps = int(request.steps or DEFAULTS["steps"])
        strength = float(DEFAULTS["strength"] if request.strength is None else request.strength)
        guidance = float(DEFAULTS["guidance"] if request.guidance is None else request.guidance)
        cn_scale = float(o.get("controlnet_scale", DEFAULTS["controlnet_scale"]))
        tail = o.get("tail", DEFAULTS["tail"])
        seeds = int(o.get("seeds", 1))
        if not (1 <= steps <= 1000 and 0.0 < strength <= 1.0 and 0.0 <= cn_scale <= 5.0 and 1 <= seeds <= 16):
            raise Sar2SarError("need 1 ≤ steps ≤ 1000, 0 < strength ≤ 1, 0 ≤ controlnet scale ≤ 5, 1 ≤ seeds ≤ 16")
        if tail not in ("keep", "mask"):
            raise Sar2SarError("--tail must be keep or mask")
        device = request.device or "cpu"
        comp, cn = self.load(device)
        multiple = _model_multiple(comp)
        tile = int(o.get("tile") or self.run.meta.get("resolution") or DEFAULTS["tile"])
        overlap = int(o.get("overlap", max(0, min(DEFAULTS["overlap"], tile // 4 // 8 * 8))))
        shape = img.shape
        out_shape = output_shape(shape, factor)
        plan = plan_tiles(out_shape, tile, overlap, multiple)
        full_size = int(comp.unet.config.block_out_channels[0]) >= 320
        n_steps = max(1, round(steps * strength))
        speed = compile_decision(o.get("compile"), plan.count * seeds * len(img.bands), n_steps, full_size)
        if speed["compile"] and not getattr(cn, "_sarviz_compiled", False):
            import torch

            comp.unet, cn = torch.compile(comp.unet), torch.compile(cn)
            comp.vae.decoder = torch.compile(comp.vae.decoder)
            cn._sarviz_compiled = True
            self._loaded = (comp, cn)
        prompt = request.prompt or (DEFAULTS["prompt"] if comp.token or "<SAR>" in str(self.run.meta.get("token", ""))
                                    else "SAR image")
        t0 = time.perf_counter()
        bands, masks, cons, inputs, ups, dis, spread_bands = {}, {}, {}, {}, {}, {}, {}
        calibration = self.run.meta.get("consistency_calibration") or {}
        for pol, db in img.bands.items():
            db = fill_missing(db)
            _, stats, _ = normalise_amplitude(db)  # the scene's stats, once
            up = resample_db(db, out_shape)
            cond, _, clipped = normalise_amplitude(up, stats)
            renders = []
            for k in range(seeds):
                unit = denoise_canvas(comp, cn, cond, cond, prompt, request.negative_prompt or "", steps, strength,
                                      guidance, cn_scale, plan, request.seed + k, device, progress, cancel)
                unit = unit[:out_shape[0], :out_shape[1]]
                out_db = denormalise_amplitude(unit, stats)
                if tail == "keep":  # above μ+3σ the model's [0, 1] range cannot carry the input: keep the input's tail
                    out_db = np.where(clipped, np.maximum(up, out_db), out_db).astype(np.float32)
                renders.append(out_db)
            bands[pol] = renders[0]
            if tail == "mask":
                masks[pol] = clipped
            if seeds > 1:
                spread_bands[pol] = seed_spread_map(renders, looks=max(2, round(factor)))
            gate = consistency(db, renders[0], calibration.get("threshold_db"), calibration.get("source"))
            cons[pol] = gate.to_dict()
            inputs[pol], ups[pol] = db, up
            dis[pol] = disagreement_map(gate, db.shape)
            cons[pol]["amplitude_stats"] = stats.to_dict()
        transform = scaled_transform(img.transform, shape, out_shape)
        prov = self._provenance(img, factor, out_shape, transform, steps, strength, guidance, cn_scale, tail, seeds,
                                request, plan, prompt, cons, device, time.perf_counter() - t0, comp, speed)
        all_bands = dict(bands)
        for pol, s in spread_bands.items():
            all_bands[f"{pol}_seed_spread_db"] = s
        return RenderResult(RenderOutput(all_bands, img.crs, transform, prov, masks), cons, inputs, ups, dis)

    def _provenance(self, img, factor, out_shape, transform, steps, strength, guidance, cn_scale, tail, seeds, request,
                    plan, prompt, cons, device, seconds, comp, speed) -> dict[str, Any]:
        meta = self.run.meta
        in_spacing = abs(img.transform.a)
        out_spacing = abs(transform.a)
        trained = meta.get("pairs", {})
        target_spacings = trained.get("source_spacing") or []
        finest = min(target_spacings) if target_spacings else None
        extrapolating = finest is None or out_spacing < 0.99 * finest
        return {
            "kind": "sar2sar render (seed 002 pipeline, sarviz choices)", "input": img.path,
            "input_spacing": in_spacing, "output_spacing": out_spacing, "crs_units": str(img.crs.linear_units or "degrees"),
            "factor_requested": factor, "factor_effective": [out_shape[0] / img.shape[0], out_shape[1] / img.shape[1]],
            "input_shape": list(img.shape), "output_shape": list(out_shape),
            "resampling": "Fourier, pixel-centre aligned, mirror padding, anti-ringing floor 0.5 × 2×2 input minimum",
            "normalisation": "A/(μ+3σ) of the input scene, once per scene and polarisation; inverted to σ⁰ dB",
            "tail": tail, "sampler": {"scheduler": DEFAULTS["scheduler"], "steps": steps, "strength": strength,
                                      "guidance": guidance, "controlnet_scale": cn_scale, "prompt": prompt,
                                      "negative_prompt": request.negative_prompt},
            "seeds": [request.seed + k for k in range(seeds)], "tile_plan": plan.to_dict(),
            "weights": {"run": str(self.run.folder.resolve()), "step": meta.get("step"),
                        "controlnet_sha256": self.run.weights_sha256(), "base": comp.info.get("base"),
                        "base_kind": comp.kind, "text_weights": comp.info.get("text_weights")},
            "training_pairs": {"teaches": trained.get("teaches"), "factor": trained.get("factor"),
                               "target_spacing": target_spacings, "dataset": meta.get("dataset")},
            "extrapolation": (f"yes: output spacing {out_spacing:.4g} is finer than the training targets' "
                              f"{finest}" if extrapolating and finest is not None else
                              ("unknown: the run records no training spacing" if finest is None else "no")),
            "consistency": cons, "device": device, "dtype": "float32",
            "speed": {"seconds": round(seconds, 2), "torch_compile": speed},
        }


def render_file(input_path: str | Path, run: str | Path, out: str | Path, request: TransformRequest,
                checkpoint: int | None = None, base: str | Path | None = None,
                progress: ProgressCallback | None = None) -> RenderResult:
    """``sarviz render``: read, render, write the COG (atomically: nothing half-written on failure)."""
    img = SarGeoTiff.read(input_path)
    renderer = Sar2SarRenderer(run, checkpoint, base)
    result = renderer.render(img, request, progress)
    result.output.write(out)
    return result
