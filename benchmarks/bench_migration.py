"""Migration cost per image (seed 003 stage 2) on the CPU: s per iteration and peak memory.

SMALL RUN on a busy shared machine (2 cores, ~9 agents): SD 1.5-sized U-Net and VAE built
from the reference configs (../shared/reference/huiyanearth-sar, random weights — the cost
does not depend on the weights), a random null-text embedding (77×768). Each configuration
runs ``--iters`` optimisation iterations at one timestep; a full run costs
steps × iters × (s per iteration). Results: benchmarks/RESULTS_migration.md.

    python benchmarks/bench_migration.py --sizes 256 512 --iters 2
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "huiyanearth-sar"


def build(dtype: str):
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(REF / "unet"))
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(REF / "vae"))
    scheduler = DDIMScheduler.from_config(json.loads((REF / "scheduler" / "scheduler_config.json").read_text()))
    null = torch.randn(1, 77, unet.config.cross_attention_dim)
    return unet, vae, null, scheduler


def main(argv=None) -> int:
    import torch

    from sarviz.migration.images import SarAmplitude, normalise_amplitude
    from sarviz.migration.migrate import FeatureExtractor, MigrationSettings, migrate_image

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[256])
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    unet, vae, null, scheduler = build(args.dtype)
    rng = np.random.default_rng(0)
    rows = []
    configs = [("ad-default", 1), ("shallow-deep", 1), ("ad-default", 10**6)]  # decode_every huge = no L_sp/L_f
    for size in args.sizes:
        for layers, decode_every in configs:
            if size > 256 and (layers, decode_every) != ("ad-default", 1):
                continue  # 512²: the default only (the machine is shared)
            ex = FeatureExtractor.from_components(unet, vae, null, scheduler, layers, "cpu", args.dtype, "sd15-random")
            amp = lambda looks: SarAmplitude(*normalise_amplitude(np.sqrt(rng.gamma(looks, 1 / looks, (size, size)))))
            settings = MigrationSettings(steps=1, iters=args.iters, layers=layers, decode_every=decode_every)
            t0 = time.perf_counter()
            out = migrate_image(amp(8), [amp(1)], ex, settings)
            total = time.perf_counter() - t0
            rows.append(
                {
                    "size": size,
                    "layers": layers,
                    "n_layers": len(ex.layers),
                    "image_losses": decode_every == 1,
                    "iters": args.iters,
                    "s_per_iteration": round(out.provenance["seconds"] / args.iters, 2),
                    "s_total_incl_encode": round(total, 2),
                    "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
                    "dtype": args.dtype,
                    "threads": args.threads,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
