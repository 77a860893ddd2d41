"""The NumPy FSIM port gives piq's numbers (piq stays the reference, imported only here)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from sarviz.errors import MetricError
from sarviz.metrics.fsim import fsim_grey


def _pair(shape, seed):
    rng = np.random.default_rng(seed)
    a = gaussian_filter(rng.uniform(0, 1, shape), 2).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.08, shape), 0, 1).astype(np.float32)
    return a, b


def _piq(x, y):
    piq = pytest.importorskip("piq")
    import torch

    return piq.fsim(
        torch.from_numpy(np.ascontiguousarray(x))[:, None],
        torch.from_numpy(np.ascontiguousarray(y))[:, None],
        data_range=1.0,
        chromatic=False,
        reduction="none",
    ).numpy()


@pytest.mark.parametrize("shape", [(512, 512), (263, 301), (120, 120), (64, 48)])
def test_port_matches_piq_on_synthetic_pairs(shape):
    a, b = _pair(shape, seed=sum(shape))
    ours = fsim_grey(b, a)
    assert abs(ours - _piq(b[None], a[None])[0]) < 1e-5
    assert fsim_grey(a, a) == pytest.approx(1.0, abs=1e-6)


def test_port_matches_piq_on_real_sentinel1(samples_dir):
    import rasterio

    from sarviz.calibration import DEFAULT_CALIBRATION

    path = next((samples_dir / "sen1floods11").rglob("*S1Hand*.tif"))
    with rasterio.open(path) as src:
        vv, vh = src.read(1).astype(np.float32), src.read(2).astype(np.float32)
    real = np.nan_to_num(DEFAULT_CALIBRATION.to_unit(vv, "VV"), nan=0.5)
    other = np.nan_to_num(DEFAULT_CALIBRATION.to_unit(vh, "VH"), nan=0.5)
    batch_x, batch_y = np.stack([other, real]), np.stack([real, real])
    ours = fsim_grey(batch_x, batch_y)
    assert np.allclose(ours, _piq(batch_x, batch_y), atol=1e-5)
    assert ours[1] == pytest.approx(1.0, abs=1e-6) and ours[0] < 0.99


def test_shape_mismatch_is_refused():
    with pytest.raises(MetricError, match="same shape"):
        fsim_grey(np.zeros((8, 8)), np.zeros((8, 9)))
