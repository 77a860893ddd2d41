"""``sarviz evaluate DIR``: the papers' fidelity tables for a batch folder (per item and aggregated).

    sarviz evaluate runs/b1 [--by class|region] [--out REPORT_DIR] [--json]

Writes per_item.csv, summary.csv, table1.csv (seed 000 layout), kl_by_class.csv (seed 001),
evaluation.json and report.md with figures into REPORT_DIR (default DIR/evaluation).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="fidelity metrics of a batch folder: Table I layout, per-class KL, report",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("dir", type=Path, help="batch folder (written by `sarviz batch`)")
    p.add_argument("--by", choices=("class", "region"), default=None, help="also aggregate by class or by region")
    p.add_argument("--out", type=Path, default=None, help="report folder (default DIR/evaluation)")
    p.add_argument("--json", action="store_true", help="print the evaluation as one JSON object")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: an embedded local Ray)")
    p.add_argument("--workers", type=int, default=2, help="parallel metric tasks (default 2)")
    p.add_argument("--engine", choices=("ray", "inline"), default="ray", help="ray (default) or inline (this process)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sarviz.batch.evaluate import evaluate_batch, table1, write_report

    if not args.dir.is_dir():
        raise FileNotFoundError(f"batch folder {args.dir} does not exist")
    ticker = None
    if sys.stderr.isatty() and not args.json:
        from tqdm import tqdm

        ticker = tqdm(unit="task", file=sys.stderr, desc="evaluate", mininterval=0.5)

    def progress(done: int, total: int) -> None:
        if ticker is not None:
            ticker.total = total
            ticker.update(done - ticker.n)

    try:
        ev = evaluate_batch(
            args.dir,
            by=args.by,
            engine=args.engine,
            workers=args.workers,
            ray_address=args.ray_address,
            progress=progress,
        )
    finally:
        if ticker is not None:
            ticker.close()
    from sarviz.formats.batch_folder import EVALUATION_DIR
    from sarviz.formats.evaluation_report import REPORT_MD

    out = args.out or args.dir / EVALUATION_DIR
    files = write_report(ev, out)
    if args.json:
        print(json.dumps(ev.to_dict(), allow_nan=False, default=str))
        return 0
    print(f"{ev.items} items, model {ev.model}; report {files[REPORT_MD]}")
    if ev.composite_items:
        print(f"note: {ev.composite_items} of {ev.items} real crops are median composites (not single acquisitions)")
    print(f"{'group':<28} {'pol':<4} {'n':>4}  {'Mean/Std sim ↓':<17} {'FSIM ↑':>8} {'SSIM ↑':>8} {'KL ↓':>8}")
    for r in table1(ev):
        kl = ev.summary[r["group"]][f"kl_{r['polarisation']}"]["mean"]
        fmt = lambda x: "–" if x is None else f"{x:.4f}"  # noqa: E731
        print(
            f"{r['group'][:28]:<28} {r['polarisation']:<4} {r['n']:>4}  {r['mean_std_similarity']:<17} "
            f"{fmt(r['fsim']['mean']):>8} {fmt(r['ssim']['mean']):>8} {fmt(kl):>8}"
        )
    failed = [r for r in ev.rows if r.get("error")]
    if failed:
        print(f"{len(failed)} pairs could not be evaluated (see {files[REPORT_MD]})", file=sys.stderr)
    return 0
