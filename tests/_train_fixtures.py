"""Fake training data and tiny bases for the trainer tests, written in the real formats.

torchgeo style: the data are made by code, in the layout the real tools write —

* :func:`write_patch_dataset` — a FORMATS A dataset folder (dataset.json, manifest.csv,
  67-band float32 GeoTIFF patches with CRS, band descriptions VV, VH, angle, A00..A63);
  the backscatter is a smooth function of the embedding and the angle plus speckle, so a
  model has something to learn;
* :func:`write_captioned` — its ``captioned/`` 🤗 imagefolder (PNG + metadata.jsonl);
* :func:`write_tiny_sd15` — the tiny SD 1.5 base of ``_diffusion_fixtures``;
* :func:`write_tiny_sdxl` — a tiny SDXL base (two CLIP text encoders, text-time added
  conditions), sized like diffusers' own SDXL pipeline tests.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from _diffusion_fixtures import LEARNING_CHANNELS, TINY_CHANNELS, write_tiny_checkpoint, write_tokenizer  # noqa: F401


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one thread is faster (no OpenMP barrier waits).
    Imported by the trainer test modules (autouse there); restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _patch_arrays(rng: np.random.Generator, size: int) -> tuple[np.ndarray, ...]:
    coarse = rng.normal(size=(64, 4, 4)).astype(np.float32)
    rep = size // 4 + 1
    emb = np.kron(coarse, np.ones((rep, rep), np.float32))[:, :size, :size]
    emb /= np.linalg.norm(emb, axis=0, keepdims=True)
    angle = np.tile(np.linspace(31.0, 44.0, size, dtype=np.float32), (size, 1))
    speckle = 10 * np.log10(rng.gamma(4.0, 1 / 4.0, (size, size))).astype(np.float32)
    vv = -12.0 + 40.0 * emb[0] - 0.2 * (angle - 37.5) + speckle
    vh = vv - 7.0 + 0.5 * speckle
    return vv.astype(np.float32), vh.astype(np.float32), angle, emb


def write_patch_dataset(
    root: Path,
    n_train: int = 6,
    n_val: int = 2,
    n_test: int = 1,
    size: int = 32,
    seed: int = 0,
    embedding_source: str = "proxy:test-random",
) -> Path:
    import rasterio
    from affine import Affine

    from sarviz.calibration import DEFAULT_CALIBRATION
    from sarviz.scene import TRAINING_PATCH_BANDS

    root = Path(root)
    (root / "patches").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    for i, split in enumerate(splits):
        pid = f"p{i:03d}"
        vv, vh, angle, emb = _patch_arrays(rng, size)
        data = np.concatenate([vv[None], vh[None], angle[None], emb]).astype(np.float32)
        x0, y0 = 500000.0 + 10 * size * 3 * i, 4200000.0
        path = root / "patches" / f"{pid}.tif"
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=size,
            height=size,
            count=data.shape[0],
            dtype="float32",
            crs="EPSG:32630",
            transform=Affine(10.0, 0, x0, 0, -10.0, y0),
            nodata=float("nan"),
            tiled=True,
            blockxsize=16,
            blockysize=16,
        ) as dst:
            dst.write(data)
            for b, name in enumerate(TRAINING_PATCH_BANDS, 1):
                dst.set_band_description(b, name)
            dst.update_tags(SCENE_ID=pid)
        rows.append(
            {
                "id": pid,
                "file": f"patches/{pid}.tif",
                "split": split,
                "lon": -3.0 + 0.01 * i,
                "lat": 37.9,
                "date": "2024-06-01",
                "orbit": "descending",
                "relative_orbit": 110,
                "angle_mean": float(angle.mean()),
                "landcover": "crops",
                "landcover_fractions": json.dumps({"crops": 1.0}),
                "embedding_source": embedding_source,
                "source_scene": "synthetic",
                "provenance": json.dumps({"source": "test fixture"}),
            }
        )
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "format": "sarviz-patches/1",
                "size": size,
                "bands": list(TRAINING_PATCH_BANDS),
                "calibration": DEFAULT_CALIBRATION.to_dict(),
                "embedding_source": embedding_source,
                "s1_mode": "single",
                "counts": {"train": n_train, "val": n_val, "test": n_test, "dropped": {}},
                "split": {"method": "spatial-blocks", "block_km": 1, "seed": seed},
                "created": "2026-01-01T00:00:00Z",
                "sarviz": "test",
            },
            indent=2,
        )
    )
    return root


def write_captioned(dataset: Path, image_mode: str = "L", token: str = "<SAR>") -> Path:
    """``dataset/captioned`` from the dataset's patches (VV → grey via the calibration)."""
    from PIL import Image

    from sarviz.calibration import DEFAULT_CALIBRATION
    from sarviz.scene import read_scene

    dataset = Path(dataset)
    out = dataset / "captioned"
    with open(dataset / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    words = ["farmland", "water", "forest", "town"]
    lines: dict[str, list[str]] = {}
    for n, r in enumerate(rows):
        split = {"val": "validation"}.get(r["split"], r["split"])
        scene = read_scene(dataset / r["file"])
        vv = DEFAULT_CALIBRATION.to_unit(scene.vv_db, "VV")
        if image_mode == "L":
            img = Image.fromarray((vv * 255).round().astype(np.uint8), mode="L")
        else:
            vh = DEFAULT_CALIBRATION.to_unit(scene.vh_db, "VH")
            img = Image.fromarray((np.stack([vv, vh, vv], -1) * 255).round().astype(np.uint8), mode="RGB")
        (out / split).mkdir(parents=True, exist_ok=True)
        img.save(out / split / f"{r['id']}.png")
        text = f"{token} Sentinel-1 VV image of {words[n % len(words)]}, descending orbit"
        lines.setdefault(split, []).append(
            json.dumps(
                {
                    "file_name": f"{r['id']}.png",
                    "text": text,
                    "id": r["id"],
                    "label": "crops",
                    "lat": float(r["lat"]),
                    "lon": float(r["lon"]),
                }
            )
        )
    for split, ls in lines.items():
        (out / split / "metadata.jsonl").write_text("\n".join(ls) + "\n")
    (out / "caption_info.json").write_text(
        json.dumps(
            {
                "format": "sarviz-captioned/1",
                "token": token,
                "polarisation": "VV" if image_mode == "L" else "VV+VH",
                "calibration": DEFAULT_CALIBRATION.to_dict(),
                "image_mode": image_mode,
            }
        )
    )
    return out


def fix_model_max_length(folder: Path, length: int = 77) -> None:
    """CLIP's 77-token limit in tokenizer_config.json (transformers 5 saves the reference
    tokenizer without it, and a pipeline then pads prompts to 10^30 tokens)."""
    path = Path(folder) / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    cfg["model_max_length"] = length
    path.write_text(json.dumps(cfg, indent=2))


def write_tiny_sd15(root: Path, channels: tuple[int, int] = LEARNING_CHANNELS) -> Path:
    """The tiny SD 1.5 base folder (diffusers layout) of ``_diffusion_fixtures``; by default the size a
    trainer test can overfit, ``channels=TINY_CHANNELS`` where a test does not measure learning."""
    base = write_tiny_checkpoint(Path(root), channels=channels).base
    fix_model_max_length(base / "tokenizer")
    return base


def write_tiny_sdxl(root: Path, seed: int = 0) -> Path:
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    base = Path(root) / "sdxl"
    torch.manual_seed(seed)
    tok, _ = write_tokenizer(base / "tokenizer")
    write_tokenizer(base / "tokenizer_2")
    fix_model_max_length(base / "tokenizer")
    fix_model_max_length(base / "tokenizer_2")
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,
        cross_attention_dim=64,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        sample_size=32,
    )
    cfg = dict(
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-5,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=len(tok),
        max_position_embeddings=77,
        hidden_act="gelu",
        projection_dim=32,
    )
    CLIPTextModel(CLIPTextConfig(**cfg)).save_pretrained(base / "text_encoder")
    CLIPTextModelWithProjection(CLIPTextConfig(**cfg)).save_pretrained(base / "text_encoder_2")
    unet.save_pretrained(base / "unet")
    vae.save_pretrained(base / "vae")
    EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, steps_offset=1, beta_schedule="scaled_linear", timestep_spacing="leading"
    ).save_pretrained(base / "scheduler")
    (base / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "StableDiffusionXLPipeline",
                "_diffusers_version": "0.42.1",
                "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "tokenizer_2": ["transformers", "CLIPTokenizer"],
                "scheduler": ["diffusers", "EulerDiscreteScheduler"],
                "force_zeros_for_empty_prompt": True,
                "image_encoder": [None, None],
                "feature_extractor": [None, None],
            },
            indent=2,
        )
    )
    return base
