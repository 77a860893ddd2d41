"""A sensor profile: the statistics that tell one SAR sensor's images from another's.

For a set of single-polarisation images (dB; amplitude images as 20·log10 A):

* **ENL** — :func:`sarviz.metrics.sar.enl` on each image's homogeneous windows (the test
  the migration's speckle loss uses too); the set's value is the median over images.
* **high-frequency energy ratio** — share of the mean-removed amplitude spectrum's energy
  beyond ``hf_radius`` × Nyquist (the band the migration's spectrum loss acts on); median.
* **amplitude histogram** — seed 001's A/(μ+3σ) histogram (100 bins, saturated pixels
  excluded and counted apart), pooled over the set
  (:func:`sarviz.metrics.protocols.pooled_amplitude_histogram`); a set is compared with the reference by KL(ref ‖ set).
* **GLCM** — seed 001's GLCM on normalised amplitude in homogeneous 64×64 patches
  (:func:`sarviz.metrics.protocols.seed001_glcm`), mean over distances, angles and images.

:func:`profile_distance` turns two profiles into one row of distances to the reference:
|Δ log ENL|, |Δ HF ratio|, histogram KL and the mean relative GLCM difference — so "closer
to the target sensor after migration" is a table. The profile JSON is the artifact
:class:`sarviz.formats.sensor_profile.SensorProfile` (re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from sarviz.formats.sensor_profile import FORMAT as PROFILE_FORMAT  # noqa: F401 - re-exported
from sarviz.formats.sensor_profile import SensorProfile
from sarviz.metrics import sar
from sarviz.metrics.protocols import pooled_amplitude_histogram, seed001_glcm
from sarviz.metrics.sar import MetricError

HF_RADIUS = 0.25  # fraction of Nyquist; the migration's default high-pass radius


def high_pass_mask(height: int, width: int, radius: float) -> np.ndarray:
    """1 where the radial frequency of an ``fftshift``-ed spectrum exceeds ``radius`` × Nyquist."""
    fy = np.fft.fftshift(np.fft.fftfreq(height)) * 2.0
    fx = np.fft.fftshift(np.fft.fftfreq(width)) * 2.0
    return (np.hypot(fy[:, None], fx[None, :]) > radius).astype(np.float64)


def high_frequency_ratio(amplitude: np.ndarray, radius: float = HF_RADIUS) -> float:
    """Share of the mean-removed amplitude spectrum's energy beyond ``radius`` × Nyquist (NaN pixels → mean)."""
    a = np.asarray(amplitude, dtype=np.float64)
    a = np.where(np.isfinite(a), a, np.nanmean(a))
    power = np.abs(np.fft.fftshift(np.fft.fft2(a - a.mean()))) ** 2
    total = float(power.sum())
    height, width = a.shape
    return float((power * high_pass_mask(height, width, radius)).sum() / total) if total > 0 else float("nan")


def sensor_profile(name: str, images_db: Iterable[np.ndarray], hf_radius: float = HF_RADIUS) -> SensorProfile:
    """The profile of a set of dB images (at least one)."""
    images = [sar.check_image(db, f"{name} image") for db in images_db]
    if not images:
        raise MetricError(f"{name}: no images to profile")

    enls, hfs, glcms, notes = [], [], [], []
    for db in images:
        enls.append(sar.enl_checked(db).enl)
        hfs.append(high_frequency_ratio(sar.db_to_amplitude(db), hf_radius))
        try:
            g = seed001_glcm(db)
            glcms.append({f: float(np.nanmean(v)) for f, v in g.features.items()})
        except MetricError as exc:
            notes.append(f"GLCM skipped for one image: {exc}")
    histogram = pooled_amplitude_histogram(images, what=f"{name} image")  # seed 001's, pooled over the set
    glcm = {f: float(np.mean([g[f] for g in glcms])) for f in sar.GLCM_FEATURES} if glcms else {}
    return SensorProfile(
        name=name,
        n_images=len(images),
        enl_median=float(np.median(enls)),
        enl_per_image=enls,
        hf_ratio_median=float(np.median(hfs)),
        hf_radius=hf_radius,
        histogram=histogram.probabilities.tolist(),
        saturated_fraction=histogram.saturated_fraction,
        glcm=glcm,
        notes=notes,
    )


def profile_distance(reference: SensorProfile, other: SensorProfile) -> dict[str, float]:
    """Distances of ``other`` to ``reference`` (lower = closer to the reference sensor)."""
    glcm = [
        abs(other.glcm[f] - reference.glcm[f]) / max(abs(reference.glcm[f]), 1e-9)
        for f in reference.glcm
        if f in other.glcm
    ]
    return {
        "abs_delta_log_enl": abs(math.log(other.enl_median) - math.log(reference.enl_median)),
        "abs_delta_hf_ratio": abs(other.hf_ratio_median - reference.hf_ratio_median),
        "histogram_kl": sar.kl_of_histograms(np.asarray(reference.histogram), np.asarray(other.histogram)),
        "glcm_mean_relative_delta": float(np.mean(glcm)) if glcm else float("nan"),
    }


def distance_table(reference: SensorProfile, others: list[SensorProfile]) -> str:
    """Markdown: one row per set with its profile and its distances to the reference."""
    head = (
        "| set | images | ENL (median) | HF ratio | |Δ log ENL| | |Δ HF| | hist KL(ref‖set) | GLCM rel. Δ |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    rows = [
        f"| {reference.name} (reference) | {reference.n_images} | {reference.enl_median:.2f} | "
        f"{reference.hf_ratio_median:.3f} | 0 | 0 | 0 | 0 |"
    ]
    for p in others:
        d = profile_distance(reference, p)
        rows.append(
            f"| {p.name} | {p.n_images} | {p.enl_median:.2f} | {p.hf_ratio_median:.3f} | "
            f"{d['abs_delta_log_enl']:.3f} | {d['abs_delta_hf_ratio']:.3f} | {d['histogram_kl']:.4f} | "
            f"{d['glcm_mean_relative_delta']:.3f} |"
        )
    return "\n".join([head, *rows])
