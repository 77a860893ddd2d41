"""Seed 001's evaluation protocol, beside sarviz's per-pair view (definitions: docs/metrics.md).

The ONERA text-to-SAR paper (seed 001, "SAR statistics analysis" and "Texture analysis")
does not score image pairs. It

* computes the amplitude-histogram **KL per scene category**, pooling the flattened,
  μ+3σ-normalised amplitudes of all real images of a category against those of all the
  generated images of that category (saturated pixels excluded and counted apart);
* computes **GLCM features on amplitude** (the μ+3σ-normalised amplitude, grey-level
  quantised) in **64×64 homogeneous patches** taken with a sliding kernel inside the
  largest Segment-Anything mask of each image, then compares the features' distributions
  per category.

sarviz's report (:mod:`sarviz.metrics.report`) scores one pair: KL of that pair, GLCM of
the whole image on the calibrated dB stretch. The two are not comparable with each other
or with the paper's tables, so every number says which protocol it is
(:data:`SEED001_KL_PROTOCOL`, :data:`SEED001_GLCM_PROTOCOL`).

Deviations, stated wherever the numbers appear: no segmenter runs offline, so patches are
chosen by a homogeneity criterion (:func:`seed001_patches`); the normalisation μ+3σ is
per image (the paper normalised each source scene before cutting it into patches); the
paper gives neither the grey levels, distances nor angles of its GLCM, so sarviz's
(32 levels; d = 1, 2, 4 px; 0°, 45°, 90°, 135°, exact lags) are used.

This module is the ONE implementation of the protocol. Its callers: the Inspect page
(:func:`seed001_pair_table`), ``sarviz evaluate`` (per-class KL, :func:`seed001_kl`) and
``sarviz evaluate-text`` (:func:`seed001_kl`, :func:`seed001_glcm_of_set`). The amplitude
normalisation itself is :func:`sarviz.amplitude.normalise_amplitude`, applied to each whole
image before anything else (histograms pooled, patches cut) happens.

Library API: :func:`pooled_amplitude_histogram`, :func:`pooled_kl`, :func:`seed001_kl`,
:func:`seed001_kl_by_category`, :func:`seed001_patches`, :func:`seed001_glcm`,
:func:`seed001_glcm_of_set`, :func:`seed001_glcm_by_category`, :func:`seed001_table`,
:func:`seed001_pair`, :func:`seed001_pair_table`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from sarviz.amplitude import FORMULA as AMPLITUDE_FORMULA
from sarviz.amplitude import AmplitudeError, AmplitudeStats, normalise_amplitude
from sarviz.metrics import sar
from sarviz.metrics.sar import MetricError

SEED001_KL_PROTOCOL = (
    "seed 001: KL(real ‖ generated) of amplitude / (μ+3σ) histograms (100 bins on [0, 1), "
    "saturated pixels excluded), pooled over all images of a scene category"
)
SEED001_GLCM_PROTOCOL = (
    "seed 001: GLCM on amplitude / (μ+3σ) (clipped to [0, 1], 32 levels) in 64×64 "
    "homogeneous patches (homogeneity criterion instead of SAM), mean over patches"
)
SEED001_PATCH = 64
SEED001_PATCH_STRIDE = 32  # the paper's "sliding kernel" stride is not given; half a patch
# A patch is homogeneous when its edge score (as for ENL: Sobel gradient of the dB image
# smoothed at σ = 3 px, here its 90th percentile inside the patch, so one edge through a
# corner counts) is at most SEED001_PATCH_FACTOR × the image's lowest patch score. It plays
# the role of "inside one SAM segment": texture of one surface, no boundary between two.
SEED001_PATCH_FACTOR = 1.5


# -- KL per category ------------------------------------------------------------------------------
@dataclass
class PooledHistogram:
    """Seed 001's amplitude histogram of a set of images: each image normalised by its own
    μ+3σ (:func:`sarviz.amplitude.normalise_amplitude`), saturated pixels excluded and
    counted, the rest of every image pooled into one histogram on [0, 1)."""

    probabilities: np.ndarray  # (bins,), sums to 1 over the unsaturated pixels
    counts: np.ndarray
    edges: np.ndarray
    saturated_fraction: float  # of all valid pixels
    n_images: int
    n_pixels: int  # valid pixels
    stats: list[AmplitudeStats] = field(default_factory=list, repr=False)  # one an image

    def normalisation(self) -> dict[str, Any]:
        """For provenance: the formula and the range of the images' statistics."""
        thresholds = [s.threshold for s in self.stats]
        clipped = [s.clipped_fraction for s in self.stats]
        return {
            "formula": AMPLITUDE_FORMULA,
            "where": "per image, before pooling",
            "n_images": self.n_images,
            "threshold_min": min(thresholds),
            "threshold_max": max(thresholds),
            "clipped_fraction_min": min(clipped),
            "clipped_fraction_max": max(clipped),
            "clipped_fraction_pooled": self.saturated_fraction,
        }


def pooled_amplitude_histogram(
    images_db: Iterable[np.ndarray], bins: int = sar.KL_BINS, what: str = "image"
) -> PooledHistogram:
    """:class:`PooledHistogram` of dB images (any sizes; read one at a time, so an iterator
    of images read from disk keeps memory at one image)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.zeros(bins, dtype=np.int64)
    saturated = valid = 0
    stats: list[AmplitudeStats] = []
    for i, db in enumerate(images_db):
        arr = sar.check_image(db, f"{what} {i}")
        try:
            unit, st = normalise_amplitude(arr)  # per image, as each source scene in the paper
        except AmplitudeError as exc:
            raise MetricError(f"{what} {i}: {exc}") from None
        values = unit[np.isfinite(unit)]
        sat = values >= 1.0
        counts += np.histogram(values[~sat], bins=edges)[0]
        saturated += int(sat.sum())
        valid += int(values.size)
        stats.append(st)
    if not stats:
        raise MetricError(f"no {what}: seed 001's amplitude histogram needs at least one image")
    if counts.sum() == 0:
        raise MetricError("every pixel is saturated after the μ+3σ normalisation; the histogram is empty")
    return PooledHistogram(counts / counts.sum(), counts, edges, saturated / max(valid, 1), len(stats), valid, stats)


def pooled_kl(real: PooledHistogram, generated: PooledHistogram, eps: float = sar.KL_EPSILON) -> float:
    """KL(P_real ‖ Q_generated) in nats of two pooled histograms (seed 001 eq. 4), ε smoothing
    as the per-pair KL (:func:`sarviz.metrics.sar.kl_of_histograms`)."""
    if real.counts.shape != generated.counts.shape:
        raise MetricError("the two histograms have different bins")
    return sar.kl_of_histograms(real.counts.astype(np.float64), generated.counts.astype(np.float64), eps)


@dataclass
class CategoryKL:
    """Seed 001's KL of one scene category."""

    category: str
    kl: float
    n_real: int  # images pooled
    n_generated: int
    saturated_real: float  # fraction of pooled valid pixels at the μ+3σ clip
    saturated_generated: float
    bin_edges: np.ndarray
    p_real: np.ndarray  # pooled histograms (probabilities, saturated pixels excluded)
    q_generated: np.ndarray
    protocol: str = SEED001_KL_PROTOCOL
    hist_real: PooledHistogram | None = field(default=None, repr=False)
    hist_generated: PooledHistogram | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "kl": self.kl,
            "n_real": self.n_real,
            "n_generated": self.n_generated,
            "saturated_real": self.saturated_real,
            "saturated_generated": self.saturated_generated,
            "protocol": self.protocol,
        }
        if self.hist_real is not None and self.hist_generated is not None:
            out["normalisation"] = {
                "real": self.hist_real.normalisation(),
                "generated": self.hist_generated.normalisation(),
            }
        return out


def seed001_kl(
    real_db: Iterable[np.ndarray],
    generated_db: Iterable[np.ndarray],
    category: str = "",
    bins: int = sar.KL_BINS,
    eps: float = sar.KL_EPSILON,
) -> CategoryKL:
    """Seed 001's KL of one category: every real against every generated dB image (iterables,
    streamed; images need not be paired or of one size). THE implementation: Inspect,
    ``sarviz evaluate`` and ``sarviz evaluate-text`` all end here."""
    hr = pooled_amplitude_histogram(real_db, bins, "real image")
    hg = pooled_amplitude_histogram(generated_db, bins, "generated image")
    return CategoryKL(
        category,
        pooled_kl(hr, hg, eps),
        hr.n_images,
        hg.n_images,
        hr.saturated_fraction,
        hg.saturated_fraction,
        hr.edges,
        hr.probabilities,
        hg.probabilities,
        hist_real=hr,
        hist_generated=hg,
    )


def _by_category(items: Iterable[tuple[str, np.ndarray]], what: str) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {}
    for i, item in enumerate(items):
        try:
            category, db = item
        except (TypeError, ValueError):
            raise MetricError(f"{what} item {i}: expected (category, dB image)") from None
        out.setdefault(str(category), []).append(sar.check_image(db, f"{what} image {i} ({category})"))
    return out


def seed001_kl_by_category(
    real: Iterable[tuple[str, np.ndarray]],
    generated: Iterable[tuple[str, np.ndarray]],
    bins: int = sar.KL_BINS,
    eps: float = sar.KL_EPSILON,
) -> dict[str, CategoryKL]:
    """Seed 001's KL per scene category: ``real`` and ``generated`` are (category, dB image) pairs.

    Images need not be paired or of one size. Every category present on both sides gets
    a :class:`CategoryKL` (:func:`seed001_kl`); a category with only real or only generated
    images is refused (the paper generated 30 images for each label of its test set).
    """
    real_by, gen_by = _by_category(real, "real"), _by_category(generated, "generated")
    only = sorted(set(real_by) ^ set(gen_by))
    if only:
        raise MetricError(
            f"categories {only} have only real or only generated images; seed 001 compares both per category"
        )
    if not real_by:
        raise MetricError("no images: seed 001's KL needs real and generated images per category")
    return {
        category: seed001_kl(real_by[category], gen_by[category], category, bins, eps) for category in sorted(real_by)
    }


# -- GLCM on amplitude in homogeneous patches -------------------------------------------------------
@dataclass
class Seed001GLCM:
    """Seed 001's GLCM features of one image: mean (and std) over its homogeneous patches."""

    features: dict[str, np.ndarray]  # feature → (distances, angles), mean over patches
    std: dict[str, np.ndarray]  # feature → (distances, angles), std over patches
    patches: np.ndarray  # (n, 2) top-left corners
    patch_px: int = SEED001_PATCH
    protocol: str = SEED001_GLCM_PROTOCOL
    per_patch: list[dict[str, np.ndarray]] = field(default_factory=list, repr=False)


def normalised_amplitude_image(db: np.ndarray) -> np.ndarray:
    """Seed 001's A / (μ_A + 3σ_A) clipped to [0, 1] as an image (NaN where missing): the whole
    image is normalised first, then cut into patches (the paper normalised each scene before
    cropping), never one patch by its own statistics."""
    try:
        return normalise_amplitude(db)[0]
    except AmplitudeError as exc:
        raise MetricError(str(exc)) from None


def seed001_patches(
    db: np.ndarray, size: int = SEED001_PATCH, stride: int = SEED001_PATCH_STRIDE, factor: float = SEED001_PATCH_FACTOR
) -> np.ndarray:
    """Top-left corners of the homogeneous ``size``×``size`` patches of a dB image.

    Patches on a ``stride`` grid, fully valid; edge score = 90th percentile of the Sobel
    gradient of the dB image smoothed with σ = 3 px inside the patch; kept when at most
    ``factor`` × the lowest score (so at least one patch is always kept). An image smaller
    than one patch is refused.
    """
    arr = np.asarray(db, dtype=np.float64)
    h, w = arr.shape
    if h < size or w < size:
        raise MetricError(f"image of {h}×{w} px is smaller than seed 001's {size}×{size} px GLCM patch")
    valid, _, grad = sar.structure_gradient(arr)
    # every patch on the stride grid as a view (no copy), then one percentile call for all
    windows = lambda a: np.lib.stride_tricks.sliding_window_view(a, (size, size))[::stride, ::stride]  # noqa: E731
    complete = windows(valid).all(axis=(2, 3))
    if not complete.any():
        raise MetricError(f"no {size}×{size} px patch is free of missing pixels")
    corners = np.argwhere(complete) * stride
    scores = np.percentile(windows(grad)[complete].reshape(len(corners), -1), 90, axis=1)
    return corners[scores <= factor * scores.min()]


def seed001_glcm(
    db: np.ndarray, levels: int = sar.GLCM_LEVELS, size: int = SEED001_PATCH, stride: int = SEED001_PATCH_STRIDE
) -> Seed001GLCM:
    """Seed 001's GLCM of one dB image: features on normalised amplitude in homogeneous patches."""
    arr = sar.check_image(db, "image")
    unit = normalised_amplitude_image(arr)
    corners = seed001_patches(arr, size, stride)
    per_patch = [sar.glcm_features_unit(unit[r : r + size, c : c + size], levels) for r, c in corners]
    mean = {f: np.nanmean([p[f] for p in per_patch], axis=0) for f in sar.GLCM_FEATURES}
    std = {f: np.nanstd([p[f] for p in per_patch], axis=0) for f in sar.GLCM_FEATURES}
    return Seed001GLCM(mean, std, corners, size, per_patch=per_patch)


def seed001_glcm_of_set(images_db: Iterable[np.ndarray], levels: int = sar.GLCM_LEVELS) -> dict[str, Any]:
    """Seed 001's GLCM of a set of dB images: mean and std of every feature over all the
    homogeneous patches of all images (arrays of shape (distances, angles); NaN features,
    e.g. the correlation of a one-level patch, are left out of the mean), with image and
    patch counts. Images are taken one at a time (an iterator keeps memory at one image)."""
    patches: list[dict[str, np.ndarray]] = []
    n_images = 0
    for db in images_db:
        patches.extend(seed001_glcm(db, levels).per_patch)
        n_images += 1
    if not patches:
        raise MetricError("no image: seed 001's GLCM needs at least one image")
    with warnings.catch_warnings():  # a feature NaN in every patch stays NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "n_images": n_images,
            "n_patches": len(patches),
            "mean": {f: np.nanmean([p[f] for p in patches], axis=0) for f in sar.GLCM_FEATURES},
            "std": {f: np.nanstd([p[f] for p in patches], axis=0) for f in sar.GLCM_FEATURES},
        }


def seed001_glcm_by_category(
    real: Iterable[tuple[str, np.ndarray]], generated: Iterable[tuple[str, np.ndarray]], levels: int = sar.GLCM_LEVELS
) -> dict[str, dict[str, Any]]:
    """Seed 001's GLCM comparison per category: for ``"real"`` and ``"generated"`` the
    :func:`seed001_glcm_of_set` of the category's images, and ``"protocol"``."""
    real_by, gen_by = _by_category(real, "real"), _by_category(generated, "generated")
    out: dict[str, dict[str, Any]] = {}
    for category in sorted(set(real_by) | set(gen_by)):
        entry: dict[str, Any] = {"protocol": SEED001_GLCM_PROTOCOL}
        for side, by in (("real", real_by), ("generated", gen_by)):
            images = by.get(category, [])
            entry[side] = seed001_glcm_of_set(images, levels) if images else None
        out[category] = entry
    return out


def seed001_pair(real_db: np.ndarray | None, gen_db: np.ndarray, levels: int = sar.GLCM_LEVELS) -> dict[str, Any]:
    """The seed-001 protocol applied to one image pair (one "category" of one image each).

    ``{"protocol": …, "kl": float | None, "glcm": {"real": Seed001GLCM | None,
    "generated": Seed001GLCM}}``. KL pooled over one image is the per-pair KL of the
    report; the GLCM differs (amplitude, homogeneous patches).
    """
    kl = None
    if real_db is not None:
        kl = seed001_kl([real_db], [gen_db], "pair").kl
    return {
        "protocol": {"kl": SEED001_KL_PROTOCOL, "glcm": SEED001_GLCM_PROTOCOL},
        "kl": kl,
        "glcm": {
            "real": seed001_glcm(real_db, levels) if real_db is not None else None,
            "generated": seed001_glcm(gen_db, levels),
        },
    }


def seed001_table(real_db: Sequence[np.ndarray] | None, generated_db: Sequence[np.ndarray], pol: str):
    """The seed-001 protocol of a real and a generated set as a table (KL of the pooled
    histograms, then one row per GLCM feature and distance, mean of the 4 angles), with the
    protocol in every row — what the Inspect page shows (for its one pair, one image a side)."""
    import pandas as pd

    kl = seed001_kl(real_db, generated_db, "inspect") if real_db else None
    real = seed001_glcm_of_set(real_db) if real_db else None
    gen = seed001_glcm_of_set(generated_db)
    rows = [
        {
            "metric": "KL(real ‖ generated), nats",
            "polarisation": pol,
            "real": None,
            "generated": None,
            "comparison": kl.kl if kl else None,
            "protocol": SEED001_KL_PROTOCOL,
        }
    ]
    if kl is not None:
        rows.append(
            {
                "metric": "saturated fraction (≥ μ+3σ, excluded from the KL)",
                "polarisation": pol,
                "real": kl.saturated_real,
                "generated": kl.saturated_generated,
                "comparison": None,
                "protocol": f"seed 001 eq. 1: {AMPLITUDE_FORMULA}",
            }
        )
    for feat in sar.GLCM_FEATURES:
        for i, d in enumerate(sar.GLCM_DISTANCES):
            rows.append(
                {
                    "metric": f"GLCM {feat} d={d} (mean of 4 angles)",
                    "polarisation": pol,
                    "real": float(np.nanmean(real["mean"][feat][i])) if real is not None else None,
                    "generated": float(np.nanmean(gen["mean"][feat][i])),
                    "comparison": None,
                    "protocol": f"{SEED001_GLCM_PROTOCOL}; patches real {real['n_patches'] if real else 0}, "
                    f"generated {gen['n_patches']}",
                }
            )
    return pd.DataFrame(rows)


def seed001_pair_table(real_db: np.ndarray | None, gen_db: np.ndarray, pol: str):
    """:func:`seed001_table` of one pair (the Inspect page's "seed-001 protocol" view)."""
    return seed001_table([real_db] if real_db is not None else None, [gen_db], pol)
