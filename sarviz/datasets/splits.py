"""Spatial-block train/val/test splits.

Random per-patch splits leak: neighbouring SAR patches share terrain, land cover and
often pixels (overlapping strides, repeat acquisitions of one place), so a validation
score measures memory, not generalisation. Here the world is cut into square blocks of
``block_km`` on the EASE-Grid 2.0 global equal-area projection (EPSG:6933, so a block has
the same area everywhere), every block goes to one split by a seeded hash of its indices
(stable: adding patches never moves a block), and a patch follows the block of its
centre. Patches that still overlap a patch of another split (a patch straddling a block
edge) are dropped from the lower-priority split (train loses to val, val to test) and
counted as ``split_buffer``, so no pixel is on both sides.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sarviz.errors import DatasetError

SPLIT_CRS = "EPSG:6933"  # EASE-Grid 2.0 global (cylindrical equal-area)
PRIORITY = {"test": 0, "val": 1, "train": 2}
#: patches overlapping by less than this fraction of the smaller one only touch (edge rounding)
TOUCH_FRACTION = 0.01


@dataclass(frozen=True)
class SplitSpec:
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    block_km: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("val_fraction", "test_fraction"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v < 1.0):
                raise DatasetError(f"--{name.replace('_', '-')} must be in [0, 1), got {v!r}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise DatasetError(
                f"val + test fractions ({self.val_fraction} + {self.test_fraction}) leave no training data"
            )
        if not (isinstance(self.block_km, (int, float)) and math.isfinite(self.block_km) and self.block_km > 0):
            raise DatasetError(f"--split-block-km must be a positive number of km, got {self.block_km!r}")

    def to_json(self) -> dict:
        return {
            "method": "spatial-blocks",
            "block_km": self.block_km,
            "seed": self.seed,
            "crs": SPLIT_CRS,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "buffer": "patches overlapping another split are dropped from train (then val)",
        }


def block_of(lon: float, lat: float, block_km: float) -> tuple[int, int]:
    """The (column, row) index of the block holding a point."""
    x, y = _to_ease(lon, lat)
    size = block_km * 1000.0
    return (math.floor(x / size), math.floor(y / size))


def _to_ease(lon, lat):
    return _transformer().transform(lon, lat)


@functools.lru_cache(maxsize=1)
def _transformer():
    from pyproj import Transformer

    return Transformer.from_crs("EPSG:4326", SPLIT_CRS, always_xy=True)


def split_of_block(block: tuple[int, int], spec: SplitSpec) -> str:
    """The split of a block: a uniform number from sha256(seed, block) against the fractions."""
    digest = hashlib.sha256(f"{spec.seed}:{block[0]}:{block[1]}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < spec.test_fraction:
        return "test"
    if u < spec.test_fraction + spec.val_fraction:
        return "val"
    return "train"


def assign_splits(
    centres: Sequence[tuple[float, float]], footprints: Sequence[tuple[float, float, float, float]], spec: SplitSpec
) -> tuple[list[str], list[bool], list[tuple[int, int]]]:
    """Splits for patches with centres (lon, lat) and WGS84 footprints (west, south, east, north).

    Returns (split per patch, keep flag per patch — False when dropped by the buffer rule,
    block per patch).
    """
    from shapely import STRtree, box

    blocks = [block_of(lon, lat, spec.block_km) for lon, lat in centres]
    splits = [split_of_block(b, spec) for b in blocks]
    keep = [True] * len(splits)
    if not splits:
        return splits, keep, blocks
    geoms = [box(*_ease_box(fp)) for fp in footprints]
    tree = STRtree(geoms)
    # higher priority first, so a train patch is dropped only for a patch that is itself kept
    for i in sorted(range(len(geoms)), key=lambda k: PRIORITY[splits[k]]):
        if not keep[i]:
            continue
        for j in tree.query(geoms[i], predicate="intersects"):
            j = int(j)
            if j == i or not keep[j] or splits[j] == splits[i] or PRIORITY[splits[j]] <= PRIORITY[splits[i]]:
                continue
            overlap = geoms[i].intersection(geoms[j]).area
            if overlap > TOUCH_FRACTION * min(geoms[i].area, geoms[j].area):
                keep[j] = False
    return splits, keep, blocks


def _ease_box(footprint: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    west, south, east, north = footprint
    if east < west:  # crosses the antimeridian: unwrap (the buffer rule then works in one piece)
        east += 360.0
    xs, ys = _to_ease(np.array([west, east, west, east]), np.array([south, south, north, north]))
    return (float(np.min(xs)), float(np.min(ys)), float(np.max(xs)), float(np.max(ys)))
