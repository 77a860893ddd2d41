"""Offline cost of the public embedding path for one 512×512 patch (no network time).

Builds the local AlphaEarth Zarr v3 fixture (same structure, int8, sharded + zstd) once,
then times: source-pixel lookup (reprojection), Zarr window read, dequantisation, and the
whole ``AlphaEarthMosaic.read_patch``. Target: whole read < 150 ms. Run:

    python benchmarks/bench_public_source.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _sources_fixtures import build_aef_zarr  # noqa: E402

from sarviz.sources.base import FetchRequest  # noqa: E402
from sarviz.sources.public import AlphaEarthMosaic, dequantize  # noqa: E402

LAT, LON, YEAR = 47.0, 8.0, 2018


def timed(fn, runs):
    out, value = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        value = fn()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out), min(out), value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("building the Zarr fixture (once) ...", file=sys.stderr)
        build_aef_zarr(Path(tmp) / "aef.zarr", [(LAT, LON, 270, 380)])
        request = FetchRequest.make(LAT, LON, 512, YEAR)
        crs, transform = request.grid
        mosaic = AlphaEarthMosaic(str(Path(tmp) / "aef.zarr"))
        mosaic._open()
        yi = mosaic.year_index(YEAR)
        rows, cols = mosaic.source_pixels(crs, transform, 512, 512)
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        array = mosaic._open()
        rows_ms = []
        t, lo, _ = timed(lambda: mosaic.source_pixels(crs, transform, 512, 512), args.runs)
        rows_ms.append(("reprojection (pixel lookup, pyproj)", t, lo))
        t, lo, window = timed(lambda: np.asarray(array[yi, :, r0:r1, c0:c1]), args.runs)
        rows_ms.append((f"Zarr window read {window.shape[1]}×{window.shape[2]}×64 int8", t, lo))
        codes = window[:, rows - r0, cols - c0]
        t, lo, _ = timed(lambda: window[:, rows - r0, cols - c0], args.runs)
        rows_ms.append(("gather onto the patch grid", t, lo))
        t, lo, _ = timed(lambda: dequantize(codes), args.runs)
        rows_ms.append(("dequantisation (64×512×512)", t, lo))
        t, lo, emb = timed(lambda: mosaic.read_patch(YEAR, crs, transform, 512, 512), args.runs)
        rows_ms.append(("whole read_patch", t, lo))
        assert emb.shape == (64, 512, 512) and np.isfinite(emb).mean() > 0.95
    print(f"\nAlphaEarth mosaic → 512×512 patch, median of {args.runs} runs (target whole < 150 ms)")
    print(f"{'step':<44}{'median ms':>10}{'min ms':>9}")
    for name, t, lo in rows_ms:
        print(f"{name:<44}{t:>10.1f}{lo:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
