"""Incidence angle from an IW footprint: real SSL4EO footprints and simulated high-latitude passes."""

from __future__ import annotations

import glob
import json
import math
from pathlib import Path

import numpy as np
import pytest
from pyproj import Geod
from rasterio.crs import CRS

from sarviz.scene import patch_grid
from sarviz.sources.s1_geometry import estimate_incidence_angle, ground_track_azimuth

from _sources_fixtures import simulate_iw_swath

SSL4EO = Path(__file__).resolve().parents[1].parent / "shared" / "samples" / "ssl4eo" / "s1"


def _ssl4eo_products():
    if not SSL4EO.is_dir():
        pytest.skip(f"the SSL4EO samples are not at {SSL4EO} (../shared is absent)")
    out = []
    for path in sorted(glob.glob(str(SSL4EO / "*" / "*" / "metadata.json"))):
        meta = json.loads(Path(path).read_text())
        out.append(meta)
    if not out:
        pytest.skip(f"no SSL4EO Sentinel-1 metadata.json under {SSL4EO}")
    return out


def _angle_gradient(angle, transform):
    """Direction (unit, map coordinates) in which the angle grows: a plane fit."""
    h, w = angle.shape
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    xs = transform.a * cols + transform.b * rows + transform.c
    ys = transform.d * cols + transform.e * rows + transform.f
    design = np.column_stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    gx, gy, _ = np.linalg.lstsq(design, angle.ravel().astype(np.float64), rcond=None)[0]
    return np.array([gx, gy]) / math.hypot(gx, gy)


def test_ssl4eo_footprints_near_far_edges_and_range_direction():
    """Real IW GRD footprints (EE metadata): 252 km wide; far range where the product's own angle
    tie-point grid says range grows (its column axis), near edge ≈ 30.7°, not the beam's 29.1°."""
    for meta in _ssl4eo_products():
        ring = meta["system:footprint"]["coordinates"]
        footprint = {"type": "Polygon", "coordinates": [ring]}
        pass_ = meta["orbitProperties_pass"].lower()
        crs = CRS.from_user_input(meta["system:bands"]["VV"]["crs"])
        lon = float(np.mean([p[0] for p in ring]))
        lat = float(np.mean([p[1] for p in ring]))
        patch_crs, transform = patch_grid(lat, lon, 64, 10.0)
        assert patch_crs == crs  # the same UTM zone as the product's angle grid
        details: dict = {}
        angle = estimate_incidence_angle(footprint, pass_, patch_crs, transform, 64, 64, details=details)
        assert angle is not None
        assert 245.0 < details["swath_width_km"] < 258.0
        assert 30.3 < details["near_edge_deg"] < 31.2 and details["far_edge_deg"] == 46.0
        assert 30.3 < float(angle.min()) and float(angle.max()) < 46.0
        a, b, _, d, e, _ = meta["system:bands"]["angle"]["crs_transform"]
        range_axis = np.array([a, d]) / math.hypot(a, d)
        azimuth_axis = np.array([b, e]) / math.hypot(b, e)
        grad = _angle_gradient(angle, transform)
        assert grad @ range_axis > 0.99, (pass_, grad, range_axis)
        assert abs(grad @ azimuth_axis) < 0.3


@pytest.mark.parametrize(
    "lat, pass_",
    [
        (47.0, "ascending"),
        (47.0, "descending"),
        (78.0, "ascending"),
        (79.5, "descending"),
        (-79.0, "ascending"),
        (80.5, "ascending"),
    ],
)
def test_simulated_passes_give_the_true_angle_at_any_latitude(lat, pass_):
    """Footprints from a propagated orbit (not the heading formula); a point 60 km beyond the near
    edge must get θ(g_near + 60 km). Above ~75° the track runs more east–west than north–south,
    where the old "side closer to north–south" choice mirrored near and far range."""
    footprint, (lon0, lat0), heading, ground_range, incidence = simulate_iw_swath(lat, pass_)
    assert abs((ground_track_azimuth(lat0, pass_) - heading + 180) % 360 - 180) < 1.0
    g = ground_range(30.8) + 60.0
    lon, plat, _ = Geod(ellps="WGS84").fwd(lon0, lat0, heading + 90.0, g * 1000.0)
    crs, transform = patch_grid(plat, lon, 32, 10.0)
    angle = estimate_incidence_angle(footprint, pass_, crs, transform, 32, 32)
    assert angle is not None
    assert float(angle[16, 16]) == pytest.approx(incidence(g), abs=0.3)


def test_partial_footprints_and_unknown_passes_give_no_angle():
    footprint, (lon0, lat0), heading, ground_range, incidence = simulate_iw_swath(47.0, "ascending")
    crs, transform = patch_grid(lat0, lon0, 16, 10.0)
    assert estimate_incidence_angle(footprint, "", crs, transform, 16, 16) is None
    narrow, *_ = simulate_iw_swath(47.0, "ascending", near_deg=40.0)  # ~80 km: not a whole swath
    assert estimate_incidence_angle(narrow, "ascending", crs, transform, 16, 16) is None


def test_footprints_across_the_antimeridian_ring_or_split_multipolygon():
    """A ring jumping 179° → −179°, or the RFC 7946 MultiPolygon split at ±180°: same angles."""
    import shapely
    from shapely.geometry import box, mapping, shape

    footprint, (lon0, lat0), heading, ground_range, incidence = simulate_iw_swath(
        60.0, "descending", half_length_s=25.0
    )
    lons = [p[0] for p in footprint["coordinates"][0]]
    assert max(lons) - min(lons) > 180  # this pass crosses the antimeridian
    unwrapped = shapely.transform(
        shape(footprint), lambda xy: np.column_stack([np.where(xy[:, 0] < 0, xy[:, 0] + 360, xy[:, 0]), xy[:, 1]])
    )
    east = unwrapped.intersection(box(180, -90, 540, 90))
    split = mapping(
        shapely.MultiPolygon([unwrapped.intersection(box(-180, -90, 180, 90)), shapely.affinity.translate(east, -360)])
    )
    g = ground_range(30.8) + 100.0
    lon, plat, _ = Geod(ellps="WGS84").fwd(lon0, lat0, heading + 90.0, g * 1000.0)
    crs, transform = patch_grid(plat, lon, 8, 10.0)
    for fp in (footprint, split):
        angle = estimate_incidence_angle(fp, "descending", crs, transform, 8, 8)
        assert angle is not None and float(angle[4, 4]) == pytest.approx(incidence(g), abs=0.3)
