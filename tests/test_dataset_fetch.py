"""`sarviz dataset build --points/--region` through the real source chain (local Zarr/STAC/COG fixtures)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from sarviz.cli import main
from sarviz.datasets.builder import points_in_region
from sarviz.datasets.layout import open_dataset
from sarviz.scene import read_scene

from _dataset_fixtures import need_points
from _sources_fixtures import build_aef_zarr, make_s1_items, make_s2_items, stac_api, write_items

LAT, LON = 47.0, 8.0
LAT2, LON2 = 46.0, 9.0  # embedding only: no Sentinel-1 there


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    build_aef_zarr(d / "aef.zarr", [(LAT, LON, 60, 90), (LAT2, LON2, 60, 90)])
    (d / "cogs").mkdir()
    items = make_s1_items(d / "cogs", LAT, LON, ["2018-03-01", "2018-05-01"]) + make_s2_items(
        d / "cogs", LAT, LON, ["2018-06-01"]
    )
    with stac_api(write_items(d / "cogs", items)) as url:
        yield {"aef": str(d / "aef.zarr"), "stac": url}


def test_points_build_reports_failures_and_resumes(world, tmp_path, monkeypatch, capsys):
    need_points()
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path / "home"))
    points = tmp_path / "points.csv"
    points.write_text(
        f"id,lat,lon\nalps_a,{LAT},{LON}\nalps_b,{LAT + 0.0004},{LON - 0.0005}\nsouth,{LAT2},{LON2}\nbad,abc,0\n"
    )
    out = tmp_path / "out"
    args = [
        "dataset",
        "build",
        "--points",
        str(points),
        "--year",
        "2018",
        "--out",
        str(out),
        "--size",
        "32",
        "--source",
        "public",
        "--aef-url",
        world["aef"],
        "--stac-url",
        world["stac"],
        "--max-missing",
        "0.2",
        "--val-fraction",
        "0",
        "--test-fraction",
        "0",
        "--date",
        "2018-05-02",
    ]
    assert main(args) == 1  # two points failed: the exit code says so
    captured = capsys.readouterr()
    assert "[" in captured.err and "alps_a: ok" in captured.err and "south: FAILED" in captured.err
    ds = open_dataset(out)
    assert sorted(r["id"] for r in ds.rows) == ["alps_a", "alps_b"]
    with open(out / "failures.csv", newline="") as fh:
        failures = {r["id"]: r["reason"] for r in csv.DictReader(fh)}
    assert set(failures) == {"south", "bad"} and "Sentinel-1" in failures["south"]
    assert "numbers" in failures["bad"]
    row = next(r for r in ds.rows if r["id"] == "alps_a")
    patch = read_scene(out / row["file"])
    assert patch.shape == (32, 32) and patch.embedding is not None and np.isfinite(patch.vv_db).mean() > 0.8
    assert row["embedding_source"] == "alphaearth" and row["orbit"] == "descending"
    prov = json.loads(row["provenance"])
    assert prov["s1_mode"] == "single" and prov["fetch"]["s1_composite"] == "nearest"
    assert ds.info["embedding_source"] == "alphaearth" and ds.info["s1_mode"] == "single"
    assert abs(float(row["lat"]) - LAT) < 0.01 and row["date"] == "2018-05-01"  # nearest to --date
    # run again: finished points are skipped (no refetch), the failures are retried (and fail again)
    stamp = (out / row["file"]).stat().st_mtime_ns
    assert main(args) == 1
    text = capsys.readouterr()
    assert "(0 new, 2 from an earlier run)" in text.out and "south: FAILED" in text.err
    assert (out / row["file"]).stat().st_mtime_ns == stamp


def test_region_grid_is_inside_the_polygon(tmp_path):
    from shapely.geometry import Point, shape

    poly = {"type": "Polygon", "coordinates": [[[8.0, 47.0], [8.05, 47.0], [8.05, 47.03], [8.0, 47.03], [8.0, 47.0]]]}
    region = tmp_path / "region.geojson"
    region.write_text(
        json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": poly, "properties": {}}]})
    )
    pts = points_in_region(region, size=64)  # 640 m spacing over ~3.8 × 3.3 km
    assert 20 <= len(pts) <= 36
    assert all(shape(poly).contains(Point(p["lon"], p["lat"])) for p in pts)
    coarse = points_in_region(region, size=64, stride=128)
    assert len(coarse) < len(pts)
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps({"type": "Point", "coordinates": [8, 47]}))
    assert main(["dataset", "build", "--region", str(bad), "--out", str(tmp_path / "o")]) == 2
