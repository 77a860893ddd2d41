"""``sarviz emulator fit|validate`` and ``sarviz emulate-points``: the CPU emulator's commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sarviz.cli_args import deprecated_alias
from sarviz.errors import CliError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_WEIGHTS = "models/emulator_radiometric.safetensors"


def register(sub: argparse._SubParsersAction) -> None:
    emu = sub.add_parser(
        "emulator",
        help="fit and validate the CPU SAR emulator's radiometric model",
        description="Fit the embedding → σ⁰ VV/VH model and validate it leave-one-region-out.",
    )
    emu_sub = emu.add_subparsers(dest="emulator_command", metavar="ACTION")
    emu.set_defaults(func=lambda args: (emu.print_help(), 2)[1])

    fit = emu_sub.add_parser(
        "fit",
        help="fit the radiometric model on AlphaEarth/Sentinel-1 points and save it",
        description="Compares linear and poly2 ridge (and a small MLP unless --no-mlp) "
        "leave-one-region-out, then refits the best ridge model on all points.",
    )
    fit.add_argument("--points", type=Path, help="folder of point CSVs (A00..A63, S1_VV, S1_VH, region)")
    fit.add_argument(
        "--dataset",
        type=Path,
        help="a dataset folder from `sarviz dataset build`: fit on its train split (block means), "
        "choose the model on val, score on test",
    )
    fit.add_argument(
        "--card-dir",
        type=Path,
        help="with --dataset: also write a model card here (list it with SARVIZ_MODELS=DIR sarviz models)",
    )
    fit.add_argument("--model-id", help="with --dataset: the card's model id (default emulator-<dataset name>)")
    fit.add_argument(
        "--block",
        type=int,
        default=8,
        help="with --dataset: cell size in pixels averaged into one sample (default 8; speckle reduction)",
    )
    fit.add_argument("--max-samples", type=int, default=200_000, help="with --dataset: subsample cap per split")
    fit.add_argument(
        "--out", required=True, type=Path, help=f"weights file to write (.safetensors), e.g. {DEFAULT_WEIGHTS}"
    )
    fit.add_argument(
        "--method",
        choices=("auto", "linear", "poly2"),
        default="auto",
        help="auto: the ridge method with the best held-out R² (default)",
    )
    fit.add_argument("--no-mlp", action="store_true", help="skip the MLP comparison (faster)")
    fit.set_defaults(func=_fit)

    val = emu_sub.add_parser("validate", help="leave-one-region-out R²/MAE per region and per land-cover class")
    val.add_argument("--points", required=True, type=Path, help="folder of point CSVs")
    val.add_argument("--methods", default="linear,poly2,mlp", help="comma-separated: linear, poly2, mlp")
    val.add_argument("--json-out", type=Path, help="also write the per-region results as JSON here")
    # --json PATH was the old spelling of --json-out: still accepted (with a notice); bare --json is JSON on stdout
    val.add_argument(
        "--json",
        nargs="?",
        const=True,
        default=False,
        metavar="",
        help="print the per-region results as JSON on stdout instead of the table",
    )
    val.set_defaults(func=_validate)

    pts = sub.add_parser(
        "emulate-points",
        help="predict VV/VH dB for rows of AlphaEarth embeddings (CSV in, CSV out)",
        description="Reads A00..A63 (and 'angle' in degrees if present) and writes the same rows "
        "plus pred_VV_db and pred_VH_db (speckle-free σ⁰, 2024-median-like) and "
        "angle_source: 'input' when the row's angle was used, 'default_<θref>deg' "
        "(default_37.5deg for the shipped model) when the row has no angle (blank/NaN cell or no angle column) and the model's "
        "reference angle was used. Angles outside 10–65° are refused naming the rows; "
        "embeddings far from unit length (AlphaEarth vectors are unit vectors) are "
        "warned about on stderr. The output is written atomically (temp file + rename).",
    )
    pts.add_argument("--points", dest="csv", required=True, type=Path, help="input CSV")
    pts.add_argument("--out", required=True, type=Path, help="output CSV")
    pts.add_argument("--model", default="emulator", help="model id of an emulator card (default: emulator)")
    pts.set_defaults(func=_emulate_points)
    deprecated_alias(pts, "--csv", "--points")


def _progress(step: int, total: int, message: str) -> None:
    print(f"[{step}/{total}] {message}", file=sys.stderr, flush=True)


def _fit(args: argparse.Namespace) -> int:
    from sarviz.emulator import validation
    from sarviz.emulator.radiometric import load_points

    if args.out.suffix != ".safetensors":
        raise CliError(f"--out {args.out}: the weights file must end in .safetensors")
    if (args.points is None) == (args.dataset is None):
        raise CliError("give either --points DIR (point CSVs) or --dataset DIR (a built dataset)")
    if args.dataset is not None:
        from sarviz.datasets.emulator_fit import fit_from_dataset

        result = fit_from_dataset(
            args.dataset,
            args.out,
            card_dir=args.card_dir,
            model_id=args.model_id,
            block=args.block,
            max_samples=args.max_samples,
            progress=_progress,
        )
        print(result.summary())
        return 0
    if args.card_dir is not None or args.model_id is not None:
        raise CliError("--card-dir and --model-id go with --dataset")
    table = load_points(args.points)
    methods: tuple[str, ...] = ("linear", "poly2") if args.method == "auto" else (args.method,)
    if not args.no_mlp:
        methods += ("mlp",)
    print(
        f"{len(table)} points from {len(set(table.region.tolist()))} regions; leave-one-region-out over "
        f"{', '.join(methods)}",
        file=sys.stderr,
    )
    comparison = validation.compare_methods(table, methods, progress=_progress)
    model = validation.fit_best(table, comparison)
    try:  # atomic: a failed write keeps an existing weights file
        path = model.save(args.out)
    except Exception as exc:  # OSError, or safetensors' own error on a full disk
        cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())
        raise CliError(f"cannot write {args.out}: {cause}; an existing file there is unchanged") from None
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
        raise CliError(f"--methods {args.methods!r}: choose from {', '.join(validation.METHODS)}")
    table = load_points(args.points)
    comparison = validation.compare_methods(table, methods, progress=_progress)
    best = max(
        (m for m in methods if m in validation.RIDGE_METHODS),
        default=methods[0],
        key=lambda m: validation.mean_r2(comparison[m]),
    )
    results = {m: [r.as_dict() for r in res] for m, res in comparison.items()}
    json_out = args.json_out
    if args.json not in (True, False):  # the old `--json PATH`
        print(f"sarviz emulator validate: --json PATH is deprecated, use --json-out {args.json}", file=sys.stderr)
        json_out = json_out or Path(args.json)
    if args.json is True:
        print(json.dumps(results, indent=2))
    else:
        print(validation.format_report(comparison, shipped=best))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        from sarviz.atomic import atomic_path

        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(results, indent=2))
    return 0


#: AlphaEarth embeddings are unit vectors; rows further than this from norm 1 are suspicious …
NORM_TOLERANCE = 0.1
#: … and more than this fraction of such rows earns a warning
NORM_WARN_FRACTION = 0.01


def _rows_text(rows: "np.ndarray", limit: int = 5) -> str:
    """1-based data rows with their CSV line numbers (the header is line 1)."""
    shown = ", ".join(f"row {r + 1} (line {r + 2})" for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def read_angles(frame, where: str, reference_deg: float):
    """The per-row incidence angle and where it came from.

    Blank/NaN cells use the model's reference angle (``reference_deg``, 37.5°, i.e. no angle
    correction) and are marked ``default_<angle>deg`` in ``angle_source`` rather than silently
    looking like measured angles; text that is not a number, or an angle outside the range the
    cos^n law covers, is refused naming the rows.
    """
    import numpy as np
    import pandas as pd

    from sarviz.emulator.radiometric import ANGLE_RANGE_DEG, EmulatorError

    default_label = f"default_{reference_deg:g}deg"
    if "angle" not in frame.columns:
        return None, np.full(len(frame), default_label, dtype=object)
    angle = pd.to_numeric(frame["angle"], errors="coerce").to_numpy(dtype=np.float64)
    given = frame["angle"].notna().to_numpy()
    not_numbers = np.flatnonzero(np.isnan(angle) & given)
    if not_numbers.size:
        first = frame["angle"].iloc[not_numbers[0]]
        raise EmulatorError(
            f"{where}: column 'angle' must hold incidence angles in degrees; {_rows_text(not_numbers)} "
            f"{'is' if not_numbers.size == 1 else 'are'} not a number (e.g. {first!r})"
        )
    infinite = np.flatnonzero(np.isinf(angle))
    lo, hi = ANGLE_RANGE_DEG
    outside = np.flatnonzero(np.isfinite(angle) & ((angle < lo) | (angle > hi)))
    bad = np.union1d(infinite, outside)
    if bad.size:
        raise EmulatorError(
            f"{where}: incidence angle {angle[bad[0]]:g}° in {_rows_text(bad)} is outside "
            f"{lo:.0f}–{hi:.0f}°, where the emulator's cos^n angle law applies (Sentinel-1 IW "
            "spans about 29–46°); fix or blank those cells (blank = the reference angle)"
        )
    missing = np.isnan(angle)
    source = np.where(missing, default_label, "input").astype(object)
    if missing.any():
        print(
            f"note: {where}: {int(missing.sum())} row(s) have no angle ({_rows_text(np.flatnonzero(missing))}); "
            f"predicted at the reference angle {reference_deg:g}° and marked '{default_label}' in angle_source",
            file=sys.stderr,
        )
    return np.where(missing, reference_deg, angle), source


def warn_if_not_unit_norm(emb, where: str) -> str | None:
    """A warning (also printed to stderr) when embeddings are far from unit length.

    AlphaEarth vectors are unit-length; rows with | ‖e‖ − 1 | > 0.1 in more than 1% of the
    complete rows usually mean scaled/quantised values or the wrong columns, and the
    predictions for them are extrapolations.
    """
    import numpy as np

    complete = np.isfinite(emb).all(axis=1)
    if not complete.any():
        return None
    norms = np.linalg.norm(emb[complete], axis=1)
    off = np.abs(norms - 1.0) > NORM_TOLERANCE
    if off.mean() <= NORM_WARN_FRACTION:
        return None
    rows = np.flatnonzero(complete)[off]
    message = (
        f"warning: {where}: {int(off.sum())} of {int(complete.sum())} embeddings ({100 * off.mean():.1f}%) "
        f"are not unit-length (median norm {float(np.median(norms)):.3g}; e.g. {_rows_text(rows, 3)}). "
        "AlphaEarth embeddings are unit vectors: check for scaled, quantised (int8) or mislabelled columns — "
        "predictions for these rows are extrapolations"
    )
    print(message, file=sys.stderr)
    return message


def write_csv_atomically(frame, path: Path) -> None:
    """Write ``frame`` to ``path`` via a temporary file in the same folder and a rename, so a
    crash or a full disk never leaves a half-written output (or clobbers an earlier one)."""
    import os

    from sarviz.atomic import atomic_path

    try:
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            frame.to_csv(fh, index=False)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        from sarviz.emulator.radiometric import EmulatorError

        raise EmulatorError(
            f"cannot write {path}: {exc.strerror or exc}; nothing was written "
            f"({'the previous file is unchanged' if path.exists() else 'no partial file left'})"
        ) from None


def check_csv_shape(path: Path) -> None:
    """Refuse a CSV whose rows do not have exactly as many values as its header has columns.

    pandas silently takes surplus leading values of such rows as an index, which shifts every
    embedding column by one; a value too few would silently become missing.
    """
    import csv

    from sarviz.emulator.radiometric import EmulatorError

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise EmulatorError(f"{path}: the file is empty (expected a header row with A00..A63)")
            for row in reader:
                if row and len(row) != len(header):
                    raise EmulatorError(
                        f"{path}: line {reader.line_num} has {len(row)} values but the header has "
                        f"{len(header)} columns; fix the row (nothing was written)"
                    )
    except UnicodeDecodeError as exc:
        raise EmulatorError(f"{path}: not a readable CSV ({exc.reason})") from None


#: embedding values at or above this magnitude are data errors, not embeddings (int8 copies reach 127)
MAX_EMBEDDING_ABS = 1e4


def check_embedding_values(emb, where: str) -> None:  # noqa: ANN001
    """Refuse infinite or absurdly large embedding values.

    Empty cells stay "missing" (NaN) on purpose; ``inf`` or ``1e308`` are errors in the data,
    not missing values, and must not be reported as missing. AlphaEarth vectors are unit length
    (components in −1…1); scaled copies (int8-quantised, up to 127) still pass with the
    non-unit warning, but nothing near :data:`MAX_EMBEDDING_ABS` is an embedding.
    """
    import numpy as np

    from sarviz.emulator.radiometric import EMBEDDING_BANDS, EmulatorError

    bad = ~np.isnan(emb) & ~(np.abs(np.nan_to_num(emb, nan=0.0, posinf=np.inf, neginf=np.inf)) < MAX_EMBEDDING_ABS)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise EmulatorError(
            f"{where}: column {EMBEDDING_BANDS[col]} row {row + 1} is {emb[row, col]!r}, not a "
            f"possible AlphaEarth value (unit-vector components lie in −1…1; even quantised copies "
            f"stay far below {MAX_EMBEDDING_ABS:g}); {int(bad.any(axis=1).sum())} row(s) affected"
        )


def _emulate_points(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from sarviz.emulator.radiometric import EmulatorError, embedding_matrix
    from sarviz.registry import ModelRegistry

    generator = ModelRegistry().generator(args.model)
    model = getattr(generator, "model", None)
    if getattr(generator, "kind", "") != "emulator" or model is None:
        raise CliError(
            f"model {args.model!r} is a {generator.kind or 'non-emulator'} model; emulate-points needs an emulator card"
        )
    if not args.csv.is_file():
        raise FileNotFoundError(f"input CSV {args.csv} not found")
    check_csv_shape(args.csv)
    try:
        # index_col=False: never take surplus leading values as an index (that shifts A00…)
        frame = pd.read_csv(args.csv, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise EmulatorError(f"{args.csv}: not a readable CSV ({exc})") from None
    where = str(args.csv)
    emb = embedding_matrix(frame, where)
    check_embedding_values(emb, where)
    angle, angle_source = read_angles(frame, where, model.reference_angle_deg)
    warn_if_not_unit_norm(emb, where)
    pred = model.predict_db(emb, angle)
    out = frame.copy()
    out["pred_VV_db"] = pred[:, 0]
    out["pred_VH_db"] = pred[:, 1]
    out["angle_source"] = angle_source
    write_csv_atomically(out, args.out)
    n_nan = int(np.isnan(pred[:, 0]).sum())
    print(
        f"wrote {len(out)} rows to {args.out}"
        + (f" ({n_nan} rows with missing embedding values → empty predictions)" if n_nan else ""),
        file=sys.stderr,
    )
    return 0
