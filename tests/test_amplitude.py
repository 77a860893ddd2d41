"""Seed 001's amplitude normalisation A/(μ+3σ): one implementation, invertible, its statistics recorded."""

from __future__ import annotations

import numpy as np
import pytest

from sarviz.amplitude import (
    AmplitudeError,
    AmplitudeStats,
    denormalise_amplitude,
    normalise_amplitude,
    normalise_amplitude_rows,
    to_amplitude,
)


def test_rayleigh_amplitude_clips_at_the_known_fraction_and_inverts_to_db():
    # single-look speckle: amplitude is Rayleigh; μ+3σ = (√(π/2) + 3·√(2 − π/2))·s, so the share above it
    # is exp(−(μ+3σ)²/2s²) = 0.565 % — a number known without running the code
    rng = np.random.default_rng(0)
    db = (-12 + 10 * np.log10(rng.exponential(1.0, (512, 512)))).astype(np.float64)
    db[:3, :3] = np.nan  # missing pixels stay missing and are left out of μ, σ
    unit, stats = normalise_amplitude(db)
    k = np.sqrt(np.pi / 2) + 3 * np.sqrt(2 - np.pi / 2)
    assert stats.clipped_fraction == pytest.approx(np.exp(-(k**2) / 2), rel=0.05)
    assert stats.n_valid == 512 * 512 - 9 and np.isnan(unit[:3, :3]).all()
    valid = unit[np.isfinite(unit)]
    assert valid.min() >= 0 and valid.max() == 1.0
    amp = to_amplitude(db[np.isfinite(db)])
    assert stats.mean == pytest.approx(amp.mean()) and stats.std == pytest.approx(amp.std())
    assert stats.threshold == pytest.approx(amp.mean() + 3 * amp.std())
    back = denormalise_amplitude(unit, stats)
    kept = np.isfinite(db) & (unit < 1)
    np.testing.assert_allclose(back[kept], db[kept], atol=1e-9)  # exact below the clip
    assert (back[unit == 1] <= db[unit == 1] + 1e-9).all()  # a lower bound at the clip
    assert AmplitudeStats.from_dict(stats.to_dict()) == stats and "μ_A + 3·σ_A" in stats.to_dict()["formula"]


def test_units_agree_and_bad_input_is_refused():
    rng = np.random.default_rng(1)
    db = -8 + 10 * np.log10(rng.gamma(4.4, 1 / 4.4, (64, 64)))
    by_db, s_db = normalise_amplitude(db)
    by_int, s_int = normalise_amplitude(10 ** (db / 10), unit="intensity")
    by_amp, _ = normalise_amplitude(10 ** (db / 20), unit="amplitude")
    np.testing.assert_allclose(by_db, by_int)
    np.testing.assert_allclose(by_db, by_amp)
    assert s_int.threshold == pytest.approx(s_db.threshold)
    np.testing.assert_allclose(denormalise_amplitude(by_db, s_db, "intensity")[by_db < 1], 10 ** (db / 10)[by_db < 1])
    with pytest.raises(AmplitudeError, match="no valid pixel"):
        normalise_amplitude(np.full((4, 4), np.nan))
    with pytest.raises(AmplitudeError, match="cannot be normalised"):
        normalise_amplitude(np.zeros((4, 4)), unit="amplitude")
    with pytest.raises(AmplitudeError, match="unknown unit"):
        normalise_amplitude(db, unit="dBm")


def test_the_row_form_is_the_same_formula_on_numpy_and_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    amp = np.sqrt(rng.exponential(1.0, (3, 4096)))
    rows, thresholds = normalise_amplitude_rows(amp)
    for i in range(3):
        one, stats = normalise_amplitude(amp[i], unit="amplitude")
        np.testing.assert_allclose(rows[i], one)
        assert thresholds[i] == pytest.approx(stats.threshold)
    t = torch.tensor(amp, requires_grad=True)
    t_rows, _ = normalise_amplitude_rows(t)
    np.testing.assert_allclose(t_rows.detach().numpy(), rows, rtol=1e-12)
    t_rows.sum().backward()  # differentiable: a training loss can use it
    assert t.grad is not None and torch.isfinite(t.grad).all()
