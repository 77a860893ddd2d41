"""The consistency gate: did a rendering invent what its input cannot support? (no torch)

A rendering at F× finer spacing may add detail *below* the input's resolution, but taken back
to the input's spacing it must show the same backscatter. So: degrade the output back to the
input's grid (the same band-limited resampling), average both in B×B **multi-looked blocks**
(intensity means: speckle averages out, which SSIM against a speckled input never does — even a
perfect render scores low there), and compare block means as a log-ratio in dB:

* ``bias_db`` — median log-ratio (a radiometric offset),
* ``spread_db`` — robust spread (1.4826 · MAD) of the log-ratio,
* ``score_db`` — root-mean-square log-ratio: the one number the gate thresholds.

The threshold is **calibrated** on degraded → original pairs (the condition of a training pair
is the input, its finer original plays a perfect "render"): :func:`calibrate_threshold` takes
their scores and returns ``CALIBRATION_MARGIN`` × their 95th percentile. A render above it is
flagged "inventing structure". :func:`disagreement_map` is the per-block log-ratio on the input
grid; :func:`seed_spread_map` the per-pixel spread (dB) over K seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sarviz.errors import MetricError
from sarviz.sar2sar.resample import resample_intensity

#: block size (input pixels) of the multi-looked comparison; 8 × 8 × ENL ≈ 4.4 looks → ~0.26 dB speckle per block
BLOCK = 8
CALIBRATION_QUANTILE = 0.95
CALIBRATION_MARGIN = 1.5
#: used only when no calibration exists (stated as such in the result)
UNCALIBRATED_THRESHOLD_DB = 1.5


class ConsistencyError(MetricError):
    pass


@dataclass
class ConsistencyResult:
    score_db: float
    bias_db: float
    spread_db: float
    threshold_db: float
    threshold_source: str  # "calibrated on N degraded→original pairs" / "uncalibrated default"
    block_px: int
    n_blocks: int
    passed: bool
    log_ratio_db: np.ndarray  # (rows, cols) per block: 10·log10(output block mean / input block mean)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("log_ratio_db")
        d["verdict"] = (
            "consistent with the input" if self.passed else "inventing structure (beyond the calibrated threshold)"
        )
        return d


def block_means(intensity: np.ndarray, block: int) -> np.ndarray:
    """Mean of each complete ``block``×``block`` tile (NaN where a tile has a missing pixel)."""
    h, w = intensity.shape
    nr, nc = h // block, w // block
    if nr < 1 or nc < 1:
        raise ConsistencyError(f"an image of {h}×{w} px has no complete {block}-px block to compare")
    tiles = intensity[: nr * block, : nc * block].reshape(nr, block, nc, block)
    return tiles.mean(axis=(1, 3))


def degrade_to(output_db: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The output resampled (band-limited, intensity domain) back to the input grid, linear intensity."""
    out = np.asarray(output_db, dtype=np.float64)
    valid = np.isfinite(out)
    if not valid.any():
        raise ConsistencyError("the output has no valid pixel")
    intensity = np.where(valid, 10.0 ** (np.where(valid, out, 0.0) / 10.0), np.nanmean(10.0 ** (out / 10.0)))
    return resample_intensity(intensity, shape)


def consistency(
    input_db: np.ndarray,
    output_db: np.ndarray,
    threshold_db: float | None = None,
    threshold_source: str | None = None,
    block: int = BLOCK,
) -> ConsistencyResult:
    """Compare a render with its input at the input's spacing (see the module doc)."""
    inp = np.asarray(input_db, dtype=np.float64)
    if inp.ndim != 2 or np.asarray(output_db).ndim != 2:
        raise ConsistencyError("input and output must be 2-D dB images")
    if np.asarray(output_db).shape[0] < inp.shape[0] or np.asarray(output_db).shape[1] < inp.shape[1]:
        raise ConsistencyError(f"the output {np.asarray(output_db).shape} is coarser than the input {inp.shape}")
    degraded = degrade_to(output_db, inp.shape)
    a = block_means(10.0 ** (inp / 10.0), block)
    b = block_means(degraded, block)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = 10.0 * np.log10(b / a)
    finite = ratio[np.isfinite(ratio)]
    if finite.size == 0:
        raise ConsistencyError("no block has valid pixels in both images")
    bias = float(np.median(finite))
    spread = float(1.4826 * np.median(np.abs(finite - bias)))
    score = float(np.sqrt(np.mean(finite**2)))
    if threshold_db is None:
        threshold_db, threshold_source = UNCALIBRATED_THRESHOLD_DB, "uncalibrated default (no calibration given)"
    return ConsistencyResult(
        score,
        bias,
        spread,
        float(threshold_db),
        threshold_source or "given",
        block,
        int(finite.size),
        score <= threshold_db,
        ratio.astype(np.float32),
    )


def calibrate_threshold(pairs: Sequence[tuple[np.ndarray, np.ndarray]], block: int = BLOCK) -> dict[str, Any]:
    """Threshold from degraded→original pairs ``(condition_db at input spacing, original_db at output spacing)``."""
    scores = [consistency(c, o, threshold_db=np.inf, block=block).score_db for c, o in pairs]
    if len(scores) < 1:
        raise ConsistencyError("calibration needs at least one degraded→original pair")
    q = float(np.quantile(scores, CALIBRATION_QUANTILE))
    return {
        "threshold_db": CALIBRATION_MARGIN * q,
        "quantile": CALIBRATION_QUANTILE,
        "margin": CALIBRATION_MARGIN,
        "n_pairs": len(scores),
        "median_score_db": float(np.median(scores)),
        "max_score_db": float(max(scores)),
        "block_px": block,
        "source": f"calibrated on {len(scores)} degraded→original pairs ({CALIBRATION_MARGIN} × "
        f"{CALIBRATION_QUANTILE:.0%} quantile of their scores)",
    }


def disagreement_map(result: ConsistencyResult, shape: tuple[int, int]) -> np.ndarray:
    """The per-block log-ratio (dB) painted on an image grid of ``shape`` (NaN outside complete blocks)."""
    ratio = result.log_ratio_db
    rows = np.minimum(np.arange(shape[0]) * ratio.shape[0] // shape[0], ratio.shape[0] - 1)
    cols = np.minimum(np.arange(shape[1]) * ratio.shape[1] // shape[1], ratio.shape[1] - 1)
    return ratio[np.ix_(rows, cols)]


def seed_spread_map(renders_db: Sequence[np.ndarray], looks: int = 1) -> np.ndarray:
    """Per-pixel standard deviation (dB) over K renders of the same input (K ≥ 2).

    ``looks`` > 1 first averages intensity in looks×looks windows (what varies in structure,
    not in speckle), then paints the result back on the pixel grid.
    """
    if len(renders_db) < 2:
        raise ConsistencyError("a seed spread needs at least two renders")
    stack = np.stack([np.asarray(r, dtype=np.float64) for r in renders_db])
    if looks > 1:
        from scipy.ndimage import uniform_filter

        stack = 10 * np.log10(np.stack([uniform_filter(10 ** (s / 10), looks, mode="nearest") for s in stack]))
    return stack.std(axis=0).astype(np.float32)


def radial_power_spectrum(db: np.ndarray, bins: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of intensity (mean removed, Hann-windowed): (frequency in
    cycles/pixel, power), log-spaced bins from 1/min(shape) to 0.5."""
    x = 10.0 ** (np.asarray(db, dtype=np.float64) / 10.0)
    x = np.where(np.isfinite(x), x, np.nanmean(x))
    x = x - x.mean()
    win = np.outer(np.hanning(x.shape[0]), np.hanning(x.shape[1]))
    p = np.abs(np.fft.fft2(x * win)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(x.shape[0]), np.fft.fftfreq(x.shape[1]), indexing="ij")
    r = np.hypot(fy, fx).ravel()
    edges = np.geomspace(1.0 / min(x.shape), 0.5, bins + 1)
    idx = np.digitize(r, edges) - 1
    ok = (idx >= 0) & (idx < bins)
    power = np.bincount(idx[ok], weights=p.ravel()[ok], minlength=bins) / np.maximum(
        np.bincount(idx[ok], minlength=bins), 1
    )
    centres = np.sqrt(edges[:-1] * edges[1:])
    return centres, power


def spectrum_slope(db: np.ndarray) -> float:
    """Log-log slope of the radially averaged power spectrum (white speckle ≈ 0; smoother images more negative)."""
    f, p = radial_power_spectrum(db)
    ok = p > 0
    return float(np.polyfit(np.log(f[ok]), np.log(p[ok]), 1)[0])
