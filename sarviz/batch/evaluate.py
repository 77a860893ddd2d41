"""Evaluate a batch folder: the papers' fidelity tables, per item and aggregated (docs/batch.md).

Per item and seed, :func:`sarviz.metrics.report.compare` gives every metric of the real crop
(``real.tif``) against the generated image (``generated_sNNN.tif``): KL (seed 001),
Mean/Std similarity, SSIM, FSIM (seed 000, Table I), ENL and GLCM features of both images.
Items are evaluated in parallel on Ray (one task an item, a bounded number in flight).

Aggregates (over all items, and by class or region): mean, standard deviation and a
bootstrap 95 % confidence interval of the mean (percentile bootstrap, 2,000 resamples,
fixed seed). Two paper layouts:

* Table I of seed 000: Mean/Std similarity (↓), FSIM (↑), SSIM (↑), per polarisation.
* Seed 001's per-class KL: KL(real ‖ generated) between the amplitude distributions of *all*
  real and *all* generated images of a class — each image normalised by its own μ+3σ, then
  the histograms pooled (:func:`sarviz.metrics.protocols.seed001_kl`, the implementation the
  Inspect page and ``evaluate-text`` use too) — next to the mean of the per-image KLs.

Real crops that are median composites (scene provenance ``s1_mode``) are flagged: their
speckle is averaged away, so KL and ENL against a single-look generator are not like for like.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sarviz.errors import EvaluationError, SarvizError
from sarviz.formats import evaluation_report as er
from sarviz.formats.batch_folder import BatchFolder

POLS = ("VV", "VH")
#: metric column → (label, better: "lower" | "higher" | "") ; per polarisation suffix _VV/_VH
METRICS: dict[str, tuple[str, str]] = {
    "kl": ("KL(real ‖ generated), nats", "lower"),
    "mean_sim": ("Mean similarity |Δμ|", "lower"),
    "std_sim": ("Std similarity |Δσ|", "lower"),
    "ssim": ("SSIM", "higher"),
    "fsim": ("FSIM", "higher"),
    "enl_real": ("ENL real", ""),
    "enl_gen": ("ENL generated", ""),
}
GLCM_FEATURES = ("contrast", "homogeneity", "correlation", "entropy")
for _f in GLCM_FEATURES:
    METRICS[f"glcm_{_f}_real"] = (f"GLCM {_f} real (mean of distances and angles)", "")
    METRICS[f"glcm_{_f}_gen"] = (f"GLCM {_f} generated (mean of distances and angles)", "")
BOOTSTRAP_RESAMPLES = 2000


def metric_columns() -> list[str]:
    return [f"{m}_{p}" for m in METRICS for p in POLS]


# -- one item ------------------------------------------------------------------------------------
def _read_vv_vh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from sarviz.metrics.report import read_sar_file

    scene = read_sar_file(str(path), path.name)
    return scene.vv_db, scene.vh_db


def item_entries(folder: BatchFolder) -> list[dict[str, Any]]:
    """The finished items: id, class, region, s1_mode, scene_id, model, real file, generated files by seed."""
    out = []
    for item_id in sorted(folder.done_ids()):
        data = json.loads(folder.item_json(item_id).read_text(encoding="utf-8"))
        props, assets = data["properties"], data["assets"]
        base = folder.item_dir(item_id)
        gens = {int(k.split("_s")[1]): str(base / a["href"]) for k, a in assets.items() if k.startswith("generated_s")}
        out.append(
            {
                "id": item_id,
                "class": props.get("sarviz:class") or "",
                "region": props.get("sarviz:region") or "",
                "s1_mode": props.get("sarviz:s1_mode") or "unknown",
                "scene_id": props.get("sarviz:scene_id", ""),
                "model": props.get("sarviz:model", ""),
                "embedding_source": str((props.get("sarviz:scene_provenance") or {}).get("embedding_source") or ""),
                "real": str(base / assets["real"]["href"]) if "real" in assets else None,
                "generated": gens,
            }
        )
    return out


def _embedding_kind(source: str) -> str:
    """'proxy', 'alphaearth' or '' (unknown) for an item's embedding source."""
    from sarviz.embedding_proxy import is_proxy

    if not source:
        return ""
    return "proxy" if is_proxy({"embedding_source": source}) else "alphaearth"


def proxy_items(rows: list[dict[str, Any]]) -> int:
    """How many items were generated from a PROXY embedding (labelled in every output)."""
    return len({r["id"] for r in rows if r.get("embedding") == "proxy"})


def md_cell(value: Any) -> str:
    """A markdown table cell: pipes escaped (``|Δμ|`` would split the row), newlines flattened."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def md_row(*cells: Any) -> str:
    return "| " + " | ".join(md_cell(c) for c in cells) + " |"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _failure_text(exc: BaseException) -> str:
    """The underlying message of a failure in one line: no traceback, no colour codes."""
    text = _ANSI.sub("", str(exc)).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def evaluate_item(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows (one a seed) of every metric for one item; a failed comparison gives a row with ``error``."""
    from sarviz.metrics.report import compare

    meta = {k: entry[k] for k in ("id", "class", "region", "s1_mode", "scene_id", "model")}
    meta["embedding"] = _embedding_kind(entry.get("embedding_source", ""))
    if not entry.get("real"):
        return [
            {**meta, "seed": s, "error": "no real Sentinel-1 crop in this item"} for s in sorted(entry["generated"])
        ]
    rows = []
    try:
        real_vv, real_vh = _read_vv_vh(Path(entry["real"]))
    except Exception as exc:  # noqa: BLE001 — one unreadable file fails its item, not the run
        why = f"real Sentinel-1 crop {Path(entry['real']).name} cannot be read: {_failure_text(exc)}"
        return [{**meta, "seed": s, "error": why} for s in sorted(entry["generated"])]
    for seed, path in sorted(entry["generated"].items()):
        row: dict[str, Any] = {**meta, "seed": seed, "error": ""}
        try:
            gen_vv, gen_vh = _read_vv_vh(Path(path))
            # NumPy/SciPy only (FSIM is a NumPy port): a fresh Ray worker does not pay torch's import
            made_from = {"model_id": entry.get("model", ""), "embedding_source": entry.get("embedding_source", "")}
            report = compare(real_vv, real_vh, gen_vv, gen_vh, generated_provenance=made_from).to_dict()
        except (SarvizError, ValueError, OSError) as exc:  # a reader's SceneError/GenerationError too
            row["error"] = _failure_text(exc)
            rows.append(row)
            continue
        except Exception as exc:  # noqa: BLE001 — e.g. a corrupt COG's decoder error: this row only
            row["error"] = f"{Path(path).name}: {_failure_text(exc)}"
            rows.append(row)
            continue
        for p in POLS:
            row[f"kl_{p}"] = report["kl"][p]
            ms = report["mean_std_similarity"][p] or {}
            row[f"mean_sim_{p}"], row[f"std_sim_{p}"] = ms.get("mean"), ms.get("std")
            row[f"ssim_{p}"], row[f"fsim_{p}"] = report["ssim"][p], report["fsim"][p]
            row[f"enl_real_{p}"], row[f"enl_gen_{p}"] = report["enl"][p]["real"], report["enl"][p]["generated"]
            for feat in GLCM_FEATURES:
                cells = [c for d in report["glcm"][p][feat].values() for c in d.values()]
                for side, key in (("real", "real"), ("gen", "generated")):
                    vals = [c[key] for c in cells if c[key] is not None]
                    row[f"glcm_{feat}_{side}_{p}"] = float(np.mean(vals)) if vals else None
        rows.append(row)
    return rows


def pooled_kl_result(entries: list[dict[str, Any]], pol: str):
    """Seed 001's per-class KL of the entries (:func:`sarviz.metrics.protocols.seed001_kl`, the one
    implementation): every item's real crop (once) against every generated image of every seed,
    each image normalised by its own μ+3σ, then the histograms pooled. Images are read one at a
    time, so memory stays at one image whatever the class size. None when nothing is comparable."""
    from sarviz.metrics.protocols import seed001_kl
    from sarviz.metrics.sar import MetricError

    usable = [e for e in entries if e.get("real") and e["generated"]]
    if not usable:
        return None
    idx = POLS.index(pol)
    reals = (_read_vv_vh(Path(e["real"]))[idx] for e in usable)
    gens = (_read_vv_vh(Path(path))[idx] for e in usable for _, path in sorted(e["generated"].items()))
    try:
        return seed001_kl(reals, gens, usable[0].get("class") or "")
    except MetricError:
        return None


def pooled_kl(entries: list[dict[str, Any]], pol: str) -> float | None:
    """The KL of :func:`pooled_kl_result` (nats), None when nothing is comparable."""
    res = pooled_kl_result(entries, pol)
    return None if res is None else res.kl


# -- aggregation -----------------------------------------------------------------------------------
def summarise(values: list[float], seed: int = 0) -> dict[str, Any]:
    """n, mean, std (ddof 1) and the percentile-bootstrap 95 % CI of the mean (NaN when n < 2)."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    out = {
        "n": int(v.size),
        "mean": float(v.mean()) if v.size else None,
        "std": float(v.std(ddof=1)) if v.size > 1 else None,
        "ci_low": None,
        "ci_high": None,
    }
    if v.size > 1:
        if np.ptp(v) == 0:
            out["ci_low"] = out["ci_high"] = float(v[0])
        else:
            res = stats.bootstrap(
                (v,),
                np.mean,
                confidence_level=0.95,
                n_resamples=BOOTSTRAP_RESAMPLES,
                method="percentile",
                rng=np.random.default_rng(seed),
            )
            out["ci_low"], out["ci_high"] = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return out


def per_item_means(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row an item: each metric averaged over the item's seeds (the item is the statistical unit)."""
    by_item: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if not r.get("error"):
            by_item.setdefault(r["id"], []).append(r)
    out = []
    for item_id, rs in by_item.items():
        row = {k: rs[0].get(k) for k in ("id", "class", "region", "s1_mode", "scene_id", "model")}
        for c in metric_columns():
            vals = [r[c] for r in rs if r.get(c) is not None and math.isfinite(r[c])]
            row[c] = float(np.mean(vals)) if vals else None
        row["seeds"] = len(rs)
        out.append(row)
    return out


def aggregate(rows: list[dict[str, Any]], by: str | None) -> dict[str, dict[str, dict[str, Any]]]:
    """group → metric column → summary over items (seeds averaged first: several seeds of one place are
    not independent samples). Group "all" always; ``by`` = "class" or "region" adds one a value."""
    items = per_item_means(rows)
    groups: dict[str, list[dict[str, Any]]] = {"all": items}
    if by:
        for r in items:
            groups.setdefault(f"{by}={r.get(by) or '(none)'}", []).append(r)
    return {g: {c: summarise([r.get(c) for r in rs]) for c in metric_columns()} for g, rs in groups.items()}


# -- the run ---------------------------------------------------------------------------------------
@dataclass
class Evaluation:
    rows: list[dict[str, Any]]
    summary: dict[str, dict[str, dict[str, Any]]]
    pooled_kl: dict[str, dict[str, Any]]  # class → {"VV": kl, "VH": kl, "n_items": n}
    by: str | None
    composite_items: int
    items: int
    model: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "sarviz-batch-evaluation/1",
            "model": self.model,
            "items": self.items,
            "proxy_embedding_items": proxy_items(self.rows),
            "proxy_note": (
                f"{proxy_items(self.rows)} of {self.items} items were generated from a PROXY "
                "embedding (not AlphaEarth for the place)"
            )
            if proxy_items(self.rows)
            else None,
            "evaluated_rows": sum(not r.get("error") for r in self.rows),
            "failed_rows": [
                {"id": r["id"], "seed": r["seed"], "error": r["error"]} for r in self.rows if r.get("error")
            ],
            "composite_real_items": self.composite_items,
            "by": self.by,
            "summary": self.summary,
            "table1": table1(self),
            "kl_by_class": self.pooled_kl,
            "kl_by_class_protocol": _kl_protocol(),
            "bootstrap": {
                "resamples": BOOTSTRAP_RESAMPLES,
                "method": "percentile",
                "confidence": 0.95,
                "unit": "item (metrics averaged over its seeds)",
            },
            "definitions": "docs/metrics.md, docs/batch.md",
        }


def _kl_protocol() -> str:
    from sarviz.metrics.protocols import SEED001_KL_PROTOCOL

    return SEED001_KL_PROTOCOL + "; each image normalised by its own μ+3σ before pooling (docs/metrics.md)"


def _parallel_map(
    fn: Callable[[Any], Any],
    args: list[Any],
    engine: str,
    workers: int,
    ray_address: str | None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """fn over args, on Ray (bounded: 2 tasks a worker in flight) or inline; results in order."""
    results: list[Any] = [None] * len(args)
    if engine == "inline" or not args:
        for i, a in enumerate(args):
            results[i] = fn(a)
            if progress:
                progress(i + 1, len(args))
        return results
    from sarviz.batch.engine import ray_runtime

    with ray_runtime(ray_address, workers) as ray:
        remote = ray.remote(num_cpus=1, max_retries=2)(fn)
        window = 2 * max(1, workers)
        pending: dict[Any, int] = {}
        nxt = done = 0
        while nxt < len(args) or pending:
            while nxt < len(args) and len(pending) < window:
                pending[remote.remote(args[nxt])] = nxt
                nxt += 1
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                results[pending.pop(ref)] = ray.get(ref)
                done += 1
                if progress:
                    progress(done, len(args))
    return results


def _pooled_task(task: tuple[str, list[dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    cls, entries = task
    try:
        return cls, _pooled_row(entries)
    except Exception:  # noqa: BLE001 — an unreadable file: pool the images that can be read
        readable = [e for e in (_readable_part(e) for e in entries) if e is not None]
        return cls, {**_pooled_row(readable), "unreadable_items": len(entries) - len(readable)}


def _pooled_row(entries: list[dict[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for pol in POLS:
        res = pooled_kl_result(entries, pol)
        row[pol] = None if res is None else res.kl
        # the normalisation's record (docs/metrics.md): how much of each side saturated at μ+3σ
        row[f"saturated_real_{pol}"] = None if res is None else res.saturated_real
        row[f"saturated_generated_{pol}"] = None if res is None else res.saturated_generated
    row["n_items"] = len(entries)
    row["n_real_images"] = sum(1 for e in entries if e.get("real") and e["generated"])
    row["n_generated_images"] = sum(len(e["generated"]) for e in entries if e.get("real"))
    return row


def _readable_part(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The entry with only the files that can be read (None without a readable real crop)."""

    def ok(path: str) -> bool:
        try:
            _read_vv_vh(Path(path))
            return True
        except Exception:  # noqa: BLE001
            return False

    if not entry.get("real") or not ok(entry["real"]):
        return None
    gens = {s: p for s, p in entry["generated"].items() if ok(p)}
    return {**entry, "generated": gens} if gens else None


def evaluate_batch(
    root: str | os.PathLike,
    by: str | None = None,
    engine: str = "ray",
    workers: int = 2,
    ray_address: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Evaluate every finished item of a batch folder (see the module docstring)."""
    if by not in (None, "class", "region"):
        raise EvaluationError(f"--by must be class or region, got {by!r}")
    folder = BatchFolder(root)
    folder.read_settings()  # a clear error when this is not a batch folder
    entries = item_entries(folder)
    if not entries:
        raise EvaluationError(f"{root}: no finished item to evaluate; run `sarviz batch` first")
    by_class: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_class.setdefault(e["class"] or "(none)", []).append(e)
    tasks: list[Any] = [("item", e) for e in entries] + [("pool", (c, es)) for c, es in sorted(by_class.items())]
    results = _parallel_map(_task, tasks, engine, workers, ray_address, progress)
    rows = [r for kind, res in results if kind == "item" for r in res]
    pooled = dict(res for kind, res in results if kind == "pool")
    composite = sum(e["s1_mode"] == "composite" for e in entries)
    return Evaluation(
        rows, aggregate(rows, by), pooled, by, composite, len(entries), entries[0]["model"] if entries else ""
    )


def _task(task: tuple[str, Any]) -> tuple[str, Any]:
    kind, arg = task
    if kind == "item":
        return kind, evaluate_item(arg)
    return kind, _pooled_task(arg)


# -- paper layouts and report ------------------------------------------------------------------------
def _fmt(x: float | None, digits: int = 4) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _ci(s: dict[str, Any], digits: int = 4) -> str:
    if s["mean"] is None:
        return "–"
    if s["ci_low"] is None:
        return f"{_fmt(s['mean'], digits)} (n={s['n']})"
    return f"{_fmt(s['mean'], digits)} [{_fmt(s['ci_low'], digits)}, {_fmt(s['ci_high'], digits)}]"


def table1(ev: Evaluation) -> list[dict[str, Any]]:
    """Seed 000 Table I layout: group, polarisation, Mean/Std similarity (↓), FSIM (↑), SSIM (↑) with CIs."""
    out = []
    for group, summ in ev.summary.items():
        for p in POLS:
            m, s = summ[f"mean_sim_{p}"], summ[f"std_sim_{p}"]
            out.append(
                {
                    "group": group,
                    "polarisation": p,
                    "n": m["n"],
                    "mean_std_similarity": f"{_fmt(m['mean'])}/{_fmt(s['mean'])}",
                    "mean_similarity": m,
                    "std_similarity": s,
                    "fsim": summ[f"fsim_{p}"],
                    "ssim": summ[f"ssim_{p}"],
                }
            )
    return out


def _figures(ev: Evaluation, out: Path) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sarviz.atomic import atomic_path

    made = []
    ok = [r for r in ev.rows if not r.get("error")]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    for ax, metric in zip(axes, ("kl", "mean_sim", "ssim", "fsim")):
        data = [[r[f"{metric}_{p}"] for r in ok if r.get(f"{metric}_{p}") is not None] for p in POLS]
        ax.boxplot(data, tick_labels=list(POLS))
        ax.set_title(f"{METRICS[metric][0]} ({METRICS[metric][1]} is better)", fontsize=9)
    fig.suptitle(f"per-item metrics, {len(ok)} image pairs")
    fig.tight_layout()
    with atomic_path(out / er.METRICS_BOXPLOT_PNG, suffix=".png.part") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    made.append(("Per-item metrics", er.METRICS_BOXPLOT_PNG))
    if ev.pooled_kl:
        classes = sorted(ev.pooled_kl)
        fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(classes)), 3.4))
        x = np.arange(len(classes))
        for k, p in enumerate(POLS):
            vals = [ev.pooled_kl[c][p] if ev.pooled_kl[c][p] is not None else np.nan for c in classes]
            ax.bar(x + (k - 0.5) * 0.38, vals, width=0.38, label=p)
        ax.set_xticks(x, classes, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("KL(real ‖ generated), nats")
        ax.set_title("Per-class KL of pooled amplitude distributions (seed 001 protocol)", fontsize=9)
        ax.legend()
        fig.tight_layout()
        with atomic_path(out / er.KL_BY_CLASS_PNG, suffix=".png.part") as tmp:
            fig.savefig(tmp, dpi=90, format="png")
        plt.close(fig)
        made.append(("Per-class KL", er.KL_BY_CLASS_PNG))
    return made


def markdown_report(ev: Evaluation, figures: list[tuple[str, str]]) -> str:
    lines = [
        f"# Batch evaluation — model `{ev.model}`",
        "",
        f"{ev.items} items, {sum(not r.get('error') for r in ev.rows)} real/generated pairs evaluated "
        f"({sum(bool(r.get('error')) for r in ev.rows)} failed). Metric definitions: docs/metrics.md; "
        "aggregation: docs/batch.md. n counts items (seeds averaged per item); brackets: bootstrap 95 % CI "
        "of the mean over items.",
        "",
    ]
    n_proxy = proxy_items(ev.rows)
    if n_proxy:
        lines += [
            f"**PROXY:** {n_proxy} of {ev.items} items were generated from a PROXY embedding (real AlphaEarth "
            "vectors of other places chosen by the optical land cover), not AlphaEarth for the place: every "
            "number below measures the generator on a stand-in input (per_item.csv, column `embedding`).",
            "",
        ]
    if ev.composite_items:
        lines += [
            f"**Note:** {ev.composite_items} of {ev.items} real crops are *median composites*, not single "
            "acquisitions: their speckle is averaged away, so KL and ENL against a single-look generator are "
            "not like for like (seed 000 and 001 compare single acquisitions).",
            "",
        ]
    lines += [
        "## Table I layout (seed 000)",
        "",
        md_row("group", "pol", "n", "Mean/Std similarity ↓", "FSIM ↑", "SSIM ↑"),
        md_row(*["---"] * 6),
    ]
    for r in table1(ev):
        lines.append(
            md_row(r["group"], r["polarisation"], r["n"], r["mean_std_similarity"], _ci(r["fsim"]), _ci(r["ssim"]))
        )
    lines += [
        "",
        "## Per-class KL (seed 001 protocol)",
        "",
        "Pooled: all real vs all generated images of the class, each image normalised by its own μ+3σ, "
        "then the histograms pooled (seed 001 eq. 1 and 4; sarviz.metrics.protocols); "
        "per-image: mean of the items' KLs.",
        "",
        md_row("class", "items", "pooled KL VV", "pooled KL VH", "per-image KL VV", "per-image KL VH"),
        md_row(*["---"] * 6),
    ]
    per_class = aggregate(ev.rows, "class")
    for cls, res in sorted(ev.pooled_kl.items()):
        summ = per_class.get(f"class={cls}")
        lines.append(
            md_row(
                cls,
                res["n_items"],
                _fmt(res["VV"]),
                _fmt(res["VH"]),
                _ci(summ["kl_VV"]) if summ else "–",
                _ci(summ["kl_VH"]) if summ else "–",
            )
        )
    lines += ["", "## All metrics", "", md_row("group", "metric", "VV", "VH"), md_row(*["---"] * 4)]
    for group, summ in ev.summary.items():
        for m, (label, better) in METRICS.items():
            arrow = {"lower": " ↓", "higher": " ↑"}.get(better, "")
            lines.append(md_row(group, f"{label}{arrow}", _ci(summ[f"{m}_VV"]), _ci(summ[f"{m}_VH"])))
    for title, name in figures:
        lines += ["", f"## {title}", "", f"![{title}]({name})"]
    failed = [r for r in ev.rows if r.get("error")]
    if failed:
        lines += ["", "## Pairs that could not be evaluated", ""]
        lines += [f"- {r['id']} seed {r['seed']}: {r['error']}" for r in failed[:50]]
    return "\n".join(lines) + "\n"


def write_report(ev: Evaluation, out: str | os.PathLike) -> dict[str, Path]:
    """per_item.csv, summary.csv, table1.csv, kl_by_class.csv, evaluation.json, report.md + figures."""
    import pandas as pd

    from sarviz.atomic import atomic_path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def put(name: str, text: str) -> None:
        with atomic_path(out / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
        files[name] = out / name

    cols = ["id", "seed", "class", "region", "s1_mode", "scene_id", "model", "embedding", "error"] + metric_columns()
    put(er.PER_ITEM_CSV, pd.DataFrame(ev.rows, columns=cols).to_csv(index=False))
    summary_rows = [{"group": g, "metric": c, **s} for g, summ in ev.summary.items() for c, s in summ.items()]
    put(er.SUMMARY_CSV, pd.DataFrame(summary_rows).to_csv(index=False))
    t1 = [
        {
            "group": r["group"],
            "polarisation": r["polarisation"],
            "n": r["n"],
            "mean_similarity": r["mean_similarity"]["mean"],
            "std_similarity": r["std_similarity"]["mean"],
            "fsim": r["fsim"]["mean"],
            "fsim_ci_low": r["fsim"]["ci_low"],
            "fsim_ci_high": r["fsim"]["ci_high"],
            "ssim": r["ssim"]["mean"],
            "ssim_ci_low": r["ssim"]["ci_low"],
            "ssim_ci_high": r["ssim"]["ci_high"],
        }
        for r in table1(ev)
    ]
    put(er.TABLE1_CSV, pd.DataFrame(t1).to_csv(index=False))
    put(
        er.KL_BY_CLASS_CSV,
        pd.DataFrame([{"class": c, **v} for c, v in sorted(ev.pooled_kl.items())]).to_csv(index=False),
    )
    put(er.EVALUATION_JSON, json.dumps(ev.to_dict(), indent=1, allow_nan=False, default=_json_default))
    figures = _figures(ev, out)
    files.update({name: out / name for _, name in figures})
    put(er.REPORT_MD, markdown_report(ev, figures))
    return files


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return str(x)
