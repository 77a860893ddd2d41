"""`sarviz import` and `sarviz scenes`: fill and list a local scene folder."""

from __future__ import annotations

import argparse
import json
import sys

from sarviz.cli_args import deprecated_alias
from sarviz.errors import CliError
from sarviz.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="import Sen1Floods11 / BigEarthNet / SSL4EO-S12 data as scene files",
        description="Recognise datasets below SRC and write one scene file per S1 acquisition to DIR.",
    )
    p.add_argument("src", help="folder holding one or more datasets (searched recursively)")
    p.add_argument("--out", default=None, help="scene folder to write (default: SARVIZ_SCENES or ~/.sarviz/scenes)")
    p.add_argument("--overwrite", action="store_true", help="re-import scenes that are already present")
    p.add_argument(
        "--no-proxy-embedding",
        dest="proxy_embedding",
        action="store_false",
        help="do not give scenes without AlphaEarth a PROXY embedding (then they cannot be generated from)",
    )
    p.add_argument(
        "--points",
        default=None,
        help="AlphaEarth sample points for the proxy (default: SARVIZ_PROXY_POINTS, else "
        "alphaearth_s1_points below SRC, else ../shared/samples)",
    )
    p.set_defaults(func=run_import)
    deprecated_alias(p, "--to", "--out")

    p = sub.add_parser(
        "scenes",
        help="list the scenes in a scene folder, or add proxy embeddings to them",
        description="`sarviz scenes [DIR]` lists the scenes; `sarviz scenes add-proxy-embedding [DIR]` "
        "gives every scene without an embedding a PROXY one (real AlphaEarth vectors of "
        "other places chosen by the scene's optical land cover; never replaces a real one).",
    )
    p.add_argument(
        "words",
        nargs="*",
        metavar="[add-proxy-embedding] [DIR]",
        help="scene folder (default: SARVIZ_SCENES or ~/.sarviz/scenes), optionally after the action",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per scene")
    p.add_argument("--points", default=None, help="AlphaEarth sample points for add-proxy-embedding")
    p.add_argument("--force", action="store_true", help="add-proxy-embedding: remake existing proxies too")
    p.set_defaults(func=run_scenes)


ACTIONS = ("add-proxy-embedding",)


def run_import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sarviz.importers import import_scenes

    to = args.out or Settings.load().scenes
    bar = tqdm(total=None, unit="scene", file=sys.stderr, disable=not sys.stderr.isatty())

    def progress(i: int, n: int, name: str) -> None:
        bar.total = n
        bar.n = i
        bar.set_postfix_str(name[:40])
        bar.refresh()

    report = import_scenes(
        args.src,
        to,
        overwrite=args.overwrite,
        progress=progress,
        proxy_embedding=args.proxy_embedding,
        points_dir=args.points,
    )
    bar.close()
    _print_report(report, skipped_hint="already present; --overwrite to replace")
    return 1 if report.problems else 0


def _print_report(report, skipped_hint: str) -> None:
    proxied = set(report.proxied)
    for path in report.written:
        print(f"wrote {path}" + (" (PROXY embedding, not AlphaEarth)" if path.stem in proxied else ""))
    for sid in report.skipped:
        print(f"skipped {sid} ({skipped_hint})")
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for problem in report.problems:
        print(f"problem: {problem}", file=sys.stderr)
    print(report.summary())


def run_scenes(args: argparse.Namespace) -> int:
    words = list(args.words)
    action = words.pop(0) if words and words[0] in ACTIONS else None
    if len(words) > 1:
        raise CliError(f"too many arguments: {' '.join(args.words)}; usage: sarviz scenes [add-proxy-embedding] [DIR]")
    folder = words[0] if words else Settings.load().scenes
    if action == "add-proxy-embedding":
        from sarviz.importers import add_proxy_embeddings

        report = add_proxy_embeddings(folder, points_dir=args.points, force=args.force)
        _print_report(
            report, skipped_hint="has an embedding already" + ("" if args.force else "; --force remakes proxies")
        )
        return 1 if report.problems else 0
    return run_list(folder, as_json=args.json)


def run_list(folder, as_json: bool = False) -> int:
    from sarviz.scene_summary import scene_summaries
    from sarviz.store import SceneStore

    store = SceneStore(folder)
    for problem in store.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if not len(store):
        raise CliError(f"no scenes in {store.folder}; import some with `sarviz import SRC --out {store.folder}`")
    rows = scene_summaries(store)
    if as_json:
        for r in rows:
            print(json.dumps(r))
        return 0
    # column widths from the data, so that long ids never push the other columns out of line
    width = max(len("id"), *(len(r["id"]) for r in rows))
    print(f"{'id':<{width}}  {'lat':>9} {'lon':>10} {'size':>9}  {'embedding':<10} layers")
    for r in rows:
        print(
            f"{r['id']:<{width}}  {r['lat']:>9.5f} {r['lon']:>10.5f} {r['width']:>4}x{r['height']:<4}  "
            f"{r['embedding'] or '-':<10} {','.join(r['layers'])}"
        )
    print(f"{len(store)} scenes in {store.folder}")
    return 0
