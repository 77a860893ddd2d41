"""`sarviz evaluate-text`: seed 001's per-label evaluation of a text-to-SAR model on a captioned test split."""

from __future__ import annotations

import argparse
import json
import sys

from sarviz.cli_args import deprecated_alias
from sarviz.errors import CliError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate-text",
        help="evaluate a text-to-SAR model per scene label (KL, GLCM, SAR-CLIP) on a captioned test split",
        description="For each label of the captioned test split, generate from the test captions and compare with "
        "the real test images of that label: KL of the pooled amplitude histograms (seed 001: "
        "amplitude/(μ+3σ), saturated pixels excluded), GLCM features on homogeneous 64×64 patches, and "
        "— with --sarclip — caption rank among 16 and image–prompt cosine, real images as the baseline. "
        "Writes report.json, per_label.csv, glcm.csv, figures/ and generated/ to --out.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="model card id of a text-to-sar model")
    which.add_argument("--weights", metavar="RUN_DIR", help="a `sarviz train text` output folder")
    p.add_argument("--base", metavar="BASE_DIR", help="base diffusers folder (with --weights; default: the run's)")
    p.add_argument(
        "--data",
        dest="test",
        required=True,
        metavar="CAPTIONED_DIR",
        help="a captioned dataset (`sarviz dataset caption`)",
    )
    p.add_argument(
        "--split", default="test", choices=["test", "validation", "train"], help="which split (default test)"
    )
    p.add_argument("--per-label", type=int, default=30, help="captions per label (default 30, as seed 001's 330/11)")
    p.add_argument(
        "--sarclip",
        metavar="DIR",
        default=None,
        help="a SAR-CLIP model folder (`sarviz train sarclip`); without it the alignment part is reported missing",
    )
    p.add_argument("--seed", type=int, default=0, help="first seed (caption k uses seed + k)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the card's)")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the card's)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="report folder")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.set_defaults(func=run_evaluate_text)
    deprecated_alias(p, "--test", "--data")


def run_evaluate_text(args: argparse.Namespace) -> int:
    from sarviz.commands import cli_progress
    from sarviz.commands.generate_text import text_generator
    from sarviz.evaluation.captioned import open_captioned
    from sarviz.evaluation.text_report import evaluate_text_model

    if args.per_label < 1:
        raise CliError(f"--per-label must be at least 1, got {args.per_label}")
    dataset = open_captioned(args.test, args.split)
    generator = text_generator(args.model, args.weights, args.base)
    generator.check_ready()
    result = evaluate_text_model(
        generator,
        dataset,
        args.out,
        per_label=args.per_label,
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        sarclip=args.sarclip,
        device=args.device,
        dtype=args.dtype,
        progress=cli_progress(f"evaluate {generator.model_id}"),
    )
    if args.json:
        print(json.dumps(result.to_dict(), default=str))
    else:
        print(result.table_text())
        print(f"report: {args.out}", file=sys.stderr)
    return 0
