"""Plots of a study report in the layout of seed 000's Fig. 7: (a) misjudgment rate with
Wilson 95 % intervals, (b) mean quality score, (c) mean confidence — grouped by level,
one bar per source."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")  # no display on servers; figures are rendered to PNG
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sarviz.study.analysis import Report  # noqa: E402
from sarviz.study.models import SOURCE_LABELS, SOURCES  # noqa: E402

COLOURS = {"real": "#4c72b0", "other": "#dd8452", "ours": "#55a868"}


def fig7(report: Report) -> Figure:
    levels = [lvl for lvl in report.participants["by_level"]] + ["all"]
    sources = [s for s in SOURCES if any(r["source"] == s and r["n"] for r in report.misjudgment)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    width = 0.8 / max(1, len(sources))
    mis = {(r["level"], r["source"]): r for r in report.misjudgment}
    score = {(r["level"], r["source"], r["metric"]): r for r in report.scores}
    for j, src in enumerate(sources):
        xs = [i + (j - (len(sources) - 1) / 2) * width for i in range(len(levels))]
        rates, lo, hi = [], [], []
        for lvl in levels:
            r = mis.get((lvl, src))
            if r is None or not r["n"] > 0:
                rates.append(0.0)
                lo.append(0.0)
                hi.append(0.0)
                continue
            rates.append(r["rate"] * 100)
            # clamp: at k = 0 or k = n the bound equals the rate up to rounding
            lo.append(max(0.0, (r["rate"] - r["ci_low"]) * 100))
            hi.append(max(0.0, (r["ci_high"] - r["rate"]) * 100))
        axes[0].bar(xs, rates, width, yerr=[lo, hi], capsize=3, color=COLOURS[src], label=SOURCE_LABELS[src])
        for ax, metric in ((axes[1], "quality"), (axes[2], "confidence")):
            vals = []
            for lvl in levels:
                r = score.get((lvl, src, metric))
                vals.append(r["mean"] if r and r["mean"] is not None and not math.isnan(r["mean"]) else 0.0)
            ax.bar(xs, vals, width, color=COLOURS[src], label=SOURCE_LABELS[src])
    titles = ("(a) Misjudgment rate (%)", "(b) Quality score (1–5)", "(c) Confidence (1–5)")
    for ax, title in zip(axes, titles):
        ax.set_xticks(range(len(levels)), levels)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylim(0, 100)
    axes[1].set_ylim(0, 5)
    axes[2].set_ylim(0, 5)
    if axes[0].get_legend_handles_labels()[0]:  # no answers yet (e.g. every session excluded): no legend
        axes[0].legend(loc="upper right", fontsize=8)
    return fig


def fig7_png(report: Report, dpi: int = 110) -> bytes:
    fig = fig7(report)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()
