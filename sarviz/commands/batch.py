"""``sarviz batch``: synthesise SAR for many points or a region grid on Ray (folder layout: docs/batch.md).

    sarviz batch --points points.csv --model emulator --out runs/b1 [--scenes DIR] [--seeds 3]
    sarviz batch --region area.geojson --spacing-km 5 --model huiyanearth-sar --out runs/b2 \\
                 --ray-address auto --workers 8 --gpus-per-worker 1

Running the same command again continues the batch: finished items are skipped, failed
ones retried.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sarviz.cli_args import deprecated_alias
from sarviz.errors import CliError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="synthesise SAR for many points or a region grid (Ray), with STAC + manifest",
        description=__doc__.split("\n\n")[0],
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--points", type=Path, help="CSV (lat/lon, optional id, year, class, region) or GeoJSON points")
    where.add_argument("--region", type=Path, help="GeoJSON Polygon/MultiPolygon: points on a grid inside it")
    p.add_argument("--spacing-km", type=float, help="grid spacing for --region, km")
    p.add_argument("--model", required=True, help="model card id (see `sarviz models`)")
    p.add_argument("--out", type=Path, required=True, help="batch folder to write (and to continue)")
    p.add_argument(
        "--scenes", type=Path, default=None, help="scene folder (default: SARVIZ_SCENES or ~/.sarviz/scenes)"
    )
    p.add_argument(
        "--source",
        dest="sources",
        choices=("local", "auto", "ee", "public"),
        default="local",
        help="local: scenes in the folder only (default); auto/ee/public: fetch missing scenes "
        "through the source chain and cache them in the scene folder",
    )
    p.add_argument("--year", type=int, default=None, help="year of the scenes fetched (with --source other than local)")
    p.add_argument("--seeds", type=int, default=1, help="images a point, seeds 0..N-1 (default 1)")
    p.add_argument("--size", type=int, default=512, help="patch size in pixels (default 512)")
    p.add_argument(
        "--s1-mode",
        choices=("single", "composite"),
        default="single",
        help="real Sentinel-1: one acquisition where the source allows (default) or a median composite",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster address (e.g. auto or ray://host:10001); default: an embedded local Ray",
    )
    p.add_argument("--workers", type=int, default=2, help="generation workers (one model each; default 2)")
    p.add_argument("--fetch-workers", type=int, default=2, help="scene fetch workers (I/O; default 2)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs a generation worker (default 0)")
    p.add_argument(
        "--no-scene-copy",
        action="store_true",
        help="do not keep scene.tif (all 71 input bands, the bulk of an item) in the items; real and optical are kept",
    )
    p.add_argument(
        "--engine",
        choices=("ray", "inline"),
        default="ray",
        help="ray (default) or inline: everything in this process, one item after the other",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    deprecated_alias(p, "--sources", "--source")


def run(args: argparse.Namespace) -> int:
    from sarviz.batch.engine import run_batch
    from sarviz.batch.points import points_from_file, points_from_region
    from sarviz.formats.batch_folder import BatchConfig
    from sarviz.generators.runtime import card_readiness
    from sarviz.registry import ModelRegistry

    if args.region is not None and args.spacing_km is None:
        raise CliError("--region needs --spacing-km")
    if args.points is not None and args.spacing_km is not None:
        raise CliError("--spacing-km goes with --region")
    if args.seeds < 1 or args.workers < 1 or args.fetch_workers < 1:
        raise CliError("--seeds, --workers and --fetch-workers must be at least 1")
    if not 16 <= args.size <= 4096:
        raise CliError(f"--size must be in [16, 4096] pixels, got {args.size}")
    card = ModelRegistry().card(args.model)
    if card.kind == "text-to-sar":
        raise CliError(
            f"{args.model} is a text-to-SAR model: it is not conditioned on a place, so a batch over points "
            "does not apply"
        )
    readiness = card_readiness(card)
    if not readiness.ready:
        raise CliError(f"model {args.model}: {readiness.message}")
    if args.sources == "local" and args.scenes is not None and not args.scenes.is_dir():
        raise CliError(f"scene folder {args.scenes} does not exist")
    points = points_from_file(args.points) if args.points else points_from_region(args.region, args.spacing_km)
    config = BatchConfig(
        model=args.model,
        size=args.size,
        seeds=tuple(range(args.seeds)),
        year=args.year,
        s1_mode=args.s1_mode,
        scenes=str(args.scenes.resolve()) if args.scenes else None,
        sources=args.sources,
        keep_scene=not args.no_scene_copy,
    )
    source = (
        {"points_file": str(args.points)}
        if args.points
        else {"region": str(args.region), "spacing_km": args.spacing_km}
    )
    summary = run_batch(
        points,
        config,
        args.out,
        engine=args.engine,
        ray_address=args.ray_address,
        workers=args.workers,
        fetch_workers=args.fetch_workers,
        gpus_per_worker=args.gpus_per_worker,
        progress=not args.quiet,
        info=source,
    )
    from sarviz.formats.batch_folder import MANIFEST_CSV
    from sarviz.formats.stac_catalog import CATALOG_FILE

    print(
        f"sarviz batch: {summary.line()}; catalog {args.out / CATALOG_FILE}, manifest {args.out / MANIFEST_CSV}",
        file=sys.stderr,
    )
    composite = sum(r.get("s1_mode") == "composite" for r in summary.rows.values())
    if composite and args.s1_mode == "single":
        print(
            f"  note: {composite} real crops are median composites, not single acquisitions (their scenes hold "
            "no single acquisition); `sarviz evaluate` flags them",
            file=sys.stderr,
        )
    failed = [r for r in summary.rows.values() if r.get("status") == "failed"]
    for row in failed[:10]:
        print(f"  FAILED {row['id']} ({row.get('stage')}): {row.get('error')}", file=sys.stderr)
    if len(failed) > 10:
        print(f"  … and {len(failed) - 10} more (manifest.csv)", file=sys.stderr)
    return 1 if failed else 0
