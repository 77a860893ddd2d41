"""``sarviz dataset build|caption``: training sets for the generators (docs/datasets.md).

    sarviz dataset build --scenes DIR --out OUT [--size 512] [--stride S] [--val-fraction F] ...
    sarviz dataset build --points CSV | --region GEOJSON --year Y --out OUT [--source public] ...
    sarviz dataset caption OUT [--token "<SAR>"] [--polarisation VV|VV+VH]
    sarviz dataset info OUT [--json]

A build is resumable: run the same command again and finished patches are skipped, failed
ones retried.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sarviz.cli_args import deprecated_alias


def register(sub: argparse._SubParsersAction) -> None:
    ds = sub.add_parser(
        "dataset", help="build training datasets (patches, splits, captions)", description=__doc__.split("\n\n")[0]
    )
    ds_sub = ds.add_subparsers(dest="dataset_command", metavar="ACTION")
    ds.set_defaults(func=lambda args: (ds.print_help(), 2)[1])

    b = ds_sub.add_parser(
        "build",
        help="cut or fetch 67-band training patches with spatial-block splits",
        description="Cut training patches (VV, VH, angle, A00..A63) from a scene folder, or fetch "
        "them for points / a region through the sources; resumable.",
    )
    src = b.add_argument_group("where the patches come from (one of)")
    src.add_argument("--scenes", type=Path, help="scene folder (scene files with VV/VH and an embedding)")
    src.add_argument("--points", type=Path, help="CSV (lat, lon[, id, year]) or GeoJSON of points to fetch")
    src.add_argument("--region", type=Path, help="GeoJSON (Multi)Polygon: patches on a grid inside it are fetched")
    b.add_argument("--out", required=True, type=Path, help="dataset folder to write (and to resume)")
    b.add_argument("--size", type=int, default=512, help="patch size in pixels (default 512)")
    b.add_argument(
        "--stride",
        type=int,
        help="step between patches in pixels (default: --size / 2, the 50 %% "
        "overlap of the HuiYanEarth-SAR reference; = --size for none)",
    )
    b.add_argument(
        "--allow-smaller",
        action="store_true",
        help="keep a scene smaller than --size as one patch of its own size (default: skip it)",
    )
    b.add_argument("--val-fraction", type=float, default=0.1, help="share of spatial blocks for validation (0.1)")
    b.add_argument("--test-fraction", type=float, default=0.1, help="share of spatial blocks for test (0.1)")
    b.add_argument("--split-block-km", type=float, default=10.0, help="spatial block size in km (default 10)")
    b.add_argument("--split-seed", type=int, default=0, help="seed of the block → split hash (default 0)")
    b.add_argument(
        "--max-missing",
        type=float,
        default=0.01,
        help="drop patches with more than this fraction of pixels missing VV, VH or the embedding (0.01)",
    )
    angle = b.add_mutually_exclusive_group()
    angle.add_argument(
        "--assume-angle",
        type=float,
        default=None,
        help="incidence angle (deg) for scenes without one (default 37.5, mid-swath; recorded as "
        "assumed in the manifest)",
    )
    angle.add_argument("--no-assumed-angle", action="store_true", help="skip scenes without an incidence angle")
    b.add_argument(
        "--landcover",
        default="auto",
        choices=("auto", "provenance", "embedding-knn", "optical", "none"),
        help="how land cover is labelled (never from the SAR; default auto: scene provenance, else "
        "embedding kNN to labelled AlphaEarth points, else the optical rules)",
    )
    b.add_argument(
        "--landcover-points",
        type=Path,
        help="folder of labelled AlphaEarth point CSVs for the kNN (default ../shared/samples/alphaearth_s1_points)",
    )
    b.add_argument("--workers", type=int, default=2, help="parallel reads/fetches (threads; default 2)")
    fetch = b.add_argument_group("fetching (--points / --region)")
    fetch.add_argument("--year", type=int, default=None, help="year of the embedding and the Sentinel-1 window")
    fetch.add_argument(
        "--source",
        choices=("auto", "ee", "public"),
        default="auto",
        help="auto: the settings' order (Earth Engine if configured, then the public mosaics)",
    )
    fetch.add_argument(
        "--s1-mode",
        choices=("single", "composite"),
        default=None,
        help="Sentinel-1: one acquisition (nearest to --date; default) or a median composite",
    )
    # the old spelling of --s1-mode (median = composite, nearest = single): hidden, with a notice
    fetch.add_argument("--composite", choices=("nearest", "median"), default=None, help=argparse.SUPPRESS)
    fetch.add_argument("--pass", dest="s1_pass", choices=("ascending", "descending"), help="Sentinel-1 orbit pass")
    fetch.add_argument("--start", help="start of the Sentinel date window (default: 1 January of the year)")
    fetch.add_argument("--end", help="end of the Sentinel date window (default: 31 December of the year)")
    fetch.add_argument(
        "--date", dest="target_date", help="target date of the single acquisition (default: the window's middle)"
    )
    fetch.add_argument("--aef-url", help="AlphaEarth Zarr mosaic URL or path (default: Source Cooperative)")
    fetch.add_argument("--stac-url", help="STAC API URL for Sentinel-1/2 (default: Planetary Computer)")
    b.set_defaults(func=_build)
    deprecated_alias(b, "--to", "--out")

    i = ds_sub.add_parser("info", help="what a built dataset holds: splits, drops, land-cover classes per split")
    i.add_argument("dataset", type=Path, help="dataset folder")
    i.add_argument("--json", action="store_true", help="print dataset.json and the class counts as JSON")
    i.set_defaults(func=_info)

    c = ds_sub.add_parser(
        "caption",
        help="write the captioned 🤗 imagefolder (text-to-SAR) of a built dataset",
        description="Template captions from land cover, place, polarisation, orbit, angle and "
        "season; 8-bit PNGs through the dataset's calibration.",
    )
    c.add_argument("dataset", type=Path, help="dataset folder (from `sarviz dataset build`)")
    c.add_argument("--token", default="<SAR>", help='the learned token that leads every caption (default "<SAR>")')
    c.add_argument(
        "--polarisation",
        choices=("VV", "VV+VH"),
        default="VV",
        help="VV: grey PNGs; VV+VH: RGB = VV, VH, VV (default VV)",
    )
    c.set_defaults(func=_caption)

    from sarviz.commands.sar2sar import add_pairs_parser  # SAR→SAR pairs (seed 002)

    add_pairs_parser(ds_sub)


def _progress(done: int, total: int, message: str) -> None:
    print(f"[{done}/{total}] {message}", file=sys.stderr, flush=True)


def _options(args: argparse.Namespace):
    from sarviz.datasets.builder import BuildOptions
    from sarviz.datasets.splits import SplitSpec
    from sarviz.generators.base import DEFAULT_ANGLE_DEG

    split = SplitSpec(args.val_fraction, args.test_fraction, args.split_block_km, args.split_seed)
    assume = None if args.no_assumed_angle else (DEFAULT_ANGLE_DEG if args.assume_angle is None else args.assume_angle)
    return BuildOptions(
        size=args.size,
        stride=args.stride,
        split=split,
        max_missing=args.max_missing,
        allow_smaller=args.allow_smaller,
        assume_angle=assume,
        landcover=args.landcover,
        landcover_points=args.landcover_points,
        workers=args.workers,
    )


def _chain_factory(args: argparse.Namespace):
    from sarviz.scene import SceneError
    from sarviz.settings import Settings, secret
    from sarviz.sources.chain import SourceChain

    settings = Settings.load()
    orders = {"auto": tuple(s for s in settings.sources if s != "local"), "ee": ("ee",), "public": ("public",)}
    order = orders[args.source] or ("public",)
    if args.source == "ee" and not (settings.ee_project or secret("ee_project")):
        raise SceneError("--source ee needs an Earth Engine Cloud project id: set SARVIZ_EE_PROJECT")
    options = {k: v for k, v in (("aef_url", args.aef_url), ("stac_url", args.stac_url)) if v}

    def make() -> SourceChain:
        chain = SourceChain.from_settings(settings, order=order, **options)
        chain.cache_folder = None  # the dataset holds the patches; no scene-store copy
        return chain

    make()  # fail early (bad settings) before any thread starts
    return make


def _build(args: argparse.Namespace) -> int:
    from sarviz.datasets import builder
    from sarviz.errors import CliError

    given = [name for name in ("scenes", "points", "region") if getattr(args, name) is not None]
    if len(given) != 1:
        raise CliError(
            "give exactly one of --scenes DIR, --points FILE or --region GEOJSON"
            + (f" (got {', '.join('--' + g for g in given)})" if given else "")
        )
    options = _options(args)
    if args.scenes is not None:
        if args.year is not None or args.source != "auto":
            print("note: --year/--source apply to --points/--region; ignored with --scenes", file=sys.stderr)
        report = builder.build_from_scenes(args.scenes, args.out, options, progress=_progress)
    else:
        from sarviz.commands.fetch import read_points
        from sarviz.sources.base import DEFAULT_YEAR

        points = (
            read_points(args.points)
            if args.points is not None
            else builder.points_in_region(args.region, options.size, options.effective_stride)
        )
        if args.composite:
            print("sarviz dataset build: --composite is deprecated, use --s1-mode single|composite", file=sys.stderr)
        composite = {"single": "nearest", "composite": "median"}.get(args.s1_mode) or args.composite or "nearest"
        fetch_options = {"s1_composite": composite}
        for key in ("s1_pass", "start", "end", "target_date"):
            if getattr(args, key):
                fetch_options[key] = getattr(args, key)
        report = builder.build_from_points(
            points,
            args.out,
            options,
            args.year or DEFAULT_YEAR,
            _chain_factory(args),
            fetch_options,
            progress=_progress,
        )
    print(report.summary())
    return 1 if report.failures or report.empty else 0


def _caption(args: argparse.Namespace) -> int:
    from sarviz.datasets.captions import write_captioned

    report = write_captioned(args.dataset, token=args.token, polarisation=args.polarisation, progress=_progress)
    print(report)
    return 0


def _info(args: argparse.Namespace) -> int:
    import json

    from sarviz.formats.patch_dataset import PatchDatasetFolder

    ds = PatchDatasetFolder.load(args.dataset)
    if args.json:
        print(json.dumps({**ds.info, "class_counts": ds.class_counts()}, sort_keys=True))
    else:
        print(ds.describe())
    return 0
