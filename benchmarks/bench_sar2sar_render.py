"""Render time and peak memory vs scene size for `sarviz render` (SAR→SAR, seed 002).

Small and labelled: a tiny random SD 1.5 + ControlNet built from configs (tests/_text_fixtures), CPU,
one thread, scenes of 1×, 4× and 16× a tile's output area. Each size runs in its own process so the
peak RSS (ru_maxrss) is that size's. The claim checked: memory flat-ish (tile-bounded models; the
latent canvas and full-size planes grow ~12 B/px), time linear in the tile count.

    python benchmarks/bench_sar2sar_render.py [--tile 64] [--steps 4] [--out benchmarks/RESULTS_sar2sar.md]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(workdir: Path, size: int, tile: int, steps: int) -> dict:
    import torch
    from affine import Affine

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "tests"))
    from sarviz.formats.sar2sar import SarGeoTiff
    from sarviz.generators.sar2sar import Sar2SarRenderer, TransformRequest
    from test_sar2sar_pairs import s1_like_db, write_sar

    src = write_sar(workdir / f"in{size}.tif", {"VV": s1_like_db((size, size))}, Affine(10.0, 0, 0, 0, -10.0, 0))
    t0 = time.perf_counter()
    renderer = Sar2SarRenderer(workdir / "run")
    renderer.load("cpu", "float32")
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = renderer.render(
        SarGeoTiff.read(src),
        TransformRequest(steps=steps, strength=1.0, options={"factor": 2, "tile": tile, "overlap": tile // 4}),
    )
    res.output.write(workdir / f"out{size}.tif")
    seconds = time.perf_counter() - t0
    plan = res.output.provenance["tile_plan"]
    return {
        "input_px": size,
        "output_px": 2 * size,
        "tiles": plan["tiles"],
        "load_s": round(load, 2),
        "seconds": round(seconds, 2),
        "s_per_tile_step": round(seconds / plan["tiles"] / steps, 3),
        "s_per_mpx": round(seconds / ((2 * size) ** 2 / 1e6), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def setup(workdir: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    from sarviz.formats.sar2sar import Sar2SarRun

    from _text_fixtures import write_sd15_base

    base = write_sd15_base(workdir / "base")
    cn = ControlNetModel.from_unet(
        UNet2DConditionModel.from_pretrained(str(base / "unet")), conditioning_embedding_out_channels=(16, 32, 96, 256)
    )
    torch.manual_seed(0)
    cn.save_pretrained(str(workdir / "run" / "controlnet"))
    Sar2SarRun.write_meta(
        workdir / "run",
        {
            "step": 0,
            "base": str(base),
            "base_kind": "sd15",
            "resolution": 64,
            "pairs": {},
            "consistency_calibration": None,
        },
    )


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--tile", type=int, default=64)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--sizes", default="32,64,128,256", help="input sizes (px); output = 2× (factor 2)")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one is not None:
        print(json.dumps(one(Path(args.workdir), args.one, args.tile, args.steps)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        setup(Path(tmp))
        rows = []
        for size in map(int, args.sizes.split(",")):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    str(size),
                    "--workdir",
                    tmp,
                    "--tile",
                    str(args.tile),
                    "--steps",
                    str(args.steps),
                ],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                check=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    print(
        "| input px | output px | tiles | load s | render s | s / tile·step | s / Mpx | peak RSS (MB) |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['input_px']}² | {r['output_px']}² | {r['tiles']} | {r['load_s']} | {r['seconds']} | "
            f"{r['s_per_tile_step']} | {r['s_per_mpx']} | {r['peak_rss_mb']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
