"""``sarviz emulator fit|validate`` and ``sarviz emulate-points``: the CPU emulator's commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_WEIGHTS = "models/emulator_radiometric.safetensors"


def register(sub: argparse._SubParsersAction) -> None:
    emu = sub.add_parser("emulator", help="fit and validate the CPU SAR emulator's radiometric model",
                         description="Fit the embedding → σ⁰ VV/VH model and validate it leave-one-region-out.")
    emu_sub = emu.add_subparsers(dest="emulator_command", metavar="ACTION")
    emu.set_defaults(func=lambda args: (emu.print_help(), 2)[1])

    fit = emu_sub.add_parser("fit", help="fit the radiometric model on AlphaEarth/Sentinel-1 points and save it",
                             description="Compares linear and poly2 ridge (and a small MLP unless --no-mlp) "
                                         "leave-one-region-out, then refits the best ridge model on all points.")
    fit.add_argument("--points", required=True, type=Path, help="folder of point CSVs (A00..A63, S1_VV, S1_VH, region)")
    fit.add_argument("--out", required=True, type=Path, help=f"weights file to write (.safetensors), e.g. {DEFAULT_WEIGHTS}")
    fit.add_argument("--method", choices=("auto", "linear", "poly2"), default="auto",
                     help="auto: the ridge method with the best held-out R² (default)")
    fit.add_argument("--no-mlp", action="store_true", help="skip the MLP comparison (faster)")
    fit.set_defaults(func=_fit)

    val = emu_sub.add_parser("validate", help="leave-one-region-out R²/MAE per region and per land-cover class")
    val.add_argument("--points", required=True, type=Path, help="folder of point CSVs")
    val.add_argument("--methods", default="linear,poly2,mlp", help="comma-separated: linear, poly2, mlp")
    val.add_argument("--json", type=Path, help="also write the per-region results as JSON here")
    val.set_defaults(func=_validate)

    pts = sub.add_parser("emulate-points", help="predict VV/VH dB for rows of AlphaEarth embeddings (CSV in, CSV out)",
                         description="Reads A00..A63 (and 'angle' in degrees if present) and writes the same rows "
                                     "plus pred_VV_db and pred_VH_db (speckle-free σ⁰, 2024-median-like).")
    pts.add_argument("--csv", required=True, type=Path, help="input CSV")
    pts.add_argument("--out", required=True, type=Path, help="output CSV")
    pts.add_argument("--model", default="emulator", help="model id of an emulator card (default: emulator)")
    pts.set_defaults(func=_emulate_points)


def _progress(step: int, total: int, message: str) -> None:
    print(f"[{step}/{total}] {message}", file=sys.stderr, flush=True)


def _fit(args: argparse.Namespace) -> int:
    from sarviz.emulator import validation
    from sarviz.emulator.radiometric import load_points

    if args.out.suffix != ".safetensors":
        raise ValueError(f"--out {args.out}: the weights file must end in .safetensors")
    table = load_points(args.points)
    methods = ("linear", "poly2") if args.method == "auto" else (args.method,)
    if not args.no_mlp:
        methods += ("mlp",)
    print(f"{len(table)} points from {len(set(table.region.tolist()))} regions; leave-one-region-out over "
          f"{', '.join(methods)}", file=sys.stderr)
    comparison = validation.compare_methods(table, methods, progress=_progress)
    model = validation.fit_best(table, comparison)
    path = model.save(args.out)
    print(validation.format_report(comparison, shipped=model.feature_map))
    from sarviz.emulator.radiometric import file_sha256

    print(f"\nshipped: {model.feature_map} ridge, λ={model.ridge_lambda:g} → {path} (sha256 {file_sha256(path)})")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from sarviz.emulator import validation
    from sarviz.emulator.radiometric import load_points

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = [m for m in methods if m not in validation.METHODS]
    if unknown or not methods:
        raise ValueError(f"--methods {args.methods!r}: choose from {', '.join(validation.METHODS)}")
    table = load_points(args.points)
    comparison = validation.compare_methods(table, methods, progress=_progress)
    best = max((m for m in methods if m in validation.RIDGE_METHODS), default=methods[0],
               key=lambda m: validation.mean_r2(comparison[m]))
    print(validation.format_report(comparison, shipped=best))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({m: [r.as_dict() for r in res] for m, res in comparison.items()}, indent=2))
    return 0


def _emulate_points(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from sarviz.emulator.radiometric import EmulatorError, embedding_matrix
    from sarviz.registry import ModelRegistry

    generator = ModelRegistry().generator(args.model)
    model = getattr(generator, "model", None)
    if getattr(generator, "kind", "") != "emulator" or model is None:
        raise ValueError(f"model {args.model!r} is a {generator.kind or 'non-emulator'} model; emulate-points needs "
                         "an emulator card")
    if not args.csv.is_file():
        raise FileNotFoundError(f"input CSV {args.csv} not found")
    try:
        frame = pd.read_csv(args.csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise EmulatorError(f"{args.csv}: not a readable CSV ({exc})") from None
    emb = embedding_matrix(frame, str(args.csv))
    angle = None
    if "angle" in frame.columns:
        angle = pd.to_numeric(frame["angle"], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(angle).any() and frame["angle"].notna().to_numpy()[np.isnan(angle)].any():
            raise EmulatorError(f"{args.csv}: column 'angle' must hold incidence angles in degrees")
        # a blank angle means: the model's reference angle (no correction)
        angle = np.where(np.isnan(angle), model.reference_angle_deg, angle)
    pred = model.predict_db(emb, angle)
    out = frame.copy()
    out["pred_VV_db"] = pred[:, 0]
    out["pred_VH_db"] = pred[:, 1]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out, index=False)
    n_nan = int(np.isnan(pred[:, 0]).sum())
    print(f"wrote {len(out)} rows to {args.out}" + (f" ({n_nan} rows with missing embedding values → empty "
                                                      "predictions)" if n_nan else ""), file=sys.stderr)
    return 0
