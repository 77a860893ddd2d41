"""SAR→SAR rendering (seed 002): ``sarviz render``, ``sarviz evaluate-render``; ``dataset pairs`` and
``train sar2sar`` are added to their groups from here (docs/sar2sar.md).

    sarviz dataset pairs --images DIR --out PAIRS [--size 256] [--factor 2] [--looks 4.4]
    sarviz train sar2sar --data PAIRS --base BASE --out RUN [--text-weights TEXT_RUN] [--max-steps N]
    sarviz render --input SAR.tif --weights RUN (--factor F | --pixel-size M) --out OUT.tif
    sarviz evaluate-render PAIRS --weights RUN [--split test]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sarviz.cli_args import deprecated_alias
from sarviz.errors import CliError


def add_pairs_parser(ds_sub: argparse._SubParsersAction) -> None:
    from types import SimpleNamespace

    from sarviz.sar2sar.options import PairsOptions

    # the defaults, without constructing (validation imports rasterio; the CLI parser must stay light)
    d = SimpleNamespace(**{k: f.default for k, f in PairsOptions.__dataclass_fields__.items()})
    p = ds_sub.add_parser(
        "pairs",
        help="SAR→SAR training pairs (finer target, degraded coarser condition)",
        description="Cut chips from SAR GeoTIFFs, degrade each scene to a coarser spacing "
        "(band-limit to 1/F, re-speckle to --looks, resample back) and write a 🤗 "
        "imagefolder with conditioning_image and captions, in spatial-block splits.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--images", type=Path, help="folder of SAR GeoTIFFs (σ⁰ dB bands VV/VH/HH/HV), searched recursively"
    )
    src.add_argument("--scenes", type=Path, help="a sarviz scene folder (its scene files' VV/VH)")
    p.add_argument(
        "--coarse-images",
        type=Path,
        default=None,
        help="real co-registered pairs: folder of coarser SAR GeoTIFFs over the same ground as --images "
        "(aligned on the finer grid); without it the condition is made by the degradation model",
    )
    p.add_argument(
        "--pol-map",
        default=None,
        metavar="COARSE:FINE,…",
        help="pair polarisations of different sensors explicitly, e.g. HH:VV (default: same names)",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (replaced atomically)")
    p.add_argument("--size", type=int, default=d.size, help="target chip size in px")
    p.add_argument("--factor", type=float, default=d.factor, help="condition spacing / target spacing")
    p.add_argument("--looks", type=float, default=d.looks, help="ENL of the coarser product (S1 GRD ≈ 4.4)")
    p.add_argument("--noise-floor-db", type=float, default=None, help="NESZ added to the condition (default none)")
    p.add_argument("--token", default=d.token)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--test-fraction", type=float, default=d.test_fraction)
    p.add_argument("--split-block-km", type=float, default=d.block_km)
    p.add_argument("--seed", type=int, default=d.seed)
    p.set_defaults(func=_pairs)


def add_train_parser(kinds: argparse._SubParsersAction) -> None:
    from sarviz.training import sar2sar as training

    s = kinds.add_parser(
        "sar2sar", help="SAR→SAR ControlNet on SD 1.5 or SDXL (seed 002)", description=training.__doc__.split("\n\n")[0]
    )
    training.add_arguments(s)
    s.set_defaults(func=_train)


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "render",
        help="render a SAR image at a finer pixel spacing (SAR→SAR, seed 002)",
        description="ControlNet image-to-image at the target spacing in latent-blended tiles; "
        "writes a COG with the same bounds, σ⁰ dB, provenance and a consistency score.",
    )
    r.add_argument(
        "--input",
        required=True,
        type=Path,
        help="SAR GeoTIFF: a scene's S1, any σ⁰ dB GeoTIFF, or a generated image (the simulator bridge)",
    )
    r.add_argument("--weights", required=True, type=Path, metavar="RUN", help="`sarviz train sar2sar` run folder")
    r.add_argument("--checkpoint", type=int, default=None, help="use RUN/checkpoint-N")
    r.add_argument("--base", type=Path, default=None, help="base model folder (default: the run's)")
    how = r.add_mutually_exclusive_group(required=True)
    how.add_argument("--factor", type=float, help="input spacing / output spacing (fractional allowed)")
    how.add_argument("--pixel-size", type=float, help="output pixel size in the input CRS's units")
    r.add_argument("--prompt", default=None)
    r.add_argument("--negative-prompt", default=None)
    r.add_argument("--strength", type=float, default=None, help="img2img strength (default 0.6)")
    r.add_argument("--controlnet-scale", type=float, default=None, help="default 1.0")
    r.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default 1.0 = off)")
    r.add_argument("--steps", type=int, default=None, help="DDIM steps (default 20)")
    r.add_argument("--tile", type=int, default=None, help="tile size in px (default: the run's resolution)")
    r.add_argument("--overlap", type=int, default=None, help="tile overlap in px")
    r.add_argument("--seeds", type=int, default=1, help="K renders; K ≥ 2 adds a per-pixel spread band")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument(
        "--tail",
        choices=("keep", "mask"),
        default="keep",
        help="pixels above μ+3σ: restore them from the input (keep) or write a mask band",
    )
    r.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default=None,
        help="torch.compile the UNet and ControlNet (default SARVIZ_COMPILE, else auto: when earlier renders "
        "here measured that this render's tile·steps pay the compile back; `sarviz doctor` shows the numbers)",
    )
    r.add_argument("--device", default=None)
    r.add_argument("--out", required=True, type=Path, help="output COG")
    r.set_defaults(func=_render)

    e = sub.add_parser(
        "evaluate-render",
        help="evaluate a SAR→SAR run on held-out pairs",
        description="Render the held-out pairs' conditions and compare with their real finer "
        "targets: consistency, ENL ratio, power-spectrum slope, KL and GLCM (seed 001 "
        "protocol), with bootstrap intervals.",
    )
    e.add_argument("pairs", type=Path, help="pairs folder from `sarviz dataset pairs`")
    e.add_argument("--weights", required=True, type=Path, metavar="RUN")
    e.add_argument("--split", default="test", choices=("train", "val", "test"))
    e.add_argument("--max-items", type=int, default=20)
    e.add_argument("--steps", type=int, default=None)
    e.add_argument("--strength", type=float, default=None)
    e.add_argument("--json-out", type=Path, default=None, help="also write the report here")
    e.set_defaults(func=_evaluate)
    deprecated_alias(e, "--json", "--json-out")  # the report is always JSON on stdout


def _errors():
    # every SAR→SAR error is a SarvizError (formats: Sar2SarError; renderer: GenerationError/WeightsMissing;
    # resampling/gate: MetricError; evaluation: EvaluationError)
    from sarviz.errors import SarvizError

    return (SarvizError,)


def _pairs(args: argparse.Namespace) -> int:
    from sarviz.commands import cli_progress
    from sarviz.datasets.sar2sar_pairs import PairsOptions, build_pairs

    try:
        if args.scenes is not None:
            raise CliError("--scenes: use --images with the scene folder's GeoTIFFs (scene files carry VV/VH bands)")
        options = PairsOptions(
            size=args.size,
            factor=args.factor,
            looks=args.looks,
            noise_floor_db=args.noise_floor_db,
            token=args.token,
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
            block_km=args.split_block_km,
            seed=args.seed,
        )
        from sarviz.datasets.sar2sar_pairs import parse_pol_map

        info = build_pairs(
            args.images,
            args.out,
            options,
            cli_progress("dataset pairs"),
            args.coarse_images,
            parse_pol_map(args.pol_map),
        )
    except _errors() as exc:
        raise CliError(str(exc)) from None
    print(
        json.dumps(
            {
                "out": str(args.out),
                "counts": info["counts"],
                "skipped": len(info["skipped"]),
                "condition_enl_median": info["condition_enl_median"],
                "consistency_threshold_db": info["consistency_calibration"]["threshold_db"],
                "teaches": info["teaches"],
            }
        )
    )
    return 0


def _train(args: argparse.Namespace) -> int:
    from sarviz.training import sar2sar as training
    from sarviz.training.common import TrainError

    try:
        last = training.train_sar2sar(training.config_from_args(args))
    except TrainError as exc:
        raise CliError(str(exc)) from None
    if last is not None:
        print(f"last checkpoint: {last}", file=sys.stderr)
    return 0


def _render(args: argparse.Namespace) -> int:
    from sarviz.commands import cli_progress
    from sarviz.generators.sar2sar import TransformRequest, render_file

    options = {
        k: getattr(args, k)
        for k in ("factor", "pixel_size", "controlnet_scale", "tile", "overlap", "seeds", "tail", "compile")
        if getattr(args, k) is not None
    }
    request = TransformRequest(
        seed=args.seed,
        steps=args.steps,
        strength=args.strength,
        guidance=args.guidance,
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        device=args.device,
        options=options,
    )
    try:
        result = render_file(
            args.input, args.weights, args.out, request, args.checkpoint, args.base, cli_progress("render")
        )
    except _errors() as exc:
        raise CliError(str(exc)) from None
    prov = result.output.provenance
    print(
        json.dumps(
            {
                "out": str(args.out),
                "shape": prov["output_shape"],
                "output_spacing": prov["output_spacing"],
                "extrapolation": prov["extrapolation"],
                "consistency": {
                    p: {k: c[k] for k in ("score_db", "threshold_db", "verdict")} for p, c in result.consistency.items()
                },
            }
        )
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from sarviz.evaluation.sar2sar import evaluate_render

    try:
        report = evaluate_render(args.pairs, args.weights, args.split, args.max_items, args.steps, args.strength)
    except _errors() as exc:
        raise CliError(str(exc)) from None
    text = json.dumps(report, indent=2, default=str)
    if args.json_out:
        from sarviz.atomic import atomic_path

        with atomic_path(args.json_out) as tmp:
            Path(tmp).write_text(text)
    print(text)
    return 0
