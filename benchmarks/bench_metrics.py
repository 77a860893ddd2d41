"""Benchmark: all metrics + the three inspection figures for a 512×512 VV+VH pair.

Target (issue #6): under 0.5 s median on the project machine (2 shared CPU cores).
Two ways are timed, alternating run by run so that load from other users hits both alike:

* ``sequential``: :func:`~sarviz.metrics.report.compare`, then each panel drawn in full
  with ``figure_png(…_panel(report))`` (the path before ``inspect_all``), per stage;
* ``inspect_all``: :func:`~sarviz.viz.inspect.inspect_all` — the same numbers and
  pictures (tests/test_metrics.py, tests/test_panels.py check), what the UI should call.

Real image: the Sen1Floods11 chip in ../shared (a synthetic speckled scene if it is
absent); generated: the real image with one extra look of gamma speckle and +1 dB on VH.
The embedding is a smooth random 64×512×512 field (no real embedding raster is shipped).

    python benchmarks/bench_metrics.py [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLE = SHARED / "samples" / "sen1floods11" / "Spain_7370579_S1Hand.tif"


def inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    from scipy.ndimage import gaussian_filter

    from sarviz.metrics.report import read_sar_file

    rng = np.random.default_rng(0)
    if SAMPLE.exists():
        real = read_sar_file(SAMPLE, "Sen1Floods11")
        vv, vh, source = real.vv_db, real.vh_db, "Sen1Floods11 Spain_7370579 (real S1)"
    else:
        rows, cols = np.mgrid[:512, :512]
        base = np.array([-15.0, -10.0, -6.0])[(rows // 64 + cols // 96) % 3]
        vv = (base + 10 * np.log10(rng.gamma(4, 0.25, base.shape))).astype(np.float32)
        vh = (base - 7 + 10 * np.log10(rng.gamma(4, 0.25, base.shape))).astype(np.float32)
        source = "synthetic speckled fields (../shared absent)"
    gv = (vv + 10 * np.log10(rng.gamma(1.0, 1.0, vv.shape))).astype(np.float32)
    gh = (vh + 1.0 + 10 * np.log10(rng.gamma(1.0, 1.0, vh.shape))).astype(np.float32)
    emb = gaussian_filter(rng.normal(size=(64, 512, 512)).astype(np.float32), sigma=(0, 8, 8))
    emb /= np.linalg.norm(emb, axis=0, keepdims=True)  # AlphaEarth vectors are unit length
    return vv, vh, gv, gh, emb, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()

    from sarviz.metrics.report import compare
    from sarviz.viz import panels
    from sarviz.viz.inspect import inspect_all

    vv, vh, gv, gh, emb, source = inputs()
    names = ("metrics (VV+VH)", "histogram panel", "GLCM panel", "embedding panel")
    rows = (*[f"sequential: {n}" for n in names], "sequential: total", "inspect_all: total")
    wall: dict[str, list[float]] = {name: [] for name in rows}
    cpu: dict[str, list[float]] = {name: [] for name in rows}
    # warm-up: imports (torch, piq, skimage), first-call allocations, cached figure layouts
    report = compare(vv, vh, gv, gh)
    panels.figure_png(panels.histogram_panel(report))
    inspect_all(vv, vh, gv, gh, embedding=emb)
    load_before = os.getloadavg()[0]
    for _ in range(args.runs):
        marks = [(time.perf_counter(), time.process_time())]
        report = compare(vv, vh, gv, gh)
        marks.append((time.perf_counter(), time.process_time()))
        panels.figure_png(panels.histogram_panel(report))
        marks.append((time.perf_counter(), time.process_time()))
        panels.figure_png(panels.glcm_panel(report))
        marks.append((time.perf_counter(), time.process_time()))
        panels.figure_png(panels.embedding_panel(emb))
        marks.append((time.perf_counter(), time.process_time()))
        for i in range(len(names)):
            wall[rows[i]].append(marks[i + 1][0] - marks[i][0])
            cpu[rows[i]].append(marks[i + 1][1] - marks[i][1])
        wall["sequential: total"].append(marks[-1][0] - marks[0][0])
        cpu["sequential: total"].append(marks[-1][1] - marks[0][1])
        start = (time.perf_counter(), time.process_time())
        inspect_all(vv, vh, gv, gh, embedding=emb)
        wall["inspect_all: total"].append(time.perf_counter() - start[0])
        cpu["inspect_all: total"].append(time.process_time() - start[1])

    print(
        f"input: {source}, {vv.shape[0]}×{vv.shape[1]} px, {args.runs} runs each, alternating; "
        f"load average {load_before:.2f} → {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(
        "wall time (ms) and process CPU time (ms, all threads: above wall = two cores used, "
        "well below = waiting for a busy machine)"
    )
    print(f"{'stage':<36} {'median':>8} {'min':>8} {'max':>8} {'cpu med':>8}")
    for name, times in wall.items():
        ms = [1000 * t for t in times]
        print(
            f"{name:<36} {statistics.median(ms):8.1f} {min(ms):8.1f} {max(ms):8.1f} "
            f"{1000 * statistics.median(cpu[name]):8.1f}"
        )
    total = statistics.median(wall["inspect_all: total"])
    print(f"target: inspect_all total < 500 ms → {'met' if total < 0.5 else 'NOT met'} ({1000 * total:.0f} ms)")


if __name__ == "__main__":
    main()
