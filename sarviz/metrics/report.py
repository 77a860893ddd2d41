"""One comparison of a generated Sentinel-1 image with the real one: all metrics, one report.

:func:`compare` works on arrays, :func:`compare_results` on a :class:`~sarviz.scene.Scene` /
:class:`~sarviz.generators.base.GenerationResult`. The :class:`MetricsReport` gives

* ``to_dict()`` / ``to_json()`` — the JSON contract of ``sarviz metrics --json``: keys
  ``kl``, ``mean_std_similarity``, ``ssim``, ``fsim``, ``enl``, ``glcm``, each nested by
  polarisation ``VV`` / ``VH``; single-image metrics (ENL, GLCM) give
  ``{"real": …, "generated": …}``; GLCM is nested polarisation → feature → distance →
  angle. Extra keys: ``ssim_downsampled`` (the other SSIM variant), ``saturated_fraction``,
  ``db_stats``, ``real_available``, ``grid``, ``flags`` (composite real S1 → the
  speckle-sensitive metrics flagged), ``calibration`` (the one used, and its source),
  ``protocols`` (which protocol/variant each metric is), ``settings``. Without a real
  image the pair metrics are ``null``.
* ``table()`` — a pandas DataFrame with the differences generated − real;
* ``csv()`` — that table as CSV text.

Definitions: ``docs/metrics.md``.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, overload

import numpy as np

from sarviz.calibration import DEFAULT_CALIBRATION, Calibration
from sarviz.embedding_proxy import result_note
from sarviz.metrics import sar
from sarviz.metrics.provenance import SPECKLE_SENSITIVE, calibration_of, composite_note, real_s1_acquisition
from sarviz.metrics.sar import MetricError
from sarviz.scene import (
    SCENE_BANDS,
    TRAINING_PATCH_BANDS,
    Scene,
    _band_names,  # the scene module's own band naming rule
)

ProgressCallback = Callable[[int, int, str], None]

#: the short protocol/variant label of each table row (the JSON's "protocols" has the long form)
TABLE_PROTOCOLS: dict[str, str] = {
    "kl": "per pair (seed 001 histogram, not its category pooling)",
    "mean_std_similarity": "our reading of seed 000 (no formula in the paper)",
    "ssim": "full resolution (scikit-image)",
    "ssim_downsampled": "downsampled ÷round(min(H,W)/256) (Wang ref. / piq default)",
    "fsim": "piq, downsampled as the reference",
    "enl": "homogeneous 16 px windows, point/line targets rejected",
    "glcm": "per pair: whole image, dB stretch, exact lags (not seed 001's amplitude patches)",
}


@dataclass
class PolarisationMetrics:
    """All metrics of one polarisation. Pair metrics are None without a real image."""

    pol: str
    real_db: np.ndarray | None
    gen_db: np.ndarray
    kl: sar.KLResult | None
    mean_diff: float | None
    std_diff: float | None
    ssim: float | None
    fsim: float | None
    enl_real: sar.ENLResult | None
    enl_generated: sar.ENLResult
    glcm_real: dict[str, np.ndarray] | None
    glcm_generated: dict[str, np.ndarray]
    saturated_generated: float
    ssim_downsampled: float | None = None  # the other SSIM variant (sar.SSIM_VARIANTS["downsampled"])


@overload
def _db_stats(db: np.ndarray) -> dict[str, float]: ...
@overload
def _db_stats(db: None) -> None: ...
@overload
def _db_stats(db: np.ndarray | None) -> dict[str, float] | None: ...
def _db_stats(db: np.ndarray | None) -> dict[str, float] | None:
    if db is None:
        return None
    v = db[np.isfinite(db)]
    return {"mean_db": float(v.mean()), "std_db": float(v.std()), "valid_fraction": float(v.size / db.size)}


def _num(x: float | None) -> float | None:
    """JSON-safe number (NaN → null)."""
    return None if x is None or not math.isfinite(x) else float(x)


#: Which protocol/variant each number of the report is (also in the table's "protocol" column
#: and docs/metrics.md). The seed-001 protocol is :mod:`sarviz.metrics.protocols`.
PROTOCOLS: dict[str, str] = {
    "kl": "per pair (sarviz): seed 001's normalised-amplitude histogram KL on this one image pair; "
    "seed 001's tables pool per scene category (sarviz.metrics.protocols.seed001_kl_by_category)",
    "mean_std_similarity": "our reading of seed 000 (no formula in the paper): |Δ mean|, |Δ std| of the "
    "calibration's [0, 1] mapping",
    "ssim": "SSIM, " + sar.SSIM_VARIANTS["full"],
    "ssim_downsampled": "SSIM, " + sar.SSIM_VARIANTS["downsampled"],
    "fsim": "FSIM (piq, grey-level), downsampled by round(min(H, W)/256) as the reference code",
    "enl": "ENL of intensity on homogeneous 16 px windows (edge, variance and max/mean tests: point and "
    "line targets rejected)",
    "glcm": "per pair (sarviz): whole image, calibration's dB stretch, 32 levels, exact lag vectors; seed 001 "
    "uses amplitude in 64×64 homogeneous patches (sarviz.metrics.protocols.seed001_glcm)",
}


@dataclass
class MetricsReport:
    polarisations: dict[str, PolarisationMetrics]
    grid: dict[str, Any] = field(default_factory=dict)
    #: the dB → [0, 1] mapping every [0, 1]-based metric and the display used
    calibration: Calibration = DEFAULT_CALIBRATION
    calibration_source: str = "default"  # "model", "model (legacy db_range)", "default" or "given"
    #: how the real S1 was made (:func:`sarviz.metrics.provenance.real_s1_acquisition`)
    real_s1: dict[str, Any] = field(default_factory=lambda: real_s1_acquisition(None))
    #: the generated image's ``embedding_source`` (provenance): a PROXY one labels every output
    embedding_source: str = ""

    @property
    def proxy_note(self) -> str | None:
        """The PROXY label (:func:`sarviz.embedding_proxy.result_note`) when the generated image was
        made from a proxy embedding, else None."""
        return result_note({"embedding_source": self.embedding_source})

    @property
    def real_is_composite(self) -> bool:
        return self.real_available and self.real_s1.get("mode") == "composite"

    @property
    def composite_note(self) -> str | None:
        """The warning shown next to speckle-sensitive metrics when the real S1 is a composite."""
        return composite_note(self.real_s1) if self.real_available else None

    def flags(self) -> dict[str, Any]:
        """Per-metric caveats: which metrics the real image's compositing makes unreliable."""
        flagged = list(SPECKLE_SENSITIVE) if self.real_is_composite else []
        return {
            "real_s1": dict(self.real_s1),
            "speckle_sensitive_metrics": list(SPECKLE_SENSITIVE),
            "flagged_metrics": flagged,
            "note": self.composite_note,
            "proxy_embedding": self.proxy_note is not None,
            "proxy_note": self.proxy_note,
        }

    @property
    def real_available(self) -> bool:
        return all(m.real_db is not None for m in self.polarisations.values())

    def __getitem__(self, pol: str) -> PolarisationMetrics:
        return self.polarisations[pol]

    # -- JSON --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        pols = self.polarisations
        out: dict[str, Any] = {
            "kl": {p: (_num(m.kl.kl) if m.kl else None) for p, m in pols.items()},
            "mean_std_similarity": {
                p: ({"mean": _num(m.mean_diff), "std": _num(m.std_diff)} if m.mean_diff is not None else None)
                for p, m in pols.items()
            },
            "ssim": {p: _num(m.ssim) for p, m in pols.items()},
            "ssim_downsampled": {p: _num(m.ssim_downsampled) for p, m in pols.items()},
            "fsim": {p: _num(m.fsim) for p, m in pols.items()},
            "enl": {
                p: {"real": _num(m.enl_real.enl) if m.enl_real else None, "generated": _num(m.enl_generated.enl)}
                for p, m in pols.items()
            },
            "glcm": {
                p: {
                    feat: {
                        str(d): {
                            str(a): {
                                "real": _num(m.glcm_real[feat][i, j]) if m.glcm_real else None,
                                "generated": _num(m.glcm_generated[feat][i, j]),
                            }
                            for j, a in enumerate(sar.GLCM_ANGLES_DEG)
                        }
                        for i, d in enumerate(sar.GLCM_DISTANCES)
                    }
                    for feat in sar.GLCM_FEATURES
                }
                for p, m in pols.items()
            },
            "saturated_fraction": {
                p: {"real": _num(m.kl.saturated_real) if m.kl else None, "generated": _num(m.saturated_generated)}
                for p, m in pols.items()
            },
            "db_stats": {p: {"real": _db_stats(m.real_db), "generated": _db_stats(m.gen_db)} for p, m in pols.items()},
            "real_available": self.real_available,
            "embedding_source": self.embedding_source or None,
            "proxy_embedding": self.proxy_note is not None,
            "grid": self.grid,
            "flags": self.flags(),
            "protocols": dict(PROTOCOLS),
            "calibration": {**self.calibration.to_dict(), "source": self.calibration_source},
            "settings": {
                "unit_db_ranges": {p: list(r) for p, r in self.calibration.ranges.items()},
                "kl_bins": sar.KL_BINS,
                "kl_epsilon": sar.KL_EPSILON,
                "glcm_levels": sar.GLCM_LEVELS,
                "glcm_distances": list(sar.GLCM_DISTANCES),
                "glcm_angles_deg": list(sar.GLCM_ANGLES_DEG),
                "enl_window_px": sar.ENL_WINDOW,
                "enl_smooth_sigma_px": sar.ENL_SMOOTH_SIGMA,
                "enl_score_quantile": sar.ENL_SCORE_QUANTILE,
                "enl_score_factor": sar.ENL_SCORE_FACTOR,
                "enl_target_k": sar.ENL_TARGET_K,
                "enl_target_rounds": sar.ENL_TARGET_ROUNDS,
                "glcm_lags": {
                    f"{d},{a}": list(sar.glcm_lag_vector(d, a)) for d in sar.GLCM_DISTANCES for a in sar.GLCM_ANGLES_DEG
                },
                "ssim_downsample_factor": sar.ssim_downsample_factor(*next(iter(pols.values())).gen_db.shape),
                "definitions": "docs/metrics.md",
            },
        }
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    # -- table -------------------------------------------------------------------------------
    def table(self, per_angle: bool = False):
        """Summary DataFrame: one row per metric and polarisation.

        Columns: ``metric``, ``polarisation``, ``real``, ``generated``,
        ``generated − real`` (single-image metrics) and ``comparison`` (pair metrics: KL,
        Mean/Std similarity, SSIM, FSIM). GLCM rows are averaged over the four angles
        unless ``per_angle``.
        """
        import pandas as pd

        rows: list[dict[str, Any]] = []

        flagged = set(self.flags()["flagged_metrics"])
        caveat = "⚠ real S1 is a composite" if flagged else ""
        proxy = "⚠ PROXY embedding" if self.proxy_note else ""  # on every row: every number is a proxy's

        def row(metric, pol, real, gen, diff, value, key):
            notes = [c for c in (caveat if key in flagged else "", proxy) if c]
            rows.append(
                {
                    "metric": metric,
                    "polarisation": pol,
                    "real": real,
                    "generated": gen,
                    "generated − real": diff,
                    "comparison": value,
                    "protocol": TABLE_PROTOCOLS.get(key, ""),
                    "caveat": "; ".join(notes),
                }
            )

        def single(metric: str, pol: str, real: float | None, gen: float, key: str = "") -> None:
            diff = None if real is None or not np.isfinite(real) or not np.isfinite(gen) else gen - real
            row(metric, pol, real, gen, diff, None, key)

        def pair(metric: str, pol: str, value: float | None, key: str) -> None:
            row(metric, pol, None, None, None, value, key)

        for pol, m in self.polarisations.items():
            pair("KL(real ‖ generated), nats", pol, m.kl.kl if m.kl else None, "kl")
            pair("Mean similarity |Δμ|", pol, m.mean_diff, "mean_std_similarity")
            pair("Std similarity |Δσ|", pol, m.std_diff, "mean_std_similarity")
            pair("SSIM", pol, m.ssim, "ssim")
            pair("SSIM", pol, m.ssim_downsampled, "ssim_downsampled")
            pair("FSIM", pol, m.fsim, "fsim")
            rs, gs = _db_stats(m.real_db), _db_stats(m.gen_db)
            single("mean (dB)", pol, rs["mean_db"] if rs else None, gs["mean_db"])
            single("std (dB)", pol, rs["std_db"] if rs else None, gs["std_db"])
            single("saturated fraction (> μ+3σ)", pol, m.kl.saturated_real if m.kl else None, m.saturated_generated)
            single("ENL (intensity)", pol, m.enl_real.enl if m.enl_real else None, m.enl_generated.enl, "enl")
            for feat in sar.GLCM_FEATURES:
                for i, d in enumerate(sar.GLCM_DISTANCES):
                    if per_angle:
                        for j, a in enumerate(sar.GLCM_ANGLES_DEG):
                            single(
                                f"GLCM {feat} d={d} θ={a}°",
                                pol,
                                float(m.glcm_real[feat][i, j]) if m.glcm_real else None,
                                float(m.glcm_generated[feat][i, j]),
                                "glcm",
                            )
                    else:
                        real = float(np.nanmean(m.glcm_real[feat][i])) if m.glcm_real else None
                        single(
                            f"GLCM {feat} d={d} (mean of 4 angles)",
                            pol,
                            real,
                            float(np.nanmean(m.glcm_generated[feat][i])),
                            "glcm",
                        )
        return pd.DataFrame(
            rows,
            columns=[
                "metric",
                "polarisation",
                "real",
                "generated",
                "generated − real",
                "comparison",
                "protocol",
                "caveat",
            ],
        )

    def csv(self, per_angle: bool = True) -> str:
        buf = io.StringIO()
        self.table(per_angle=per_angle).to_csv(buf, index=False)
        return buf.getvalue()

    def to_csv(self, path: str | os.PathLike, per_angle: bool = True) -> None:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(self.csv(per_angle=per_angle))


# -- entry points ------------------------------------------------------------------------------
def _validated(
    real_vv,
    real_vh,
    gen_vv,
    gen_vh,
    calibration: Calibration = DEFAULT_CALIBRATION,
) -> tuple[dict[str, Any], dict[str, sar.PreparedPair], dict[str, np.ndarray]]:
    """Validate every image before any work: a bad VH is reported before any work on VV."""
    if (real_vv is None) != (real_vh is None):
        raise MetricError("the real image needs both VV and VH (or neither, for a generated-only report)")
    inputs = {"VV": (real_vv, gen_vv), "VH": (real_vh, gen_vh)}
    pairs: dict[str, sar.PreparedPair] = {}
    gens: dict[str, np.ndarray] = {}
    for pol, (real_db, gen_db) in inputs.items():
        if real_db is not None:
            pairs[pol] = sar.prepare_pair(real_db, gen_db, pol, calibration)
            gens[pol] = pairs[pol].gen
        else:
            gens[pol] = sar.check_image(gen_db, f"generated {pol} image")
    return inputs, pairs, gens


def _metrics_but_fsim(
    pol: str,
    pair: sar.PreparedPair | None,
    gen: np.ndarray,
    tick: Callable[[str], None],
    calibration: Calibration = DEFAULT_CALIBRATION,
) -> PolarisationMetrics:
    """Every metric of one polarisation but FSIM (filled in by the caller); ``pair`` None → generated-only."""
    real = pair.real if pair is not None else None
    kl, sat_gen = _kl_of(pair, gen)
    tick(f"{pol}: KL divergence")
    mean_diff, std_diff = sar.mean_std_similarity_prepared(pair) if pair is not None else (None, None)
    tick(f"{pol}: Mean/Std similarity")
    ssim_v = sar.ssim_prepared(pair) if pair is not None else None
    ssim_ds = sar.ssim_prepared(pair, "downsampled") if pair is not None else None
    tick(f"{pol}: SSIM")
    enl_real = sar.enl_checked(real) if real is not None else None
    enl_gen = sar.enl_checked(gen)
    tick(f"{pol}: ENL")
    glcm_real, glcm_gen = _glcm_of(pair, gen, pol, calibration)
    tick(f"{pol}: GLCM")
    return PolarisationMetrics(
        pol, real, gen, kl, mean_diff, std_diff, ssim_v, None, enl_real, enl_gen, glcm_real, glcm_gen, sat_gen, ssim_ds
    )


def _glcm_of(pair: sar.PreparedPair | None, gen: np.ndarray, pol: str, calibration: Calibration = DEFAULT_CALIBRATION):
    glcm_real = sar.glcm_features_unit(pair.real_unit) if pair is not None else None
    glcm_gen = sar.glcm_features_unit(pair.gen_unit if pair is not None else sar.db_to_unit(gen, pol, calibration))
    return glcm_real, glcm_gen


def _kl_of(pair: sar.PreparedPair | None, gen: np.ndarray) -> tuple[sar.KLResult | None, float]:
    """KL (None without a real image) and the generated image's saturated fraction."""
    if pair is not None:
        kl = sar.kl_divergence_prepared(pair)
        return kl, kl.saturated_generated
    return None, float((sar.normalised_amplitude(gen)[0] >= 1.0).mean())


def _ticker(progress: ProgressCallback | None, steps: int):
    """A callable that reports the next of ``steps`` units of work to ``progress``."""
    count = 0

    def tick(message: str) -> None:
        nonlocal count
        count += 1
        if progress:
            progress(count, steps, message)

    return tick


def _context(
    calibration: Calibration | None,
    calibration_source: str | None,
    real_provenance: dict[str, Any] | None,
    generated_provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report fields that come from provenance rather than from the pixels."""
    return {
        "calibration": calibration or DEFAULT_CALIBRATION,
        "calibration_source": calibration_source or ("given" if calibration is not None else "default"),
        "real_s1": real_s1_acquisition(real_provenance),
        "embedding_source": _generated_embedding_source(generated_provenance),
    }


def _generated_embedding_source(provenance: dict[str, Any] | None) -> str:
    """The embedding a *generated* image was made from (its provenance names a model); a scene
    file compared as the "generated" side carries its own embedding_source, which made no SAR."""
    prov = provenance or {}
    return str(prov.get("embedding_source") or "") if prov.get("model_id") or prov.get("generator") else ""


def _import_metric_libraries() -> None:
    """Import the metric libraries here, before the worker threads start.

    scipy's submodules are loaded lazily; two threads importing ``scipy.ndimage`` for the
    first time at once can fail inside the import system (``KeyError: 'scipy'``, seen on a
    cold ``sarviz metrics``). Importing once in the calling thread makes the threads' imports
    plain lookups.
    """
    import scipy.fft  # noqa: F401
    import scipy.ndimage  # noqa: F401
    import skimage.feature  # noqa: F401
    import skimage.metrics  # noqa: F401

    import sarviz.metrics.fsim  # noqa: F401


def compare(
    real_vv: np.ndarray | None,
    real_vh: np.ndarray | None,
    gen_vv: np.ndarray,
    gen_vh: np.ndarray,
    progress: ProgressCallback | None = None,
    grid: dict[str, Any] | None = None,
    calibration: Calibration | None = None,
    real_provenance: dict[str, Any] | None = None,
    calibration_source: str | None = None,
    generated_provenance: dict[str, Any] | None = None,
) -> MetricsReport:
    """All metrics for VV and VH (dB arrays on one grid). ``real_*`` None → generated-only.

    ``calibration``: the dB → [0, 1] mapping of SSIM, FSIM, Mean/Std and GLCM (the
    generating model's; default :data:`~sarviz.calibration.DEFAULT_CALIBRATION`).
    ``real_provenance``: the real image's provenance, read for whether it is a composite
    (the report then flags the speckle-sensitive metrics). ``generated_provenance``: the
    generated image's, read for whether it was made from a PROXY embedding (every row and
    the JSON then say so).

    Each image is validated and mapped to [0, 1] once for all metrics. FSIM (about half of
    the work) runs in a worker thread while this thread computes the others
    (numpy, scipy and scikit-image, which release the GIL too): on two free cores the
    report takes about the time of the slower half, on a busy core no longer than before.
    :func:`inspect_all` also draws the figures meanwhile.
    """
    from concurrent.futures import ThreadPoolExecutor

    _import_metric_libraries()
    ctx = _context(calibration, calibration_source, real_provenance, generated_provenance)
    inputs, pairs, gens = _validated(real_vv, real_vh, gen_vv, gen_vh, ctx["calibration"])
    tick = _ticker(progress, 6 * len(inputs))

    pols: dict[str, PolarisationMetrics] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sarviz-fsim") as pool:
        fsim_future = pool.submit(sar.fsim_prepared, list(pairs.values())) if pairs else None
        for pol in inputs:
            pols[pol] = _metrics_but_fsim(pol, pairs.get(pol), gens[pol], tick, ctx["calibration"])
        fsim_values = dict(zip(pairs, fsim_future.result())) if fsim_future is not None else {}
    for pol in inputs:
        pols[pol].fsim = fsim_values.get(pol)
        tick(f"{pol}: FSIM")
    return MetricsReport(pols, grid=grid or {"height": int(gen_vv.shape[0]), "width": int(gen_vv.shape[1])}, **ctx)


def _grid_of(obj: Any) -> tuple[Any, Any, int, int]:
    return obj.crs, obj.transform, int(obj.width), int(obj.height)


def check_same_grid(real: Any, generated: Any, tolerance_px: float = 0.01) -> None:
    """Refuse two rasters on different grids (CRS, size, or pixel placement), clearly."""
    r_crs, r_tf, r_w, r_h = _grid_of(real)
    g_crs, g_tf, g_w, g_h = _grid_of(generated)
    if (r_w, r_h) != (g_w, g_h):
        raise MetricError(
            f"the images are on different grids: real {r_w}×{r_h} px, generated {g_w}×{g_h} px; "
            "reproject one onto the other first (e.g. gdalwarp -te … -ts …)"
        )
    if r_crs != g_crs:
        raise MetricError(
            f"the images are on different grids: real CRS {r_crs.to_string()}, generated "
            f"{g_crs.to_string()}; reproject one onto the other first"
        )
    res = max(abs(r_tf.a), abs(r_tf.e))
    if not r_tf.almost_equals(g_tf, precision=tolerance_px * res):
        ox, oy = g_tf.c - r_tf.c, g_tf.f - r_tf.f
        raise MetricError(
            f"the images are on different grids: the generated pixels are offset by ({ox:g}, {oy:g}) "
            f"or sized {abs(g_tf.a):g} vs {abs(r_tf.a):g} CRS units; resample one onto the other first"
        )


def _real_sar_and_grid(
    real: Any | None, generated: Any, calibration: Calibration | None = None
) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """Real VV/VH (or None), the grid, and the provenance-derived report context."""
    real_vv = real_vh = None
    if real is not None and getattr(real, "vv_db", None) is not None and getattr(real, "vh_db", None) is not None:
        check_same_grid(real, generated)
        real_vv, real_vh = real.vv_db, real.vh_db
    grid = {
        "crs": generated.crs.to_string(),
        "transform": list(generated.transform)[:6],
        "width": generated.width,
        "height": generated.height,
    }
    if calibration is not None:
        cal, where = calibration, "given"
    else:
        cal, where = calibration_of(getattr(generated, "provenance", None))
    context = {
        "calibration": cal,
        "calibration_source": where,
        "real_provenance": getattr(real, "provenance", None) if real_vv is not None else None,
        "generated_provenance": getattr(generated, "provenance", None),
    }
    return real_vv, real_vh, grid, context


def compare_results(
    real: Any | None, generated: Any, progress: ProgressCallback | None = None, calibration: Calibration | None = None
) -> MetricsReport:
    """Compare a generated image with the real S1 of a scene (or a real GeoTIFF read as a result).

    ``real`` may be a :class:`~sarviz.scene.Scene` (its VV/VH are used; a scene without
    them gives a generated-only report), a :class:`GenerationResult`, or None. The
    calibration is the generated result's own (its provenance ``calibration``) unless
    given; the real image's provenance says whether it is a composite.
    """
    real_vv, real_vh, grid, context = _real_sar_and_grid(real, generated, calibration)
    return compare(real_vv, real_vh, generated.vv_db, generated.vh_db, progress=progress, grid=grid, **context)


# -- files -------------------------------------------------------------------------------------------
def read_sar_file(source: Any, what: str = "file", sar_only: bool = False):
    """Read a GeoTIFF with VV and VH bands (dB) as a :class:`~sarviz.scene.Scene`.

    ``source`` is a path or the bytes of an upload. Accepts a sarviz scene file (71 bands,
    keeping optical and embedding unless ``sar_only``: then only VV and VH are decoded, 2 of
    71 bands), a HuiYanEarth training patch, or any GeoTIFF whose band descriptions include
    ``VV`` and ``VH`` (e.g. a generated result, Sen1Floods11 S1).
    """
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.io import MemoryFile

    def from_dataset(src) -> Scene:
        if src.crs is None:
            raise MetricError(f"{what}: the GeoTIFF has no CRS; the images must be georeferenced to check their grids")
        names = [(d or "").strip() for d in src.descriptions]
        upper = [n.upper() for n in names]
        if tuple(names) in (SCENE_BANDS, TRAINING_PATCH_BANDS) or src.count in (
            len(SCENE_BANDS),
            len(TRAINING_PATCH_BANDS),
        ):
            band_names = _band_names(src)
            picked = [i for i, n in enumerate(band_names) if not sar_only or n in ("VV", "VH")]
            bands = src.read([i + 1 for i in picked], out_dtype="float32")
            tags = src.tags()
            return Scene.from_bands(
                bands,
                tuple(band_names[i] for i in picked),
                crs=src.crs,
                transform=src.transform,
                scene_id=tags.get("SCENE_ID", what),
                provenance=json.loads(tags.get("PROVENANCE", "{}")) or {"source": what},
            )
        if "VV" not in upper or "VH" not in upper:
            raise MetricError(
                f"{what}: needs bands named VV and VH (dB); its {src.count} band(s) are named "
                f"{[n or '(unnamed)' for n in names]}"
            )
        # masked read: the file's nodata value (if any) becomes NaN, our "missing"
        vv, vh = (src.read(upper.index(b) + 1, out_dtype="float32", masked=True).filled(np.nan) for b in ("VV", "VH"))
        tags = src.tags()
        try:
            prov = json.loads(tags.get("PROVENANCE", "{}"))
        except json.JSONDecodeError:
            prov = {}
        return Scene(
            crs=src.crs,
            transform=src.transform,
            width=src.width,
            height=src.height,
            vv_db=vv,
            vh_db=vh,
            scene_id=what,
            provenance=prov or {"source": "file", "name": what},
        )

    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            with MemoryFile(bytes(source)) as mem, mem.open() as src:
                scene = from_dataset(src)
        else:
            if not os.path.exists(source):
                raise MetricError(f"{what}: {source} does not exist")
            with rasterio.open(source) as src:
                scene = from_dataset(src)
    except RasterioIOError as exc:
        # GDAL names an upload by its in-memory path (/vsimem/…): a server detail, not the user's file
        why = re.sub(r"/vsimem/[^\s'\",)]+", "the uploaded file", str(exc))
        raise MetricError(f"{what}: not a readable GeoTIFF ({why})") from None
    for pol, arr in (("VV", scene.vv_db), ("VH", scene.vh_db)):
        check_looks_like_db(arr, f"{what} {pol}")
    return scene


def check_looks_like_db(arr: np.ndarray | None, what: str) -> None:
    """Refuse SAR values that are plainly not backscatter in dB (linear power, or DN).

    Land and water backscatter in dB has its median far below 0 dB (about −25 to −5 dB);
    linear power is non-negative with a median well below 1, and digital numbers run to
    hundreds. Comparing such a file as if it were dB would give meaningless metrics.
    """
    if arr is None:
        return
    values = arr[np.isfinite(arr)]
    if values.size < 16:
        return
    median = float(np.median(values))
    if median > 5.0:
        raise MetricError(
            f"{what}: median {median:.3g} does not look like backscatter in dB (digital numbers or "
            "amplitude?); convert to σ⁰ in dB first"
        )
    if (values >= 0).mean() > 0.99 and median < 1.5:
        raise MetricError(
            f"{what}: all values are ≥ 0 with median {median:.3g}: this looks like linear power, "
            "not dB; convert with 10·log10(σ⁰) first"
        )


def compare_files(real_path: Any, generated_path: Any, progress: ProgressCallback | None = None) -> MetricsReport:
    """Read two GeoTIFFs with VV/VH bands and compare them (what ``sarviz metrics`` does)."""
    real = read_sar_file(real_path, f"real image {real_path}", sar_only=True)
    gen_scene = read_sar_file(generated_path, f"generated image {generated_path}", sar_only=True)
    if real.vv_db is None or real.vh_db is None:
        raise MetricError(f"{real_path}: the real image has no VV/VH values (all missing)")
    if gen_scene.vv_db is None or gen_scene.vh_db is None:
        raise MetricError(f"{gen_scene.scene_id or 'the image'}: VV or VH is missing everywhere (no valid pixel)")
    return compare_results(real, gen_scene, progress=progress)
