"""Cold-start time of `sarviz --help`, `sarviz scenes DIR` and `sarviz metrics REAL GEN --json` (512²).

Each run is a fresh interpreter (cold imports; the OS file cache is warm after the first
round, as for a user who runs commands one after another). With ``--before PATH`` (a
checkout of an earlier revision, e.g. `git worktree add /tmp/before REV`) the same commands
run from both trees, interleaved round by round, so the ratio holds on a busy machine.

    python benchmarks/bench_cli_startup.py [--before /tmp/before] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_inputs(folder: Path) -> dict[str, list[str]]:
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    from conftest import make_scene
    from sarviz.scene import write_scene

    scenes = folder / "scenes"
    write_scene(make_scene(size=(512, 512)), scenes / "real.tif")
    write_scene(make_scene(size=(512, 512), seed=1, scene_id="gen"), folder / "gen.tif")
    return {
        "--help": ["--help"],
        "scenes": ["scenes", str(scenes)],
        "metrics (512², all metrics)": ["metrics", str(scenes / "real.tif"), str(folder / "gen.tif"), "--json"],
    }


def time_once(tree: Path, args: list[str], home: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "SARVIZ_HOME": home}
    t0 = time.perf_counter()
    # cwd = the tree: `python -m` puts the working directory first on sys.path
    out = subprocess.run([sys.executable, "-m", "sarviz.cli", *args], env=env, capture_output=True, text=True, cwd=tree)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{tree}: sarviz {' '.join(args)} failed: {out.stderr.strip()[-300:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, help="checkout of the earlier revision to compare with")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    trees = {"after": ROOT} | ({"before": args.before} if args.before else {})
    with tempfile.TemporaryDirectory() as tmp:
        commands = make_inputs(Path(tmp))
        times = {(t, c): [] for t in trees for c in commands}
        for r in range(args.rounds + 1):
            for name, argv in commands.items():
                for tree_name, tree in trees.items():
                    t = time_once(tree, argv, tmp)
                    if r:  # round 0 warms the OS file cache
                        times[(tree_name, name)].append(t)
    load = os.getloadavg()[0]
    print(f"load average {load:.1f}; medians of {args.rounds} cold runs (s)\n")
    print("| command | " + " | ".join(trees) + (" | speed-up |" if "before" in trees else " |"))
    print("|---|" + "---|" * (len(trees) + ("before" in trees)))
    for name in commands:
        meds = {t: statistics.median(times[(t, name)]) for t in trees}
        row = f"| `sarviz {name}` | " + " | ".join(f"{meds[t]:.2f}" for t in trees)
        if "before" in trees:
            row += f" | {meds['before'] / meds['after']:.1f}×"
        print(row + " |")


if __name__ == "__main__":
    main()
