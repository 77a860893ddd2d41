"""Fake training data and tiny bases for the trainer tests, written in the real formats.

torchgeo style: the data are made by code, in the layout the real tools write —

* :func:`write_patch_dataset` — a FORMATS A dataset folder (dataset.json, manifest.csv,
  67-band float32 GeoTIFF patches with CRS, band descriptions VV, VH, angle, A00..A63);
  the backscatter is a smooth function of the embedding and the angle plus speckle, so a
  model has something to learn;
* ``write_captioned`` — its ``captioned/`` 🤗 imagefolder (PNG + metadata.jsonl);
* ``write_tiny_sd15``, ``write_tiny_sdxl`` — tiny bases.

The last three live in ``tests/tiny_models.py`` (re-exported here under their old names).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tiny_models import (  # noqa: F401 - the old names
    LEARNING_CHANNELS,
    TINY_CHANNELS,
    fix_model_max_length,
    write_tiny_checkpoint,
    write_tiny_sd15,
    write_tiny_sdxl,
    write_tokenizer,
)
from tiny_models import write_captioned_from_patches as write_captioned  # noqa: F401


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
