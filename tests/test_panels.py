"""The inspection figures render, carry what they claim, and work without a real image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sarviz.metrics import sar
from sarviz.metrics.report import compare
from sarviz.viz import panels

from _metrics_fixtures import speckled_scene_db


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


def test_glcm_panel_distances_are_distinct_lags_at_the_diagonals(reports):
    """Exact lags: d = 1 and d = 2 no longer meet at 45°/135° (scikit-image rounded both to (1, 1))."""
    full, _ = reports
    lines = {line.get_label(): line.get_ydata() for line in panels.glcm_panel(full).axes[0].get_lines()}
    d1, d2 = np.asarray(lines["real d=1"]), np.asarray(lines["real d=2"])
    diagonal = [sar.GLCM_ANGLES_DEG.index(45), sar.GLCM_ANGLES_DEG.index(135)]
    assert (np.abs(d2[diagonal] - d1[diagonal]) > 1e-3).all()
    assert "exact lags" in panels.glcm_panel(full)._suptitle.get_text()


def test_panels_follow_the_reports_calibration():
    from sarviz.calibration import Calibration

    vv, vh = speckled_scene_db(seed=0)
    cal = Calibration({"VV": (-40.0, 10.0), "VH": (-45.0, 0.0)})
    report = compare(vv, vh, vv, vh, calibration=cal)
    fig = panels.histogram_panel(report)
    lo, hi = fig.axes[0].get_xlim()
    assert lo < -50.0 and hi > 20.0  # the dB histogram spans the calibration ± 10 dB
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_xdata()[[0, -1]], [-50.0, 20.0])
    default = panels.histogram_panel(compare(vv, vh, vv, vh))
    assert default.axes[0].get_xlim()[1] < 15.0


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


def test_embedding_pca_of_the_displayed_pixels_matches_the_full_field():
    """The panel projects only the decimated pixels it shows; for a 2×-decimated field the
    principal axes come from exactly the every-2nd-pixel sample the full computation uses."""
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(64, 40, 36)).astype(np.float32)
    emb[:3] += np.linspace(-1, 1, 36, dtype=np.float32) * np.array([3.0, 2.0, 1.0], np.float32)[:, None, None]
    full_rgb, full_explained = panels.embedding_pca_rgb(emb, sample_step=2)
    shown_rgb, shown_explained = panels.embedding_pca_rgb(emb[:, ::2, ::2], sample_step=1)
    np.testing.assert_allclose(shown_explained, full_explained, rtol=1e-5)
    assert shown_rgb.shape == (20, 18, 3)
    # same axes, so the same pixels get the same colours up to each stretch's percentiles
    for channel in range(3):
        assert np.corrcoef(shown_rgb[..., channel].ravel(), full_rgb[::2, ::2, channel].ravel())[0, 1] > 0.99


def test_panels_are_independent_figures_built_from_a_cached_skeleton(reports):
    """Panels are copied from a drawn skeleton kept per layout: each call must still give
    its own figure, and a copy must draw exactly like the first one."""
    full, gen_only = reports
    a, b = panels.histogram_panel(full), panels.histogram_panel(gen_only)
    assert a is not b and not set(map(id, a.axes)) & set(map(id, b.axes))
    assert panels.NO_REAL_NOTE not in a._suptitle.get_text() and panels.NO_REAL_NOTE in b._suptitle.get_text()
    assert len(a.axes[0].get_lines()) == 2 and len(b.axes[0].get_lines()) == 1
    first = panels.figure_png(panels.glcm_panel(full))
    panels.glcm_panel(gen_only).axes[0].set_title("changed")  # must not leak into later copies
    assert panels.figure_png(panels.glcm_panel(full)) == first
    emb = np.random.default_rng(3).normal(size=(16, 40, 40)).astype(np.float32)
    assert panels.figure_png(panels.embedding_panel(emb)) == panels.figure_png(panels.embedding_panel(emb))


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_fast_pngs_are_the_pictures_of_the_panels(reports):
    """histogram_png / glcm_png / embedding_png blit a cached background, reuse figures and
    a renderer: the pixels must be exactly those of drawing the panel figure anew."""
    full, gen_only = reports
    emb = np.random.default_rng(4).normal(size=(16, 40, 40)).astype(np.float32)
    # (fast PNG, panel, argument, another argument drawn in between)
    cases = [
        (panels.histogram_png, panels.histogram_panel, full, gen_only),
        (panels.histogram_png, panels.histogram_panel, gen_only, full),
        (panels.glcm_png, panels.glcm_panel, full, gen_only),
        (panels.glcm_png, panels.glcm_panel, gen_only, full),
        (panels.embedding_png, panels.embedding_panel, emb, emb[:, :32]),
        (panels.embedding_png, panels.embedding_panel, None, emb),
    ]
    for fast, panel, arg, other in cases:
        first = fast(arg)
        assert _png_size(first) == _png_size(panels.figure_png(panel(arg)))
        np.testing.assert_array_equal(_pixels(first), _pixels(panels.figure_png(panel(arg))))
        fast(other)  # a reused figure (after drawing other data on it) draws exactly like a new one
        assert fast(arg) == first


def test_reused_panel_figures_keep_nothing_from_earlier_data(reports):
    full, gen_only = reports
    vv, vh = speckled_scene_db(seed=7)
    other = compare(vv + 6.0, vh + 6.0, vv - 4.0, vh)  # other y ranges, other legends
    for fast, panel in ((panels.histogram_png, panels.histogram_panel), (panels.glcm_png, panels.glcm_panel)):
        fast(other)
        np.testing.assert_array_equal(_pixels(fast(full)), _pixels(panels.figure_png(panel(full))))
        fast(full)
        np.testing.assert_array_equal(_pixels(fast(other)), _pixels(panels.figure_png(panel(other))))


def test_embedding_pca_linear_algebra_matches_numpy():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(64, 500)).astype(np.float32)
    cov = np.cov(a.astype(np.float64))
    eigval, eigvec = panels._eigh(cov)
    ref_val, ref_vec = np.linalg.eigh(cov)
    np.testing.assert_allclose(eigval, ref_val, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.abs(eigvec[:, -3:]), np.abs(ref_vec[:, -3:]), atol=1e-8)
    np.testing.assert_allclose(panels._matmul(a[:3], a.T), a[:3] @ a.T, rtol=1e-4, atol=1e-4)
