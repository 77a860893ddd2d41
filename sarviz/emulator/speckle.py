"""Sentinel-1 IW GRD speckle: gamma intensity, spatially correlated, VV/VH partially correlated.

Numbers and where they come from (also in ``models/emulator.md``):

* **ENL 4.4** – equivalent number of looks of the IW GRD *high resolution* product (5 range
  × 1 azimuth looks, 20 × 22 m resolution, 10 × 10 m pixels): ESA, *Sentinel-1 User
  Guide / Product Definition*, Level-1 GRD product table. Multi-look intensity of fully
  developed speckle is gamma distributed with shape L = ENL and mean σ⁰ (Goodman 1976;
  Oliver & Quegan, *Understanding SAR Images*, 2004, ch. 4).
* **Neighbour correlation 0.64 (x) / 0.62 (y)** – lag-1 correlation of speckle intensity
  between adjacent 10 m pixels, measured by ``benchmarks/eval_emulator.py`` on the real
  terrain-corrected IW GRDH samples in ``../shared/samples/bigearthnet`` (median of 6
  patches, homogeneous windows). In native GRD geometry a sinc PSF at 20/22 m resolution
  and 10 m spacing gives sinc²(½)=0.41 and sinc²(10/22)=0.48; terrain correction
  resamples the grid and raises the correlation, and users compare against
  terrain-corrected products, so the measured values are the default.
* **VV/VH intensity correlation 0.07** – same measurement; small, as expected for
  reflection-symmetric distributed targets whose co-/cross-pol complex correlation is ≈ 0.

Method: a Gaussian field with the required correlation is mapped through the gamma
quantile function (the *memoryless nonlinear transform*, Tough & Ward 1999, J. Phys. D
32:3075). The marginal is then exactly gamma(L) for any non-integer L, which summing
exponential looks cannot give. The transform lowers correlations, so the Gaussian
correlations are solved for (Gauss–Hermite quadrature + root finding) such that the
*intensity* correlations hit the targets. The quantile function is tabulated once and
applied with ``np.interp`` because ``scipy.special.gammaincinv`` per pixel is ~20× slower
than the 0.3 s image budget allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage, optimize, special

from sarviz.emulator.radiometric import EmulatorError

S1_IW_GRDH_ENL = 4.4
S1_GRD_LAG1_CORR_X = 0.64
S1_GRD_LAG1_CORR_Y = 0.62
S1_VV_VH_SPECKLE_CORR = 0.07

_TABLE_SIZE = 4097
_TABLE_LIMIT = 8.0  # ±8 σ of the Gaussian field: beyond any value 2×512² draws reach


@dataclass(frozen=True)
class SpeckleModel:
    """Multiplicative speckle with unit mean for a VV/VH pair."""

    enl: float = S1_IW_GRDH_ENL
    lag1_corr_x: float = S1_GRD_LAG1_CORR_X
    lag1_corr_y: float = S1_GRD_LAG1_CORR_Y
    pol_corr: float = S1_VV_VH_SPECKLE_CORR

    def __post_init__(self) -> None:
        if not (math.isfinite(self.enl) and 0.5 <= self.enl <= 1000):
            raise EmulatorError(f"speckle ENL must be between 0.5 and 1000 looks, got {self.enl}")
        for name in ("lag1_corr_x", "lag1_corr_y", "pol_corr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value < 0.95):
                raise EmulatorError(f"speckle {name} must be a correlation in [0, 0.95), got {value}")

    @classmethod
    def from_card(cls, spec: dict | None) -> "SpeckleModel":
        spec = dict(spec or {})
        known = {"enl", "lag1_corr_x", "lag1_corr_y", "pol_corr"}
        unknown = set(spec) - known - {"source", "notes"}
        if unknown:
            raise EmulatorError(f"unknown speckle settings {sorted(unknown)}; known: {sorted(known)}")
        try:
            return cls(**{k: float(v) for k, v in spec.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise EmulatorError(f"speckle settings must be numbers ({exc})") from None

    # -- the Gaussian field that gives these intensity statistics ---------------------------
    def gaussian_corr(self, intensity_corr: float) -> float:
        return _gaussian_corr_for(self.enl, round(float(intensity_corr), 6))

    def kernel(self, intensity_corr: float) -> np.ndarray:
        return _kernel_for(self.gaussian_corr(intensity_corr))

    def sample(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """(2, H, W) float32 speckle (VV, VH) with mean 1, gamma(ENL) marginals."""
        h, w = int(shape[0]), int(shape[1])
        if h < 1 or w < 1:
            raise EmulatorError(f"speckle needs a non-empty grid, got {shape}")
        kx, ky = self.kernel(self.lag1_corr_x), self.kernel(self.lag1_corr_y)
        px, py = len(kx) // 2, len(ky) // 2
        # pad by the kernel radius and crop, so the field is stationary up to the image edge
        field = rng.standard_normal((2, h + 2 * py, w + 2 * px), dtype=np.float32)
        if px:
            field = ndimage.correlate1d(field, kx, axis=2, mode="constant")
        if py:
            field = ndimage.correlate1d(field, ky, axis=1, mode="constant")
        field = field[:, py : py + h, px : px + w]
        rho = np.float32(self.gaussian_corr(self.pol_corr))
        # same spatial kernel on both, so the mix keeps each channel's spatial correlation
        vh = rho * field[0] + np.float32(math.sqrt(1.0 - float(rho) ** 2)) * field[1]
        out = np.empty((2, h, w), dtype=np.float32)
        out[0] = gaussian_to_gamma(field[0], self.enl)
        out[1] = gaussian_to_gamma(vh, self.enl)
        return out


def gaussian_to_gamma(values: np.ndarray, enl: float) -> np.ndarray:
    """Map N(0, 1) values to unit-mean gamma(ENL) quantiles by linear interpolation in the table.

    The table grid is uniform, so the cell index is arithmetic; ``np.interp`` would
    binary-search every value and is about 3× slower on a 512×512 image.
    """
    grid, quantiles = _quantile_table(enl)
    step = float(grid[1] - grid[0])
    pos = (np.asarray(values, dtype=np.float32) - grid[0]) * np.float32(1.0 / step)
    np.clip(pos, 0.0, len(grid) - 1.0001, out=pos)
    index = pos.astype(np.int32)
    frac = pos - index
    lower = quantiles[index]
    return lower + frac * (quantiles[index + 1] - lower)


@lru_cache(maxsize=16)
def _quantile_table(enl: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian value g → gamma(L, 1/L) quantile at Φ(g), tabulated."""
    grid = np.linspace(-_TABLE_LIMIT, _TABLE_LIMIT, _TABLE_SIZE)
    quantiles = special.gammaincinv(enl, special.ndtr(grid)) / enl
    return grid.astype(np.float32), quantiles.astype(np.float32)


def intensity_corr_from_gaussian(enl: float, rho_g: float, nodes: int = 96) -> float:
    """Correlation of T(X), T(Y) for Gaussian X, Y with correlation ``rho_g``, T = gamma quantile∘Φ."""
    x, wts = np.polynomial.hermite_e.hermegauss(nodes)  # weight exp(-x²/2)
    wts = wts / math.sqrt(2.0 * math.pi)
    grid, quantiles = _quantile_table(enl)
    t = lambda v: np.interp(v, grid.astype(np.float64), quantiles.astype(np.float64))  # noqa: E731
    xx, zz = np.meshgrid(x, x, indexing="ij")
    yy = rho_g * xx + math.sqrt(max(0.0, 1.0 - rho_g * rho_g)) * zz
    joint = np.einsum("i,j,ij->", wts, wts, t(xx) * t(yy))
    mean = float(wts @ t(x))
    var = float(wts @ t(x) ** 2) - mean**2
    return (joint - mean**2) / var


@lru_cache(maxsize=64)
def _gaussian_corr_for(enl: float, intensity_corr: float) -> float:
    if intensity_corr <= 0.0:
        return 0.0
    return float(
        optimize.brentq(lambda r: intensity_corr_from_gaussian(enl, r) - intensity_corr, 0.0, 0.999, xtol=1e-6)
    )


@lru_cache(maxsize=64)
def _kernel_for(rho_g: float) -> np.ndarray:
    """Unit-energy discrete Gaussian kernel whose filtered white noise has lag-1 correlation ``rho_g``."""
    if rho_g <= 1e-6:
        return np.ones(1, dtype=np.float32)

    def build(sigma: float) -> np.ndarray:
        radius = max(1, int(math.ceil(4.0 * sigma)))
        k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        return k / math.sqrt(float(k @ k))

    def lag1(sigma: float) -> float:
        k = build(sigma)
        return float(k[1:] @ k[:-1])

    sigma = optimize.brentq(lambda s: lag1(s) - rho_g, 0.05, 50.0, xtol=1e-6)
    return build(sigma).astype(np.float32)


def measure_enl(intensity: np.ndarray) -> float:
    """ENL = mean² / variance of linear intensity over a homogeneous area (NaN ignored)."""
    values = np.asarray(intensity, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2:
        raise EmulatorError("ENL needs at least two finite intensity values")
    return float(values.mean() ** 2 / values.var())


def lag1_corr(intensity: np.ndarray, axis: int) -> float:
    """Correlation of an intensity image with itself shifted by one pixel along ``axis``."""
    a = np.asarray(intensity, dtype=np.float64)
    a0 = np.moveaxis(a, axis, 0)
    x, y = a0[1:].ravel(), a0[:-1].ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def gamma_ks(intensity_over_mean: np.ndarray, enl: float) -> tuple[float, float]:
    """Kolmogorov–Smirnov statistic and p-value of unit-mean intensities vs gamma(ENL, 1/ENL)."""
    from scipy import stats

    v = np.asarray(intensity_over_mean, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    res = stats.kstest(v, stats.gamma(a=enl, scale=1.0 / enl).cdf)
    return float(res.statistic), float(res.pvalue)
