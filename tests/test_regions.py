"""Region files: one reader for `sarviz batch --region` and `sarviz dataset build --region`."""

from __future__ import annotations

import json
import re

import pytest

from sarviz.errors import SceneError
from sarviz.regions import read_region

SQUARE = {"type": "Polygon", "coordinates": [[[-1.0, 38.0], [-0.9, 38.0], [-0.9, 38.1], [-1.0, 38.1], [-1.0, 38.0]]]}


def test_reads_collections_features_and_bare_geometries(tmp_path):
    for data in (
        SQUARE,
        {"type": "Feature", "geometry": SQUARE, "properties": {"class": "crops"}},
        {
            "type": "FeatureCollection",
            "features": [{"type": "Feature", "geometry": SQUARE, "properties": {"region": "murcia"}}] * 2,
        },
    ):
        path = tmp_path / "r.geojson"
        path.write_text(json.dumps(data))
        parts = read_region(path)
        assert all(p.area > 0 for p, _ in parts) and len(parts) == (2 if "features" in data else 1)


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "does not exist"),
        ("{nope", "not valid JSON"),
        (json.dumps({"type": "Point", "coordinates": [0, 0]}), "region feature 1 is a 'Point'"),
        (
            json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}),
            "not a valid polygon",
        ),
        (json.dumps({"type": "FeatureCollection", "features": []}), "has no polygon"),
    ],
)
def test_bad_region_files_get_one_line_from_both_commands(tmp_path, content, message):
    from sarviz.batch.points import points_from_region
    from sarviz.datasets.builder import points_in_region
    from sarviz.datasets.layout import DatasetError

    path = tmp_path / "bad.geojson"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SceneError, match=message):
        points_from_region(path, 1.0)
    with pytest.raises(DatasetError, match=message):
        points_in_region(path, 512)


# -- item 12 of issue 21: a grid must cover its region -------------------------------------------
def _box(w: float, s: float, e: float, n: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


#: (region, batch --spacing-km, dataset patch size, dataset stride): regions a grid must cover
COVERED = {
    "normal": (_box(10.0, 45.0, 10.3, 45.2), 2.0, 64, None),
    "antimeridian-east": (_box(175.0, -20.0, 179.99, -15.0), 50.0, 512, 500),
    "antimeridian-west": (_box(-179.99, -20.0, -175.0, -15.0), 50.0, 512, 500),
    "near-a-pole": (_box(-60.0, 80.0, -20.0, 84.9), 50.0, 512, 2000),
    "large": (_box(-100.0, -50.0, 60.0, 50.0), 300.0, None, None),
    "tall": (_box(-20.0, -84.0, 20.0, 84.0), 300.0, 512, 30000),
}


@pytest.mark.parametrize("name", list(COVERED))
def test_region_grids_cover_regions_near_the_antimeridian_a_pole_and_large_ones(tmp_path, name):
    """Both grids (batch: aeqd at km spacing; dataset: the patch stride on local UTM) cover
    regions at the edges of what they accept. Before the region was densified, a long edge was
    projected as a chord: the 160°-wide region lost a quarter of its area to the batch grid and
    the one along 80° N a sliver — what :func:`check_grid_covers` now refuses (below)."""
    from sarviz.batch.points import points_from_region
    from sarviz.datasets.builder import points_in_region
    from sarviz.datasets.layout import DatasetError
    from sarviz.regions import check_grid_covers

    geometry, spacing_km, size, stride = COVERED[name]
    path = tmp_path / f"{name}.geojson"
    path.write_text(json.dumps(geometry))
    region = read_region(path)[0][0]
    points = points_from_region(path, spacing_km)
    check_grid_covers(region, [p.lon for p in points], [p.lat for p in points], spacing_km * 1000, name)
    if size is None:  # one UTM zone cannot hold a 160°-wide patch grid: refused in one line, not a traceback
        with pytest.raises(DatasetError, match="reaches too far from its UTM zone"):
            points_in_region(path, 512, 30000)
        return
    patches = points_in_region(path, size, stride)
    assert patches
    cell = (stride or size) * 10.0
    check_grid_covers(region, [p["lon"] for p in patches], [p["lat"] for p in patches], cell, name)


def _uncovered_box(message: str) -> tuple[float, ...]:
    found = re.search(r"longitude (\S+)…(\S+) and latitude (\S+)…(\S+) ", message)
    assert found, message
    return tuple(map(float, found.groups()))


def test_the_coverage_check_says_what_a_grid_leaves_out(tmp_path):
    """A grid with a hole (its points around 45°N 10°E removed) and the grid of only the
    western half of a region are refused, naming where the uncovered part lies; the complete
    grid passes, and a grid that misses only the edge band (the tolerance) passes too."""
    import numpy as np

    from sarviz.batch.points import points_from_region
    from sarviz.regions import check_grid_covers

    path = tmp_path / "r.geojson"
    path.write_text(json.dumps(_box(9.0, 44.0, 11.0, 46.0)))
    region = read_region(path)[0][0]
    points = points_from_region(path, 10.0)
    lons, lats = np.array([p.lon for p in points]), np.array([p.lat for p in points])
    check_grid_covers(region, lons, lats, 10_000.0, "r")
    hole = (abs(lons - 10.0) < 0.3) & (abs(lats - 45.0) < 0.3)
    with pytest.raises(SceneError) as err:
        check_grid_covers(region, lons[~hole], lats[~hole], 10_000.0, "r")
    message = str(err.value)
    assert "the grid does not cover the region" in message and "split the region" in message
    lon_lo, lon_hi, lat_lo, lat_hi = _uncovered_box(message)
    assert 9.6 < lon_lo < lon_hi < 10.4 and 44.6 < lat_lo < lat_hi < 45.4, message  # the hole, nothing else
    west = lons < 10.0
    with pytest.raises(SceneError) as err:
        check_grid_covers(region, lons[west], lats[west], 10_000.0, "r")
    lon_lo, lon_hi, lat_lo, lat_hi = _uncovered_box(str(err.value))
    assert 9.9 < lon_lo and lon_hi > 10.8 and lat_lo < 44.2 and lat_hi > 45.8, str(err.value)  # the east half
    inner = (abs(lons - 10.0) < 0.95) & (abs(lats - 45.0) < 0.95)  # drops only points near the edge
    check_grid_covers(region, lons[inner], lats[inner], 10_000.0, "r")
