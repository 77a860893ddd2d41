"""``sarviz metrics REAL.tif GENERATED.tif [--json]``: fidelity metrics of a generated image.

Both GeoTIFFs need bands named VV and VH (dB) on the same grid; a sarviz scene file
works as the real image. Definitions: docs/metrics.md.
"""

from __future__ import annotations

import argparse
import sys

from sarviz.cli_args import deprecated_alias


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "metrics",
        help="compare a generated SAR GeoTIFF with the real one (KL, SSIM, FSIM, ENL, GLCM, ...)",
        description="Compare a generated Sentinel-1 GeoTIFF with the real one on the same grid. Both files need "
        "bands named VV and VH in dB. Metric definitions: docs/metrics.md.",
    )
    parser.add_argument("real", help="GeoTIFF of the real Sentinel-1 image (bands VV, VH in dB) or a sarviz scene file")
    parser.add_argument("generated", help="GeoTIFF of the generated image (bands VV, VH in dB)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--per-angle", action="store_true", help="table: GLCM per angle instead of the mean of 4")
    parser.add_argument(
        "--out", dest="csv", metavar="PATH", help="also write the metrics table (per angle) as CSV to PATH"
    )
    parser.set_defaults(func=run)
    deprecated_alias(parser, "--csv", "--out")


def run(args: argparse.Namespace) -> int:
    from sarviz.metrics.report import compare_files
    from sarviz.scene import check_file_size

    for path in (args.real, args.generated):
        check_file_size(path)  # a header claiming 200000² px is refused before any pixel is read
    report = compare_files(args.real, args.generated)
    if args.csv:
        from sarviz.atomic import atomic_path

        with atomic_path(args.csv) as tmp:  # a failed write keeps an existing file
            tmp.write_text(report.csv(per_angle=True), encoding="utf-8")
    if args.json:
        print(report.to_json())
        return 0
    import pandas as pd  # only the table needs it (about 0.4 s to import)

    table = report.table(per_angle=args.per_angle)
    table = table.loc[:, [c for c in table.columns if table[c].replace("", None).notna().any()]]  # no empty columns
    with pd.option_context("display.max_rows", None, "display.width", 160, "display.float_format", "{:.4f}".format):
        print(table.fillna("").to_string(index=False))
    if report.proxy_note:
        print(f"\nPROXY: {report.proxy_note}")
    print(
        "\ndefinitions: docs/metrics.md; lower is better for KL and Mean/Std similarity, higher for SSIM/FSIM",
        file=sys.stderr,
    )
    return 0
