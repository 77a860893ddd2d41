"""Seed 001's amplitude normalisation A / (μ + 3σ), clipped to [0, 1] — the one implementation.

Seed 001 §3 (eq. 1): an amplitude image A is divided by μ_A + 3σ_A (mean and standard
deviation of *that image's* amplitude) and clipped to [0, 1], so that ~98 % of the values
fall inside and the brightest scatterers saturate at exactly 1. The KL protocol (§4.3)
then excludes the saturated pixels and counts them apart.

Everything that normalises amplitudes this way calls this module: the seed-001 KL and GLCM
protocol (:mod:`sarviz.metrics.protocols`), the per-pair KL (:mod:`sarviz.metrics.sar`),
the text trainer's refinement KL (``--kl-space amplitude``), the SAR→SAR renderer and the
cross-sensor migration. It is torch-free and has no sarviz dependencies (a core module);
:func:`normalise_amplitude_rows` also accepts torch tensors, so a differentiable loss uses
the very same formula.

    unit, stats = normalise_amplitude(db)              # NaN stays NaN
    stats.to_dict()                                    # → provenance
    db_again = denormalise_amplitude(unit, stats)      # σ⁰ dB (saturated pixels: ≥ that value)

Input may be σ⁰ in dB (default), linear intensity (power) or linear amplitude; the
statistics are always of the amplitude A = √intensity = 10^(dB/20).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sarviz.errors import SarvizError

#: the "3" of μ + 3σ (seed 001 eq. 1)
K_SIGMA = 3.0
UNITS = ("db", "intensity", "amplitude")
FORMULA = "A / (μ_A + 3·σ_A) clipped to [0, 1], μ and σ of this image's valid amplitudes (seed 001 eq. 1)"


class AmplitudeError(SarvizError):
    """An image cannot be normalised (no valid pixel, zero amplitude); the message says why."""


@dataclass(frozen=True)
class AmplitudeStats:
    """What :func:`normalise_amplitude` divided by, so the normalisation can be inverted.

    ``threshold`` = ``mean + k_sigma · std`` of the amplitude (linear, same unit as A);
    ``clipped_fraction`` is the share of valid pixels that reached 1 (saturated; the
    paper expects ~2 %), ``n_valid`` the number of valid pixels.
    """

    mean: float
    std: float
    threshold: float
    clipped_fraction: float
    n_valid: int
    k_sigma: float = K_SIGMA

    def to_dict(self) -> dict[str, Any]:
        """For provenance: the numbers and the formula they belong to."""
        return {**asdict(self), "formula": FORMULA}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AmplitudeStats:
        try:
            return cls(
                float(data["mean"]),
                float(data["std"]),
                float(data["threshold"]),
                float(data["clipped_fraction"]),
                int(data["n_valid"]),
                float(data.get("k_sigma", K_SIGMA)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AmplitudeError(f"not amplitude-normalisation statistics ({exc})") from None


def to_amplitude(values: np.ndarray, unit: str = "db") -> np.ndarray:
    """Linear amplitude (float64) of σ⁰ given in ``unit`` ("db", "intensity" or "amplitude")."""
    arr = np.asarray(values, dtype=np.float64)
    if unit == "db":
        return np.power(10.0, arr / 20.0)
    if unit == "intensity":
        return np.sqrt(arr)
    if unit == "amplitude":
        return arr
    raise AmplitudeError(f"unknown unit {unit!r}; use one of {', '.join(UNITS)}")


def normalise_amplitude_rows(amplitude, k_sigma: float = K_SIGMA):
    """A / (μ + k·σ) clipped to [0, 1] for each row (last axis) of a NaN-free array.

    Works on NumPy arrays and on torch tensors alike (differentiable there) with only
    operators both have; σ is the population standard deviation (ddof 0), as for
    :func:`normalise_amplitude`. Returns (normalised rows, thresholds of shape ``rows``).
    """
    mean = amplitude.mean(-1)
    centred = amplitude - mean[..., None]
    threshold = mean + k_sigma * (centred * centred).mean(-1) ** 0.5
    return (amplitude / threshold[..., None]).clip(0.0, 1.0), threshold


def normalise_amplitude(
    values: np.ndarray, unit: str = "db", k_sigma: float = K_SIGMA, stats: AmplitudeStats | None = None
) -> tuple[np.ndarray, AmplitudeStats]:
    """Seed 001's normalisation of one image: (A / (μ_A + k·σ_A) clipped to [0, 1], statistics).

    ``values`` is σ⁰ in ``unit`` (any shape; NaN or ±inf = missing, kept NaN in the result).
    μ and σ are of the image's valid amplitudes; raises :class:`AmplitudeError` when there is
    no valid pixel or the threshold is not positive.

    ``stats``: normalise with a whole scene's statistics instead of this array's (a tile or an
    up-sampled copy of the scene: one scale for all of them, so they invert to the same σ⁰);
    those statistics are returned unchanged (``k_sigma`` is then theirs).
    """
    amp = to_amplitude(values, unit)
    if stats is not None:
        with np.errstate(invalid="ignore"):
            out = np.clip(amp / stats.threshold, 0.0, 1.0)
        return out, stats
    finite = np.isfinite(amp)
    valid = amp[finite] if not finite.all() else amp.ravel()
    if valid.size == 0:
        raise AmplitudeError("no valid pixel to normalise (all missing)")
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero threshold is refused just below
        threshold = float(normalise_amplitude_rows(valid, k_sigma)[1])
    if not threshold > 0:
        raise AmplitudeError(f"the image's μ + {k_sigma:g}σ of amplitude is {threshold:g}; it cannot be normalised")
    out = np.clip(amp / threshold, 0.0, 1.0)
    if not finite.all():
        out[~finite] = np.nan
    stats = AmplitudeStats(
        mean=float(valid.mean()),
        std=float(valid.std()),
        threshold=threshold,
        clipped_fraction=float(np.count_nonzero(out[finite] >= 1.0) / valid.size),
        n_valid=int(valid.size),
        k_sigma=float(k_sigma),
    )
    return out, stats


def clipped_mask(values: np.ndarray, stats: AmplitudeStats, unit: str = "db") -> np.ndarray:
    """Where ``values`` saturate under ``stats`` (A ≥ μ + kσ, normalised to exactly 1): the clipped tail.

    The same pixels :attr:`AmplitudeStats.clipped_fraction` counts; their σ⁰ is lost by the
    clip, so a caller that must keep it (the SAR→SAR renderer's ``tail``) needs the mask.
    """
    with np.errstate(invalid="ignore"):
        return to_amplitude(values, unit) >= stats.threshold


def denormalise_amplitude(
    normalised: np.ndarray, stats: AmplitudeStats, unit: str = "db", floor_db: float | None = None
) -> np.ndarray:
    """The inverse of :func:`normalise_amplitude`: σ⁰ in ``unit`` (default dB) from [0, 1] values.

    Exact for unsaturated pixels; a pixel at 1 comes back as the threshold μ + kσ, a lower
    bound of its true value (the clip lost the rest). 0 gives −inf dB (or ``floor_db`` when
    given: a rendered image's black pixel is "below the floor", not −inf); NaN stays NaN.
    """
    amp = np.asarray(normalised, dtype=np.float64) * stats.threshold
    if floor_db is not None:
        amp = np.fmax(amp, 10.0 ** (floor_db / 20.0))
    if unit == "amplitude":
        return amp
    if unit == "intensity":
        return amp * amp
    if unit == "db":
        with np.errstate(divide="ignore"):
            return 20.0 * np.log10(amp)
    raise AmplitudeError(f"unknown unit {unit!r}; use one of {', '.join(UNITS)}")
