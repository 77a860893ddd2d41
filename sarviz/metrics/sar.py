"""Fidelity metrics of a synthetic Sentinel-1 image against a real one (one polarisation).

Every function takes backscatter in **dB** on one grid (2-D float arrays, NaN = missing)
and follows the definitions in ``docs/metrics.md`` — the single place they are written
down; the CLI, the report and the UI all call these functions, so the numbers agree.

* :func:`kl_divergence` — amplitude-histogram KL(real ‖ generated) after seed 001
  (amplitude / (μ + 3σ), clipped to [0, 1], saturated pixels excluded and reported).
* :func:`mean_std_similarity` — |Δ mean| and |Δ std| on the fixed dB → [0, 1] mapping
  (our reading of seed 000, table I — the paper gives no formula; lower is better).
* :func:`ssim` (scikit-image; full resolution or Wang's downsampled variant) and :func:`fsim`
  (piq) on the same fixed mapping.
* :func:`enl` — equivalent number of looks μ²/σ² of intensity on automatically found
  homogeneous windows (edges, point and line targets rejected).
* :func:`glcm_features` — contrast, homogeneity, correlation, entropy (scikit-image) at
  distances 1, 2, 4 and angles 0°, 45°, 90°, 135° as exact lag vectors, on the fixed
  mapping quantised to 32 grey levels.

The fixed dB → [0, 1] mapping is a :class:`~sarviz.calibration.Calibration` (the model's,
else the default): every function taking ``pol`` also takes ``calibration=``.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from sarviz.calibration import DEFAULT_CALIBRATION, POLARISATIONS, Calibration
from sarviz.errors import MetricError  # noqa: F401 - re-exported

# -- the fixed dB → [0, 1] mapping (shared with the model and the display stretch) -------------
# SSIM, FSIM, Mean/Std similarity and GLCM map dB linearly onto [0, 1] (clipped) through a
# :class:`~sarviz.calibration.Calibration` — the generating model's own when its result
# declares one, else DEFAULT_CALIBRATION. It is the same mapping the model was trained
# through and the display stretch, so "same grey = same backscatter" holds for the numbers
# as well as for the pictures, and no generator is scored on values it cannot produce.
#: The default calibration's ranges (a read-only view kept for older callers; not a second copy).
UNIT_DB_RANGES: dict[str, tuple[float, float]] = dict(DEFAULT_CALIBRATION.ranges)

# -- KL (seed 001) ------------------------------------------------------------------------------
KL_BINS = 100  # bins of width 0.01 on the normalised amplitude [0, 1)
KL_EPSILON = 1e-6  # probability added to every bin before renormalising (empty bins → finite KL)

# -- SSIM / FSIM --------------------------------------------------------------------------------
SSIM_SIGMA = 1.5  # Gaussian window σ of Wang et al. (2004); 11×11 kernel
SSIM_KERNEL = 11
#: SSIM variants, named next to every SSIM value. "full": every pixel (speckle counts);
#: "downsampled": first average-pooled by round(min(H, W) / 256), as Wang's reference
#: MATLAB code and piq's default do (a 512² pair is scored at 256², speckle half averaged out).
SSIM_VARIANTS: dict[str, str] = {
    "full": "full resolution (scikit-image, Wang et al. 2004 Gaussian window, no downsampling)",
    "downsampled": "downsampled by round(min(H, W)/256) first, as Wang's reference code and piq's default",
}
SSIM_DOWNSAMPLE_TARGET = 256
MIN_SIZE_PX = 32  # smaller images give meaningless SSIM/FSIM/ENL windows

# -- ENL ----------------------------------------------------------------------------------------
ENL_WINDOW = 16  # px, side of the square windows tested for homogeneity
ENL_SMOOTH_SIGMA = 3.0  # px, Gaussian smoothing of log-intensity before the edge test
# A window is homogeneous when its edge score is at most ENL_SCORE_FACTOR × the
# ENL_SCORE_QUANTILE quantile of all windows' scores. Under pure speckle the score's spread
# across windows is nearly the same for any ENL and speckle correlation (coefficient of
# variation ≈ 0.2), so this keeps ~93–98 % of pure-speckle windows: almost no selection by a
# window's own variance, which is what biased the old "flattest 25 %" rule (+17 % ENL on
# Sentinel-1-like correlated speckle).
ENL_SCORE_QUANTILE = 0.10
ENL_SCORE_FACTOR = 2.0
ENL_MIN_WINDOWS = 4
# Point and line targets (buildings, pylons, roads, ships) are tested on *intensity at full
# resolution*: the smoothed edge score above dilutes a single bright pixel, yet one +10 dB
# pixel in a 16 px window triples its intensity variance. A window is rejected when its
# log squared coefficient of variation, or its log max-to-mean ratio, lies above
# median + ENL_TARGET_K × (1.4826 · MAD) of those of the windows passing the edge test —
# robust statistics, so up to ~half the windows may hold targets. ENL_TARGET_ROUNDS
# re-estimates median and MAD on the windows kept (targets pull the first estimate up).
# Under pure speckle the tests reject ~0.5 % of windows (those with the largest own
# variance), which raises ENL by < 1 % (benchmarks/RESULTS_metrics.md).
ENL_TARGET_K = 3.0
ENL_TARGET_ROUNDS = 3

# -- GLCM (seed 001) ----------------------------------------------------------------------------
GLCM_LEVELS = 32
GLCM_DISTANCES: tuple[int, ...] = (1, 2, 4)
GLCM_ANGLES_DEG: tuple[int, ...] = (0, 45, 90, 135)
GLCM_FEATURES: tuple[str, ...] = ("contrast", "homogeneity", "correlation", "entropy")


# -- inputs ----------------------------------------------------------------------------------------
def check_image(db: np.ndarray, what: str = "image") -> np.ndarray:
    """Validate one dB image and return it as float32 (NaN where missing).

    Refuses what would only produce NaN soup: not 2-D, too small, no valid pixel, constant.
    """
    arr = np.asarray(db, dtype=np.float32)
    if arr.ndim != 2:
        raise MetricError(f"{what}: expected a 2-D dB image, got an array of shape {arr.shape}")
    h, w = arr.shape
    if h < MIN_SIZE_PX or w < MIN_SIZE_PX:
        raise MetricError(f"{what}: {h}×{w} px is too small; the metrics need at least {MIN_SIZE_PX}×{MIN_SIZE_PX} px")
    arr = np.where(np.isfinite(arr), arr, np.nan).astype(np.float32, copy=False)
    valid = np.isfinite(arr)
    if not valid.any():
        raise MetricError(f"{what}: every pixel is missing (NaN); there is nothing to measure")
    if valid.mean() < 0.5:
        raise MetricError(f"{what}: only {valid.mean():.0%} of the pixels are valid; the metrics need at least half")
    vmin, vmax = np.nanmin(arr), np.nanmax(arr)
    if vmax - vmin < 1e-6:
        raise MetricError(
            f"{what}: the image is constant ({vmin:.2f} dB everywhere); its statistics and "
            "texture are undefined — is the generator or the file broken?"
        )
    return arr


def check_pair(real_db: np.ndarray, gen_db: np.ndarray, pol: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Validate a real/generated pair on one grid."""
    label = f"{pol} " if pol else ""
    real = check_image(real_db, f"real {label}image")
    gen = check_image(gen_db, f"generated {label}image")
    if real.shape != gen.shape:
        raise MetricError(
            f"{label}images differ in size: real {real.shape[0]}×{real.shape[1]} px, generated "
            f"{gen.shape[0]}×{gen.shape[1]} px; put both on the same grid first"
        )
    both = np.isfinite(real) & np.isfinite(gen)
    if both.mean() < 0.5:
        raise MetricError(f"{label}images share only {both.mean():.0%} valid pixels; the metrics need at least half")
    return real, gen


def _check_pol(pol: str) -> str:
    if pol not in POLARISATIONS:
        raise MetricError(f"unknown polarisation {pol!r}; use one of {', '.join(POLARISATIONS)}")
    return pol


@dataclass
class PreparedPair:
    """A validated real/generated pair of one polarisation and what every metric of it needs.

    :func:`prepare_pair` validates once and maps dB → [0, 1] once; the ``*_prepared``
    functions take it, so :func:`sarviz.metrics.report.compare` does not repeat that work
    for each metric. The public metric functions build one and give the same numbers.
    """

    pol: str
    real: np.ndarray  # float32 dB, NaN = missing
    gen: np.ndarray
    both: np.ndarray  # bool: valid in both images
    all_valid: bool
    real_unit: np.ndarray  # the fixed [0, 1] mapping of each image, NaN where that image is missing
    gen_unit: np.ndarray
    calibration: Calibration = DEFAULT_CALIBRATION  # the dB → [0, 1] mapping used for *_unit

    def in_both(self, arr: np.ndarray) -> np.ndarray:
        """The values of a (H, W) array at the pixels valid in both images (1-D)."""
        return arr.ravel() if self.all_valid else arr[self.both]


def prepare_pair(
    real_db: np.ndarray, gen_db: np.ndarray, pol: str, calibration: Calibration | None = None
) -> PreparedPair:
    """Validate a real/generated pair (:func:`check_pair`) and map both to [0, 1] once."""
    _check_pol(pol)
    cal = calibration or DEFAULT_CALIBRATION
    real, gen = check_pair(real_db, gen_db, pol)
    both = np.isfinite(real) & np.isfinite(gen)
    return PreparedPair(
        pol, real, gen, both, bool(both.all()), db_to_unit(real, pol, cal), db_to_unit(gen, pol, cal), cal
    )


# -- unit conversions ------------------------------------------------------------------------------
def db_to_intensity(db: np.ndarray) -> np.ndarray:
    """σ⁰ in linear power (intensity): 10^(dB/10)."""
    return np.power(10.0, np.asarray(db, dtype=np.float64) / 10.0)


def db_to_amplitude(db: np.ndarray) -> np.ndarray:
    """Amplitude: √intensity = 10^(dB/20)."""
    return np.power(10.0, np.asarray(db, dtype=np.float64) / 20.0)


def db_to_unit(db: np.ndarray, pol: str, calibration: Calibration | None = None) -> np.ndarray:
    """The fixed dB → [0, 1] mapping of ``calibration`` (default: DEFAULT_CALIBRATION):
    (dB − lo) / (hi − lo), clipped; NaN stays NaN."""
    return (calibration or DEFAULT_CALIBRATION).to_unit(db, _check_pol(pol))


# -- histograms ------------------------------------------------------------------------------------
def normalised_amplitude(db: np.ndarray) -> tuple[np.ndarray, float]:
    """Seed 001's normalisation A / (μ_A + 3σ_A), clipped to [0, 1], of one image
    (:func:`sarviz.amplitude.normalise_amplitude`, the one implementation).

    Returns the valid normalised values (1-D) and the threshold μ_A + 3σ_A.
    """
    from sarviz.amplitude import AmplitudeError, normalise_amplitude

    try:
        unit, stats = normalise_amplitude(db)
    except AmplitudeError as exc:
        raise MetricError(str(exc)) from None
    unit = unit.ravel()
    return (unit if stats.n_valid == unit.size else unit[np.isfinite(unit)]), stats.threshold


@dataclass
class KLResult:
    kl: float  # KL(real ‖ generated), nats
    saturated_real: float  # fraction of valid real pixels at the μ+3σ clip (excluded from the histogram)
    saturated_generated: float
    bin_edges: np.ndarray  # (KL_BINS + 1,)
    p_real: np.ndarray  # renormalised histograms (sum 1) the KL is computed from
    q_generated: np.ndarray


def amplitude_histogram(db: np.ndarray, bins: int = KL_BINS) -> tuple[np.ndarray, float, np.ndarray]:
    """Histogram of the normalised amplitude without the saturated pixels.

    Returns (probabilities summing to 1, saturated fraction, bin edges on [0, 1]).
    """
    values, _ = normalised_amplitude(db)
    saturated = values >= 1.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts, _ = np.histogram(values[~saturated], bins=edges)
    total = counts.sum()
    if total == 0:
        raise MetricError("every pixel is saturated after the μ+3σ normalisation; the amplitude histogram is empty")
    return counts / total, float(saturated.mean()), edges


def kl_divergence(real_db: np.ndarray, gen_db: np.ndarray, bins: int = KL_BINS, eps: float = KL_EPSILON) -> KLResult:
    """KL(real ‖ generated) of the normalised-amplitude histograms (seed 001, eq. 4), in nats.

    Pixels missing in either image are dropped from both, so the two histograms describe
    the same ground. ``eps`` is added to every bin of both histograms before they are
    renormalised, so that an empty generated bin gives a large but finite divergence.
    """
    real, gen = check_pair(real_db, gen_db)
    both = np.isfinite(real) & np.isfinite(gen)
    return _kl(real[both], gen[both], bins, eps)


def kl_divergence_prepared(pair: PreparedPair, bins: int = KL_BINS, eps: float = KL_EPSILON) -> KLResult:
    """:func:`kl_divergence` of a :class:`PreparedPair`."""
    return _kl(pair.in_both(pair.real), pair.in_both(pair.gen), bins, eps)


def _kl(real_values: np.ndarray, gen_values: np.ndarray, bins: int, eps: float) -> KLResult:
    p, sat_r, edges = amplitude_histogram(real_values, bins)
    q, sat_g, _ = amplitude_histogram(gen_values, bins)
    return KLResult(kl_of_histograms(p, q, eps), sat_r, sat_g, edges, p, q)


def kl_of_histograms(p: np.ndarray, q: np.ndarray, eps: float = KL_EPSILON) -> float:
    """KL(P ‖ Q) in nats of two histograms (counts or probabilities), ε added to every bin of
    both before renormalising (an empty Q bin gives a large but finite value)."""
    p_s = p / p.sum() + eps
    q_s = q / q.sum() + eps
    p_s, q_s = p_s / p_s.sum(), q_s / q_s.sum()
    return max(float(np.sum(p_s * np.log(p_s / q_s))), 0.0)


def db_histogram_range(pol: str, calibration: Calibration | None = None) -> tuple[float, float]:
    """The dB span of :func:`db_histogram`: the calibration's range widened by 10 dB each side."""
    lo, hi = (calibration or DEFAULT_CALIBRATION).range(_check_pol(pol))
    return lo - 10.0, hi + 10.0


def db_histogram(
    db: np.ndarray, pol: str, bins: int = 120, calibration: Calibration | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Density histogram in dB over the pol's calibrated range widened by 10 dB each side."""
    lo, hi = db_histogram_range(pol, calibration)
    edges = np.linspace(lo, hi, bins + 1)
    values = np.asarray(db, dtype=np.float32)
    counts, _ = np.histogram(values[np.isfinite(values)], bins=edges, density=True)
    return counts, edges


# -- radiometry ------------------------------------------------------------------------------------
def mean_std_similarity(
    real_db: np.ndarray, gen_db: np.ndarray, pol: str, calibration: Calibration | None = None
) -> tuple[float, float]:
    """Seed 000's Mean/Std similarity (lower is better): (|μ_g − μ_r|, |σ_g − σ_r|).

    Means and standard deviations are of the fixed dB → [0, 1] mapping over the pixels
    valid in both images (see docs/metrics.md for why this reading of the paper).
    """
    return mean_std_similarity_prepared(prepare_pair(real_db, gen_db, pol, calibration))


def mean_std_similarity_prepared(pair: PreparedPair) -> tuple[float, float]:
    """:func:`mean_std_similarity` of a :class:`PreparedPair`."""
    r = pair.in_both(pair.real_unit).astype(np.float64)
    g = pair.in_both(pair.gen_unit).astype(np.float64)
    return abs(float(g.mean() - r.mean())), abs(float(g.std() - r.std()))


# -- structure -------------------------------------------------------------------------------------
def ssim(
    real_db: np.ndarray, gen_db: np.ndarray, pol: str, calibration: Calibration | None = None, variant: str = "full"
) -> float:
    """SSIM (Wang et al. 2004: Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03) on the fixed mapping.

    Computed at full resolution with scikit-image's ``structural_similarity`` rather than
    torchmetrics/piq: same values (to 1e-5 on 512² tests) but separable Gaussian filtering,
    ~3× faster on CPU, and it returns the SSIM map, which is averaged over the pixels
    whose whole window is valid in both images (missing pixels never count).

    ``variant="full"`` (default) scores every pixel; ``"downsampled"`` first average-pools
    both images by :func:`ssim_downsample_factor` as Wang's reference code and piq's
    default do (:data:`SSIM_VARIANTS`); quote the variant with the value.
    """
    return ssim_prepared(prepare_pair(real_db, gen_db, pol, calibration), variant=variant)


def ssim_downsample_factor(height: int, width: int) -> int:
    """The pooling factor of the "downsampled" SSIM variant: max(1, round(min(H, W) / 256))."""
    return max(1, round(min(height, width) / SSIM_DOWNSAMPLE_TARGET))


def _average_pool(unit: np.ndarray, factor: int) -> np.ndarray:
    """factor×factor block means (trailing rows/columns dropped, as torch's avg_pool2d);
    a block with a missing pixel is missing."""
    h, w = (unit.shape[0] // factor) * factor, (unit.shape[1] // factor) * factor
    return (
        unit[:h, :w]
        .reshape(h // factor, factor, w // factor, factor)
        .mean(axis=(1, 3), dtype=np.float64)
        .astype(np.float32)
    )


def ssim_prepared(pair: PreparedPair, variant: str = "full") -> float:
    """:func:`ssim` of a :class:`PreparedPair`; ``variant`` is a key of :data:`SSIM_VARIANTS`."""
    if variant not in SSIM_VARIANTS:
        raise MetricError(f"unknown SSIM variant {variant!r}; use one of {', '.join(SSIM_VARIANTS)}")
    real_u, gen_u, both, all_valid = pair.real_unit, pair.gen_unit, pair.both, pair.all_valid
    if variant == "downsampled":
        factor = ssim_downsample_factor(*real_u.shape)
        if factor > 1:
            real_u = _average_pool(np.where(both, real_u, np.nan), factor)
            gen_u = _average_pool(np.where(both, gen_u, np.nan), factor)
            both = np.isfinite(real_u) & np.isfinite(gen_u)
            all_valid = bool(both.all())
            if min(both.shape) <= SSIM_KERNEL:
                raise MetricError(
                    f"{pair.pol}: {both.shape[0]}×{both.shape[1]} px after downsampling is too small "
                    "for SSIM's 11×11 window"
                )
    return _ssim_unit(real_u, gen_u, both, all_valid, pair.pol)


def _ssim_unit(real_u: np.ndarray, gen_u: np.ndarray, both: np.ndarray, all_valid: bool, pol: str) -> float:
    from scipy.ndimage import binary_erosion
    from skimage.metrics import structural_similarity

    # the fill value never reaches the mean: windows touching a missing pixel are dropped below
    if not all_valid:
        real_u = np.where(both, real_u, np.float32(0.5))
        gen_u = np.where(both, gen_u, np.float32(0.5))
    _, ssim_map = structural_similarity(
        real_u,
        gen_u,
        data_range=1.0,
        gaussian_weights=True,
        sigma=SSIM_SIGMA,
        use_sample_covariance=False,
        K1=0.01,
        K2=0.03,
        full=True,
    )
    # scikit-image averages the map without a border of half the window; do the same
    pad = (SSIM_KERNEL - 1) // 2
    usable = np.zeros_like(both)
    usable[pad:-pad, pad:-pad] = True
    if not all_valid:
        usable &= binary_erosion(both, structure=np.ones((SSIM_KERNEL, SSIM_KERNEL), bool), border_value=1)
    if not usable.any():
        raise MetricError(f"{pol}: no {SSIM_KERNEL}×{SSIM_KERNEL} window is free of missing pixels; SSIM is undefined")
    return float(ssim_map[usable].mean())


# One intra-op torch thread for FSIM: its small FFTs gain little from two, and on a busy
# 2-core machine OpenMP threads spin-wait — measured 15× slower (1.5 s vs 0.1 s per image).
# The setting is process-wide, so it is restored as soon as the last user leaves (a
# generation running in another thread is slowed for at most these ~0.1 s). Parallelism
# comes instead from running FSIM beside the other metrics (see report.compare).
_torch_threads_lock = threading.Lock()
_torch_threads_users = 0
_torch_threads_saved = 0


@contextmanager
def torch_single_thread():
    """Run torch with one intra-op thread inside the block (nestable, thread-safe)."""
    import torch

    global _torch_threads_users, _torch_threads_saved
    with _torch_threads_lock:
        if _torch_threads_users == 0:
            _torch_threads_saved = torch.get_num_threads()
            torch.set_num_threads(1)
        _torch_threads_users += 1
    try:
        yield
    finally:
        with _torch_threads_lock:
            _torch_threads_users -= 1
            if _torch_threads_users == 0:
                torch.set_num_threads(_torch_threads_saved)


def _fsim_input(unit: np.ndarray, pair: PreparedPair) -> np.ndarray:
    """An image's [0, 1] mapping for FSIM: pixels missing in either image get its own mean."""
    if pair.all_valid:
        return unit
    unit = np.where(pair.both, unit, np.nan)  # compare the same ground only
    return np.where(pair.both, unit, np.float32(np.nanmean(unit))).astype(np.float32)


def fsim(real_db: np.ndarray, gen_db: np.ndarray, pol: str, calibration: Calibration | None = None) -> float:
    """FSIM (Zhang et al. 2011, grey-level, 4 scales × 4 orientations; piq's algorithm) on the fixed mapping.

    piq follows the reference implementation and first average-pools the image by
    round(min(H, W) / 256) (a 512² image is scored at 256²). Missing pixels are filled
    with each image's own mean, which has ~no phase congruency and so ~no weight.
    """
    return fsim_prepared([prepare_pair(real_db, gen_db, pol, calibration)])[0]


def fsim_prepared(pairs: list[PreparedPair]) -> list[float]:
    """:func:`fsim` of several :class:`PreparedPair` — one batched call when they share a size.

    :func:`sarviz.metrics.fsim.fsim_grey` is a NumPy port of piq's ``fsim`` (same numbers to
    1e-7; piq's import alone, torch and torchvision, cost more than every metric's computation).
    It scores each image of a batch on its own and builds the log-Gabor filters once per size.
    """
    from sarviz.metrics.fsim import fsim_grey

    groups: dict[tuple[int, ...], list[int]] = {}
    for i, pair in enumerate(pairs):
        groups.setdefault(pair.real.shape, []).append(i)
    values = [float("nan")] * len(pairs)
    for indices in groups.values():
        gen = np.stack([_fsim_input(pairs[i].gen_unit, pairs[i]) for i in indices])
        real = np.stack([_fsim_input(pairs[i].real_unit, pairs[i]) for i in indices])
        for i, score in zip(indices, np.atleast_1d(fsim_grey(gen, real, data_range=1.0)).tolist()):
            values[i] = float(score)
    return values


# -- speckle ---------------------------------------------------------------------------------------
@dataclass
class ENLResult:
    enl: float  # equivalent number of looks, intensity μ²/σ² on homogeneous windows
    n_windows: int  # homogeneous windows used
    window_px: int
    windows: np.ndarray  # (n, 2) row/col of the top-left corner of each window used
    rejected_targets: int = 0  # windows passing the edge test but rejected as holding point/line targets


@dataclass
class _WindowSelection:
    corners: np.ndarray  # (n, 2) top-left corners of the homogeneous windows
    cv2: np.ndarray  # their squared coefficients of variation of intensity (ddof = 1)
    rejected_targets: int


def _robust_upper(values: np.ndarray, k: float) -> float:
    """median + k · 1.4826 · MAD: an outlier bound that up to half the values being outliers cannot move far."""
    med = float(np.median(values))
    return med + k * 1.4826 * float(np.median(np.abs(values - med)))


def homogeneous_windows(db: np.ndarray, window: int = ENL_WINDOW, factor: float = ENL_SCORE_FACTOR) -> np.ndarray:
    """Top-left (row, col) of the homogeneous ``window``×``window`` tiles of an image.

    Two tests, both needed:

    1. **structure** — edge score of a tile: the log-intensity (dB) smoothed with a Gaussian
       of σ = 3 px (beyond the speckle correlation length of ~1–2 px, so the score is
       dominated by structure, not by the tile's own speckle), then the Sobel gradient
       magnitude averaged over the tile. A complete, fully valid tile passes when its score
       is at most ``factor`` × the 10th percentile of all tiles' scores.
    2. **point and line targets** — on intensity at full resolution (the smoothing of test 1
       hides them): a tile passing test 1 is rejected when its log squared coefficient of
       variation or its log max-to-mean ratio is a robust outlier among the tiles passing
       test 1 (above median + 3 × 1.4826 · MAD, re-estimated on the kept tiles 3 times).

    If fewer than 4 tiles pass, the 4 with the lowest edge scores are used.

    Why thresholds and not "the flattest N %": on spatially correlated speckle the flattest
    tiles are also the ones with the lowest variance, so keeping few of them inflates ENL
    (+17 % at Sentinel-1's correlation). Both thresholds instead pass nearly every
    pure-speckle tile (test 1: 93–98 %; test 2: ~99.5 %), so selection barely depends on a
    tile's own variance, while edges, texture and bright targets are far outside. The 10th
    percentile anchors test 1 to the image's flattest ground, so at least ~10 % of the tiles
    must be homogeneous for ENL to describe speckle rather than texture.
    """
    return _select_windows(np.asarray(db, dtype=np.float64), window, factor).corners


def structure_gradient(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(valid mask, dB with missing pixels set to the median, Sobel gradient magnitude of that
    image smoothed with a Gaussian of σ = ENL_SMOOTH_SIGMA px): the structure that homogeneity
    tests look at (ENL windows here, seed-001 patches in :mod:`sarviz.metrics.protocols`).

    dB is 10·log10(intensity): smoothing in dB is smoothing log-intensity, whose speckle
    statistics do not depend on the backscatter level (dark and bright fields score alike).
    """
    from scipy.ndimage import gaussian_filter, sobel

    valid = np.isfinite(arr)
    filled = arr if valid.all() else np.where(valid, arr, np.nanmedian(arr))
    smooth = gaussian_filter(filled, ENL_SMOOTH_SIGMA)
    return valid, filled, np.hypot(sobel(smooth, 0), sobel(smooth, 1))


def _select_windows(arr: np.ndarray, window: int = ENL_WINDOW, factor: float = ENL_SCORE_FACTOR) -> _WindowSelection:
    valid, filled, grad = structure_gradient(arr)
    h, w = arr.shape
    nr, nc = h // window, w // window
    if nr * nc < ENL_MIN_WINDOWS:
        raise MetricError(f"image of {h}×{w} px has fewer than {ENL_MIN_WINDOWS} windows of {window} px for ENL")
    crop = (slice(0, nr * window), slice(0, nc * window))
    tiles = lambda a: a[crop].reshape(nr, window, nc, window).swapaxes(1, 2)  # noqa: E731
    tile_valid = tiles(valid).all(axis=(2, 3))
    candidates = np.argwhere(tile_valid)
    if len(candidates) < ENL_MIN_WINDOWS:
        raise MetricError(
            f"fewer than {ENL_MIN_WINDOWS} windows of {window} px are free of missing pixels; ENL is undefined"
        )
    score = tiles(grad).mean(axis=(2, 3))[tile_valid]
    edge_ok = score <= factor * np.quantile(score, ENL_SCORE_QUANTILE)

    # intensity statistics of every complete tile, at full resolution
    intensity = tiles(db_to_intensity(filled))[tile_valid].reshape(len(candidates), -1)
    mean = intensity.mean(axis=1)
    cv2 = intensity.var(axis=1, ddof=1) / mean**2
    with np.errstate(divide="ignore"):
        log_cv2 = np.log(cv2)
        log_max_mean = np.log(intensity.max(axis=1) / mean)
    keep = edge_ok.copy()
    for _ in range(ENL_TARGET_ROUNDS):
        if keep.sum() < ENL_MIN_WINDOWS:
            break
        keep = (
            edge_ok
            & (log_cv2 <= _robust_upper(log_cv2[keep], ENL_TARGET_K))
            & (log_max_mean <= _robust_upper(log_max_mean[keep], ENL_TARGET_K))
        )
    rejected = int(edge_ok.sum() - keep.sum())
    chosen = np.flatnonzero(keep)
    if len(chosen) < ENL_MIN_WINDOWS:
        chosen = np.flatnonzero(edge_ok)
        rejected = 0
    if len(chosen) < ENL_MIN_WINDOWS:
        chosen = np.sort(np.argsort(score, kind="stable")[:ENL_MIN_WINDOWS])
    return _WindowSelection(candidates[chosen] * window, cv2[chosen], rejected)


def enl(db: np.ndarray, window: int = ENL_WINDOW, what: str = "image") -> ENLResult:
    """Equivalent number of looks of an intensity image on its homogeneous windows.

    ENL = 1 / mean_k(σ_k² / μ_k²): per window k the squared coefficient of variation of
    intensity (σ² with ddof=1), averaged over the homogeneous windows, then inverted —
    the pooled form of μ²/σ², less biased than averaging per-window ratios.
    """
    return enl_checked(check_image(db, what), window)


def enl_checked(arr: np.ndarray, window: int = ENL_WINDOW) -> ENLResult:
    """:func:`enl` of an image already validated by :func:`check_image` / :func:`check_pair`."""
    sel = _select_windows(np.asarray(arr, dtype=np.float64), window)
    return ENLResult(float(1.0 / sel.cv2.mean()), len(sel.corners), window, sel.corners, sel.rejected_targets)


# -- texture ---------------------------------------------------------------------------------------
def quantise(db: np.ndarray, pol: str, levels: int = GLCM_LEVELS, calibration: Calibration | None = None) -> np.ndarray:
    """Grey levels for the GLCM: the fixed [0, 1] mapping cut into ``levels`` equal bins.

    Level k ∈ 1..levels holds unit values in [(k−1)/levels, k/levels) (1.0 goes to the top
    level); level 0 marks a missing pixel.
    """
    return quantise_unit(db_to_unit(db, pol, calibration), levels)


def quantise_unit(unit: np.ndarray, levels: int = GLCM_LEVELS) -> np.ndarray:
    """:func:`quantise` of an image already on the fixed [0, 1] mapping (NaN = missing)."""
    q = np.minimum(np.floor(np.nan_to_num(unit, nan=0.0) * levels), levels - 1).astype(np.uint8) + 1
    q[~np.isfinite(unit)] = 0
    return q


def glcm_lag_vector(distance: int, angle_deg: float) -> tuple[int, int]:
    """The exact pixel lag (row, col) of GLCM distance ``distance`` at ``angle_deg``.

    Convention (Haralick 1973; MATLAB ``graycomatrix`` offsets [0 D; −D D; −D 0; −D −D]):
    ``distance`` is the chessboard (Chebyshev) distance, so 0° → (0, d), 45° → (−d, d),
    90° → (−d, 0), 135° → (−d, −d); the diagonal lags are d·√2 long. Rows count down, so a
    positive angle points up. Why not scikit-image's own rounding of d·(sin θ, cos θ):
    it maps d = 2 at 45° onto (−1, 1), the same lag as d = 1 (and d = 4 onto (−3, 3)), so
    the texture at distance 2 along the diagonals was never measured.
    """
    theta = np.deg2rad(angle_deg)
    scale = distance / max(abs(np.cos(theta)), abs(np.sin(theta)))
    return int(-np.round(np.sin(theta) * scale)), int(np.round(np.cos(theta) * scale))


def glcm_features_from_levels(
    levels_img: np.ndarray, levels: int, distances=GLCM_DISTANCES, angles_deg=GLCM_ANGLES_DEG
) -> dict[str, np.ndarray]:
    """GLCM features of an image of grey levels 1..levels (0 = missing), via scikit-image.

    One co-occurrence matrix per exact lag vector (:func:`glcm_lag_vector`). The GLCM is
    symmetric (both directions counted) and normalised over pairs of valid pixels only:
    the row and column of level 0 are dropped before normalisation.
    Returns feature → array (len(distances), len(angles)).
    """
    from skimage.feature import graycomatrix

    if levels_img.min() < 0 or levels_img.max() > levels:
        raise MetricError(f"grey levels must lie in 0..{levels}")
    img = levels_img.astype(np.uint8)
    counts = np.zeros((levels, levels, len(distances), len(angles_deg)), dtype=np.float64)
    for j, angle in enumerate(angles_deg):
        theta = np.deg2rad(angle)
        # scikit-image takes the lag as a length and an angle and rounds length·(sin, cos) to
        # pixels; asking for the Chebyshev-scaled length makes that rounding land exactly on
        # the lag vector (tests/test_metrics.py compares every lag with a brute-force count).
        lengths = [d / max(abs(np.cos(theta)), abs(np.sin(theta))) for d in distances]
        # scikit-image pairs (r, c) with (r + round(L·sin θ), c + round(L·cos θ)): rows grow
        # downwards, so its 45° points down-right; −θ gives the up-right lag of our convention
        counts[:, :, :, j] = graycomatrix(img, lengths, [-theta], levels=levels + 1, symmetric=True, normed=False)[
            1:, 1:, :, 0
        ]
    return glcm_features_from_counts(counts)


def glcm_features_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """GLCM features of co-occurrence counts (levels, levels, …): normalised per trailing
    index, features of shape counts.shape[2:]. Missing-pixel pairs must already be dropped."""
    from skimage.feature import graycoprops

    levels = counts.shape[0]
    trailing = counts.shape[2:]
    counts = counts.reshape(levels, levels, -1, 1).astype(np.float64)
    totals = counts.sum(axis=(0, 1), keepdims=True)
    if (totals == 0).any():
        raise MetricError("no pair of valid pixels at some GLCM distance/angle; the image is too small or too sparse")
    glcm = counts / totals
    out = {name: graycoprops(glcm, name) for name in ("contrast", "homogeneity", "correlation")}
    # scikit-image's 'entropy' is −Σ P log P in natural log, as in seed 001 (their ε only guards log 0).
    out["entropy"] = graycoprops(glcm, "entropy")
    # A GLCM with a single occupied level has zero variance: correlation is undefined
    # (scikit-image returns 1). Report NaN instead of a made-up perfect correlation.
    i = np.arange(levels, dtype=np.float64)[:, None, None, None]
    var = (glcm * (i - (glcm * i).sum(axis=(0, 1), keepdims=True)) ** 2).sum(axis=(0, 1))
    out["correlation"] = np.where(var > 1e-12, out["correlation"], np.nan)
    return {name: values.reshape(trailing) for name, values in out.items()}


def glcm_features(
    db: np.ndarray, pol: str, levels: int = GLCM_LEVELS, calibration: Calibration | None = None
) -> dict[str, np.ndarray]:
    """GLCM features of a dB image (whole image, fixed mapping, ``levels`` grey levels)."""
    arr = check_image(db, f"{pol} image")
    return glcm_features_from_levels(quantise(arr, pol, levels, calibration), levels)


def glcm_features_unit(unit: np.ndarray, levels: int = GLCM_LEVELS) -> dict[str, np.ndarray]:
    """:func:`glcm_features` of a validated image already on the fixed [0, 1] mapping."""
    return glcm_features_from_levels(quantise_unit(unit, levels), levels)
