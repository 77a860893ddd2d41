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
    p = sub.add_parser("evaluate-downstream", help="scene classification trained on real vs real + synthetic (Table III)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("dir", type=Path, help="batch folder (written by `sarviz batch`)")
    p.add_argument("--classes", required=True, help="comma-separated class names (the batch's class column)")
    p.add_argument("--models", default="resnet18",
                   help="comma-separated torchvision classifiers: resnet18 (default), resnet34, vgg19, vit_b_32, …")
    p.add_argument("--runs", type=int, default=3, help="runs (split + initialisation seeds) a model (default 3)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    p.add_argument("--input-size", type=int, default=224, help="classifier input size in pixels (default 224)")
    p.add_argument("--batch-size", type=int, default=32, help="training batch size (default 32)")
    p.add_argument("--learning-rate", dest="lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    p.add_argument("--synthetic-factor", type=int, default=None,
                   help="generated images used a real training patch (default: all seeds of the batch)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--out", type=Path, default=None, help="report folder (default DIR/evaluation)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)
    deprecated_alias(p, "--lr", "--learning-rate")


def run(args: argparse.Namespace) -> int:
    from sarviz.batch.downstream import run_downstream, write_downstream
    from sarviz.formats.batch_folder import EVALUATION_DIR
    from sarviz.formats.evaluation_report import DOWNSTREAM_MD
    from sarviz.errors import CliError

    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip())
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if args.runs < 1 or args.epochs < 1 or args.input_size < 16:
        raise CliError("--runs and --epochs must be at least 1, --input-size at least 16")
    if not args.dir.is_dir():
        raise FileNotFoundError(f"batch folder {args.dir} does not exist")
    say = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = run_downstream(args.dir, classes, models, runs=args.runs, epochs=args.epochs, input_size=args.input_size,
                            batch_size=args.batch_size, lr=args.lr, synthetic_factor=args.synthetic_factor,
                            device=args.device, progress=say)
    files = write_downstream(result, args.out or args.dir / EVALUATION_DIR)
    if args.json:
        print(json.dumps(result))
    else:
        print(files[DOWNSTREAM_MD].read_text(encoding="utf-8"))
    return 0
