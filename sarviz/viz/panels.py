"""Inspection figures (matplotlib, Agg): histogram, GLCM and embedding panels.

Figures are built as :class:`matplotlib.figure.Figure` objects without pyplot, so they
keep no global state (safe in Streamlit's threads) and are freed with their last
reference; :func:`figure_png` renders one to PNG bytes.

* :func:`histogram_panel` — VV and VH amplitude distributions, real vs generated, in dB
  and as the μ+3σ-normalised amplitude the KL divergence is computed on (KL in the legend).
* :func:`glcm_panel` — each GLCM feature against angle, one colour per distance,
  real solid, generated dashed.
* :func:`embedding_panel` — AlphaEarth dimensions A02, A07, A12 (seed 000, Fig. 3) and a
  3-component PCA false colour of the 64-D embedding.

Every panel renders without a real image (generated-only) and says so in its title.

Speed: titles get a fixed height (``y=1.0``) and figures fixed margins, because
matplotlib's automatic title placement and constrained layout measured every tick label
and took more than half of the drawing time.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

from sarviz.metrics import sar
from sarviz.metrics.report import MetricsReport

REAL_COLOUR = "#1f4e9c"
GEN_COLOUR = "#d9541e"
DISTANCE_COLOURS = ("#1b9e77", "#d95f02", "#7570b3")
#: the AlphaEarth dimensions shown by seed 000 (Fig. 3 d–f), as band names A02, A07, A12
EMBEDDING_DIMS: tuple[int, ...] = (2, 7, 12)
NO_REAL_NOTE = "no real Sentinel-1 here — generated image only"


def figure_png(fig: Figure, dpi: int = 90) -> bytes:
    """PNG bytes of a figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _suptitle(fig: Figure, title: str, real_available: bool) -> None:
    fig.suptitle(title if real_available else f"{title}\n({NO_REAL_NOTE})", fontsize=11,
                 color="black" if real_available else "#a00000")


def histogram_panel(report: MetricsReport) -> Figure:
    """Real and generated distributions overlaid: rows VV, VH; columns dB, normalised amplitude."""
    # fixed margins, not constrained layout: layout solving was half of the drawing time
    fig = Figure(figsize=(10, 6.4))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.09, top=0.87, hspace=0.5, wspace=0.2)
    axes = fig.subplots(len(report.polarisations), 2, squeeze=False)
    for row, (pol, m) in enumerate(report.polarisations.items()):
        ax_db, ax_amp = axes[row]
        counts_g, edges = sar.db_histogram(m.gen_db, pol)
        if m.real_db is not None:
            counts_r, _ = sar.db_histogram(m.real_db, pol)
            ax_db.stairs(counts_r, edges, color=REAL_COLOUR, lw=1.6, label="real S1")
        ax_db.stairs(counts_g, edges, color=GEN_COLOUR, lw=1.6, ls="--", label="generated")
        ax_db.set_xlabel(f"{pol} σ⁰ (dB)")
        ax_db.set_ylabel("density")
        ax_db.set_title(f"{pol} backscatter (dB)", fontsize=10, y=1.0, pad=4)
        ax_db.legend(fontsize=8, loc="upper left")

        if m.kl is not None:
            width = np.diff(m.kl.bin_edges)
            ax_amp.stairs(m.kl.p_real / width, m.kl.bin_edges, color=REAL_COLOUR, lw=1.6,
                          label=f"real (saturated {m.kl.saturated_real:.1%})")
            ax_amp.stairs(m.kl.q_generated / width, m.kl.bin_edges, color=GEN_COLOUR, lw=1.6, ls="--",
                          label=f"generated (saturated {m.kl.saturated_generated:.1%})")
            ax_amp.plot([], [], " ", label=f"KL(real ‖ gen) = {m.kl.kl:.3f}")
        else:
            q, sat, edges_a = sar.amplitude_histogram(m.gen_db)
            ax_amp.stairs(q / np.diff(edges_a), edges_a, color=GEN_COLOUR, lw=1.6, ls="--",
                          label=f"generated (saturated {sat:.1%})")
            ax_amp.plot([], [], " ", label="KL: needs a real image")
        ax_amp.set_xlabel(f"{pol} amplitude / (μ + 3σ), saturated pixels excluded")
        ax_amp.set_ylabel("density")
        ax_amp.set_title(f"{pol} normalised amplitude (KL histogram)", fontsize=10, y=1.0, pad=4)
        ax_amp.set_xlim(0, 1)
        ax_amp.legend(fontsize=8, loc="upper right")
    _suptitle(fig, "Amplitude distributions: real vs generated", report.real_available)
    return fig


def glcm_panel(report: MetricsReport) -> Figure:
    """GLCM features vs angle: rows = features, columns = VV, VH; colour = distance; real solid, generated dashed."""
    pols = list(report.polarisations)
    fig = Figure(figsize=(10, 9))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.06, top=0.91, hspace=0.35, wspace=0.18)
    axes = fig.subplots(len(sar.GLCM_FEATURES), len(pols), squeeze=False, sharex=True)
    angles = np.asarray(sar.GLCM_ANGLES_DEG)
    for col, pol in enumerate(pols):
        m = report.polarisations[pol]
        for row, feat in enumerate(sar.GLCM_FEATURES):
            ax = axes[row, col]
            for i, d in enumerate(sar.GLCM_DISTANCES):
                colour = DISTANCE_COLOURS[i % len(DISTANCE_COLOURS)]
                if m.glcm_real is not None:
                    ax.plot(angles, m.glcm_real[feat][i], color=colour, ls="-", marker="o", ms=3,
                            label=f"real d={d}")
                ax.plot(angles, m.glcm_generated[feat][i], color=colour, ls="--", marker="s", ms=3,
                        label=f"generated d={d}")
            ax.set_title(f"{pol} — {feat}", fontsize=10, y=1.0, pad=4)
            ax.set_xticks(angles, [f"{a}°" for a in angles])
            if row == len(sar.GLCM_FEATURES) - 1:
                ax.set_xlabel("angle θ")
            if row == 0 and col == len(pols) - 1:
                ax.legend(fontsize=7, ncols=2, loc="best")
    _suptitle(fig, f"GLCM texture ({sar.GLCM_LEVELS} grey levels on the fixed dB range): real solid, generated dashed",
              report.real_available)
    return fig


def embedding_pca_rgb(embedding: np.ndarray, sample_step: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A 3-component PCA false colour (H, W, 3) float in [0, 1] and the explained-variance ratios.

    Principal axes come from the covariance of every ``sample_step``-th pixel in each
    direction (a 512² field has 65k samples — plenty for 64×64 covariance, 4× faster);
    all pixels are then projected. Each component is stretched between its 2nd and 98th
    percentile; each axis's sign is fixed so its largest loading is positive (stable colours).
    Missing pixels are NaN.
    """
    emb = np.asarray(embedding, dtype=np.float32)
    dims, h, w = emb.shape
    flat = emb.reshape(dims, -1)  # (64, N), a view: no copy of the 64-band field
    valid = np.isfinite(flat).all(axis=0)
    if valid.sum() < 4:
        raise sar.MetricError("the embedding has fewer than 4 valid pixels; PCA is undefined")
    sample = emb[:, ::sample_step, ::sample_step].reshape(dims, -1)
    sample = sample[:, np.isfinite(sample).all(axis=0)]
    if sample.shape[1] < 4:
        sample = flat[:, valid]
    mean = sample.mean(axis=1, dtype=np.float64)
    centred = sample.astype(np.float64) - mean[:, None]
    cov = centred @ centred.T / max(sample.shape[1] - 1, 1)
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1][:3]
    axes = eigvec[:, order]
    axes *= np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])])
    explained = eigval[order] / max(eigval.sum(), 1e-30)
    # project every pixel: (3, 64) @ (64, N) − the projected mean (no centred copy of the field)
    proj = (axes.T.astype(np.float32) @ flat) - (axes.T @ mean).astype(np.float32)[:, None]
    proj[:, ~valid] = np.nan
    lo, hi = np.nanpercentile(proj[:, ::7], [2, 98], axis=1)  # every 7th pixel: percentiles of a 512² field in ms
    rgb = np.clip((proj - lo[:, None]) / np.maximum(hi - lo, 1e-12)[:, None], 0.0, 1.0).T
    return rgb.reshape(h, w, 3), explained


def embedding_panel(embedding: np.ndarray | None, dims: tuple[int, ...] = EMBEDDING_DIMS) -> Figure:
    """AlphaEarth dimensions ``dims`` (shared diverging scale) and the PCA false colour."""
    fig = Figure(figsize=(12, 3.6))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.04, top=0.82)
    if embedding is None:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no AlphaEarth embedding in this scene — nothing to show", ha="center", va="center",
                fontsize=12, color="#a00000", transform=ax.transAxes)
        return fig
    emb = np.asarray(embedding, dtype=np.float32)
    if emb.ndim != 3 or max(dims) >= emb.shape[0]:
        raise sar.MetricError(f"embedding of shape {emb.shape} lacks dimensions {dims}")
    n = len(dims)
    grid = fig.add_gridspec(1, n + 3, width_ratios=[1.0] * n + [0.05, 0.12, 1.0], wspace=0.05)
    axes = [fig.add_subplot(grid[0, i]) for i in range(n)] + [fig.add_subplot(grid[0, n + 2])]
    shown = emb[list(dims)]
    limit = float(np.nanpercentile(np.abs(shown[:, ::3, ::3]), 98)) or 1.0  # subsampled: same limit, 9× faster
    # each axes is ~250 px wide: decimating to ≤ 256 px beforehand looks the same (nearest)
    # and halves the resampling work of a 512² field
    step = max(1, max(emb.shape[1:]) // 256)
    image = None
    for ax, d in zip(axes, dims):
        image = ax.imshow(emb[d, ::step, ::step], cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(f"A{d:02d}", fontsize=10, y=1.0, pad=4)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, cax=fig.add_subplot(grid[0, n]), label="embedding value")
    rgb, explained = embedding_pca_rgb(emb)
    ax = axes[-1]
    ax.imshow(np.nan_to_num(rgb[::step, ::step], nan=0.0), interpolation="nearest")
    ax.set_title(f"PCA 1-2-3 as RGB ({explained.sum():.0%} of variance)", fontsize=10, y=1.0, pad=4)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.suptitle("AlphaEarth embedding (64-D)", fontsize=11)
    return fig


def side_by_side_panel(optical_rgb: np.ndarray | None, real_rgb: np.ndarray | None, generated_rgb: np.ndarray | None,
                       stretch_label: str, titles: tuple[str, str, str] = ("optical (S2 true colour)",
                                                                            "real Sentinel-1", "generated")) -> Figure:
    """The three views (already rendered RGB uint8, same size) in one figure, for download."""
    fig = Figure(figsize=(12, 4.4))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.86, wspace=0.04)
    axes = fig.subplots(1, 3)
    for ax, rgb, title in zip(axes, (optical_rgb, real_rgb, generated_rgb), titles):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=10, y=1.0, pad=4)
        if rgb is None:
            ax.text(0.5, 0.5, "not available", ha="center", va="center", transform=ax.transAxes, color="#a00000")
        else:
            ax.imshow(rgb, interpolation="nearest")
    fig.suptitle(f"SAR display: {stretch_label}", fontsize=10)
    return fig
