"""Figures of the text-to-SAR evaluation: per-label amplitude histograms and GLCM bars (PNG bytes)."""

from __future__ import annotations

import numpy as np

from sarviz.evaluation.text import LabelSummary, PooledHistogram
from sarviz.metrics import sar

REAL_COLOUR, GEN_COLOUR = "#1f77b4", "#d62728"


def _new_figure(w: float, h: float, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), layout="constrained")
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def histogram_axes(ax, real: PooledHistogram, generated: PooledHistogram, title: str, kl: float | None = None,
                   real_label: str = "real", generated_label: str = "generated") -> None:
    centres = (real.edges[:-1] + real.edges[1:]) / 2
    width = np.diff(real.edges)
    for hist, colour, label in ((real, REAL_COLOUR, real_label), (generated, GEN_COLOUR, generated_label)):
        ax.step(centres, hist.probabilities / width, where="mid", color=colour,
                label=f"{label} (n={hist.n_images}, saturated {hist.saturated_fraction:.1%})")
    ax.set_xlabel("amplitude / (μ + 3σ)  (saturated pixels excluded)")
    ax.set_ylabel("density")
    ax.set_title(title + ("" if kl is None else f" — KL = {kl:.3f}"), fontsize=10)
    ax.legend(fontsize=8)


def histogram_png(summary: LabelSummary) -> bytes:
    from sarviz.viz.panels import figure_png

    fig, (ax,) = _new_figure(6.0, 3.4)
    histogram_axes(ax, summary.hist_real, summary.hist_generated, f"{summary.label} ({summary.pol})", summary.kl)
    return figure_png(fig)


def glcm_axes(axes, real: dict[str, np.ndarray] | None, generated: dict[str, np.ndarray] | None,
              real_label: str = "real", generated_label: str = "generated") -> None:
    """One panel a feature; bars per (distance, angle) for real and generated."""
    combos = [f"d{d} {a}°" for d in sar.GLCM_DISTANCES for a in sar.GLCM_ANGLES_DEG]
    x = np.arange(len(combos))
    for ax, name in zip(axes, sar.GLCM_FEATURES):
        for offset, feats, colour, label in ((-0.2, real, REAL_COLOUR, real_label),
                                             (0.2, generated, GEN_COLOUR, generated_label)):
            if feats is not None:
                ax.bar(x + offset, np.asarray(feats[name]).ravel(), width=0.4, color=colour, label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xticks(x, combos, rotation=90, fontsize=6)
    axes[0].legend(fontsize=7)


def glcm_png(summary: LabelSummary) -> bytes:
    from sarviz.viz.panels import figure_png

    fig, axes = _new_figure(11.0, 3.0, ncols=len(sar.GLCM_FEATURES))
    glcm_axes(axes, summary.glcm_real, summary.glcm_generated)
    fig.suptitle(f"GLCM on homogeneous {64} px patches — {summary.label} ({summary.patches_real} real, "
                 f"{summary.patches_generated} generated patches)", fontsize=10)
    return figure_png(fig)
