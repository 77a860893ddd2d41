"""``sarviz fetch``: fetch scenes for points into a scene folder (single point or bulk file).

    sarviz fetch --lat 47.37 --lon 8.54 [--source ee|public] [--year 2024] [--size 512] --out DIR
    sarviz fetch --place "Zürich" --out DIR
    sarviz fetch --points points.csv|points.geojson [--source ...] --out DIR

The folder is also the first source: points already fetched are served from it, so a
bulk run that was interrupted can simply be run again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sarviz.cli_args import deprecated_alias
from sarviz.errors import SceneError
from sarviz.regions import _LAT, _LON  # noqa: F401 - the column names live with the one points reader


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fetch",
        help="fetch scenes (embedding, Sentinel-1, Sentinel-2) for points",
        description=__doc__.split("\n\n")[0],
    )
    where = p.add_argument_group("where")
    where.add_argument("--lat", type=float, help="latitude of the patch centre (degrees)")
    where.add_argument("--lon", type=float, help="longitude of the patch centre (degrees)")
    where.add_argument(
        "--place",
        help="a town, region or country from the offline gazetteer instead of --lat/--lon "
        '(a name several countries share must be qualified: "Punjab, Pakistan")',
    )
    where.add_argument(
        "--points", type=Path, help="CSV (lat/lon or place columns, optional year, id) or GeoJSON of points"
    )
    p.add_argument("--out", type=Path, required=True, help="scene folder to write into (and to reuse)")
    p.add_argument(
        "--source",
        choices=("ee", "public", "auto"),
        default="auto",
        help="where to fetch from; auto = the settings' order (default)",
    )
    p.add_argument(
        "--year", type=int, default=None, help="year of the embedding and of the Sentinel window (2017–2025)"
    )
    p.add_argument("--size", type=int, default=512, help="patch size in pixels at 10 m (default 512)")
    p.add_argument("--pass", dest="s1_pass", choices=("ascending", "descending"), help="Sentinel-1 orbit pass")
    p.add_argument(
        "--s1-mode",
        choices=("single", "composite"),
        default=None,
        help="Sentinel-1: one acquisition nearest to --date (default, settings s1_mode) or a median "
        "composite of one track over the window (smoother: speckle metrics then measure compositing)",
    )
    # the old spelling of --s1-mode (median = composite, nearest = single): hidden, with a notice
    p.add_argument("--composite", choices=("median", "nearest"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--start", help="start of the Sentinel date window (default: 1 January of the year)")
    p.add_argument("--end", help="end of the Sentinel date window (default: 31 December of the year)")
    p.add_argument(
        "--date",
        dest="target_date",
        help="target date of the single Sentinel-1 acquisition (default: the middle of the window)",
    )
    p.add_argument("--max-cloud", type=float, default=40.0, help="Sentinel-2 scene cloud cover limit, %% (default 40)")
    p.add_argument("--aef-url", help="AlphaEarth Zarr mosaic URL or path (default: Source Cooperative)")
    p.add_argument("--stac-url", help="STAC API URL for Sentinel-1/2 (default: Planetary Computer)")
    p.add_argument("--json", action="store_true", help="print one JSON report a point instead of text")
    p.set_defaults(func=run)
    deprecated_alias(p, "--to", "--out")


def place_point(name: str, where: str = "--place") -> tuple[float, float]:
    """(lat, lon) of a place name; see :func:`resolve_place`."""
    place = resolve_place(name, where)
    return place.lat, place.lon


def resolve_place(name: str, where: str = "--place"):
    """The :class:`~sarviz.gazetteer.Place` a name means, through the one gazetteer
    (:func:`sarviz.gazetteer.resolve`), telling the user on stderr what it was resolved to
    (and which others share the name)."""
    from sarviz.gazetteer import resolution_text, resolve

    try:
        place, others = resolve(name)
    except SceneError as exc:
        raise SceneError(f"{where}: {exc}") from None
    print(resolution_text(where, name, place, others), file=sys.stderr)
    return place


def read_points(path: str | Path) -> list[dict]:
    """The one strict points reader (:func:`sarviz.regions.read_points`), saying on stderr what
    each ``place`` row was resolved to."""
    from sarviz.regions import read_points as read_points_file

    return read_points_file(path, report=lambda text: print(text, file=sys.stderr))


def build_chain(args):
    from sarviz.settings import Settings
    from sarviz.sources.chain import SourceChain

    settings = Settings.load()
    settings.scenes = args.out
    order = {"auto": settings.sources, "ee": ("local", "ee"), "public": ("local", "public")}[args.source]
    if args.source == "ee" and not settings.ee_project:
        from sarviz.settings import secret

        if not secret("ee_project"):
            raise SceneError("--source ee needs an Earth Engine Cloud project id: set SARVIZ_EE_PROJECT")
    options = {k: v for k, v in (("aef_url", args.aef_url), ("stac_url", args.stac_url)) if v}
    return SourceChain.from_settings(settings, order=order, **options)


def run(args) -> int:
    from sarviz.sources.base import SourceError

    single = args.lat is not None or args.lon is not None
    if getattr(args, "place", None):
        if single or args.points:
            raise SceneError("give one of --place, --lat/--lon or --points")
        args.lat, args.lon = place_point(args.place)
        single = True
    if single and args.points:
        raise SceneError("give either --lat/--lon or --points, not both")
    if not single and not args.points:
        raise SceneError("give a point (--place, or --lat and --lon) or a points file (--points)")
    if single and (args.lat is None or args.lon is None):
        raise SceneError("--lat and --lon go together")
    points = [{"lat": args.lat, "lon": args.lon, "year": None, "id": "point"}] if single else read_points(args.points)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.composite:
        print("sarviz fetch: --composite is deprecated, use --s1-mode single|composite", file=sys.stderr)
    chain = build_chain(args)
    failed = 0
    for n, pt in enumerate(points, 1):
        label = f"[{n}/{len(points)}] {pt['id']}" if len(points) > 1 else ""
        last = [-1]

        def progress(fraction: float, message: str) -> None:
            step = int(fraction * 10)
            if step != last[0] and not args.json:
                last[0] = step
                print(f"  {fraction:4.0%} {message}", file=sys.stderr)

        try:
            result = chain.get_scene(
                pt["lat"],
                pt["lon"],
                size_px=args.size,
                year=pt["year"] or args.year,
                progress=progress,
                s1_pass=args.s1_pass,
                s1_composite=args.composite,
                s1_mode=args.s1_mode,
                start=args.start,
                end=args.end,
                target_date=args.target_date,
                s2_max_cloud=args.max_cloud,
            )
        except SourceError as exc:
            if single:
                raise
            failed += 1
            print(json.dumps({"id": pt["id"], "error": str(exc)}) if args.json else f"{label} FAILED: {exc}")
            continue
        except SceneError as exc:  # a bad point in a bulk file: report it, go on
            if single:
                raise
            failed += 1
            print(json.dumps({"id": pt["id"], "error": str(exc)}) if args.json else f"{label} FAILED: {exc}")
            continue
        if args.json:
            print(json.dumps({"id": pt["id"], **result.to_json()}))
        else:
            if label:
                print(label)
            print("\n".join(("  " if label else "") + line for line in result.summary_lines()))
    if len(points) > 1 and not args.json:
        print(f"{len(points) - failed} of {len(points)} points fetched into {args.out}")
    return 1 if failed else 0
