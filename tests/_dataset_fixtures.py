"""Synthetic scenes for the dataset tests, built from REAL AlphaEarth points.

Each 8×8 block of a scene takes one real labelled point of /work/shared/samples/
alphaearth_s1_points: its 64-D embedding everywhere in the block and its real 2024 median
VV/VH (dB) plus gamma speckle (ENL 4.4) as the backscatter. The embedding is therefore a
*proxy* (real vectors, not of this place) and the scenes say so in their provenance.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from sarviz.scene import EMBEDDING_BANDS, Scene, utm_crs_for, write_scene

# ../shared beside the repository (SARVIZ_SHARED overrides, e.g. for a git worktree elsewhere)
SHARED = Path(os.environ.get("SARVIZ_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
POINTS = SHARED / "samples" / "alphaearth_s1_points"
BLOCK = 8


def need_points() -> Path:
    if not POINTS.is_dir():
        pytest.skip(f"{POINTS} is absent (../shared holds the real AlphaEarth points)")
    return POINTS


@functools.lru_cache(maxsize=1)
def load_points_frame():
    import pandas as pd

    return pd.concat([pd.read_csv(p) for p in sorted(need_points().glob("*.csv"))], ignore_index=True)


def synthetic_scene(
    lat: float,
    lon: float,
    size: int = 128,
    classes=(4, 1),
    seed: int = 0,
    with_angle: bool = True,
    scene_id: str = "synthetic",
    date: str = "2024-07-15T05:50:00",
    orbit: str = "descending",
    nan_rows: int = 0,
) -> Scene:
    """A UTM 10 m scene: left half class ``classes[0]``, right half ``classes[1]`` (DW indices)."""
    frame = load_points_frame()
    rng = np.random.default_rng(seed)
    nb = size // BLOCK
    cls_of_block = np.where(np.arange(nb) * BLOCK < size // 2, classes[0], classes[1])[None, :].repeat(nb, 0)
    values = np.empty((66, nb, nb), np.float32)  # A00..A63, S1_VV, S1_VH per block
    for cls in set(classes):
        pool = frame[frame["dw_label"] == cls][list(EMBEDDING_BANDS) + ["S1_VV", "S1_VH"]].to_numpy(np.float32)
        where = cls_of_block == cls
        values[:, where] = pool[rng.integers(len(pool), size=int(where.sum()))].T
    full = values.repeat(BLOCK, 1).repeat(BLOCK, 2)
    emb, vv, vh = full[:64], full[64].copy(), full[65].copy()
    speckle = rng.gamma(4.4, 1 / 4.4, (2, size, size)).astype(np.float32)
    vv = vv + 10 * np.log10(speckle[0])
    vh = vh + 10 * np.log10(speckle[1])
    if nan_rows:
        vv[:nan_rows] = np.nan
    crs = utm_crs_for(lat, lon)
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    transform = Affine(10.0, 0, round(x / 10) * 10 - size * 5, 0, -10.0, round(y / 10) * 10 + size * 5)
    angle = np.tile(np.linspace(31.0, 44.0, size, dtype=np.float32), (size, 1)) if with_angle else None
    return Scene(
        crs=crs,
        transform=transform,
        width=size,
        height=size,
        vv_db=vv,
        vh_db=vh,
        angle_deg=angle,
        embedding=emb,
        scene_id=scene_id,
        dates={"s1": date},
        provenance={
            "source": "test:synthetic",
            "orbit_pass": orbit,
            "relative_orbit": 110,
            "embedding_source": "proxy:real AlphaEarth points (test fixture, not of this place)",
        },
    )


def write_synthetic_folder(folder: Path, **kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_scene(synthetic_scene(41.9, -93.6, scene_id="iowa_a", classes=(4, 6), seed=1, **kw), folder / "iowa_a.tif")
    write_scene(
        synthetic_scene(
            -3.1,
            -60.0,
            scene_id="amazon_b",
            classes=(1, 0),
            seed=2,
            date="2024-01-20T10:00:00",
            orbit="ascending",
            **kw,
        ),
        folder / "amazon_b.tif",
    )
    return folder


def add_test_proxy(scene: Scene) -> Scene:
    """A test-only proxy embedding: each pixel's optical-rule class → one real AlphaEarth vector of that
    class (the first labelled point of the class). Labelled as a proxy in the provenance."""
    from sarviz.datasets.landcover import classify_optical

    frame = load_points_frame()
    classes = classify_optical(scene.optical)
    emb = np.full((64,) + scene.shape, np.nan, np.float32)
    for cls in np.unique(classes[classes >= 0]):
        pool = frame[frame["dw_label"] == cls]
        if len(pool):
            emb[:, classes == cls] = pool.iloc[0][list(EMBEDDING_BANDS)].to_numpy(np.float32)[:, None]
    scene.embedding = emb
    scene.provenance = {
        **scene.provenance,
        "embedding_source": "proxy:test fixture (optical rule class → a real AlphaEarth vector)",
    }
    return scene
