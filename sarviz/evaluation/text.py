"""Seed 001's evaluation of a text-to-SAR model, per scene label (ONERA, §4.3–4.4, table 7, fig. 15).

Protocol functions (small on purpose: the seed-001 functions of :mod:`sarviz.metrics` can
replace them one for one):

* :func:`pooled_amplitude_histogram` — every image's amplitude A = 10^(dB/20) normalised by
  its own μ + 3σ and clipped to [0, 1] (:func:`sarviz.metrics.sar.normalised_amplitude`,
  eq. 1); the saturated pixels (= 1) are excluded and counted; the remaining values of all
  images of a label are pooled ("flatten each image") into one histogram on [0, 1).
* :func:`pooled_kl` — KL(P_real ‖ Q_generated) of two pooled histograms (eq. 4), nats, with
  the same ε smoothing as the per-pair metric (:data:`sarviz.metrics.sar.KL_EPSILON`).
* :func:`homogeneous_patches` — 64 × 64 patches of homogeneous ground. Deviation: the paper
  takes patches inside the largest SAM segment; we have no SAM model offline and use the
  edge-score test of :func:`sarviz.metrics.sar.homogeneous_windows` (the ENL windows) on a
  64 px grid instead — it also keeps only patches without edges or structure.
* :func:`glcm_amplitude_features` — the Haralick features (contrast, homogeneity,
  correlation, entropy at distances 1, 2, 4 and angles 0°, 45°, 90°, 135°) of a patch's
  normalised amplitude quantised to 32 grey levels (:func:`sarviz.metrics.sar.glcm_features_from_levels`);
  the paper computes GLCM on amplitude, so not on the dB display mapping the single-pair
  report uses.

:func:`summarise_label` puts them together for one label; :func:`evaluate_sets` for all
labels plus the pooled "all" row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from sarviz.metrics import sar
from sarviz.metrics.sar import MetricError

PATCH_PX = 64
KL_BINS = sar.KL_BINS
GLCM_LEVELS = sar.GLCM_LEVELS
ALL = "all"


# -- protocol functions --------------------------------------------------------------------------
@dataclass
class PooledHistogram:
    probabilities: np.ndarray  # (bins,), sums to 1 over the unsaturated pixels
    counts: np.ndarray
    edges: np.ndarray
    saturated_fraction: float  # of all valid pixels
    n_images: int
    n_pixels: int


def pooled_amplitude_histogram(images_db: Iterable[np.ndarray], bins: int = KL_BINS) -> PooledHistogram:
    """Seed 001's amplitude histogram of a set of images (per-image μ+3σ, saturated excluded, pooled)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.zeros(bins, dtype=np.int64)
    saturated = total = n = 0
    for db in images_db:
        values, _ = sar.normalised_amplitude(np.asarray(db, dtype=np.float64))
        sat = values >= 1.0
        counts += np.histogram(values[~sat], bins=edges)[0]
        saturated += int(sat.sum())
        total += int(values.size)
        n += 1
    if n == 0 or counts.sum() == 0:
        raise MetricError("no unsaturated pixel in the set; its amplitude histogram is empty")
    return PooledHistogram(counts / counts.sum(), counts, edges, saturated / max(total, 1), n, total)


def pooled_kl(real: PooledHistogram, generated: PooledHistogram, eps: float = sar.KL_EPSILON) -> float:
    """KL(P_real ‖ Q_generated) in nats, ε added to every bin of both before renormalising."""
    if real.probabilities.shape != generated.probabilities.shape:
        raise MetricError("the two histograms have different bins")
    p = (real.probabilities + eps) / (real.probabilities + eps).sum()
    q = (generated.probabilities + eps) / (generated.probabilities + eps).sum()
    return max(float(np.sum(p * np.log(p / q))), 0.0)


def homogeneous_patches(db: np.ndarray, size: int = PATCH_PX) -> np.ndarray:
    """Top-left corners (n, 2) of homogeneous ``size`` px patches; every complete patch when too few."""
    arr = np.asarray(db, dtype=np.float64)
    try:
        return sar.homogeneous_windows(arr, window=size)
    except MetricError:
        # fewer than 4 complete patches: the edge test has nothing to compare against, so every
        # complete, fully valid patch is used (small images only; the report says how many)
        h, w = arr.shape
        corners = [(r, c) for r in range(0, h - size + 1, size) for c in range(0, w - size + 1, size)
                   if np.isfinite(arr[r:r + size, c:c + size]).all()]
        return np.array(corners, dtype=np.int64).reshape(-1, 2)


def glcm_amplitude_features(patch_db: np.ndarray, levels: int = GLCM_LEVELS) -> dict[str, np.ndarray]:
    """Haralick features of one patch's normalised amplitude (feature → (distances, angles))."""
    threshold = sar.normalised_amplitude(patch_db)[1]
    unit = np.clip(sar.db_to_amplitude(patch_db) / threshold, 0.0, 1.0)
    return sar.glcm_features_from_levels(sar.quantise_unit(unit, levels), levels)


def glcm_of_set(images_db: Iterable[np.ndarray], size: int = PATCH_PX) -> tuple[dict[str, np.ndarray], int]:
    """Mean GLCM features over the homogeneous patches of a set of images, and the patch count."""
    sums: dict[str, np.ndarray] = {}
    n = 0
    for db in images_db:
        for r, c in homogeneous_patches(db, size):
            feats = glcm_amplitude_features(np.asarray(db)[r:r + size, c:c + size])
            for k, v in feats.items():
                sums[k] = sums.get(k, 0.0) + np.nan_to_num(v, nan=0.0)
            n += 1
    if n == 0:
        raise MetricError(f"no complete {size}×{size} px patch in the set (images too small?)")
    return {k: v / n for k, v in sums.items()}, n


# -- per-label summary -----------------------------------------------------------------------------
@dataclass
class LabelSummary:
    label: str
    pol: str
    n_real: int
    n_generated: int
    kl: float
    saturated_real: float
    saturated_generated: float
    hist_real: PooledHistogram
    hist_generated: PooledHistogram
    glcm_real: dict[str, np.ndarray] | None
    glcm_generated: dict[str, np.ndarray] | None
    patches_real: int = 0
    patches_generated: int = 0
    notes: list[str] = field(default_factory=list)
    clip: dict[str, Any] | None = None

    def row(self) -> dict[str, Any]:
        """One flat table row (CSV / the paper's per-category table)."""
        out: dict[str, Any] = {"label": self.label, "pol": self.pol, "n_real": self.n_real,
                               "n_generated": self.n_generated, "kl": round(self.kl, 5),
                               "saturated_real": round(self.saturated_real, 4),
                               "saturated_generated": round(self.saturated_generated, 4),
                               "patches_real": self.patches_real, "patches_generated": self.patches_generated}
        for name in sar.GLCM_FEATURES:
            for which, feats in (("real", self.glcm_real), ("generated", self.glcm_generated)):
                out[f"glcm_{name}_{which}"] = None if feats is None else round(float(np.mean(feats[name])), 5)
        if self.clip:
            for k, v in self.clip.items():
                out[f"clip_{k}"] = v
        return out

    def to_dict(self) -> dict[str, Any]:
        def glcm(feats):
            if feats is None:
                return None
            return {name: {str(d): {str(a): round(float(v), 6) for a, v in zip(sar.GLCM_ANGLES_DEG, row)}
                           for d, row in zip(sar.GLCM_DISTANCES, feats[name])} for name in sar.GLCM_FEATURES}

        return {**self.row(), "glcm_real": glcm(self.glcm_real), "glcm_generated": glcm(self.glcm_generated),
                "hist_edges": self.hist_real.edges.round(4).tolist(),
                "hist_real": self.hist_real.probabilities.round(6).tolist(),
                "hist_generated": self.hist_generated.probabilities.round(6).tolist(), "notes": self.notes}


def summarise_label(label: str, real_db: Sequence[np.ndarray], generated_db: Sequence[np.ndarray],
                    pol: str = "VV", patch_px: int = PATCH_PX) -> LabelSummary:
    """KL of the pooled amplitude histograms and GLCM on homogeneous patches, real vs generated."""
    if not real_db or not generated_db:
        raise MetricError(f"label {label!r}: needs real and generated images (have {len(real_db)} real, "
                          f"{len(generated_db)} generated)")
    hr, hg = pooled_amplitude_histogram(real_db), pooled_amplitude_histogram(generated_db)
    notes: list[str] = []
    glcm_r = glcm_g = None
    pr = pg = 0
    try:
        glcm_r, pr = glcm_of_set(real_db, patch_px)
        glcm_g, pg = glcm_of_set(generated_db, patch_px)
    except MetricError as exc:
        notes.append(f"GLCM not computed: {exc}")
    return LabelSummary(label, pol, len(real_db), len(generated_db), pooled_kl(hr, hg), hr.saturated_fraction,
                        hg.saturated_fraction, hr, hg, glcm_r, glcm_g, pr, pg, notes)


def evaluate_sets(real: Mapping[str, Sequence[np.ndarray]], generated: Mapping[str, Sequence[np.ndarray]],
                  pol: str = "VV", patch_px: int = PATCH_PX) -> list[LabelSummary]:
    """One summary per label present in both, then the pooled "all" row."""
    labels = [k for k in real if k in generated and real[k] and generated[k]]
    if not labels:
        raise MetricError("no label has both real and generated images")
    rows = [summarise_label(k, real[k], generated[k], pol, patch_px) for k in labels]
    if len(labels) > 1:
        rows.append(summarise_label(ALL, [a for k in labels for a in real[k]],
                                    [a for k in labels for a in generated[k]], pol, patch_px))
    return rows
