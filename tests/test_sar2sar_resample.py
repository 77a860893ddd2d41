"""Spectral resampling between pixel spacings and the once-per-scene A/(μ+3σ) normalisation (seed 002)."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from sarviz.sar2sar import resample as R


def half_band_field(shape, seed=0):
    """A random field band-limited to half the Nyquist frequency (like S1 GRD: 10 m spacing, ~20 m resolution)."""
    rng = np.random.default_rng(seed)
    spec = np.fft.fft2(rng.normal(size=shape))
    fy, fx = np.meshgrid(np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1]), indexing="ij")
    spec[(np.abs(fy) > 0.25) | (np.abs(fx) > 0.25)] = 0
    return np.fft.ifft2(spec).real


def test_shapes_and_georeference_exact_for_fractional_factors():
    t = Affine(10.0, 0, 500000.0, 0, -10.0, 4200000.0)
    for shape, f in (((64, 48), 2.0), ((50, 37), 3.375), ((40, 40), 1.35 / 0.4)):
        g = R.resample_scene_db(np.full(shape, -10.0, np.float32), t, f)
        out = R.output_shape(shape, f)
        assert g.array.shape == out
        # same bounds: upper-left corner and lower-right corner map to the same coordinates
        assert g.transform @ (0, 0) == t @ (0, 0)
        assert np.allclose(g.transform @ (out[1], out[0]), t @ (shape[1], shape[0]), rtol=0, atol=1e-6)
        assert g.factor_effective == (out[0] / shape[0], out[1] / shape[1])
    with pytest.raises(R.ResampleError):
        R.check_factor(0.5)
    with pytest.raises(R.ResampleError):
        R.check_factor(1e6)
    with pytest.raises(R.ResampleError):
        R.check_factor(float("nan"))


def test_sinusoid_preserved_on_pixel_centres():
    n = 64
    centres = np.arange(n) + 0.5
    img = np.outer(2 + np.sin(2 * np.pi * 5 * centres / n), np.ones(40))
    up = R.resample_intensity(img, (128, 80))
    fine_centres = (np.arange(128) + 0.5) / 2
    truth = 2 + np.sin(2 * np.pi * 5 * fine_centres / n)
    err = np.abs(up[:, 20] - truth)
    assert err[8:-8].max() < 0.01  # interior: the band-limited interpolation is the sinusoid
    assert err.max() < 0.06  # edges: the mirror padding's kink, no wrap-around jump
    # a shifted grid (wrong pixel-centre convention) would be off by ~0.2 here
    assert np.abs(up[:, 20] - (2 + np.sin(2 * np.pi * 5 * (np.arange(128) / 2) / n))).max() > 0.1


def test_parseval_and_up_then_down_round_trip():
    x = half_band_field((96, 96))
    up = R.fft_resample(x, (192, 192))
    assert abs((up**2).mean() / (x**2).mean() - 1) < 0.02  # mean power (Parseval) kept
    back = R.fft_resample(up, (96, 96))
    assert np.sqrt(((back - x) ** 2)[8:-8, 8:-8].mean()) < 0.01 * x.std()
    z = x + 1j * half_band_field((96, 96), seed=1)  # complex (SLC) resampled as complex
    zu = R.fft_resample(z, (192, 192))
    assert np.iscomplexobj(zu) and abs((np.abs(zu) ** 2).mean() / (np.abs(z) ** 2).mean() - 1) < 0.02


def test_point_target_no_negative_amplitude_no_wrap_around():
    img = np.full((64, 64), 0.01)
    img[0, 32] = 1000.0  # a bright scatterer on the top edge
    img[40, 40] = 1000.0
    raw = R.fft_resample(img, (128, 128))
    assert raw.min() < -1.0  # the bare sinc rings below zero ...
    out = R.resample_intensity(img, (128, 128))
    assert out.min() >= 0.0  # ... the anti-ringing floor does not
    # the opposite (bottom) edge: only the target's far sinc tail (< 1e-3 of its peak), no wrapped copy —
    # a plain periodic FFT puts the target's near field there
    from scipy.signal import resample

    periodic = resample(resample(img, 128, axis=0), 128, axis=1)
    assert out[-4:, 56:72].max() < 1e-3 * out.max()
    assert np.abs(periodic[-4:, 56:72]).max() > 30 * out[-4:, 56:72].max()
    assert out[:4, 60:68].max() > 500  # the target itself is still there


def test_normalisation_once_per_scene_round_trip_and_tail():
    # the renderer's use of the one A/(μ+3σ) (sarviz.amplitude): scene statistics, tiles, tail mask
    from sarviz.amplitude import (
        AmplitudeStats,
        clipped_mask,
        denormalise_amplitude,
        normalise_amplitude,
    )

    rng = np.random.default_rng(0)
    db = (10 * np.log10(rng.gamma(4.0, 0.25, (64, 64))) - 12).astype(np.float32)
    norm, stats = normalise_amplitude(db)
    clipped = clipped_mask(db, stats)
    assert norm.min() >= 0 and norm.max() <= 1 and clipped.mean() == pytest.approx(stats.clipped_fraction)
    assert 0 < stats.clipped_fraction < 0.05 and (norm[clipped] == 1).all()
    back = denormalise_amplitude(norm, stats, floor_db=-60.0)
    assert np.allclose(back[~clipped], db[~clipped], atol=1e-3)
    assert denormalise_amplitude(np.zeros(2), stats, floor_db=-60.0).tolist() == [-60.0, -60.0]
    # a tile normalised with the scene's stats equals the scene's normalisation of that tile
    tile, same = normalise_amplitude(db[:16, :16], stats=stats)
    assert np.array_equal(tile, norm[:16, :16]) and same is stats
    assert AmplitudeStats.from_dict(stats.to_dict()) == stats
