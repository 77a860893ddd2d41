"""The four losses of seed 003's migration stage (eqs. 15–21), written down once.

* :func:`ad_loss` — L_AD = Σ_layers ‖A_ideal − A_cur‖₁ with A_ideal = SelfAttn(Q_opt, K_sty, V_sty)
  (detached, as the AD code does: the gradient flows only through A_cur) and
  A_cur = SelfAttn(Q_opt, K_opt, V_opt). Mean absolute error per layer, summed over layers.
  Several style references: their keys and values are concatenated along the token axis,
  so the optimised image may draw on every reference (our choice; AD uses one image).
* :func:`content_loss` — L_cnt = Σ_layers ‖Q_opt − Q_cnt‖₁ (mean per layer).
* :func:`speckle_loss` — L_sp = |log mean ENL(x_opt) − log mean ENL(x_sty)| over M random
  N×N homogeneous patches; ENL = μ²/σ² of **linear intensity** (amplitude²). The paper
  writes the raw ENL difference; it is unbounded (ENL runs from ~1 to hundreds), so we take
  log-ENL — a relative difference, the same size for 1→2 looks as for 10→20.
* :func:`spectrum_loss` — L_f = mean |(|F(x_opt)| − |F(x_sty)|) · M_HF| with F the orthonormal
  2-D FFT of the amplitude image and M_HF = 1 outside radius ``hf_radius`` × Nyquist
  (an annular high-pass, 0 at the centre). We compare magnitudes: the paper's complex
  difference would also match the *phase*, i.e. pull the content toward the style image's
  own scene; magnitude carries the speckle/resolution signature. The same mask in numpy is
  :func:`sarviz.metrics.sensor_profile.high_pass_mask` (the profile's HF energy ratio).

Homogeneous patches (the paper's test is not given): :func:`homogeneous_patch_corners`
uses sarviz's ENL window test (:func:`sarviz.metrics.sar.homogeneous_windows`: smoothed
log-intensity edge score ≤ 2 × its 10th percentile, then point/line targets rejected by
robust outlier tests on intensity), so L_sp and ``sensor-profile``'s ENL use one definition.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sarviz.migration.attention import AttentionFeatures

INTENSITY_FLOOR = 1e-6  # amplitude is clamped to ≥ 1e-3 before squaring: ENL of a patch stays finite


def ad_loss(current: AttentionFeatures, style: AttentionFeatures) -> torch.Tensor:
    """L_AD (eq. 17): Q from the image being optimised, K and V from the style reference(s)."""
    loss = current.out[0].new_zeros(())
    for q, out, ks, vs in zip(current.q, current.out, style.k, style.v):
        # (refs, heads, tokens, d) → (1, heads, refs·tokens, d), repeated over the optimised batch
        k = ks.transpose(0, 1).reshape(1, ks.shape[1], -1, ks.shape[-1]).expand(q.shape[0], -1, -1, -1)
        v = vs.transpose(0, 1).reshape(1, vs.shape[1], -1, vs.shape[-1]).expand(q.shape[0], -1, -1, -1)
        ideal = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype))
        loss = loss + F.l1_loss(out.float(), ideal.detach().float())
    return loss


def content_loss(current: AttentionFeatures, content: AttentionFeatures) -> torch.Tensor:
    """L_cnt (eq. 18): queries of the image being optimised against the content image's."""
    loss = current.q[0].new_zeros((), dtype=torch.float32)
    for q, qc in zip(current.q, content.q):
        loss = loss + F.l1_loss(q.float(), qc.detach().float())
    return loss


def homogeneous_patch_corners(amplitude: np.ndarray, size: int) -> np.ndarray:
    """Top-left corners of the homogeneous ``size``×``size`` windows of an amplitude image (see module doc)."""
    from sarviz.metrics.sar import homogeneous_windows

    amp = np.clip(np.asarray(amplitude, dtype=np.float64), 1e-3, None)
    return homogeneous_windows(20.0 * np.log10(amp), window=size)


def patch_enl(intensity: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    """ENL μ²/σ² (σ² with ddof 1) of each patch of a (H, W) intensity image; differentiable."""
    offsets = torch.arange(size, device=intensity.device)
    rows = (corners[:, 0, None] + offsets)[:, :, None]
    cols = (corners[:, 1, None] + offsets)[:, None, :]
    patches = intensity[rows, cols].reshape(len(corners), -1)
    mean = patches.mean(dim=1)
    return mean**2 / patches.var(dim=1, unbiased=True).clamp_min(1e-12)


def mean_log_enl(amplitude: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    intensity = amplitude.clamp_min(1e-3) ** 2
    return torch.log(patch_enl(intensity, corners, size).mean())


def speckle_loss(
    opt_amplitude: torch.Tensor,
    opt_corners: torch.Tensor,
    style_amplitudes: list[torch.Tensor],
    style_corners: list[torch.Tensor],
    size: int,
) -> torch.Tensor:
    """L_sp (eq. 20, log-ENL): mean ENL over the chosen patches of x_opt against that of each reference, averaged."""
    current = mean_log_enl(opt_amplitude, opt_corners, size)
    losses = [torch.abs(current - mean_log_enl(s, c, size).detach()) for s, c in zip(style_amplitudes, style_corners)]
    return torch.stack(losses).mean()


def high_pass_mask(height: int, width: int, radius: float, device=None) -> torch.Tensor:
    """M_HF for an ``fftshift``-ed spectrum: 1 where the radial frequency exceeds ``radius`` × Nyquist, else 0
    (:func:`sarviz.metrics.sensor_profile.high_pass_mask`, the profile's one definition, as a tensor)."""
    from sarviz.errors import GenerationError
    from sarviz.metrics.sensor_profile import high_pass_mask as profile_mask

    if not 0.0 < radius < 1.0:
        raise GenerationError(f"the high-pass radius is a fraction of the Nyquist frequency in (0, 1), got {radius}")
    return torch.as_tensor(profile_mask(height, width, radius), dtype=torch.float32, device=device)


def amplitude_spectrum(amplitude: torch.Tensor) -> torch.Tensor:
    return torch.fft.fftshift(torch.fft.fft2(amplitude, norm="ortho").abs(), dim=(-2, -1))


def spectrum_loss(opt_amplitude: torch.Tensor, style_amplitudes: list[torch.Tensor], radius: float) -> torch.Tensor:
    """L_f (eq. 21, magnitudes): high-frequency amplitude spectra of x_opt and each reference, averaged."""
    h, w = opt_amplitude.shape[-2:]
    mask = high_pass_mask(h, w, radius, opt_amplitude.device)
    current = amplitude_spectrum(opt_amplitude) * mask
    losses = [F.l1_loss(current, (amplitude_spectrum(s) * mask).detach()) for s in style_amplitudes]
    return torch.stack(losses).mean()
