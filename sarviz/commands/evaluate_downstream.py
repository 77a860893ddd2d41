"""``sarviz evaluate-downstream DIR``: seed 000's downstream test — a scene classifier with and without synthetic data.

    sarviz evaluate-downstream runs/b1 --classes desert,forest,glacier,city,mountain \\
        --models resnet18,resnet34,vgg19,vit_b_32 --runs 5 --epochs 30 --input-size 224   # paper scale, GPU
    sarviz evaluate-downstream runs/b1 --classes trees,crops --input-size 32 --epochs 2 --runs 2   # CPU smoke run

Classes are the batch's ``class`` column (from the points file). Results: downstream.json,
downstream.csv and downstream.md (Table III layout) in REPORT_DIR (default DIR/evaluation).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sarviz.cli_args import deprecated_alias


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate-downstream",
        help="scene classification trained on real vs real + synthetic (Table III)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("dir", type=Path, nargs="?", default=None, help="batch folder (written by `sarviz batch`)")
    p.add_argument("--classes", default=None, help="comma-separated class names (the batch's class column)")
    folders = p.add_argument_group("folder mode (seed 003: a new sensor's classifier; DIR/<class>/<image> folders)")
    folders.add_argument("--target", type=Path, help="the new sensor's real training images")
    folders.add_argument("--old", type=Path, help="the old sensor's raw images (arm + old raw)")
    folders.add_argument("--migrated", type=Path, help="old-sensor images after `sarviz migrate` (arm + migrated)")
    folders.add_argument("--generated", type=Path, help="generated + migrated images (arm + migrated + generated)")
    folders.add_argument("--test", type=Path, help="fixed held-out test images of the new sensor (never trained on)")
    folders.add_argument(
        "--data-label",
        default="",
        help="say what the data is, e.g. 'synthetic stand-in: Sentinel-1 degraded and re-speckled'",
    )
    p.add_argument(
        "--models",
        default=None,
        help="comma-separated torchvision classifiers (random init, no pretrained weights offline): "
        "resnet18, resnet34, resnet50, vgg19, vit_b_32, … (default: resnet18 for a batch, as seed 000; "
        "resnet50 in folder mode, as seed 003)",
    )
    p.add_argument("--runs", type=int, default=3, help="runs (split + initialisation seeds) a model (default 3)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    p.add_argument("--input-size", type=int, default=224, help="classifier input size in pixels (default 224)")
    p.add_argument("--batch-size", type=int, default=32, help="training batch size (default 32)")
    p.add_argument("--learning-rate", dest="lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    p.add_argument(
        "--synthetic-factor",
        type=int,
        default=None,
        help="generated images used a real training patch (default: all seeds of the batch)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--out", type=Path, default=None, help="report folder (default DIR/evaluation)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)
    deprecated_alias(p, "--lr", "--learning-rate")


def run(args: argparse.Namespace) -> int:
    from sarviz.batch.downstream import run_downstream, write_downstream
    from sarviz.errors import CliError
    from sarviz.formats.batch_folder import EVALUATION_DIR
    from sarviz.formats.evaluation_report import DOWNSTREAM_MD

    if args.target is not None or args.test is not None:
        return run_folders(args)
    if args.dir is None or not args.classes:
        raise CliError(
            "give a batch folder and --classes, or folder mode: --target DIR --test DIR [--old/--migrated/--generated]"
        )

    from sarviz.batch.downstream import DEFAULT_MODELS

    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip())
    models = _models(args.models) or DEFAULT_MODELS
    if args.runs < 1 or args.epochs < 1 or args.input_size < 16:
        raise CliError("--runs and --epochs must be at least 1, --input-size at least 16")
    if not args.dir.is_dir():
        raise FileNotFoundError(f"batch folder {args.dir} does not exist")
    say = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = run_downstream(
        args.dir,
        classes,
        models,
        runs=args.runs,
        epochs=args.epochs,
        input_size=args.input_size,
        batch_size=args.batch_size,
        lr=args.lr,
        synthetic_factor=args.synthetic_factor,
        device=args.device,
        progress=say,
    )
    files = write_downstream(result, args.out or args.dir / EVALUATION_DIR)
    if args.json:
        print(json.dumps(result))
    else:
        print(files[DOWNSTREAM_MD].read_text(encoding="utf-8"))
    return 0


def _models(text: str | None) -> tuple[str, ...]:
    """``--models a,b`` → ("a", "b"); nothing given → () (the mode's default)."""
    return tuple(m.strip() for m in (text or "").split(",") if m.strip())


def run_folders(args: argparse.Namespace) -> int:
    """Folder mode (seed 003): arms target real / + old raw / + migrated / + migrated + generated."""
    from sarviz.errors import CliError
    from sarviz.evaluation.downstream_folders import (
        DEFAULT_MODELS,
        downstream_table,
        run_downstream_folders,
        write_downstream_folders,
    )

    if args.target is None or args.test is None:
        raise CliError("folder mode needs --target DIR and --test DIR")
    models = _models(args.models) or DEFAULT_MODELS
    if args.runs < 3 or args.epochs < 1 or args.input_size < 16:
        raise CliError("folder mode needs --runs (seeds) ≥ 3, --epochs ≥ 1, --input-size ≥ 16")
    say = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    folders = {
        "target": args.target,
        "test": args.test,
        "old": args.old,
        "migrated": args.migrated,
        "generated": args.generated,
    }
    result = run_downstream_folders(
        folders,
        models,
        seeds=args.runs,
        epochs=args.epochs,
        input_size=args.input_size,
        batch_size=args.batch_size,
        lr=args.lr,
        device=args.device,
        data_label=args.data_label,
        progress=say,
    )
    write_downstream_folders(result, args.out or args.target.parent / "evaluation")
    print(json.dumps(result, default=str) if args.json else downstream_table(result))
    return 0
