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
and took more than half of the drawing time. Each text costs ~1 ms to lay out and draw,
so axis labels appear once per row/column and tick labels are few; histograms are step
lines (``stairs`` patches find their limits in Python); a panel is copied from a cached,
already drawn skeleton of its layout (axes, titles, tick artists) instead of built anew;
PNGs use zlib level 1. ``benchmarks/bench_metrics.py`` measures it.

:func:`histogram_png`, :func:`glcm_png` and :func:`embedding_png` give the PNGs the UI
shows, faster than ``figure_png(…_panel(…))`` (same picture, see :func:`_render_rgb`):
the static part of a layout (titles, x axes, labels) is drawn once and copied, only the
data, y axes and legends are drawn per figure, on a renderer kept per layout (so text
sizes measured once are reused), on a figure reused from the previous PNG of that layout
(:func:`_recycle`), and encoded as RGB (the figures are opaque).
"""

from __future__ import annotations

import io
import pickle
import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

from sarviz.metrics import sar
from sarviz.metrics.report import MetricsReport

REAL_COLOUR = "#1f4e9c"
GEN_COLOUR = "#d9541e"
DISTANCE_COLOURS = ("#1b9e77", "#d95f02", "#7570b3")
#: the AlphaEarth dimensions shown by seed 000 (Fig. 3 d–f), as band names A02, A07, A12
EMBEDDING_DIMS: tuple[int, ...] = (2, 7, 12)
NO_REAL_NOTE = "no real Sentinel-1 here — generated image only"


def figure_png(fig: Figure, dpi: int = 90, compress_level: int = 1) -> bytes:
    """PNG bytes of a figure.

    zlib level 1 instead of Pillow's 6: the embedding panel (noisy imagery) encodes in
    half the time for a file ~10 % larger; line plots are about the same size either way.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, pil_kwargs={"compress_level": compress_level})
    return buf.getvalue()


def _steps(ax, counts: np.ndarray, edges: np.ndarray, **style) -> None:
    """A histogram outline as one step line (a Line2D, not ``Axes.stairs``' StepPatch:
    the patch's data limits are found by walking its path in Python, ~10× slower)."""
    ax.plot(edges, np.append(counts, counts[-1]), drawstyle="steps-post", **style)


def _few_yticks(ax, nbins: int = 4) -> None:
    """At most ``nbins`` + 1 y ticks: every tick label is a text to lay out and draw,
    the largest part of rendering these panels; densities need no finer scale."""
    ax.yaxis.set_major_locator(MaxNLocator(nbins=nbins))


PNG_DPI = 90  # figures are drawn at the size they are shown (a 10-inch panel is 900 px)


@dataclass
class _Layout:
    """A cached panel layout: its drawn skeleton (pickled) and, for blitting, the skeleton's
    static part as RGBA pixels, with one reusable renderer (guarded by ``lock``) and spare
    figures of this layout to draw the next PNG on (see :func:`_recycle`)."""

    blob: bytes
    background: np.ndarray | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    renderer: RendererAgg | None = None
    spare: list[Figure] = field(default_factory=list)


_LAYOUTS: dict[tuple, _Layout] = {}
_LAYOUTS_LOCK = threading.Lock()


def _dynamic_artists(ax) -> list[Artist]:
    """What a blitted panel draws per figure in one axes, in matplotlib's drawing order
    (z-order, then insertion): the data lines, the spines over them, the y axis (its
    limits follow the data) and the legend."""
    artists: list[Artist] = [*ax.lines, *ax.spines.values(), ax.yaxis]
    if ax.get_legend() is not None:
        artists.append(ax.get_legend())
    return sorted(artists, key=lambda a: a.get_zorder())


def _layout(key: tuple, build: Callable[[], Figure], blit: bool) -> _Layout:
    layout = _LAYOUTS.get(key)
    if layout is not None:
        return layout
    skeleton = build()
    skeleton.set_dpi(PNG_DPI)
    canvas = FigureCanvasAgg(skeleton)
    canvas.draw()  # the first draw creates the tick artists
    layout = _Layout(pickle.dumps(skeleton))
    if blit:
        # the static part: everything but what _dynamic_artists draws per figure
        for ax in skeleton.axes:
            for artist in _dynamic_artists(ax):
                artist.set_visible(False)
        canvas.draw()
        layout.background = np.array(canvas.buffer_rgba())
    with _LAYOUTS_LOCK:
        if len(_LAYOUTS) < 64:  # a handful of layouts in practice; never grow without bound
            layout = _LAYOUTS.setdefault(key, layout)
    return layout


def _from_skeleton(
    key: tuple, build: Callable[[], Figure], blit: bool = False, reuse: bool = False
) -> tuple[Figure, _Layout]:
    """A new figure copied from a cached, already drawn skeleton: the axes with their
    titles, labels and tick settings but no data; and the cached layout it came from.

    Why: creating axes and their tick artists (each tick is 3 lines and 2 texts, made on
    the first draw) is about a fifth of a panel's time; unpickling a drawn skeleton is
    ~2× cheaper. Every call returns an independent Figure (nothing is shared between
    callers or threads); ``key`` names everything the skeleton depends on.
    """
    layout = _layout(key, build, blit)
    if reuse:
        with layout.lock:
            if layout.spare:
                return layout.spare.pop(), layout
    return pickle.loads(layout.blob), layout


def _recycle(fig: Figure, layout: _Layout) -> None:
    """Return a blitted panel's figure, once drawn, to its layout's spares: data lines and
    legends removed, y autoscaling and colour cycle back to the skeleton's state.

    Why: a panel unpickled anew is 10–20 k objects tracked by Python's garbage collector;
    they pile up until a full collection (~0.2 s with torch and matplotlib loaded) every
    few inspections. A reused figure allocates only what one draw needs. Only the PNG
    functions reuse figures (the ``*_panel`` functions hand theirs to the caller);
    tests/test_panels.py checks a reused figure draws byte for byte like a new one.
    """
    for ax in fig.axes:
        for line in list(ax.lines):
            line.remove()
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
        ax.dataLim.set_points(Bbox.null().get_points())
        ax.ignore_existing_data_limits = True
        ax.set_autoscaley_on(True)
        ax.set_prop_cycle(None)
    with layout.lock:
        if len(layout.spare) < 2:
            layout.spare.append(fig)


def encode_png(rgb: np.ndarray, compress_level: int = 1) -> bytes:
    """PNG bytes of (H, W, 3) uint8 pixels (Pillow, zlib level 1 as in :func:`figure_png`).

    Pillow encodes without the GIL, so :func:`sarviz.viz.inspect.inspect_all` encodes
    one panel in a worker thread while it draws the next.
    """
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="png", compress_level=compress_level)
    return buf.getvalue()


def _render_rgb(fig: Figure, layout: _Layout) -> np.ndarray:
    """The (H, W, 3) uint8 pixels of a panel made by :func:`_from_skeleton`, drawn on the
    layout's renderer.

    With a blit background (histogram and GLCM panels), the static pixels are copied and
    only :func:`_dynamic_artists` are drawn; otherwise the whole figure is drawn. Either
    way the renderer is reused, so matplotlib's text-size cache (kept per renderer) hits
    for every label seen before — text layout is most of these panels' drawing time. The
    picture is that of :func:`figure_png` (tests/test_panels.py compares the pixels); the
    figure must not be changed after the panel function returned it (use figure_png then).
    """
    with layout.lock:
        width, height = FigureCanvasAgg(fig).get_width_height(physical=True)
        renderer = layout.renderer
        if renderer is None or (renderer.width, renderer.height) != (width, height):
            renderer = layout.renderer = RendererAgg(width, height, fig.dpi)
        pixels = np.asarray(renderer.buffer_rgba())
        if layout.background is not None and layout.background.shape == pixels.shape:
            pixels[...] = layout.background
            for ax in fig.axes:
                for artist in _dynamic_artists(ax):
                    artist.draw(renderer)
        else:
            renderer.clear()
            fig.draw(renderer)
        return np.ascontiguousarray(pixels[..., :3])  # opaque figure: alpha is 255 everywhere


COMPOSITE_PANEL_NOTE = "⚠ real S1 is a temporal composite ({what}): KL, ENL, GLCM, SSIM measure compositing too"


@dataclass(frozen=True)
class _PanelContext:
    """What a panel's static part (its cached skeleton) depends on besides the data."""

    pols: tuple[str, ...]
    real_available: bool
    db_spans: tuple[tuple[float, float], ...]  # per polarisation: the dB histogram's span (calibration)
    composite: str  # "" or what the real composite is ("median of 6")


def _context(report: MetricsReport) -> _PanelContext:
    pols = tuple(report.polarisations)
    what = ""
    if report.real_is_composite:
        kind, n = report.real_s1.get("kind") or "composite", report.real_s1.get("n")
        what = f"{kind} of {n}" if n else str(kind)
    return _PanelContext(
        pols, report.real_available, tuple(sar.db_histogram_range(p, report.calibration) for p in pols), what
    )


def _suptitle(fig: Figure, title: str, ctx: _PanelContext) -> None:
    if not ctx.real_available:
        fig.suptitle(f"{title}\n({NO_REAL_NOTE})", fontsize=11, color="#a00000")
    elif ctx.composite:
        fig.suptitle(f"{title}\n{COMPOSITE_PANEL_NOTE.format(what=ctx.composite)}", fontsize=11, color="#8a4b00")
    else:
        fig.suptitle(title, fontsize=11, color="black")


HISTOGRAM_TITLE = "Amplitude distributions: real vs generated"
GLCM_TITLE = (
    f"GLCM texture ({sar.GLCM_LEVELS} grey levels on the calibrated dB range; exact lags, diagonal "
    "d = (d, d) px): real solid, generated dashed"
)


def _histogram_skeleton(ctx: _PanelContext) -> Figure:
    pols = ctx.pols
    # fixed margins, not constrained layout: layout solving was half of the drawing time
    fig = Figure(figsize=(10, 6.4), dpi=PNG_DPI)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.09, top=0.87, hspace=0.5, wspace=0.2)
    axes = fig.subplots(len(pols), 2, squeeze=False)
    for row, pol in enumerate(pols):
        ax_db, ax_amp = axes[row]
        # axis labels once per column / row: the titles name the polarisation, and every
        # text costs ~1 ms to lay out and draw (most of the rendering time)
        if row == len(pols) - 1:
            ax_db.set_xlabel("σ⁰ (dB)")
            ax_amp.set_xlabel("amplitude / (μ + 3σ), saturated pixels excluded")
        ax_db.set_ylabel("density")
        ax_db.set_title(f"{pol} backscatter (dB)", fontsize=10, y=1.0, pad=4)
        ax_amp.set_title(f"{pol} normalised amplitude (KL histogram)", fontsize=10, y=1.0, pad=4)
        for ax in (ax_db, ax_amp):
            _few_yticks(ax)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        # x limits are fixed (they are part of the static, blitted background): the dB
        # histogram's bin range (sar.db_histogram) with matplotlib's 5 % margins; [0, 1]
        first, last = ctx.db_spans[row]
        ax_db.set_xlim(first - 0.05 * (last - first), last + 0.05 * (last - first))
        ax_amp.set_xlim(0, 1)
    _suptitle(fig, HISTOGRAM_TITLE, ctx)
    return fig


def histogram_panel(report: MetricsReport) -> Figure:
    """Real and generated distributions overlaid: rows VV, VH; columns dB, normalised amplitude."""
    return _histogram_figure(report)[0]


def histogram_png(report: MetricsReport) -> bytes:
    """PNG of :func:`histogram_panel` (the same picture, drawn faster: see :func:`_render_rgb`)."""
    return encode_png(histogram_rgb(report))


def histogram_rgb(report: MetricsReport) -> np.ndarray:
    """Pixels of :func:`histogram_png` (before PNG encoding)."""
    return _reused_rgb(_histogram_figure, report)


def _reused_rgb(build, report: MetricsReport) -> np.ndarray:
    """Draw ``build(report)`` on a recycled figure and return its pixels."""
    fig, layout = build(report, reuse=True)
    rgb = _render_rgb(fig, layout)
    _recycle(fig, layout)
    return rgb


def _histogram_figure(report: MetricsReport, reuse: bool = False) -> tuple[Figure, _Layout]:
    ctx = _context(report)
    pols = ctx.pols
    fig, layout = _from_skeleton(("histogram", ctx), lambda: _histogram_skeleton(ctx), blit=True, reuse=reuse)
    axes = np.asarray(fig.axes).reshape(len(pols), 2)
    for row, (pol, m) in enumerate(report.polarisations.items()):
        ax_db, ax_amp = axes[row]
        counts_g, edges = sar.db_histogram(m.gen_db, pol, calibration=report.calibration)
        if m.real_db is not None:
            counts_r, _ = sar.db_histogram(m.real_db, pol, calibration=report.calibration)
            _steps(ax_db, counts_r, edges, color=REAL_COLOUR, lw=1.6, label="real S1")
        _steps(ax_db, counts_g, edges, color=GEN_COLOUR, lw=1.6, ls="--", label="generated")
        ax_db.set_ylim(bottom=0)
        ax_db.legend(fontsize=8, loc="upper left")

        if m.kl is not None:
            width = np.diff(m.kl.bin_edges)
            _steps(
                ax_amp,
                m.kl.p_real / width,
                m.kl.bin_edges,
                color=REAL_COLOUR,
                lw=1.6,
                label=f"real (saturated {m.kl.saturated_real:.1%})",
            )
            _steps(
                ax_amp,
                m.kl.q_generated / width,
                m.kl.bin_edges,
                color=GEN_COLOUR,
                lw=1.6,
                ls="--",
                label=f"generated (saturated {m.kl.saturated_generated:.1%})",
            )
            ax_amp.plot([], [], " ", label=f"KL(real ‖ gen) = {m.kl.kl:.3f}")
        else:
            q, sat, edges_a = sar.amplitude_histogram(m.gen_db)
            _steps(
                ax_amp,
                q / np.diff(edges_a),
                edges_a,
                color=GEN_COLOUR,
                lw=1.6,
                ls="--",
                label=f"generated (saturated {sat:.1%})",
            )
            ax_amp.plot([], [], " ", label="KL: needs a real image")
        ax_amp.set_ylim(bottom=0)
        ax_amp.legend(fontsize=8, loc="upper right")
    return fig, layout


def _glcm_skeleton(ctx: _PanelContext) -> Figure:
    pols = ctx.pols
    fig = Figure(figsize=(10, 9), dpi=PNG_DPI)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.06, top=0.91, hspace=0.35, wspace=0.18)
    # x limits and ticks are the same four angles in every axes; not sharex=True, whose
    # axis-label placement measures the tick labels of every sibling on each draw
    axes = fig.subplots(len(sar.GLCM_FEATURES), len(pols), squeeze=False)
    angles = np.asarray(sar.GLCM_ANGLES_DEG)
    for col, pol in enumerate(pols):
        for row, feat in enumerate(sar.GLCM_FEATURES):
            ax = axes[row, col]
            ax.set_title(f"{pol} — {feat}", fontsize=10, y=1.0, pad=4)
            ax.set_xticks(angles, [f"{a}°" for a in angles])
            ax.set_xlim(angles[0] - 6.75, angles[-1] + 6.75)  # matplotlib's 5 % margins, the same in every row
            _few_yticks(ax)
            if row == len(sar.GLCM_FEATURES) - 1:
                ax.set_xlabel("angle θ")
            else:
                ax.tick_params(labelbottom=False)
    _suptitle(fig, GLCM_TITLE, ctx)
    return fig


def glcm_panel(report: MetricsReport) -> Figure:
    """GLCM features vs angle: rows = features, columns = VV, VH; colour = distance; real solid, generated dashed."""
    return _glcm_figure(report)[0]


def glcm_png(report: MetricsReport) -> bytes:
    """PNG of :func:`glcm_panel` (the same picture, drawn faster: see :func:`_render_rgb`)."""
    return encode_png(glcm_rgb(report))


def glcm_rgb(report: MetricsReport) -> np.ndarray:
    """Pixels of :func:`glcm_png` (before PNG encoding)."""
    return _reused_rgb(_glcm_figure, report)


def _glcm_figure(report: MetricsReport, reuse: bool = False) -> tuple[Figure, _Layout]:
    ctx = _context(report)
    pols = ctx.pols
    fig, layout = _from_skeleton(("glcm", ctx), lambda: _glcm_skeleton(ctx), blit=True, reuse=reuse)
    axes = np.asarray(fig.axes).reshape(len(sar.GLCM_FEATURES), len(pols))
    angles = np.asarray(sar.GLCM_ANGLES_DEG)
    for col, pol in enumerate(pols):
        m = report.polarisations[pol]
        for row, feat in enumerate(sar.GLCM_FEATURES):
            ax = axes[row, col]
            for i, d in enumerate(sar.GLCM_DISTANCES):
                colour = DISTANCE_COLOURS[i % len(DISTANCE_COLOURS)]
                if m.glcm_real is not None:
                    ax.plot(angles, m.glcm_real[feat][i], color=colour, ls="-", marker="o", ms=3, label=f"real d={d}")
                ax.plot(
                    angles, m.glcm_generated[feat][i], color=colour, ls="--", marker="s", ms=3, label=f"generated d={d}"
                )
            if row == 0 and col == len(pols) - 1:
                ax.legend(fontsize=7, ncols=2, loc="best")
    return fig, layout


def _linalg():
    """torch and its single-thread guard, or None (then numpy is used).

    Why torch with one intra-op thread for the PCA's linear algebra and not numpy: numpy's
    bundled OpenBLAS leaves its worker thread spinning after a threaded call — ~0.1 s of
    CPU after even a 64×64 ``eigh``, ~40 ms after the (3, 64) @ (64, N) projection —
    measured on the 2-core project machine, where that spin took a core from the metrics
    and figures computed alongside (benchmarks/bench_metrics.py). torch is loaded anyway
    for FSIM.
    """
    try:
        import torch

        from sarviz.metrics.sar import torch_single_thread
    except ImportError:  # pragma: no cover - torch is a project dependency
        return None
    return torch, torch_single_thread


def _eigh(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.linalg.eigh`` of a small symmetric float64 matrix, without OpenBLAS' spin (see :func:`_linalg`)."""
    lib = _linalg()
    if lib is None:  # pragma: no cover
        return np.linalg.eigh(cov)
    torch, single_thread = lib
    with single_thread():
        eigval, eigvec = torch.linalg.eigh(torch.from_numpy(np.ascontiguousarray(cov, dtype=np.float64)))
    return eigval.numpy(), eigvec.numpy()


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` (float32), without OpenBLAS' spin (see :func:`_linalg`)."""
    lib = _linalg()
    if lib is None:  # pragma: no cover
        return a @ b
    torch, single_thread = lib
    with single_thread():
        return (torch.from_numpy(np.ascontiguousarray(a)) @ torch.from_numpy(np.ascontiguousarray(b))).numpy()


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
    flat = np.ascontiguousarray(emb).reshape(dims, -1)  # (64, N): a view of a contiguous field
    valid = np.isfinite(flat).all(axis=0)
    if valid.sum() < 4:
        raise sar.MetricError("the embedding has fewer than 4 valid pixels; PCA is undefined")
    if sample_step == 1:
        sample = flat if valid.all() else flat[:, valid]
    else:
        sample = emb[:, ::sample_step, ::sample_step].reshape(dims, -1)
        sample = sample[:, np.isfinite(sample).all(axis=0)]
        if sample.shape[1] < 4:
            sample = flat[:, valid]
    mean = sample.mean(axis=1, dtype=np.float64)
    # centred and multiplied in float32 (half the memory traffic of float64); the 64×64
    # covariance of unit-length vectors agrees with float64 to ~1e-8 relative
    centred = sample - mean.astype(np.float32)[:, None]
    cov = _matmul(centred, centred.T).astype(np.float64) / max(sample.shape[1] - 1, 1)
    eigval, eigvec = _eigh(cov)
    order = np.argsort(eigval)[::-1][:3]
    axes = eigvec[:, order]
    axes *= np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])])
    explained = eigval[order] / max(eigval.sum(), 1e-30)
    # project every pixel: (3, 64) @ (64, N) − the projected mean (no centred copy of the field)
    proj = _matmul(axes.T.astype(np.float32), flat) - (axes.T @ mean).astype(np.float32)[:, None]
    proj[:, ~valid] = np.nan
    # percentiles of every pixel up to 256², else of every 7th (a 512² field in ms)
    lo, hi = np.nanpercentile(proj if proj.shape[1] <= 65536 else proj[:, ::7], [2, 98], axis=1)
    rgb = np.clip((proj - lo[:, None]) / np.maximum(hi - lo, 1e-12)[:, None], 0.0, 1.0).T
    return rgb.reshape(h, w, 3), explained


def _embedding_skeleton(dims: tuple[int, ...]) -> Figure:
    fig = Figure(figsize=(12, 3.6), dpi=PNG_DPI)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.04, top=0.82)
    n = len(dims)
    # [dims…, colour bar, gap (room for its ticks and label), PCA]; axes are added in this order
    grid = fig.add_gridspec(1, n + 3, width_ratios=[1.0] * n + [0.05, 0.3, 1.0], wspace=0.05)
    for i, d in enumerate(dims):
        ax = fig.add_subplot(grid[0, i])
        ax.set_title(f"A{d:02d}", fontsize=10, y=1.0, pad=4)
    fig.add_subplot(grid[0, n])  # the colour bar's axes
    fig.add_subplot(grid[0, n + 2])  # the PCA view
    for i, ax in enumerate(fig.axes):
        if i != n:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("AlphaEarth embedding (64-D)", fontsize=11)
    return fig


@dataclass
class EmbeddingView:
    """What the embedding panel shows, computed without matplotlib (numpy only, so it can
    run in a worker thread while another figure is drawn): the decimated dimensions, their
    shared colour limit, and the PCA false colour."""

    dims: tuple[int, ...]
    images: list[np.ndarray]
    limit: float
    rgb: np.ndarray  # (h, w, 3) in [0, 1], missing pixels black
    explained: np.ndarray


def embedding_view(embedding: np.ndarray, dims: tuple[int, ...] = EMBEDDING_DIMS) -> EmbeddingView:
    """The data of :func:`embedding_panel` for a (64, H, W) embedding."""
    emb = np.asarray(embedding, dtype=np.float32)
    dims = tuple(int(d) for d in dims)
    if emb.ndim != 3 or max(dims) >= emb.shape[0]:
        raise sar.MetricError(f"embedding of shape {emb.shape} lacks dimensions {dims}")
    # every 3rd pixel each way: the same limit, 9× faster (and only those pixels are copied)
    limit = float(np.nanpercentile(np.abs(emb[list(dims), ::3, ::3]), 98)) or 1.0
    # each axes is ~250 px wide: decimating to ≤ 256 px beforehand looks the same (nearest)
    # and halves the resampling work of a 512² field
    step = max(1, max(emb.shape[1:]) // 256)
    # PCA of the displayed (decimated) pixels only: for a 512² field these are exactly the
    # every-2nd-pixel sample the axes come from anyway, and projecting 4× fewer pixels
    # gives the same colours there
    rgb, explained = embedding_pca_rgb(emb[:, ::step, ::step], sample_step=2 if step == 1 else 1)
    return EmbeddingView(dims, [emb[d, ::step, ::step] for d in dims], limit, np.nan_to_num(rgb, nan=0.0), explained)


def _no_embedding_figure() -> Figure:
    fig = Figure(figsize=(12, 3.6), dpi=PNG_DPI)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.04, top=0.82)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(
        0.5,
        0.5,
        "no AlphaEarth embedding in this scene — nothing to show",
        ha="center",
        va="center",
        fontsize=12,
        color="#a00000",
        transform=ax.transAxes,
    )
    return fig


def embedding_panel(
    embedding: np.ndarray | None, dims: tuple[int, ...] = EMBEDDING_DIMS, view: EmbeddingView | None = None
) -> Figure:
    """AlphaEarth dimensions ``dims`` (shared diverging scale) and the PCA false colour.

    ``view``: the :func:`embedding_view` of ``embedding``, if already computed.
    """
    if view is None:
        if embedding is None:
            return _no_embedding_figure()
        view = embedding_view(embedding, dims)
    return _embedding_figure(view)[0]


def embedding_png(
    embedding: np.ndarray | None, dims: tuple[int, ...] = EMBEDDING_DIMS, view: EmbeddingView | None = None
) -> bytes:
    """PNG of :func:`embedding_panel` (the same picture, drawn faster: see :func:`_render_rgb`)."""
    return encode_png(embedding_rgb(embedding, dims, view))


def embedding_rgb(
    embedding: np.ndarray | None, dims: tuple[int, ...] = EMBEDDING_DIMS, view: EmbeddingView | None = None
) -> np.ndarray:
    """Pixels of :func:`embedding_png` (before PNG encoding)."""
    if view is None:
        if embedding is None:
            return _render_rgb(_no_embedding_figure(), _Layout(b""))
        view = embedding_view(embedding, dims)
    return _render_rgb(*_embedding_figure(view))


def _embedding_figure(view: EmbeddingView) -> tuple[Figure, _Layout]:
    dims, n = view.dims, len(view.dims)
    # not blitted: the axes' boxes follow the images' aspect, fixed only when they are drawn
    fig, layout = _from_skeleton(("embedding", dims), lambda: _embedding_skeleton(dims))
    axes = fig.axes
    image = None
    for ax, dim_image in zip(axes[:n], view.images):
        image = ax.imshow(dim_image, cmap="RdBu_r", vmin=-view.limit, vmax=view.limit, interpolation="nearest")
    if image is None:
        raise sar.MetricError("no embedding dimension to show")
    fig.colorbar(image, cax=axes[n], label="embedding value")
    ax = axes[n + 1]
    ax.imshow(view.rgb, interpolation="nearest")
    ax.set_title(f"PCA 1-2-3 as RGB ({view.explained.sum():.0%} of variance)", fontsize=10, y=1.0, pad=4)
    return fig, layout


def side_by_side_panel(
    optical_rgb: np.ndarray | None,
    real_rgb: np.ndarray | None,
    generated_rgb: np.ndarray | None,
    stretch_label: str,
    titles: tuple[str, str, str] = ("optical (S2 true colour)", "real Sentinel-1", "generated"),
) -> Figure:
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
