"""`sarviz train geo|text`: train the seed-000 geo-conditioned model or the seed-001 text-to-SAR model.

In-process on one device; for several GPUs or nodes run the same options under
``accelerate launch -m sarviz.training.geo`` / ``-m sarviz.training.text`` (docs/training.md).
"""

from __future__ import annotations

import argparse
import sys

from sarviz.cli import CliError


def register(sub: argparse._SubParsersAction) -> None:
    from sarviz.training import geo, text

    p = sub.add_parser("train", help="train a geo-conditioned (seed 000) or text-to-SAR (seed 001) model",
                       description="Train on a dataset built by `sarviz dataset build` / `sarviz dataset caption`. "
                                   "Runs in this process on one device; see docs/training.md for "
                                   "`accelerate launch` on several GPUs and nodes.")
    kinds = p.add_subparsers(dest="train_kind", metavar="KIND")
    g = kinds.add_parser("geo", help="SD 1.5 + 65-channel ControlNet + UNet LoRA (HuiYanEarth-SAR recipe)",
                         description=geo.__doc__.split("\n\n")[0])
    geo.add_arguments(g)
    g.set_defaults(func=run_geo)
    t = kinds.add_parser("text", help="text-to-SAR on SD 1.5 or SDXL (ONERA recipe)",
                         description=text.__doc__.split("\n\n")[0])
    text.add_arguments(t)
    t.set_defaults(func=run_text)
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
