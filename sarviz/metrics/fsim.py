"""FSIM (Zhang et al. 2011), grey-level, in NumPy/SciPy — a line-for-line port of piq's ``fsim``.

Why a port and not piq itself: piq pulls in torch and torchvision at import (3.6–5.7 s on
this machine's cold start, against ~0.5 s for every metric's computation), which made
``sarviz metrics`` take 5–10 s from the command line. The port computes the same numbers
(tests/test_fsim.py checks it against piq to 1e-5 on real and synthetic pairs) with no
torch, so commands that only measure never load it. Parameters and every step follow
piq 0.8 (``piq/fsim.py``, itself a port of Zhang's MATLAB ``FeatureSIM.m``): average pooling
by round(min(H, W) / 256), log-Gabor filters at 4 scales × 4 orientations, phase congruency
with the median-based noise estimate, Scharr gradient magnitude, T1 = 0.85, T2 = 160.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import fft as sfft

from sarviz.errors import MetricError

T1, T2 = 0.85, 160.0  # stability constants of the PC and GM similarity maps (data range 255)
SCHARR_X = np.array([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]]) / 16.0


def _avg_pool(x: np.ndarray, k: int) -> np.ndarray:
    """(N, H, W) → average over k×k blocks, trailing rows/columns dropped (avg_pool2d)."""
    if k == 1:
        return x
    n, h, w = x.shape
    h2, w2 = h // k, w // k
    return x[:, : h2 * k, : w2 * k].reshape(n, h2, k, w2, k).mean(axis=(2, 4))


def _meshgrid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    def axis(n: int) -> np.ndarray:
        if n % 2:
            return np.arange(-(n - 1) / 2, n / 2) / (n - 1)
        return np.arange(-n / 2, n / 2) / n

    return np.meshgrid(axis(h), axis(w), indexing="ij")


def _ifftshift(x: np.ndarray) -> np.ndarray:
    return np.roll(x, [-(s // 2) for s in x.shape], axis=tuple(range(x.ndim)))


def log_gabor_filters(
    h: int,
    w: int,
    scales: int = 4,
    orientations: int = 4,
    min_length: int = 6,
    mult: int = 2,
    sigma_f: float = 0.55,
    delta_theta: float = 1.2,
) -> np.ndarray:
    """(orientations × scales, H, W) log-Gabor transfer functions (piq's ``_construct_filters``)."""
    theta_sigma = math.pi / (orientations * delta_theta)
    gx, gy = _meshgrid(h, w)
    radius = np.sqrt(gx**2 + gy**2)
    theta = np.arctan2(-gy, gx)
    lp = _ifftshift(1.0 / (1.0 + (radius / 0.45) ** (2 * 15)))  # low-pass: cutoff 0.45, order 15
    radius = _ifftshift(radius)
    theta = _ifftshift(theta)
    radius[0, 0] = 1.0
    sin_t, cos_t = np.sin(theta), np.cos(theta)
    log_gabor = []
    for s in range(scales):
        omega_0 = 1.0 / (min_length * mult**s)
        g = np.exp(-(np.log(radius / omega_0) ** 2) / (2 * math.log(sigma_f) ** 2)) * lp
        g[0, 0] = 0.0
        log_gabor.append(g)
    spread = []
    for o in range(orientations):
        angle = o * math.pi / orientations
        ds = sin_t * math.cos(angle) - cos_t * math.sin(angle)
        dc = cos_t * math.cos(angle) + sin_t * math.sin(angle)
        spread.append(np.exp(-(np.abs(np.arctan2(ds, dc)) ** 2) / (2 * theta_sigma**2)))
    # orientation-major, scale-minor: spread.repeat_interleave(scales) * log_gabor.repeat(orientations)
    return np.stack([spread[o] * log_gabor[s] for o in range(orientations) for s in range(scales)])


@functools.lru_cache(maxsize=8)
def _filter_bank(h: int, w: int, scales: int = 4, orientations: int = 4):
    """Filters and their image-independent noise sums for one image size (cached: built once)."""
    filters = log_gabor_filters(h, w, scales, orientations).astype(np.float32)  # float32 as piq
    filt = filters.reshape(orientations, scales, h, w)
    em_n = (filt[:, :1] ** 2).sum(axis=(-2, -1), keepdims=True)[None]
    filters_ifft = (sfft.ifft2(filters).real * math.sqrt(h * w)).reshape(1, orientations, scales, h, w)
    sum_an2 = (filters_ifft**2).sum(axis=2, keepdims=True).sum(axis=(-1, -2), keepdims=True)
    sum_ai_aj = np.zeros((1, orientations, 1, h, w))
    for s in range(scales - 1):
        sum_ai_aj = sum_ai_aj + (filters_ifft[:, :, s : s + 1] * filters_ifft[:, :, s + 1 :]).sum(axis=2, keepdims=True)
    sum_ai_aj = sum_ai_aj.sum(axis=(-1, -2), keepdims=True)
    return filters, em_n, sum_an2, sum_ai_aj


def phase_congruency(x: np.ndarray, scales: int = 4, orientations: int = 4, k: float = 2.0) -> np.ndarray:
    """(N, H, W) phase congruency maps (piq's ``_phase_congruency``)."""
    eps = np.finfo(x.dtype).eps
    n, h, w = x.shape
    filters, em_n, sum_an2, sum_ai_aj = _filter_bank(h, w, scales, orientations)
    eo = sfft.ifft2(sfft.fft2(x)[:, None] * filters[None], workers=-1).reshape(n, orientations, scales, h, w)
    even, odd = eo.real, eo.imag
    an = np.abs(eo)
    sum_e = even.sum(axis=2, keepdims=True)
    sum_o = odd.sum(axis=2, keepdims=True)
    x_energy = np.sqrt(sum_e**2 + sum_o**2) + eps
    mean_e, mean_o = sum_e / x_energy, sum_o / x_energy
    energy = (even * mean_e + odd * mean_o - np.abs(even * mean_o - odd * mean_e)).sum(axis=2, keepdims=True)
    # noise from the smallest scale: torch.median returns the lower middle value, not the mean of two
    e2 = (an[:, :, :1] ** 2).reshape(n, orientations, 1, 1, h * w)
    lower_mid = (h * w - 1) // 2
    median_e2n = np.partition(e2, lower_mid, axis=-1)[..., lower_mid : lower_mid + 1]
    noise_power = (-median_e2n / math.log(0.5)) / em_n
    tau = np.sqrt((2 * noise_power * sum_an2 + 4 * noise_power * sum_ai_aj) / 2)
    threshold = (tau * math.sqrt(math.pi / 2) + k * np.sqrt((2 - math.pi / 2) * tau**2)) / 1.7
    energy = np.maximum(energy - threshold, 0.0)
    return (energy.sum(axis=(1, 2)) + eps) / (an.sum(axis=(1, 2)) + eps)


def _gradient_magnitude(x: np.ndarray) -> np.ndarray:
    from scipy.ndimage import correlate

    gx = np.stack([correlate(img, SCHARR_X, mode="constant") for img in x])
    gy = np.stack([correlate(img, SCHARR_X.T, mode="constant") for img in x])
    return np.sqrt(gx**2 + gy**2)


def _similarity(a: np.ndarray, b: np.ndarray, c: float) -> np.ndarray:
    return (2.0 * a * b + c) / (a**2 + b**2 + c)


def fsim_grey(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """FSIM of each pair of grey images ``x[i]``, ``y[i]`` ((N, H, W) or (H, W), values in [0, data_range]).

    ``x`` is the image under test and ``y`` the reference (piq's argument order).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    single = x.ndim == 2
    if single:
        x, y = x[None], y[None]
    if x.shape != y.shape or x.ndim != 3:
        raise MetricError(f"FSIM needs two images of the same shape, got {x.shape} and {y.shape}")
    x = x / float(data_range) * 255.0
    y = y / float(data_range) * 255.0
    kernel = max(1, round(min(x.shape[-2:]) / 256))
    # float32 from here on, as piq computes: half the memory traffic of float64, same numbers
    x, y = _avg_pool(x, kernel).astype(np.float32), _avg_pool(y, kernel).astype(np.float32)
    pc_x, pc_y = phase_congruency(x), phase_congruency(y)
    pc_sim = _similarity(pc_x, pc_y, T1)
    gm_sim = _similarity(_gradient_magnitude(x), _gradient_magnitude(y), T2)
    pc_max = np.maximum(pc_x, pc_y)
    score = (gm_sim * pc_sim * pc_max).sum(axis=(1, 2)) / pc_max.sum(axis=(1, 2))
    return score[0] if single else score
