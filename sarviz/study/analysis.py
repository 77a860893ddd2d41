"""Analysis of study answers, as in seed 000's Fig. 7 and more.

* Misjudgment rate — for real images the share judged "generated", for generated images
  the share judged "real" (seed 000 §4.4) — per level (L1/L2/L3), per source (real / other /
  ours), per level × source and per scene class, with Wilson 95 % score intervals.
* Quality scores (overall realism, detail plausibility, geographic consistency, and their
  mean) and confidence per level × source and per scene class: mean, SD, n.
* Inter-rater agreement: Krippendorff's α (``krippendorff`` package) over participants ×
  pooled images — nominal for the real/generated judgement, ordinal for the 1–5 scores.

Everything is computed from the rows of :meth:`OwnerAPI.answer_rows`, so the CLI report,
the owner page and the CSV exports show the same numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import pandas as pd

from sarviz.embedding_proxy import is_proxy
from sarviz.study.design import StudyDesign
from sarviz.study.models import SOURCES

Z95 = 1.959963984540054  # two-sided 95 % normal quantile
SCORES = ("realism", "detail", "geographic", "quality", "confidence")
ANSWER_COLUMNS = (
    "participant_id",
    "excluded",
    "level",
    "position",
    "item_id",
    "source",
    "model_id",
    "scene_class",
    "lat",
    "lon",
    "original_name",
    "embedding",
    "judged_real",
    "misjudged",
    "realism",
    "detail",
    "geographic",
    "quality",
    "confidence",
    "seconds",
    "answered_at",
)


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials.

    Written out rather than importing statsmodels for one closed-form expression
    (Wilson 1927; Newcombe 1998, method 3). Returns (nan, nan) for n = 0.
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 ≤ k ≤ n, got k={k}, n={n}")
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def krippendorff_alpha(
    frame: pd.DataFrame, value: str, level: Literal["nominal", "ordinal", "interval", "ratio"]
) -> float | None:
    """α over a raters × units matrix (participants × items); None if no unit has 2 ratings."""
    import krippendorff

    if frame.empty:
        return None
    matrix = frame.pivot_table(index="participant_id", columns="item_id", values=value, aggfunc="first")
    pairable = (matrix.notna().sum(axis=0) >= 2).sum()
    values = matrix.to_numpy(dtype=float)
    if pairable == 0 or len(np.unique(values[~np.isnan(values)])) < 2:
        return None
    return float(krippendorff.alpha(reliability_data=values, level_of_measurement=level))


def answers_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    if df.empty:
        return pd.DataFrame(columns=list(ANSWER_COLUMNS))
    df["judged_real"] = df["judged_real"].astype(bool)
    df["misjudged"] = np.where(df["source"] == "real", ~df["judged_real"], df["judged_real"]).astype(bool)
    df["quality"] = df[["realism", "detail", "geographic"]].mean(axis=1)
    df["scene_class"] = df["scene_class"].fillna("").replace("", "(unlabelled)")
    return df[[c for c in ANSWER_COLUMNS if c in df.columns]]


@dataclass
class Report:
    study_code: str
    study_title: str
    participants: dict[str, Any]
    misjudgment: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    by_class: list[dict[str, Any]] = field(default_factory=list)
    agreement: dict[str, float | None] = field(default_factory=dict)
    n_answers: int = 0
    #: which generated images of the pool came from a PROXY embedding (:func:`proxy_summary`)
    proxy: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": {"code": self.study_code, "title": self.study_title},
            "participants": self.participants,
            "answers": self.n_answers,
            "misjudgment": self.misjudgment,
            "scores": self.scores,
            "by_class": self.by_class,
            "agreement": self.agreement,
            "proxy": self.proxy or proxy_summary([]),
        }

    def to_json(self) -> str:
        return json.dumps(_clean(self.to_dict()), indent=2, ensure_ascii=False)

    def summary_rows(self) -> list[dict[str, Any]]:
        """One long table of every number, for the summary CSV."""
        rows: list[dict[str, Any]] = []
        for r in self.misjudgment:
            rows.append(
                {
                    "table": "misjudgment",
                    "level": r["level"],
                    "source": r["source"],
                    "scene_class": "all",
                    "metric": "misjudgment_rate",
                    "n": r["n"],
                    "k": r["k"],
                    "value": r["rate"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                }
            )
        for r in self.scores:
            rows.append(
                {
                    "table": "scores",
                    "level": r["level"],
                    "source": r["source"],
                    "scene_class": "all",
                    "metric": r["metric"],
                    "n": r["n"],
                    "k": "",
                    "value": r["mean"],
                    "ci_low": "",
                    "ci_high": "",
                    "sd": r["sd"],
                }
            )
        for r in self.by_class:
            rows.append(
                {
                    "table": "by_class",
                    "level": "all",
                    "source": r["source"],
                    "scene_class": r["scene_class"],
                    "metric": "misjudgment_rate",
                    "n": r["n"],
                    "k": r["k"],
                    "value": r["rate"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                }
            )
            rows.append(
                {
                    "table": "by_class",
                    "level": "all",
                    "source": r["source"],
                    "scene_class": r["scene_class"],
                    "metric": "quality",
                    "n": r["n"],
                    "k": "",
                    "value": r["quality"],
                    "ci_low": "",
                    "ci_high": "",
                }
            )
        if (self.proxy or {}).get("proxy_items"):
            rows.append(
                {
                    "table": "proxy",
                    "level": "all",
                    "source": "generated",
                    "scene_class": "all",
                    "metric": "proxy_embedding_items",
                    "n": self.proxy["generated_items"],
                    "k": self.proxy["proxy_items"],
                    "value": self.proxy["note"],
                    "ci_low": "",
                    "ci_high": "",
                }
            )
        for name, a in self.agreement.items():
            rows.append(
                {
                    "table": "agreement",
                    "level": "all",
                    "source": "all",
                    "scene_class": "all",
                    "metric": f"krippendorff_alpha_{name}",
                    "n": self.n_answers,
                    "k": "",
                    "value": a,
                    "ci_low": "",
                    "ci_high": "",
                }
            )
        return rows

    def summary_csv(self) -> str:
        cols = ["table", "level", "source", "scene_class", "metric", "n", "k", "value", "ci_low", "ci_high", "sd"]
        return _csv(self.summary_rows(), cols)

    def _excluded_text(self) -> str:
        n = self.participants.get("excluded", 0)
        return f" ({n} excluded session(s) left out; they stay in the raw export)" if n else ""

    def text(self) -> str:
        """A plain-text summary for the terminal."""
        lines = [f"Study {self.study_code}: {self.study_title}"]
        if (self.proxy or {}).get("note"):
            lines.append(f"PROXY: {self.proxy['note']}")
        lines += [
            f"participants: {self.participants['started']} started, {self.participants['finished']} finished"
            f"{self._excluded_text()}; "
            f"answers: {self.n_answers}",
            "",
            "Misjudgment rate (Wilson 95% CI)",
        ]
        lines.append(f"  {'level':<6} {'source':<9} {'n':>5} {'k':>5}  {'rate':>6}  95% CI")
        for r in self.misjudgment:
            if not r["n"]:
                continue  # levels nobody answered in yet (still listed in --json)
            lines.append(
                f"  {r['level']:<6} {r['source']:<9} {r['n']:>5} {r['k']:>5}  {_pct(r['rate'])}  "
                f"[{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]"
            )
        lines += ["", "Mean scores 1–5 (SD)"]
        lines.append(f"  {'level':<6} {'source':<9} " + " ".join(f"{m:>12}" for m in SCORES))
        table: dict[tuple[str, str], dict[str, str]] = {}
        for r in self.scores:
            if not r["n"]:
                continue
            table.setdefault((r["level"], r["source"]), {})[r["metric"]] = (
                f"{r['mean']:.2f} ({r['sd']:.2f})"
                if r["mean"] is not None and r["sd"] is not None
                else (f"{r['mean']:.2f}" if r["mean"] is not None else "–")
            )
        for (lvl, src), vals in table.items():
            lines.append(f"  {lvl:<6} {src:<9} " + " ".join(f"{vals.get(m, '–'):>12}" for m in SCORES))
        if self.by_class:
            lines += ["", "By scene class (all levels)"]
            for r in self.by_class:
                lines.append(
                    f"  {r['scene_class']:<16} {r['source']:<9} n={r['n']:<4} misjudged {_pct(r['rate'])} "
                    f"[{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]  quality {r['quality']:.2f}"
                )
        lines += ["", "Inter-rater agreement (Krippendorff's alpha)"]
        for name, a in self.agreement.items():
            lines.append(f"  {name:<12} {'n/a (too few shared images)' if a is None else f'{a:.3f}'}")
        return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "   –  " if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:5.1f}%"


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating,)):
        return _clean(float(obj))
    if isinstance(obj, (np.integer,)):
        return int(obj)
    return obj


def _csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in _clean(dict(r)).items()})
    return buf.getvalue()


def answers_csv(rows: Iterable[dict[str, Any]]) -> str:
    df = answers_frame(rows)
    return _csv(df.to_dict("records"), ANSWER_COLUMNS)


def _misjudgment_row(level: str, source: str, sub: pd.DataFrame) -> dict[str, Any]:
    n, k = int(len(sub)), int(sub["misjudged"].sum()) if len(sub) else 0
    lo, hi = wilson_interval(k, n)
    return {
        "level": level,
        "source": source,
        "n": n,
        "k": k,
        "rate": (k / n) if n else math.nan,
        "ci_low": lo,
        "ci_high": hi,
    }


def build_report(
    code: str, title: str, rows: list[dict[str, Any]], participants: list[dict[str, Any]], levels: Sequence[str]
) -> Report:
    df = answers_frame(rows)
    levels_seen = list(levels) + sorted(set(df["level"]) - set(levels)) if not df.empty else list(levels)
    excluded = sum(1 for p in participants if p.get("excluded"))
    participants = [p for p in participants if not p.get("excluded")]  # excluded: raw export only
    started = len(participants)
    finished = sum(1 for p in participants if p.get("finished_at") is not None)
    per_level = {
        lvl: {
            "started": sum(1 for p in participants if p["level"] == lvl),
            "finished": sum(1 for p in participants if p["level"] == lvl and p.get("finished_at")),
        }
        for lvl in levels_seen
    }
    report = Report(
        code,
        title,
        {"started": started, "finished": finished, "excluded": excluded, "by_level": per_level},
        n_answers=int(len(df)),
    )
    sources_present = [s for s in SOURCES if not df.empty and (df["source"] == s).any()]
    groups = [(lvl, df[df["level"] == lvl]) for lvl in levels_seen] + [("all", df)]
    for lvl, sub in groups:
        for src in sources_present + ["generated", "all"]:
            if src == "generated":
                part = sub[sub["source"] != "real"]
            elif src == "all":
                part = sub
            else:
                part = sub[sub["source"] == src]
            report.misjudgment.append(_misjudgment_row(lvl, src, part))
            for metric in SCORES:
                vals = part[metric].astype(float) if len(part) else pd.Series(dtype=float)
                report.scores.append(
                    {
                        "level": lvl,
                        "source": src,
                        "metric": metric,
                        "n": int(vals.count()),
                        "mean": float(vals.mean()) if vals.count() else None,
                        "sd": float(vals.std(ddof=1)) if vals.count() > 1 else None,
                    }
                )
    if not df.empty:
        for cls in sorted(df["scene_class"].unique()):
            for src in sources_present:
                part = df[(df["scene_class"] == cls) & (df["source"] == src)]
                if part.empty:
                    continue
                row = _misjudgment_row("all", src, part)
                row.update(
                    scene_class=cls, quality=float(part["quality"].mean()), confidence=float(part["confidence"].mean())
                )
                report.by_class.append(row)
    report.agreement = {
        "judgement": krippendorff_alpha(
            df.assign(j=df["judged_real"].astype(float)) if not df.empty else df, "j", "nominal"
        ),
        "realism": krippendorff_alpha(df, "realism", "ordinal"),
        "detail": krippendorff_alpha(df, "detail", "ordinal"),
        "geographic": krippendorff_alpha(df, "geographic", "ordinal"),
        "confidence": krippendorff_alpha(df, "confidence", "ordinal"),
    }
    return report


def embedding_kind(provenance: dict[str, Any] | None) -> str:
    """'proxy', 'alphaearth' or '' (not recorded / a real image) for a pooled image's provenance."""
    prov = provenance or {}
    source = prov.get("embedding_source") or (prov.get("scene_provenance") or {}).get("embedding_source")
    if not source:
        return ""
    return "proxy" if is_proxy({"embedding_source": source}) else "alphaearth"


def proxy_summary(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How many generated images of a pool were made from a PROXY embedding, with the study-level note."""
    generated = [i for i in items if i.get("source") != "real"]
    proxy = sum(embedding_kind(i.get("provenance")) == "proxy" for i in generated)
    note = (
        (
            f"{proxy} of {len(generated)} generated images were made from a PROXY embedding (not AlphaEarth for "
            "their place); their judgements measure the generator on a stand-in input"
        )
        if proxy
        else None
    )
    return {"proxy_items": proxy, "generated_items": len(generated), "note": note}


def study_report(owner: Any, code: str) -> Report:
    study = owner.study(code)

    levels = list(StudyDesign.from_dict(study.design).levels)
    report = build_report(study.code, study.title, owner.answer_rows(code), owner.participant_rows(code), levels)
    report.proxy = proxy_summary(owner.items(code))
    return report


def reports_json(reports: Sequence[Report]) -> str:
    """Several studies' reports as one JSON object keyed by study code (``sarviz study report --json``)."""
    return json.dumps({r.study_code: _clean(r.to_dict()) for r in reports}, indent=2, ensure_ascii=False)
