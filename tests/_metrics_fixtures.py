"""Shared helpers for the metrics, panels and inspection tests: small real-format inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from sarviz.generators.base import GenerationResult

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SEN1FLOODS11_S1 = SHARED / "samples" / "sen1floods11" / "Spain_7370579_S1Hand.tif"
BIGEARTHNET_S1 = SHARED / "samples" / "bigearthnet" / "BigEarthNet-S1-Example"

UTM33 = "EPSG:32633"
GRID = Affine(10.0, 0.0, 404400.0, 0.0, -10.0, 5342400.0)


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared Sentinel samples (../shared) are not next to this checkout")
    return path


def speckled_scene_db(
    shape=(96, 96), looks: float = 4.0, seed: int = 0, offset_db: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """VV/VH dB images: fields of different backscatter with L-look gamma speckle."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    fields = (rows // 24 + cols // 32) % 3
    vv_mean = np.array([-14.0, -9.0, -5.0])[fields] + offset_db
    vh_mean = vv_mean - 7.0
    speckle = lambda: 10 * np.log10(rng.gamma(looks, 1 / looks, size=shape))  # noqa: E731
    return (vv_mean + speckle()).astype(np.float32), (vh_mean + speckle()).astype(np.float32)


def result_from(vv: np.ndarray, vh: np.ndarray, transform: Affine = GRID, crs: str = UTM33, **prov) -> GenerationResult:
    return GenerationResult(vv, vh, crs, transform, {"model_id": "test-arrays", **prov})


def bigearthnet_pair_tif(tmp_path: Path) -> Path:
    """One BigEarthNet patch's separate VV and VH files as one 2-band GeoTIFF named VV, VH."""
    folder = sorted(p for p in need(BIGEARTHNET_S1).iterdir() if p.is_dir())[0]
    vv_file = next(folder.glob("*_VV.tif"))
    with rasterio.open(vv_file) as src:
        vv, profile = src.read(1), src.profile
    with rasterio.open(next(folder.glob("*_VH.tif"))) as src:
        vh = src.read(1)
    out = tmp_path / f"{folder.name}_VVVH.tif"
    profile.update(count=2, dtype="float32", driver="GTiff")
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(np.stack([vv, vh]).astype(np.float32))
        dst.descriptions = ("VV", "VH")
    return out
