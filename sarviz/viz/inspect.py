"""Metrics and the inspection figures computed together (the Inspect page's one call).

Rendering lives here, in the viz layer: :mod:`sarviz.metrics` computes numbers and never draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sarviz.calibration import Calibration
from sarviz.metrics import sar
from sarviz.metrics.report import (
    MetricsReport,
    PolarisationMetrics,
    ProgressCallback,
    _context,
    _import_metric_libraries,
    _metrics_but_fsim,
    _real_sar_and_grid,
    _ticker,
    _validated,
)
from sarviz.viz import panels

#: the figures :func:`inspect_all` draws, by name
PANELS: tuple[str, ...] = ("histograms", "glcm", "embedding")


def inspect_all(
    real_vv: np.ndarray | None,
    real_vh: np.ndarray | None,
    gen_vv: np.ndarray,
    gen_vh: np.ndarray,
    embedding: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
    grid: dict[str, Any] | None = None,
    calibration: Calibration | None = None,
    real_provenance: dict[str, Any] | None = None,
    calibration_source: str | None = None,
    generated_provenance: dict[str, Any] | None = None,
) -> tuple[MetricsReport, dict[str, bytes]]:
    """:func:`compare` and the three inspection figures as PNG bytes, in one call.

    Returns the report (the same numbers as :func:`compare`) and ``{"histograms": …,
    "glcm": …, "embedding": …}``, byte for byte the PNGs of
    :func:`sarviz.viz.panels.histogram_png`, :func:`~sarviz.viz.panels.glcm_png` and
    :func:`~sarviz.viz.panels.embedding_png` (which says so when ``embedding`` is None).

    Schedule (measured, see ``benchmarks/bench_metrics.py``): one worker thread computes
    the embedding's PCA and then FSIM while this thread computes the other metrics — both
    sides mostly run in numpy/scipy/scikit-image/torch code that releases the GIL, so they
    share two cores well. Then this thread draws the figures, and the worker PNG-encodes
    each one (Pillow releases the GIL) while the next is drawn. Drawing the figures *while*
    the metrics run was measured too and was no faster: matplotlib holds the GIL, and a
    metric thread waiting for it after each of its hundreds of numpy/torch calls ran
    2–3× slower. ``progress`` is called from this thread only (Streamlit elements cannot be
    updated from other threads).
    """
    from concurrent.futures import ThreadPoolExecutor

    _import_metric_libraries()

    ctx = _context(calibration, calibration_source, real_provenance, generated_provenance)
    inputs, pairs, gens = _validated(real_vv, real_vh, gen_vv, gen_vh, ctx["calibration"])
    tick = _ticker(progress, 5 * len(inputs) + 1 + len(PANELS))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sarviz-inspect") as pool:
        view_future = pool.submit(panels.embedding_view, embedding) if embedding is not None else None
        fsim_future = pool.submit(sar.fsim_prepared, list(pairs.values())) if pairs else None
        try:
            pols: dict[str, PolarisationMetrics] = {}
            for pol in inputs:
                pols[pol] = _metrics_but_fsim(pol, pairs.get(pol), gens[pol], tick, ctx["calibration"])
            report = MetricsReport(
                pols, grid=grid or {"height": int(gen_vv.shape[0]), "width": int(gen_vv.shape[1])}, **ctx
            )
            # FSIM appears in neither figure: draw first, fill FSIM in when it is done
            encoded = {"glcm": pool.submit(panels.encode_png, panels.glcm_rgb(report))}
            tick("GLCM panel")
            encoded["histograms"] = pool.submit(panels.encode_png, panels.histogram_rgb(report))
            tick("histogram panel")
            view = view_future.result() if view_future is not None else None
            encoded["embedding"] = pool.submit(panels.encode_png, panels.embedding_rgb(embedding, view=view))
            tick("embedding panel")
            fsim_values = dict(zip(pairs, fsim_future.result())) if fsim_future is not None else {}
            for pol in inputs:
                pols[pol].fsim = fsim_values.get(pol)
            tick("FSIM")
            figures = {name: encoded[name].result() for name in PANELS}
        except BaseException:
            for future in (fsim_future, view_future):
                if future is not None:
                    future.cancel()
            raise
    return report, figures


def inspect_results(
    real: Any | None,
    generated: Any,
    embedding: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
    calibration: Calibration | None = None,
) -> tuple[MetricsReport, dict[str, bytes]]:
    """:func:`compare_results` and the figures, computed together (see :func:`inspect_all`)."""
    real_vv, real_vh, grid, context = _real_sar_and_grid(real, generated, calibration)
    return inspect_all(
        real_vv, real_vh, generated.vv_db, generated.vh_db, embedding=embedding, progress=progress, grid=grid, **context
    )
