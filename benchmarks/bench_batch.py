"""Batch throughput: the emulator over N points from a scene folder, sequential vs Ray local.

    python benchmarks/bench_batch.py [--points 200] [--size 256] [--repeats 3] [--shared ../shared]

Scenes: two synthetic scene files whose embedding pixels are real AlphaEarth vectors
(../shared/samples/alphaearth_s1_points; the builder of tests/_batch_fixtures.py), 512 × 512 px.
Arms, each on a fresh output folder, ``repeats`` times (medians reported):

* sequential — ``engine="inline"``: fetch and generate one item after the other in this process;
* Ray, 1 generation worker + 1 fetch worker — the same work through Ray (for the overhead);
* Ray, 2 generation workers + 2 fetch workers — the parallel run.

Ray overhead per item: the two stages overlap on Ray (fetch in one process, generation in
another), so the ideal wall time of a Ray run is that of its busiest stage,
max(Σ fetch / fetch workers, Σ (generate + write) / workers), from the in-task timings of the
manifest; the overhead is (wall − start-up − ideal) / N — scheduling, serialisation, object
store and hand-over through the staging folder. Start-up (ray.init, actor creation, model
load) is reported separately. Also: the time inside each stage (sums of
the manifest's fetch_s / generate_s / write_s) and the disk an item takes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = ap.parse_args()
    os.environ.setdefault("SARVIZ_SHARED", args.shared)
    os.environ.setdefault("SARVIZ_HOME", tempfile.mkdtemp(prefix="sarviz-bench-home-"))

    from sarviz.batch.engine import run_batch
    from sarviz.batch.layout import BatchConfig, BatchFolder
    from sarviz.batch.points import BatchPoint

    from _batch_fixtures import build_scene_folder

    work = Path(tempfile.mkdtemp(prefix="sarviz-bench-batch-"))
    try:
        pts = build_scene_folder(work / "scenes", grid=16)
        half = args.points // 2
        chosen = [p for p in pts if p["region"] == "amazon_forest"][:half] + [
            p for p in pts if p["region"] == "iowa_ag"
        ][: args.points - half]
        points = [BatchPoint(p["id"], p["lat"], p["lon"], None, p["class"], p["region"]) for p in chosen]
        config = BatchConfig(model="emulator", size=args.size, scenes=str(work / "scenes"))
        arms = {
            "sequential": dict(engine="inline"),
            "ray, 1 worker": dict(engine="ray", workers=1, fetch_workers=1),
            "ray, 2 workers": dict(engine="ray", workers=2, fetch_workers=2),
        }
        results: dict[str, list[dict]] = {name: [] for name in arms}
        for rep in range(args.repeats):
            for name, kw in arms.items():
                out = work / f"out-{rep}-{name.replace(' ', '').replace(',', '')}"
                t0 = time.perf_counter()
                summary = run_batch(points, config, out, progress=False, **kw)
                wall = time.perf_counter() - t0
                rows = [r for r in summary.rows.values() if r.get("status") == "done"]
                assert summary.done == len(points), summary.line()
                stage = {k: sum(float(r.get(k) or 0) for r in rows) for k in ("fetch_s", "generate_s", "write_s")}
                results[name].append(
                    {
                        "wall": wall,
                        "startup": summary.startup_s,
                        **stage,
                        "disk": _disk(BatchFolder(out).items_dir) / len(rows),
                    }
                )
                print(
                    f"[{rep + 1}/{args.repeats}] {name}: {wall:.1f} s (start-up {summary.startup_s:.1f} s), "
                    f"stages fetch {stage['fetch_s']:.1f} s, generate {stage['generate_s']:.1f} s, "
                    f"write {stage['write_s']:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
                shutil.rmtree(out)
        med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in results.items()}
        n = len(points)
        seq = med["sequential"]["wall"]
        print(
            f"\n{n} points, {args.size} px, emulator, {args.repeats} repeats (medians); "
            f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n"
        )
        print(
            "| arm | wall s | start-up s | items/s (incl. start-up) | items/s (excl. start-up) | "
            "fetch s | generate s | write s | MB/item |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for name, m in med.items():
            run = m["wall"] - m["startup"]
            print(
                f"| {name} | {m['wall']:.1f} | {m['startup']:.1f} | {n / m['wall']:.2f} | {n / run:.2f} | "
                f"{m['fetch_s']:.1f} | {m['generate_s']:.1f} | {m['write_s']:.1f} | {m['disk'] / 1e6:.2f} |"
            )
        print()
        for name, slots in (("ray, 1 worker", 1), ("ray, 2 workers", 2)):
            m = med[name]
            ideal = max(m["fetch_s"] / slots, (m["generate_s"] + m["write_s"]) / slots)
            print(
                f"{name}: ideal (busiest stage) {ideal:.1f} s, Ray overhead per item "
                f"{1000 * (m['wall'] - m['startup'] - ideal) / n:.0f} ms"
            )
        r2 = med["ray, 2 workers"]
        print(
            f"speed-up, 2 workers vs sequential: {seq / r2['wall']:.2f}× incl. start-up, "
            f"{seq / (r2['wall'] - r2['startup']):.2f}× excl. start-up"
        )
        per_item = {k: med["sequential"][k] / n for k in ("fetch_s", "generate_s", "write_s")}
        print(
            "sequential time an item by stage: " + ", ".join(f"{k[:-2]} {1000 * v:.0f} ms" for k, v in per_item.items())
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
