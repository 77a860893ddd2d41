"""Tiny inputs for the cross-sensor tests: speckled amplitude images from the emulator's speckle model."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def speckle_amplitude(size: int, looks: float, seed: int, pattern: bool = True) -> np.ndarray:
    """Amplitude of gamma(looks) speckle (sarviz.emulator.speckle, uncorrelated) on a two-level scene."""
    from sarviz.emulator.speckle import SpeckleModel

    rng = np.random.default_rng(seed)
    speckle = SpeckleModel(enl=looks, lag1_corr_x=0.0, lag1_corr_y=0.0, pol_corr=0.0).sample((size, size), rng)[0]
    sigma0 = np.ones((size, size))
    if pattern:
        sigma0[size // 4 : size // 2, size // 4 : 3 * size // 4] = 6.0  # a bright "target"
    return np.sqrt(sigma0 * speckle).astype(np.float32)


def write_png(path: Path, amplitude: np.ndarray) -> Path:
    from PIL import Image

    scaled = np.clip(amplitude / np.percentile(amplitude, 99.5), 0, 1) * 65535
    Image.fromarray(scaled.astype(np.uint16)).save(path)
    return path


def write_geotiff(path: Path, amplitude: np.ndarray, crs: str = "EPSG:32630") -> Path:
    import rasterio
    from affine import Affine

    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=amplitude.shape[1],
        height=amplitude.shape[0],
        count=1,
        dtype="float32",
        crs=crs,
        transform=Affine(10, 0, 500000, 0, -10, 4200000),
    ) as dst:
        dst.write(amplitude.astype(np.float32)[None])
    return path
