"""The issue-26 goal measurement: `sarviz generate` end to end on a full-size random checkpoint.

Writes (once, reused) the full-size SD 1.5 + 65-channel ControlNet + rank-32 LoRA with random
weights in the published layout (``bench_diffusion.build_checkpoint``) and one 512² scene with
an AlphaEarth embedding, then runs ``python -m sarviz.cli generate`` in fresh processes:

* per configuration (the default dtype/speed plan, and ``--dtype float32``) with ``--steps 2``
  and ``--steps 6``: **s/step = (wall(6) − wall(2)) / 4**, so load, text encoder, VAE and
  writing cancel out (the issue's definition);
* ``--image-steps`` (default 25) once in the default configuration: the time for a 512² image
  including the VAE decode, and the process's time to its first denoising step (import +
  model load + dtype decision + first step), read from the timestamps of the CLI's progress
  lines;
* ``--cold-dtype``: the same with an empty dtype-choice cache (the measurement included).

Random weights: the times are real, the images are not. Extra environment for every run
with ``--env NAME=VALUE`` (e.g. ``SARVIZ_COMPILE=on``). Results: benchmarks/RESULTS_cpu_speed.md.

    python benchmarks/bench_generate_cli.py [--workdir DIR] [--configs default float32]
                                            [--image-steps 25] [--cold-dtype] [--env K=V ...]
                                            [--prewarm]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def write_scene(folder: Path, size: int = 512) -> tuple[float, float]:
    """A random 512² scene (optical, S1, angle, AlphaEarth embedding) in EPSG:32630; its centre (lat, lon)."""
    import numpy as np
    from affine import Affine
    from pyproj import Transformer

    from sarviz.scene import Scene, write_scene

    origin = (500_000.0, 4_200_000.0)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench.tif"
    if not path.exists():
        rng = np.random.default_rng(0)
        emb = np.kron(rng.normal(size=(64, size // 16, size // 16)), np.ones((16, 16)))
        emb /= np.linalg.norm(emb, axis=0, keepdims=True)
        scene = Scene(
            crs="EPSG:32630",
            transform=Affine(10.0, 0, origin[0], 0, -10.0, origin[1]),
            width=size,
            height=size,
            scene_id="bench",
            dates={"s1": "2024-06-01T05:00:00"},
            provenance={"source": "benchmark (random)"},
            optical=rng.uniform(0.01, 0.4, (4, size, size)),
            vv_db=rng.normal(-11, 3, (size, size)),
            vh_db=rng.normal(-18, 3, (size, size)),
            angle_deg=np.tile(np.linspace(30, 45, size), (size, 1)),
            embedding=emb,
        )
        write_scene(scene, path)
    x, y = origin[0] + size * 5.0, origin[1] - size * 5.0
    lon, lat = Transformer.from_crs("EPSG:32630", "EPSG:4326", always_xy=True).transform(x, y)
    return lat, lon


def run_generate(workdir: Path, lat: float, lon: float, steps: int, extra: list[str], env: dict[str, str]) -> dict:
    """One `sarviz generate` process: wall time and the time of each progress line (from the start)."""
    cmd = [
        sys.executable,
        "-m",
        "sarviz.cli",
        "generate",
        "--lat",
        f"{lat:.6f}",
        "--lon",
        f"{lon:.6f}",
        "--scenes",
        str(workdir / "scenes"),
        "--controlnet",
        str(workdir / "checkpoint"),
        "--base",
        str(workdir / "sd15"),
        "--device",
        "cpu",
        "--seed",
        "0",
        "--steps",
        str(steps),
        "--out",
        str(workdir / f"out-{steps}.tif"),
        "--no-png",
        *extra,
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    lines: list[tuple[float, str]] = []
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append((time.perf_counter() - t0, line.rstrip()))
    out = proc.stdout.read() if proc.stdout else ""
    rc = proc.wait()
    wall = time.perf_counter() - t0
    if rc:
        raise SystemExit(f"{' '.join(cmd)} failed ({rc}):\n" + "\n".join(m for _, m in lines[-30:]))
    provenance = {}
    try:
        provenance = json.loads(out[out.index("{") :])
    except ValueError:
        pass

    # the CLI prints at most two progress lines a second, so a quick message can be missing: the
    # load ends at (about) the last "loading model" line, the first step at the first "step k/n" one
    loading = [t for t, m in lines if "loading model" in m]
    stepped = [(t, m) for t, m in lines if f"/{steps}" in m and "] step " in m]
    # steady s/step from the process's own step lines: the median gap between consecutive step lines
    # after the first (robust to the host's minute-to-minute jitter, which (6 − 2)/4 across two
    # processes is not: benchmarks/RESULTS_cpu_speed.md, part 4)
    import re
    import statistics

    numbered = [(t, int(m_.group(1))) for t, m in stepped if (m_ := re.search(r"\] step (\d+)/", m))]
    gaps = [(t2 - t1) / (k2 - k1) for (t1, k1), (t2, k2) in zip(numbered, numbered[1:]) if k2 > k1 and k1 >= 1]
    return {
        "steady_s": statistics.median(gaps) if gaps else 0.0,
        "wall_s": wall,
        "loaded_s": loading[-1] if loading else 0.0,
        "step1_s": stepped[0][0] if stepped else 0.0,
        "step1_line": stepped[0][1] if stepped else "",
        "lines": lines,
        "load": os.getloadavg()[0],
        "provenance": provenance,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "sarviz-bench-diffusion"))
    ap.add_argument("--configs", nargs="*", default=["default", "float32"], help="none: only the image runs")
    ap.add_argument("--image-steps", type=int, default=25, help="one default image at this many steps (0: none)")
    ap.add_argument("--cold-dtype", action="store_true", help="also one run with an empty dtype-choice cache")
    ap.add_argument("--env", nargs="*", default=[], help="NAME=VALUE for every generate process")
    ap.add_argument("--prewarm", action="store_true", help="one unmeasured 2-step process per config first")
    args = ap.parse_args()
    from bench_diffusion import build_checkpoint

    workdir = Path(args.workdir)
    t0 = time.perf_counter()
    build_checkpoint(workdir)
    print(f"checkpoint ready in {time.perf_counter() - t0:.0f} s at {workdir}", file=sys.stderr)
    lat, lon = write_scene(workdir / "scenes")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    env.update(dict(kv.split("=", 1) for kv in args.env))
    flags = {"default": [], "float32": ["--dtype", "float32"], "bfloat16": ["--dtype", "bfloat16"]}
    for config in args.configs if args.prewarm else []:
        # e.g. with SARVIZ_COMPILE=on: the first process compiles with an empty kernel cache; the measured
        # ones after it all find it warm, so their compile cost cancels in (6 − 2)/4
        r = run_generate(workdir, lat, lon, 2, flags[config], env)
        print(f"prewarm {config} 2 steps: {r['wall_s']:.1f} s (load {r['load']:.1f})", file=sys.stderr, flush=True)
        print(f"prewarm {config}, 2 steps: process wall {r['wall_s']:.1f} s (load {r['load']:.1f})")
    results: dict[str, dict[int, dict]] = {c: {} for c in args.configs}
    for steps in (2, 6) if args.configs else ():  # interleaved: both configurations at 2 steps, then both at 6
        for config in args.configs:
            r = run_generate(workdir, lat, lon, steps, flags[config], env)
            results[config][steps] = r
            print(f"{config} {steps} steps: {r['wall_s']:.1f} s (load {r['load']:.1f})", file=sys.stderr, flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f}; env {' '.join(args.env) or '(none)'}\n")
    if args.configs:
        per_step_table(results)
    image_runs(args, workdir, lat, lon, env)
    return 0


def per_step_table(results: dict[str, dict[int, dict]]) -> None:
    print(
        "| `sarviz generate` | wall 2 steps s | wall 6 steps s | s/step = (6 − 2)/4 | speed-up vs float32 "
        "| steady s/step in the 6-step process | its speed-up |"
    )
    print("|---|---|---|---|---|---|---|")
    per_step = {c: (r[6]["wall_s"] - r[2]["wall_s"]) / 4 for c, r in results.items()}
    steady = {c: r[6]["steady_s"] for c, r in results.items()}
    for config, r in results.items():
        ratio = per_step["float32"] / per_step[config] if "float32" in per_step else float("nan")
        sr = steady["float32"] / steady[config] if steady.get("float32") and steady[config] else float("nan")
        print(
            f"| {config} | {r[2]['wall_s']:.1f} | {r[6]['wall_s']:.1f} | {per_step[config]:.2f} | {ratio:.2f}× "
            f"| {steady[config]:.2f} | {sr:.2f}× |"
        )
    for config, r in results.items():
        prov = r[6]["provenance"]
        prov = prov.get("provenance", prov)
        keys = ("dtype", "dtype_choice", "speed_options", "seconds")
        print(f"\n{config}: provenance {json.dumps({k: prov.get(k) for k in keys})[:600]}")


def image_runs(args: argparse.Namespace, workdir: Path, lat: float, lon: float, env: dict[str, str]) -> None:
    runs = []
    if args.image_steps:
        runs.append(("default, warm dtype cache", args.image_steps, env))
    if args.cold_dtype:
        cold = {**env, "SARVIZ_DTYPE_CACHE": str(workdir / f"dtype-choice-cold-{time.time_ns()}.json")}
        runs.append(("default, empty dtype cache (measured in the process)", args.image_steps or 2, cold))
    for label, steps, e in runs:
        r = run_generate(workdir, lat, lon, steps, [], e)
        image_s = r["wall_s"] - (r["loaded_s"] or 0.0)
        print(
            f"\n{label}, {steps} steps: process wall {r['wall_s']:.1f} s; model loaded at ~{r['loaded_s']:.1f} s; "
            f"first progress line of a step at {r['step1_s']:.1f} s ({r['step1_line'][-40:]}); steady "
            f"{r['steady_s']:.2f} s/step; image after the "
            f"load (steps + VAE + writing) {image_s:.1f} s (load {r['load']:.1f})"
        )
        for t, m in r["lines"]:
            if "] step " not in m or m == r["step1_line"] or f"step {steps}/" in m:
                print(f"    {t:7.1f} s  {m[:150]}")


if __name__ == "__main__":
    sys.exit(main())
