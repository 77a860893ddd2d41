"""The inspection figures render, carry what they claim, and work without a real image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from _metrics_fixtures import speckled_scene_db
from sarviz.metrics import sar
from sarviz.metrics.report import compare
from sarviz.viz import panels


@pytest.fixture(scope="module")
def reports():
    vv, vh = speckled_scene_db(seed=0)
    gv, gh = speckled_scene_db(seed=2, looks=2.0, offset_db=1.0)
    return compare(vv, vh, gv, gh), compare(None, None, gv, gh)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data)).size


def _texts(fig) -> str:
    return " ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


def test_histogram_panel_shows_kl_for_both_polarisations(reports):
    full, _ = reports
    fig = panels.histogram_panel(full)
    text = _texts(fig)
    for pol in ("VV", "VH"):
        assert f"KL(real ‖ gen) = {full[pol].kl.kl:.3f}" in text
    assert "real S1" in text and "generated" in text
    assert _png_size(panels.figure_png(fig)) == (900, 576)


def test_panels_render_generated_only_and_say_so(reports):
    _, gen_only = reports
    for fig in (panels.histogram_panel(gen_only), panels.glcm_panel(gen_only)):
        assert panels.NO_REAL_NOTE in fig._suptitle.get_text()
        assert _png_size(panels.figure_png(fig))[0] > 0
    assert "KL: needs a real image" in _texts(panels.histogram_panel(gen_only))


def test_glcm_panel_lines_real_solid_generated_dashed(reports):
    full, gen_only = reports
    fig = panels.glcm_panel(full)
    axes = fig.axes
    assert len(axes) == len(sar.GLCM_FEATURES) * 2
    lines = axes[0].get_lines()
    assert len(lines) == 2 * len(sar.GLCM_DISTANCES)
    assert sorted(line.get_linestyle() for line in lines) == ["-"] * 3 + ["--"] * 3
    real_d1 = next(line for line in lines if line.get_label() == "real d=1")
    np.testing.assert_allclose(real_d1.get_ydata(), full["VV"].glcm_real["contrast"][0])
    assert list(real_d1.get_xdata()) == list(sar.GLCM_ANGLES_DEG)
    assert len(panels.glcm_panel(gen_only).axes[0].get_lines()) == len(sar.GLCM_DISTANCES)


def test_embedding_panel_dims_and_pca():
    rng = np.random.default_rng(0)
    h = w = 48
    # three strong spatial patterns along three orthogonal embedding directions, plus weak noise
    basis = np.linalg.qr(rng.normal(size=(64, 3)))[0]
    rows, cols = np.mgrid[:h, :w] / 47.0
    checker = (np.add.outer(np.arange(h) // 8, np.arange(w) // 8) % 2) - 0.5
    patterns = np.stack([2 * (cols - 0.5), rows - 0.5, 0.2 * checker])  # variances 1/3 > 1/12 > 1/100
    emb = np.einsum("dk,khw->dhw", basis, patterns) + 0.01 * rng.normal(size=(64, h, w))
    rgb, explained = panels.embedding_pca_rgb(emb.astype(np.float32))
    assert rgb.shape == (h, w, 3) and np.nanmin(rgb) >= 0 and np.nanmax(rgb) <= 1
    assert explained.sum() > 0.95
    # components in order of variance: red follows the columns, green the rows
    for channel in (0, 1):
        assert abs(np.corrcoef(rgb[..., channel].ravel(), patterns[channel].ravel())[0, 1]) > 0.95
    fig = panels.embedding_panel(emb)
    titles = [ax.get_title() for ax in fig.axes]
    assert {"A02", "A07", "A12"} <= set(titles)
    assert any(t.startswith("PCA") for t in titles)
    assert _png_size(panels.figure_png(fig))[0] > 0


def test_embedding_panel_without_embedding_says_so():
    fig = panels.embedding_panel(None)
    assert "no AlphaEarth embedding" in _texts(fig)
    _png_size(panels.figure_png(fig))


def test_side_by_side_panel_marks_missing_views():
    rgb = np.zeros((32, 32, 3), np.uint8)
    fig = panels.side_by_side_panel(None, rgb, rgb, "VV")
    assert "not available" in _texts(fig)
    _png_size(panels.figure_png(fig))
