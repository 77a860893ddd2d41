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


def histogram_axes(
    ax,
    real: PooledHistogram | None,
    generated: PooledHistogram,
    title: str,
    kl: float | None = None,
    real_label: str = "real",
    generated_label: str = "generated",
) -> None:
    centres = (generated.edges[:-1] + generated.edges[1:]) / 2
    width = np.diff(generated.edges)
    for hist, colour, label in ((real, REAL_COLOUR, real_label), (generated, GEN_COLOUR, generated_label)):
        if hist is None:
            continue
        ax.step(
            centres,
            hist.probabilities / width,
            where="mid",
            color=colour,
            label=f"{label} (n={hist.n_images}, saturated {hist.saturated_fraction:.1%})",
        )
    ax.set_xlabel("amplitude / (μ + 3σ)  (saturated pixels excluded)")
    ax.set_ylabel("density")
    ax.set_title(title + ("" if kl is None else f" — KL = {kl:.3f}"), fontsize=10)
    ax.legend(fontsize=8)


def histogram_png(summary: LabelSummary) -> bytes:
    from sarviz.viz.panels import figure_png

    fig, (ax,) = _new_figure(6.0, 3.4)
    histogram_axes(ax, summary.hist_real, summary.hist_generated, f"{summary.label} ({summary.pol})", summary.kl)
    return figure_png(fig)


def glcm_axes(
    axes,
    real: dict[str, np.ndarray] | None,
    generated: dict[str, np.ndarray] | None,
    real_label: str = "real",
    generated_label: str = "generated",
) -> None:
    """One panel a feature; bars per (distance, angle) for real and generated."""
    combos = [f"d{d} {a}°" for d in sar.GLCM_DISTANCES for a in sar.GLCM_ANGLES_DEG]
    x = np.arange(len(combos))
    for ax, name in zip(axes, sar.GLCM_FEATURES):
        for offset, feats, colour, label in (
            (-0.2, real, REAL_COLOUR, real_label),
            (0.2, generated, GEN_COLOUR, generated_label),
        ):
            if feats is not None:
                ax.bar(x + offset, np.asarray(feats[name]).ravel(), width=0.4, color=colour, label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xticks(x, combos, rotation=90, fontsize=6)
    axes[0].legend(fontsize=7)


def glcm_png(summary: LabelSummary) -> bytes:
    from sarviz.viz.panels import figure_png

    fig, axes = _new_figure(11.0, 3.0, ncols=len(sar.GLCM_FEATURES))
    glcm_axes(axes, summary.glcm_real, summary.glcm_generated)
    fig.suptitle(
        f"GLCM on homogeneous {64} px patches — {summary.label} ({summary.patches_real} real, "
        f"{summary.patches_generated} generated patches)",
        fontsize=10,
    )
    return figure_png(fig)


def comparison_pngs(
    generated: list[np.ndarray],
    reference: list[np.ndarray] | None,
    reference_label: str = "reference",
    title: str = "generated",
) -> tuple[dict[str, bytes], LabelSummary | None]:
    """Histogram and GLCM figures of generated images against a reference set (or alone), and the summary."""
    from sarviz.evaluation.text import glcm_of_set, pooled_amplitude_histogram, summarise_label
    from sarviz.metrics.sar import MetricError
    from sarviz.viz.panels import figure_png

    summary = summarise_label(title, reference, generated) if reference else None
    hist_gen = summary.hist_generated if summary else pooled_amplitude_histogram(generated)
    fig, (ax,) = _new_figure(6.0, 3.4)
    histogram_axes(
        ax,
        summary.hist_real if summary else None,
        hist_gen,
        title,
        summary.kl if summary else None,
        real_label=reference_label,
    )
    pngs = {"histogram": figure_png(fig)}
    if summary:
        glcm_r, glcm_g, n_r, n_g = (
            summary.glcm_real,
            summary.glcm_generated,
            summary.patches_real,
            summary.patches_generated,
        )
    else:
        glcm_r, n_r = None, 0
        try:
            glcm_g, n_g = glcm_of_set(generated)
        except MetricError:
            glcm_g, n_g = None, 0
    if glcm_g is not None:
        fig, axes = _new_figure(11.0, 3.0, ncols=len(sar.GLCM_FEATURES))
        glcm_axes(axes, glcm_r, glcm_g, real_label=reference_label)
        fig.suptitle(
            f"GLCM of amplitude on homogeneous 64 px patches ({n_g} generated"
            + (f", {n_r} {reference_label}" if glcm_r is not None else "")
            + ")",
            fontsize=10,
        )
        pngs["glcm"] = figure_png(fig)
    return pngs, summary
