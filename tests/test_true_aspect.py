"""Panels are drawn with the ground's aspect and both pixel sizes are stated (issue 22 item 9)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SPAIN_LATLON

from sarviz.viz.images import true_aspect


def test_the_spain_chip_has_non_square_pixels_and_is_drawn_taller_than_wide(sample_scenes):
    from sarviz.store import SceneStore
    from sarviz.ui.scene_view import describe_scene, scene_images

    scene = SceneStore(sample_scenes).lookup(*SPAIN_LATLON, size_px=512)
    px, py = scene.pixel_size_xy_m
    assert px == pytest.approx(7.9, abs=0.1) and py == pytest.approx(9.9, abs=0.15)
    assert f"pixels {px:.1f} m (E–W) × {py:.1f} m (N–S)" in describe_scene(scene)
    assert "S1 2019-09-17," in describe_scene(scene)  # a date without a time of day, not T00:00:00
    imgs = scene_images(scene)
    for rgb in (imgs.optical, imgs.vv, imgs.vh):
        h, w = rgb.shape[:2]
        # the footprint's shape: 512 × 7.9 m wide, 512 × 10.0 m tall
        assert h / w == pytest.approx(py / px, rel=0.01) and w == scene.width


def test_true_aspect_keeps_square_pixels_and_every_value():
    rgb = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    assert true_aspect(rgb, (10.0, 10.1)) is rgb
    tall = true_aspect(rgb, (5.0, 10.0))
    assert tall.shape == (8, 6, 3) and (tall[::2] == rgb).all()  # nearest neighbour: rows repeated
    wide = true_aspect(rgb, (10.0, 5.0))
    assert wide.shape == (4, 12, 3) and set(np.unique(wide)) == set(np.unique(rgb))
