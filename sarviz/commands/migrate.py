"""``sarviz migrate``: seed 003 stage 2 — render SAR images as another sensor by attention distillation.

    sarviz migrate --content gen/ --style fc1_refs/ --base SD15_BASE --out migrated/ --steps 50

Each content image (a file or every image of a folder) is optimised toward the style
references (the target sensor's real images, same size as the content) on the user's
SD 1.5-style U-Net base through the migrator's run sequence (the image transformer
``AttentionDistillationMigrator``), and written as OUT_DIR/<name>.tif — a generated image
(VV dB on the content's own amplitude scale, the content's georeference, provenance with the
losses per iteration). Method and defaults:
docs/cross-sensor.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from sarviz.migration.settings import MigrationSettings

    d = MigrationSettings()
    p = sub.add_parser(
        "migrate",
        help="migrate SAR images toward a target sensor (attention distillation, seed 003)",
        description=__doc__.split("\n\n")[0] + " The U-Net base must come from you (no weights ship).",
    )
    p.add_argument("--content", required=True, nargs="+", help="content image(s) or folder(s)")
    p.add_argument(
        "--style", required=True, nargs="+", help="style reference image(s) or folder(s) of the target sensor"
    )
    p.add_argument(
        "--base",
        required=True,
        help="a diffusers SD 1.5-style base folder (model_index.json, unet/, vae/, "
        "text_encoder/, tokenizer/, scheduler/)",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--steps", type=int, default=d.steps, help=f"DDIM timesteps (default {d.steps}, the AD code's)")
    p.add_argument("--iters", type=int, default=d.iters, help=f"Adam iterations a timestep (default {d.iters})")
    p.add_argument("--learning-rate", type=float, default=d.learning_rate, help=f"Adam lr (default {d.learning_rate})")
    p.add_argument(
        "--layers",
        default=d.layers,
        help="ad-default, shallow-deep, or comma-separated self-attention module names/globs",
    )
    p.add_argument("--w-cnt", type=float, default=d.w_cnt, help=f"content-loss weight (default {d.w_cnt})")
    p.add_argument("--w-sp", type=float, default=d.w_sp, help=f"speckle-loss weight (default {d.w_sp})")
    p.add_argument("--w-f", type=float, default=d.w_f, help=f"spectrum-loss weight (default {d.w_f})")
    p.add_argument(
        "--hf-radius",
        type=float,
        default=d.hf_radius,
        help=f"high-pass mask radius, fraction of Nyquist (default {d.hf_radius})",
    )
    p.add_argument(
        "--patches", type=int, default=d.patches, help=f"M homogeneous patches for L_sp (default {d.patches})"
    )
    p.add_argument("--patch-size", type=int, default=d.patch_size, help=f"N px (default {d.patch_size})")
    p.add_argument(
        "--decode-every",
        type=int,
        default=d.decode_every,
        help="apply L_sp and L_f (VAE decode with gradients) every K-th iteration (default 1)",
    )
    p.add_argument(
        "--decode-crop",
        type=int,
        default=d.decode_crop,
        help="decode a random crop of this many latent px instead of the whole latent (default 0 = whole)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="weights precision (default: the one measured fastest and safe here)",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON line a migrated image (provenance without losses)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from sarviz.commands import cli_progress
    from sarviz.generators.base import TransformRequest
    from sarviz.migration.images import list_images, read_sar_image
    from sarviz.migration.migrate import (
        AttentionDistillationMigrator,
        MigrationSettings,
        migration_card,
        source_from_content,
    )

    settings = MigrationSettings(
        steps=args.steps,
        iters=args.iters,
        learning_rate=args.learning_rate,
        layers=args.layers,
        w_cnt=args.w_cnt,
        w_sp=args.w_sp,
        w_f=args.w_f,
        hf_radius=args.hf_radius,
        patches=args.patches,
        patch_size=args.patch_size,
        decode_every=args.decode_every,
        decode_crop=args.decode_crop,
    ).check()
    contents = list_images(args.content, "content")
    styles = [read_sar_image(p, "style reference") for p in list_images(args.style, "style references")]
    migrator = AttentionDistillationMigrator(migration_card(args.base, settings={"layers": settings.layers}))
    args.out.mkdir(parents=True, exist_ok=True)
    for path in contents:
        content = read_sar_image(path, "content")
        request = TransformRequest(
            seed=args.seed, device=args.device, dtype=args.dtype, options={**asdict(settings), "references": styles}
        )
        result = migrator.transform(source_from_content(content), request, cli_progress(path.name))
        written = result.to_geotiff(args.out / path.with_suffix(".tif").name)
        run = result.provenance["migration"]["VV"]
        first, last = run["losses"][0], run["losses"][-1]
        if args.json:
            summary = {k: v for k, v in result.provenance.items() if k != "migration"}
            summary["migration"] = {k: v for k, v in run.items() if k != "losses"}
            print(json.dumps(summary | {"out": str(written), "final_losses": last}, sort_keys=True, default=str))
        else:
            print(
                f"[migrate] {path.name} → {written} (loss {first['total']:.4g} → {last['total']:.4g}, "
                f"{result.provenance['seconds']:.1f} s, {result.provenance['dtype']})",
                file=sys.stderr,
            )
    return 0
