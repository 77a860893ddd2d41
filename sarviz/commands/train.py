"""`sarviz train geo|text|sarclip`: train the seed-000 geo-conditioned model, the seed-001 text-to-SAR
model, or the SAR-CLIP model seed 001's evaluation scores prompts with.

In-process on one device; for several GPUs or nodes run the same options under
``accelerate launch -m sarviz.training.geo`` / ``-m sarviz.training.text`` (docs/training.md).
"""

from __future__ import annotations

import argparse
import sys

from sarviz.errors import CliError


def register(sub: argparse._SubParsersAction) -> None:
    from sarviz.training import geo, text

    p = sub.add_parser(
        "train",
        help="train a geo-conditioned (seed 000) or text-to-SAR (seed 001) model",
        description="Train on a dataset built by `sarviz dataset build` / `sarviz dataset caption`. "
        "Runs in this process on one device; see docs/training.md for "
        "`accelerate launch` on several GPUs and nodes.",
    )
    kinds = p.add_subparsers(dest="train_kind", metavar="KIND")
    g = kinds.add_parser(
        "geo",
        help="SD 1.5 + 65-channel ControlNet + UNet LoRA (HuiYanEarth-SAR recipe)",
        description=geo.__doc__.split("\n\n")[0],
    )
    geo.add_arguments(g)
    g.set_defaults(func=run_geo)
    t = kinds.add_parser(
        "text", help="text-to-SAR on SD 1.5 or SDXL (ONERA recipe)", description=text.__doc__.split("\n\n")[0]
    )
    text.add_arguments(t)
    t.set_defaults(func=run_text)
    c = kinds.add_parser(
        "sarclip",
        help="fine-tune a CLIP model on a captioned SAR dataset (SAR-CLIP, for evaluate-text)",
        description="Contrastive fine-tuning of a transformers CLIPModel on the train split of a "
        "captioned dataset (`sarviz dataset caption`); the validation loss is reported "
        "each epoch. The output folder (model, processor, sarclip_info.json) is what "
        "`sarviz evaluate-text --sarclip` loads.",
    )
    c.add_argument("--data", required=True, metavar="CAPTIONED", help="captioned dataset folder")
    c.add_argument(
        "--base",
        required=True,
        metavar="CLIP_DIR",
        help="local CLIP model folder with its processor (e.g. a copy of openai/clip-vit-base-patch32)",
    )
    c.add_argument("--out", required=True, metavar="DIR", help="output folder")
    c.add_argument("--epochs", type=int, default=5)
    c.add_argument("--batch-size", type=int, default=32)
    c.add_argument("--learning-rate", type=float, default=1e-5)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--max-items", type=int, default=None, help="use only the first N train pairs")
    c.add_argument("--device", default="cpu", help="cpu or cuda (multi-GPU: run under `accelerate launch`)")
    c.set_defaults(func=run_sarclip)
    from sarviz.commands.sar2sar import add_train_parser  # SAR→SAR ControlNet (seed 002)

    add_train_parser(kinds)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _run(fn, config) -> int:
    from sarviz.training.common import TrainError

    try:
        last = fn(config)
    except TrainError as exc:
        raise CliError(str(exc)) from None
    if last is not None:
        print(f"last checkpoint: {last}", file=sys.stderr)
    return 0


def run_geo(args: argparse.Namespace) -> int:
    from sarviz.training import geo

    return _run(geo.train_geo, geo.config_from_args(args))


def run_text(args: argparse.Namespace) -> int:
    from sarviz.training import text

    return _run(text.train_text, text.config_from_args(args))


def run_sarclip(args: argparse.Namespace) -> int:
    import json

    from sarviz.commands import cli_progress
    from sarviz.training.sarclip import SarClipRecipe, train_sarclip

    recipe = SarClipRecipe(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        max_items=args.max_items,
    )
    result = train_sarclip(
        args.data, args.base, args.out, recipe, device=args.device, progress=cli_progress("train sarclip")
    )
    print(json.dumps({"out": str(result.out), "train_losses": result.train_losses, "val_losses": result.val_losses}))
    return 0
