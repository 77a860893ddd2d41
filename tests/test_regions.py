"""Region files: one reader for `sarviz batch --region` and `sarviz dataset build --region`."""

from __future__ import annotations

import json

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
