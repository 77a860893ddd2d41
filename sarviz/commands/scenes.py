"""`sarviz import` and `sarviz scenes`: fill and list a local scene folder."""

from __future__ import annotations

import argparse
import json
import sys

from sarviz.cli import CliError
from sarviz.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import Sen1Floods11 / BigEarthNet / SSL4EO-S12 data as scene files",
                       description="Recognise datasets below SRC and write one scene file per S1 acquisition to DIR.")
    p.add_argument("src", help="folder holding one or more datasets (searched recursively)")
    p.add_argument("--to", default=None, help="scene folder to write (default: SARVIZ_SCENES or ~/.sarviz/scenes)")
    p.add_argument("--overwrite", action="store_true", help="re-import scenes that are already present")
    p.set_defaults(func=run_import)

    p = sub.add_parser("scenes", help="list the scenes in a scene folder")
    p.add_argument("dir", nargs="?", default=None, help="scene folder (default: SARVIZ_SCENES or ~/.sarviz/scenes)")
    p.add_argument("--json", action="store_true", help="one JSON object per scene")
    p.set_defaults(func=run_list)


def run_import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sarviz.importers import import_scenes

    to = args.to or Settings.load().scenes
    bar = tqdm(total=None, unit="scene", file=sys.stderr, disable=not sys.stderr.isatty())

    def progress(i: int, n: int, name: str) -> None:
        bar.total = n
        bar.n = i
        bar.set_postfix_str(name[:40])
        bar.refresh()

    report = import_scenes(args.src, to, overwrite=args.overwrite, progress=progress)
    bar.close()
    for path in report.written:
        print(f"wrote {path}")
    for sid in report.skipped:
        print(f"skipped {sid} (already present; --overwrite to replace)")
    for problem in report.problems:
        print(f"problem: {problem}", file=sys.stderr)
    print(report.summary())
    return 1 if report.problems else 0


def run_list(args: argparse.Namespace) -> int:
    from sarviz.store import SceneStore

    store = SceneStore(args.dir or Settings.load().scenes)
    for problem in store.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if not len(store):
        raise CliError(f"no scenes in {store.folder}; import some with `sarviz import SRC --to {store.folder}`")
    if args.json:
        for e in store:
            lat, lon = e.center_latlon
            print(json.dumps({"id": e.scene_id, "lat": round(lat, 6), "lon": round(lon, 6), "width": e.width,
                              "height": e.height, "crs": e.crs, "layers": list(e.layers), "dates": e.dates}))
        return 0
    print(f"{'id':<70} {'lat':>10} {'lon':>11} {'size':>9}  layers")
    for e in store:
        lat, lon = e.center_latlon
        print(f"{e.scene_id:<70} {lat:>10.5f} {lon:>11.5f} {e.width:>4}x{e.height:<4}  {','.join(e.layers)}")
    print(f"{len(store)} scenes in {store.folder}")
    return 0
