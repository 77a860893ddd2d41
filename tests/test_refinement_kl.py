"""The text trainer's refinement KL: calibrated pixels (default) or seed 001's amplitude A/(μ+3σ)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sarviz.amplitude import normalise_amplitude
from sarviz.training.common import TrainError
from sarviz.training.text import amplitude_kl

RANGES = [(-30.0, 5.0)] * 3  # one calibration range a channel (an "L" image: VV thrice)


def _images(offset_db: float, seed: int = 0) -> torch.Tensor:
    """Speckled images (B=2, C=3) in the calibrated [−1, 1] mapping, far from the range's ends."""
    rng = np.random.default_rng(seed)
    db = -14 + offset_db + 10 * np.log10(rng.gamma(4.4, 1 / 4.4, (2, 1, 48, 48)))
    db = np.clip(db, -29.0, 4.0)
    signed = (db + 30.0) / 35.0 * 2 - 1
    return torch.tensor(np.repeat(signed, 3, axis=1), dtype=torch.float32)


def test_the_amplitude_kl_ignores_a_gain_the_calibrated_kl_sees():
    real, same, brighter = _images(0.0), _images(0.0), _images(4.0)
    assert float(amplitude_kl(real, same, space="amplitude", db_ranges=RANGES)) == pytest.approx(0.0, abs=1e-7)
    # +4 dB is a gain on amplitude: A/(μ+3σ) cancels it (up to the few pixels clipped at the range's ends)
    gain_amp = float(amplitude_kl(real, brighter, space="amplitude", db_ranges=RANGES))
    gain_cal = float(amplitude_kl(real, brighter, space="calibrated"))
    assert gain_amp < 0.01 < gain_cal
    # less speckle (a smoother image) changes the normalised amplitude's shape: seen by both
    smooth = torch.nn.functional.avg_pool2d(real, 3, stride=1, padding=1)
    assert float(amplitude_kl(real, smooth, space="amplitude", db_ranges=RANGES)) > 10 * gain_amp


def test_the_amplitude_kl_uses_the_one_normalisation_and_has_gradients():
    x = _images(0.0)
    db = -30.0 + (x[0, 0].double().numpy() + 1) / 2 * 35.0
    unit, stats = normalise_amplitude(db)
    assert 0 < stats.clipped_fraction < 0.05 and unit.max() == 1.0
    gen = _images(2.0, seed=1).requires_grad_(True)
    amplitude_kl(x, gen, space="amplitude", db_ranges=RANGES).backward()
    assert gen.grad is not None and torch.isfinite(gen.grad).all() and gen.grad.abs().sum() > 0
    with pytest.raises(TrainError, match="kl-space"):
        amplitude_kl(x, gen, space="histogram")
