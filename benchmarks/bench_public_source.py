"""Offline cost of the public embedding path for one 512×512 patch (no network time).

Builds the local AlphaEarth Zarr v3 fixture (same structure, int8, sharded + zstd) once,
then times each step of ``AlphaEarthMosaic.read_patch`` next to the straightforward way of
doing it, and the whole read. Target: whole read < 150 ms. Run:

    python benchmarks/bench_public_source.py [--runs 9]

Times are wall-clock medians (and minima) of ``--runs`` runs, and the median CPU time of the
process; the machine's load average is printed with them because other work on a shared
machine slows every wall-clock row alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from sarviz.sources.base import FetchRequest  # noqa: E402
from sarviz.sources.public import (  # noqa: E402
    _LOCAL_ZARR_READ,
    AlphaEarthMosaic,
    dequantize_arithmetic,
    gather_dequantize,
)

from _sources_fixtures import build_aef_zarr  # noqa: E402

LAT, LON, YEAR = 47.0, 8.0, 2018


def timed(fn, runs):
    """(median wall ms, min wall ms, median CPU ms of this process — all threads, value)."""
    wall, cpu, value = [], [], None
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        value = fn()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return statistics.median(wall), min(wall), statistics.median(cpu), value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message=".*sharding_indexed.*")
    import zarr

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        print("building the Zarr fixture (once) ...", file=sys.stderr)
        build_aef_zarr(Path(tmp) / "aef.zarr", [(LAT, LON, 270, 380)])
        request = FetchRequest.make(LAT, LON, 512, YEAR)
        crs, transform = request.grid
        mosaic = AlphaEarthMosaic(str(Path(tmp) / "aef.zarr"))
        array = mosaic._open()
        yi = mosaic.year_index(YEAR)
        rows, cols = mosaic.source_pixels(crs, transform, 512, 512)
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        rows_ms = []

        def row(name, fn):
            t, lo, cpu, value = timed(fn, args.runs)
            rows_ms.append((name, t, lo, cpu))
            return value

        exact = row(
            "pixel lookup: pyproj on every pixel (reference)",
            lambda: mosaic.source_pixels_exact(crs, transform, 512, 512),
        )
        fast = row(
            "pixel lookup: lattice + bilinear + edge fix-up", lambda: mosaic.source_pixels(crs, transform, 512, 512)
        )
        assert all(np.array_equal(a, b) for a, b in zip(exact, fast)), "fast pixel lookup differs from pyproj"
        window = row("Zarr window read, zarr defaults", lambda: np.asarray(array[yi, :, r0:r1, c0:c1]))
        with zarr.config.set(_LOCAL_ZARR_READ):
            row(f"Zarr window read, {_LOCAL_ZARR_READ}", lambda: np.asarray(array[yi, :, r0:r1, c0:c1]))
        name, *times = rows_ms[-2]
        rows_ms[-2] = (f"{name} ({window.shape[1]}×{window.shape[2]}×64 int8)", *times)
        index = ((rows - r0) * (c1 - c0) + (cols - c0)).ravel()
        codes2d = window.reshape(64, -1)
        before = row(
            "gather int8 + arithmetic dequantisation (before)",
            lambda: dequantize_arithmetic(np.take(codes2d, index, axis=1)),
        )
        after = row("fused gather + table dequantisation", lambda: gather_dequantize(codes2d, index))
        assert np.array_equal(before, after, equal_nan=True), "fused gather+dequantise differs"
        emb = row("whole read_patch", lambda: mosaic.read_patch(YEAR, crs, transform, 512, 512))
        assert emb.shape == (64, 512, 512) and np.isfinite(emb).mean() > 0.95
        assert np.array_equal(emb.reshape(64, -1), before, equal_nan=True)
    load_after = os.getloadavg()[0]
    print(
        f"\nAlphaEarth mosaic → 512×512 patch, {args.runs} runs (target whole < 150 ms); "
        f"load average {load_before:.2f} → {load_after:.2f} on {os.cpu_count()} CPUs"
    )
    print(f"{'step':<66}{'median ms':>10}{'min ms':>9}{'CPU ms':>9}")
    for name, t, lo, cpu in rows_ms:
        print(f"{name:<66}{t:>10.1f}{lo:>9.1f}{cpu:>9.1f}")
    print("(CPU ms: median process CPU time, all threads — steadier than wall time when others load the machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
