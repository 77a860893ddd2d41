"""Fewer steps where fidelity allows: how far each scheduler × step count lands from the reference.

The reference is the published inference: DPM-Solver++ (SDE, Karras) at 50 steps. For every
scheduler sarviz offers with the same training schedule (``sarviz.generators.sampling.SCHEDULERS``,
DDPM family) and each step count, one image is generated through sarviz's own generator on the
same scene, seed and dtype, and compared with the reference image:

* RMSE and mean difference of the VV (and VH) backscatter in dB,
* the seed-001 KL of the dB histograms (``sarviz.metrics.protocols.seed001_pair``; the
  reference image plays the "real" image — a distance between two generated images, not a
  realism score).

With random weights this is NO evidence of fidelity: the numbers only show that the command
works. The check needs trained weights; with them it is one command:

    python benchmarks/bench_step_fidelity.py --weights CHECKPOINT_DIR --base SD15_DIR \
        [--steps 10 15 20 25 30] [--schedulers ...] [--size 512] [--dtype float32] [--out table.md]

(``--weights`` is the ControlNet checkpoint folder, e.g. ``checkpoint-7500`` with ``unet_lora/``;
``--base`` the SD 1.5 folder or hub id.) Results: benchmarks/RESULTS_cpu_speed.md ("Fewer steps").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

REFERENCE = ("dpmsolver++-sde-karras", 50)


def main() -> int:
    from sarviz.generators.sampling import SCHEDULERS

    ref_family = SCHEDULERS[REFERENCE[0]].family
    same_family = [n for n, s in SCHEDULERS.items() if s.family == ref_family]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="ControlNet checkpoint folder (with unet_lora/)")
    ap.add_argument("--base", required=True, help="SD 1.5 base folder or hub id")
    ap.add_argument("--schedulers", nargs="+", default=same_family, choices=same_family)
    ap.add_argument("--steps", nargs="+", type=int, default=[10, 15, 20, 25, 30])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="float32", help="the same for every image (default float32, as the reference)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", help="also write the table to this Markdown file")
    args = ap.parse_args()

    import numpy as np
    from affine import Affine

    from sarviz.generators.base import GenerationRequest
    from sarviz.generators.diffusion import DiffusionGenerator, checkpoint_card
    from sarviz.metrics.protocols import seed001_pair
    from sarviz.registry import ModelRegistry
    from sarviz.scene import Scene

    template = ModelRegistry([REPO / "models"]).card("huiyanearth-sar")
    card = checkpoint_card(args.weights, args.base, template=template)
    card.data["preprocessing"]["size"] = args.size
    gen = DiffusionGenerator(card)
    rng = np.random.default_rng(args.seed)
    n = args.size
    # a smooth random AlphaEarth-like embedding (64 channels, 160 m blocks): the same scene for all runs
    emb = np.kron(rng.normal(size=(64, n // 16, n // 16)).astype(np.float32), np.ones((16, 16), np.float32))
    scene = Scene(
        crs="EPSG:32630",
        transform=Affine(10, 0, 500000, 0, -10, 4200000),
        width=n,
        height=n,
        embedding=emb,
        scene_id="fidelity",
    )

    def image(scheduler: str, steps: int):
        t0 = time.perf_counter()
        res = gen.generate(
            scene,
            GenerationRequest(seed=args.seed, steps=steps, scheduler=scheduler, dtype=args.dtype, device=args.device),
        )
        return res, time.perf_counter() - t0

    ref, ref_s = image(*REFERENCE)
    rows = [
        f"reference: {REFERENCE[0]} × {REFERENCE[1]} steps, seed {args.seed}, {n}², {args.dtype}, {ref_s:.0f} s",
        "",
        "| scheduler | steps | s/image | VV RMSE dB | VV mean Δ dB | VV KL vs ref | VH RMSE dB |",
        "|---|---|---|---|---|---|---|",
    ]
    print("\n".join(rows), flush=True)
    for scheduler in args.schedulers:
        for steps in args.steps:
            if (scheduler, steps) == REFERENCE:
                continue
            res, secs = image(scheduler, steps)
            d = res.vv_db - ref.vv_db
            kl = seed001_pair(ref.vv_db, res.vv_db)["kl"]
            vh = (
                "–"
                if res.vh_db is None or ref.vh_db is None
                else f"{float(np.sqrt(np.mean((res.vh_db - ref.vh_db) ** 2))):.2f}"
            )
            rows.append(
                f"| {scheduler} | {steps} | {secs:.0f} | {float(np.sqrt(np.mean(d**2))):.2f} | "
                f"{float(d.mean()):+.2f} | {kl:.4f} | {vh} |"
            )
            print(rows[-1], flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
