"""Throughput of `sarviz dataset build --scenes` (patches per second) and its peak memory.

A synthetic 1536 × 1536 scene (random unit embedding, speckled VV/VH, angle ramp) is
written once; then the builder cuts 512² patches at stride 512 (9 a run) into a fresh folder with
``--workers 1`` and ``--workers 2``, each in its own subprocess (so the peak RSS is per
configuration), several runs each; the median wall and CPU seconds per patch (CPU
includes the process start-up) and the peak RSS are reported. Land cover is off (``--landcover none``) to time the I/O path; one more row
times the default (embedding kNN) when ../shared is present.

    python benchmarks/bench_dataset_build.py [--runs 3] [--scene 1536] [--size 512]

Results: benchmarks/RESULTS_datasets.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_scene(path: Path, size: int) -> None:
    import numpy as np
    from affine import Affine

    from sarviz.scene import Scene, write_scene

    rng = np.random.default_rng(0)
    emb = rng.normal(0, 1, (64, size, size)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=0, keepdims=True)
    vv = (-10 + 10 * np.log10(rng.gamma(4.4, 1 / 4.4, (size, size)))).astype(np.float32)
    vh = vv - 7
    angle = np.tile(np.linspace(30, 45, size, dtype=np.float32), (size, 1))
    write_scene(
        Scene(
            crs="EPSG:32632",
            transform=Affine(10, 0, 400_000, 0, -10, 5_200_000),
            width=size,
            height=size,
            vv_db=vv,
            vh_db=vh,
            angle_deg=angle,
            embedding=emb,
            scene_id="bench",
            provenance={"source": "benchmark", "embedding_source": "proxy:random (benchmark)"},
        ),
        path / "bench.tif",
    )


CHILD = """
import resource, sys, time
from sarviz.cli import main
t = time.perf_counter()
code = main(sys.argv[1:])
u = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM, not ru_maxrss: ru_maxrss keeps the forked parent's RSS across exec on Linux
hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM"))
print("RESULT", time.perf_counter() - t, hwm / 1024, code, u.ru_utime + u.ru_stime)
"""


def run(scenes: Path, out: Path, size: int, workers: int, landcover: str) -> tuple[float, float, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SARVIZ_HOME": str(out.parent / "home")}
    args = [
        "dataset",
        "build",
        "--scenes",
        str(scenes),
        "--to",
        str(out),
        "--size",
        str(size),
        "--stride",
        str(size),
        "--workers",
        str(workers),
        "--landcover",
        landcover,
    ]
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env, check=True)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    _, seconds, rss_mb, code, cpu = line.split()
    assert code == "0", proc.stderr[-2000:]
    return float(seconds), float(rss_mb), float(cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scene", type=int, default=1536)
    ap.add_argument("--size", type=int, default=512)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-dataset-"))
    (work / "scenes").mkdir()
    make_scene(work / "scenes", a.scene)
    n = (a.scene // a.size) ** 2
    rows = []
    configs = [(1, "none"), (2, "none"), (2, "auto")]
    for workers, landcover in configs:
        times, rss, cpus = [], [], []
        for r in range(a.runs):
            s, m, c = run(work / "scenes", work / f"out_{workers}_{landcover}_{r}", a.size, workers, landcover)
            times.append(s)
            rss.append(m)
            cpus.append(c)
        rows.append(
            {
                "workers": workers,
                "landcover": landcover,
                "patches": n,
                "median_s": round(statistics.median(times), 2),
                "s_per_patch": round(statistics.median(times) / n, 3),
                "cpu_s_per_patch": round(statistics.median(cpus) / n, 3),
                "peak_rss_mb": round(max(rss)),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(f"load average at the end: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
