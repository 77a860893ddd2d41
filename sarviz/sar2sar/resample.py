"""Spectral resampling between pixel spacings (no torch; metrics level: numpy, affine and sarviz.errors only).

Seed 001 §3/§6 (the same authors as seed 002) resample SAR "in the frequency domain": the
spectrum is zero-padded (finer spacing) or truncated (coarser spacing). Here:

* **factor** F is a ratio of pixel *spacings* (input spacing / output spacing); it may be
  fractional. The output has ``round(n · F)`` pixels per axis, the effective factor per axis
  is ``n_out / n`` and the georeference is scaled by exactly ``n / n_out`` about the
  upper-left corner, so the bounds do not move.
* **wrap-around**: an FFT treats the image as periodic, so a bright edge "leaks" into the
  opposite edge. Each axis is mirror-padded (symmetric extension: the periodic image is then
  continuous) by a whole number of input pixels that maps to a whole number of output pixels,
  resampled, and cropped back.
* **complex data** (SLC) is resampled as complex — the only physically exact case.
* **detected data** (amplitude, intensity, dB) is resampled as *intensity* (it keeps the
  mean backscatter) with the same band-limited kernel; the sinc kernel rings (Gibbs) around
  bright scatterers and can go negative. The **anti-ringing floor**: an output value is never
  below ``RING_FLOOR`` × the smallest input sample of the (up to) 2×2 input neighbourhood it
  lies in. Inputs are ≥ 0, so the output is ≥ 0; smooth (band-limited) data is untouched
  because it never undershoots its neighbours by half.
* the kernel is the Fourier method of ``scipy.signal.resample`` (Nyquist bin split), written
  out here because pixel-is-area grids need a sub-pixel shift (output centres at
  (j+½)/F − ½ input pixels) that scipy's corner-aligned samples do not offer.

The A/(μ+3σ) normalisation is :mod:`sarviz.amplitude` (the one implementation): statistics once
per scene (``normalise_amplitude(tile, stats=scene_stats)``), the clipped tail as a mask
(:func:`sarviz.amplitude.clipped_mask`) that the renderer restores from the input
(``tail="keep"``) or writes out (``tail="mask"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine

from sarviz.errors import MetricError

#: an output sample of detected data is never below this fraction of its smallest input neighbour
RING_FLOOR = 0.5
#: mirror padding of at least this many input pixels (or 1/8 of the axis) against wrap-around
MIN_PAD = 16
#: factors outside this range are refused (absurd inputs)
MAX_FACTOR = 16.0


class ResampleError(MetricError):
    """A bad factor, spacing or array."""


def fill_missing(db: np.ndarray) -> np.ndarray:
    """Missing (NaN/inf) pixels set to the image's median dB: the Fourier kernel needs a complete grid."""
    valid = np.isfinite(db)
    return db if valid.all() else np.where(valid, db, np.nanmedian(db)).astype(np.float32)


# -- factors and grids -----------------------------------------------------------------------------
def output_shape(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    """Pixels per axis at ``factor`` (input spacing / output spacing)."""
    check_factor(factor, allow_below_one=True)
    out = tuple(max(1, round(n * factor)) for n in shape)
    return out  # type: ignore[return-value]


def check_factor(factor: float, allow_below_one: bool = False) -> float:
    try:
        f = float(factor)
    except (TypeError, ValueError):
        raise ResampleError(f"factor must be a number, got {factor!r}") from None
    lo = 1.0 / MAX_FACTOR if allow_below_one else 1.0
    if not math.isfinite(f) or f < lo or f > MAX_FACTOR:
        rng = f"[{lo:g}, {MAX_FACTOR:g}]"
        raise ResampleError(
            f"factor {factor!r} is outside {rng} (factor = input spacing / output spacing"
            + ("" if allow_below_one else "; a render makes pixels finer, so it must be ≥ 1")
            + ")"
        )
    return f


def factor_for_pixel_size(transform: Affine, pixel_size: float) -> float:
    """The factor that makes the x pixel size ``pixel_size`` (in the CRS's units)."""
    if not (isinstance(pixel_size, (int, float)) and math.isfinite(pixel_size) and pixel_size > 0):
        raise ResampleError(f"pixel size must be a positive number, got {pixel_size!r}")
    return abs(transform.a) / float(pixel_size)


def scaled_transform(transform: Affine, shape: tuple[int, int], out_shape: tuple[int, int]) -> Affine:
    """The georeference of the resampled grid: same upper-left corner and bounds, pixels n/n_out as big."""
    sy = shape[0] / out_shape[0]
    sx = shape[1] / out_shape[1]
    return transform @ Affine.scale(sx, sy)


# -- the kernel ------------------------------------------------------------------------------------
def _pad_for(n: int, n_out: int) -> int:
    """Mirror padding p (input px) with p·n_out/n an integer, at least MIN_PAD or n/8 (capped at n)."""
    step = n // math.gcd(n, n_out)
    want = max(MIN_PAD, n // 8)
    p = step * math.ceil(want / step)
    if p > n:  # one period of the mirror needs at most n pixels; use the largest exact multiple ≤ n
        p = step * (n // step)
    return p


def _fourier_axis(a: np.ndarray, m: int, shift: float, axis: int) -> np.ndarray:
    """Length N → m along ``axis`` by the Fourier method; output sample j sits at input index
    j·N/m + ``shift``. Written here (not scipy.signal.resample) for the shift: a pixel-is-area
    grid puts output centres at (j+½)/F − ½ input pixels, which scipy's corner-aligned samples miss."""
    n = a.shape[axis]
    spec = np.fft.fft(a, axis=axis)
    k = np.fft.fftfreq(n, 1.0 / n)  # signed integer frequencies
    spec = spec * np.exp(2j * np.pi * k * shift / n).reshape([-1 if d == axis else 1 for d in range(a.ndim)])
    out_shape = list(a.shape)
    out_shape[axis] = m
    out = np.zeros(out_shape, dtype=np.complex128)

    def sl(index):
        s = [slice(None)] * a.ndim
        s[axis] = index
        return tuple(s)

    keep = min(n, m)
    half = (keep - 1) // 2  # frequencies 0..half and -half..-1 are copied as they are
    out[sl(slice(0, half + 1))] = spec[sl(slice(0, half + 1))]
    if half:
        out[sl(slice(m - half, m))] = spec[sl(slice(n - half, n))]
    if keep % 2 == 0:  # the shared Nyquist frequency keep/2
        nyq = keep // 2
        if m > n:  # split the input's Nyquist bin between +N/2 and −N/2 (undo then redo its shift phase)
            base = spec[sl(nyq)] * np.exp(-2j * np.pi * (-nyq) * shift / n)
            out[sl(nyq)] = 0.5 * base * np.exp(2j * np.pi * nyq * shift / n)
            out[sl(m - nyq)] = 0.5 * base * np.exp(2j * np.pi * (-nyq) * shift / n)
        elif m < n:  # fold +m/2 and −m/2 into the output's one Nyquist bin
            out[sl(m - nyq)] = spec[sl(nyq)] + spec[sl(n - nyq)]
        else:
            out[sl(nyq)] = spec[sl(nyq)]
    return np.fft.ifft(out, axis=axis) * (m / n)


def _resample_axis(a: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    n = a.shape[axis]
    if n_out == n:
        return a
    p = _pad_for(n, n_out)
    if p > 0:
        pad = [(0, 0)] * a.ndim
        pad[axis] = (p, p)
        a = np.pad(a, pad, mode="symmetric")
    total_out = (n + 2 * p) * n_out // n  # exact by construction of p
    shift = 0.5 * n / n_out - 0.5  # pixel centres: output j at input (j + ½)·n/n_out − ½
    out = _fourier_axis(a, total_out, shift, axis)
    q = p * n_out // n
    index = [slice(None)] * a.ndim
    index[axis] = slice(q, q + n_out)
    return out[tuple(index)]


def fft_resample(array: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Band-limited (Fourier) resampling of a 2-D array to ``out_shape``, mirror-padded per axis.

    Complex in, complex out; real in, real out (no floor: see :func:`resample_intensity`).
    Upsampling zero-pads the spectrum; downsampling truncates it (an ideal low-pass to the new
    Nyquist frequency, then decimation).
    """
    a = np.asarray(array)
    if a.ndim != 2:
        raise ResampleError(f"expected a 2-D array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ResampleError("the array has missing (NaN/inf) pixels; fill or crop them before resampling")
    work = a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)
    for axis, n_out in ((0, out_shape[0]), (1, out_shape[1])):
        work = _resample_axis(work, int(n_out), axis)
    return work if np.iscomplexobj(a) else work.real


def _neighbour_min(intensity: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """For each output pixel, the smallest of the (up to) 2×2 input samples around its centre."""
    h, w = intensity.shape
    rows = (np.arange(out_shape[0]) + 0.5) * h / out_shape[0] - 0.5
    cols = (np.arange(out_shape[1]) + 0.5) * w / out_shape[1] - 0.5
    r0 = np.clip(np.floor(rows).astype(int), 0, h - 1)
    c0 = np.clip(np.floor(cols).astype(int), 0, w - 1)
    r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
    return np.minimum(
        np.minimum(intensity[np.ix_(r0, c0)], intensity[np.ix_(r0, c1)]),
        np.minimum(intensity[np.ix_(r1, c0)], intensity[np.ix_(r1, c1)]),
    )


def resample_intensity(intensity: np.ndarray, out_shape: tuple[int, int], ring_floor: float = RING_FLOOR) -> np.ndarray:
    """Detected SAR (linear intensity ≥ 0) resampled band-limited, with the anti-ringing floor."""
    x = np.asarray(intensity, dtype=np.float64)
    if (x < 0).any():
        raise ResampleError("intensity must be ≥ 0 (pass linear power, not dB)")
    out = fft_resample(x, out_shape)
    if ring_floor > 0 and tuple(out_shape) != x.shape:
        out = np.maximum(out, ring_floor * _neighbour_min(x, out_shape))
    return np.maximum(out, 0.0)  # (a no-op after the floor; kept for ring_floor=0)


def resample_db(
    db: np.ndarray, out_shape: tuple[int, int], ring_floor: float = RING_FLOOR, floor_db: float = -60.0
) -> np.ndarray:
    """σ⁰ in dB resampled as intensity (keeps the mean backscatter), back to dB; NaN → refused."""
    intensity = 10.0 ** (np.asarray(db, dtype=np.float64) / 10.0)
    out = resample_intensity(intensity, out_shape, ring_floor)
    return (10.0 * np.log10(np.maximum(out, 10.0 ** (floor_db / 10.0)))).astype(np.float32)


@dataclass
class ResampledGrid:
    array: np.ndarray
    transform: Affine
    factor_requested: float
    factor_effective: tuple[float, float]  # (rows, cols): n_out / n

    def provenance(self) -> dict[str, Any]:
        return {
            "factor_requested": self.factor_requested,
            "factor_effective": [round(f, 6) for f in self.factor_effective],
            "method": "Fourier per axis (pixel-centre aligned), symmetric padding, intensity domain, "
            f"anti-ringing floor {RING_FLOOR} × 2×2 input minimum",
        }


def resample_scene_db(
    db: np.ndarray, transform: Affine, factor: float, ring_floor: float = RING_FLOOR
) -> ResampledGrid:
    """A dB band and its georeference at ``factor`` (fractional allowed): exact bounds, new spacing."""
    f = check_factor(factor, allow_below_one=True)
    shape = tuple(db.shape)
    out_shape = output_shape(shape, f)  # type: ignore[arg-type]
    out = resample_db(db, out_shape, ring_floor)
    return ResampledGrid(
        out,
        scaled_transform(transform, shape, out_shape),
        f,  # type: ignore[arg-type]
        (out_shape[0] / shape[0], out_shape[1] / shape[1]),
    )
