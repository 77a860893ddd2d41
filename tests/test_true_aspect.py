"""Panels are drawn with the ground's aspect and both pixel sizes are stated."""

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


def test_scene_overlay_for_the_map_sits_on_the_scene_footprint(sample_scenes):
    """The map's overlay of a scene (item 3): a PNG at most OVERLAY_MAX_PX a side, at the scene's bounds."""
    import base64
    import io

    from PIL import Image

    from sarviz.store import SceneStore
    from sarviz.ui.map import OVERLAY_MAX_PX, overlay_image, selection_layer
    from sarviz.viz.images import render_true_colour

    scene = SceneStore(sample_scenes).lookup(*SPAIN_LATLON, size_px=512)
    url, bounds = overlay_image(render_true_colour(scene.optical), scene.crs, scene.transform)
    png = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert png.mode == "RGBA" and max(png.size) <= OVERLAY_MAX_PX + 2
    west, south, east, north = scene.bounds_wgs84
    (s, w), (n, e) = bounds
    assert (s, w, n, e) == pytest.approx((south, west, north, east), abs=2e-4)
    group = selection_layer(SPAIN_LATLON, (url, bounds, 0.5, "optical"))
    html = group._children  # the overlay under the marker, with the opacity asked for
    overlay = next(c for c in html.values() if type(c).__name__ == "ImageOverlay")
    assert overlay.options["opacity"] == 0.5
