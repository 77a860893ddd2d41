"""Scene folders for batch tests: synthetic scene files whose embedding pixels are REAL AlphaEarth vectors.

Each scene is a 4 × 4 grid of blocks; a block takes one sample point of
../shared/samples/alphaearth_s1_points: its 64-D AlphaEarth vector (every pixel of the
block), and its real 2024 Sentinel-1 median σ⁰ VV/VH with gamma speckle (ENL 4.4) as the
"real" image. The real layers are therefore a 2024 *median composite* with synthetic
speckle, and the scenes say so in their provenance (``s1_mode: composite``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

ROOT = Path(__file__).resolve().parents[1]
DW_CLASSES = (
    "water",
    "trees",
    "grass",
    "flooded_vegetation",
    "crops",
    "shrub_and_scrub",
    "built",
    "bare",
    "snow_and_ice",
)
BLOCK_PX = 32
GRID = 4
#: (region file stem, UTM EPSG, block classes in row-major order)
REGIONS = {
    "amazon_forest": (32721, (1, 1, 0, 1, 1, 4, 1, 6, 0, 1, 1, 2, 1, 7, 1, 1)),
    "iowa_ag": (32615, (4, 4, 6, 4, 4, 0, 4, 1, 2, 4, 4, 6, 1, 4, 4, 4)),
}


def alphaearth_points_dir() -> Path:
    """../shared/samples/alphaearth_s1_points (or $SARVIZ_SHARED/samples/…); skip when absent."""
    shared = Path(os.environ.get("SARVIZ_SHARED", ROOT.parent / "shared"))
    folder = shared / "samples" / "alphaearth_s1_points"
    if not folder.is_dir():
        pytest.skip(
            f"{folder} (real AlphaEarth sample vectors) is not available; set SARVIZ_SHARED to the shared folder"
        )
    return folder


def _samples(folder: Path, stem: str) -> list[dict]:
    path = next(folder.glob(f"alphaearth_s1_dw_samples_{stem}_*.csv"))
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def build_scene_folder(dest: Path, seed: int = 0, grid: int = GRID) -> list[dict]:
    """Write one scene a region into ``dest``; return the block centres as points (id, lat, lon, class).

    Scenes are ``grid`` × ``grid`` blocks of 32 px (the block classes repeat beyond 4 × 4).
    """
    from pyproj import Transformer

    from sarviz.scene import EMBEDDING_BANDS, Scene, write_scene

    folder = alphaearth_points_dir()
    rng = np.random.default_rng(seed)
    dest.mkdir(parents=True, exist_ok=True)
    points = []
    for stem, (epsg, classes) in REGIONS.items():
        rows = _samples(folder, stem)
        lat0 = np.mean([float(r["latitude"]) for r in rows])
        lon0 = np.mean([float(r["longitude"]) for r in rows])
        x0, y0 = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon0, lat0)
        size = BLOCK_PX * grid
        transform = Affine(10.0, 0, round(x0 - size * 5), 0, -10.0, round(y0 + size * 5))
        emb = np.zeros((64, size, size), np.float32)
        vv = np.zeros((size, size), np.float32)
        vh = np.zeros((size, size), np.float32)
        by_class: dict[int, list[dict]] = {}
        for r in rows:
            by_class.setdefault(int(float(r["dw_label"])), []).append(r)
        to_wgs = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)
        for b in range(grid * grid):
            cls = classes[b % len(classes)]
            r0, c0 = (b // grid) * BLOCK_PX, (b % grid) * BLOCK_PX
            sample = by_class[cls][int(rng.integers(len(by_class[cls])))]
            vec = np.array([float(sample[name]) for name in EMBEDDING_BANDS], np.float32)
            emb[:, r0 : r0 + BLOCK_PX, c0 : c0 + BLOCK_PX] = vec[:, None, None]
            for arr, key in ((vv, "S1_VV"), (vh, "S1_VH")):
                sigma0 = 10 ** (float(sample[key]) / 10)
                speckle = rng.gamma(4.4, 1 / 4.4, (BLOCK_PX, BLOCK_PX))
                arr[r0 : r0 + BLOCK_PX, c0 : c0 + BLOCK_PX] = 10 * np.log10(sigma0 * speckle)
            x, y = transform @ (c0 + BLOCK_PX / 2, r0 + BLOCK_PX / 2)
            lon, lat = to_wgs.transform(x, y)
            points.append(
                {
                    "id": f"{stem}_{b:02d}",
                    "lat": round(lat, 7),
                    "lon": round(lon, 7),
                    "class": DW_CLASSES[cls],
                    "region": stem,
                }
            )
        scene = Scene(
            crs=f"EPSG:{epsg}",
            transform=transform,
            width=size,
            height=size,
            optical=rng.uniform(0.02, 0.3, (4, size, size)).astype(np.float32),
            vv_db=vv,
            vh_db=vh,
            angle_deg=np.tile(np.linspace(31, 44, size, dtype=np.float32), (size, 1)),
            embedding=emb,
            scene_id=f"test_{stem}",
            dates={"s1": "2024-07-01T00:00:00", "year": "2024"},
            provenance={
                "source": "test fixture",
                "s1_mode": "composite",
                "note": "embedding: real AlphaEarth vectors; S1: real 2024 median + synthetic speckle",
            },
        )
        write_scene(scene, dest / f"test_{stem}.tif")
    return points


def write_points_csv(path: Path, points: list[dict]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "lat", "lon", "class", "region"])
        writer.writeheader()
        writer.writerows(points)
    return path
