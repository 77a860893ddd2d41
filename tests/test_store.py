"""Local scene store: lookup, crops, antimeridian, poles, and bad folders."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from conftest import make_scene
from sarviz.scene import SceneError, write_scene
from sarviz.store import NoSceneHere, SceneStore


@pytest.fixture(scope="module")
def _store_template(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("store")
    # a 1000×800 px scene at 10 m in UTM 33N, and one crossing the antimeridian in UTM 60N
    write_scene(make_scene(size=(800, 1000), scene_id="austria", layers=("vv_db", "vh_db")), tmp_path / "austria.tif")
    # UTM 60N: 180° at 65°N lies at x ≈ 641,428 m, y ≈ 7,211,811 m; the scene spans 634–650 km easting
    write_scene(
        make_scene(
            crs="EPSG:32660", origin=(634_000.0, 7_214_000.0), size=(300, 1600), scene_id="chukotka", layers=("vv_db",)
        ),
        tmp_path / "chukotka.tif",
    )
    return tmp_path


@pytest.fixture
def store_dir(_store_template, tmp_path):
    """A fresh copy per test (tests add and break files); writing the scenes once is enough."""
    out = tmp_path / "scenes"
    shutil.copytree(_store_template, out)
    return out


def test_lookup_centres_the_patch(store_dir):
    store = SceneStore(store_dir)
    full = store.read("austria")
    lat, lon = full.center_latlon
    patch = store.lookup(lat, lon, 128)
    assert patch.shape == (128, 128) and patch.crs == full.crs
    # the patch is the window of the full scene around the point
    col, row = ~full.transform @ (patch.transform.c, patch.transform.f)
    r, c = int(round(row)), int(round(col))
    np.testing.assert_array_equal(patch.vv_db, full.vv_db[r : r + 128, c : c + 128])
    assert abs(r - (400 - 64)) <= 1 and abs(c - (500 - 64)) <= 1


def test_lookup_near_edge_stays_inside(store_dir):
    store = SceneStore(store_dir)
    full = store.read("austria")
    # 2 pixels inside the top-left corner
    from pyproj import Transformer

    x, y = full.transform @ (2, 2)
    lon, lat = Transformer.from_crs(full.crs, "EPSG:4326", always_xy=True).transform(x, y)
    patch = store.lookup(lat, lon, 256)
    assert patch.shape == (256, 256) and patch.transform == full.transform


def test_lookup_patch_larger_than_scene_returns_whole_scene(store_dir):
    store = SceneStore(store_dir)
    lat, lon = store.read("chukotka").center_latlon
    patch = store.lookup(lat, lon, 2048)
    assert patch.shape == (300, 1600)


def test_antimeridian(store_dir):
    store = SceneStore(store_dir)
    entry = store.entry("chukotka")
    assert entry.west > entry.east  # crosses 180°
    for lon in (179.99, -179.99, 180.0):
        hits = store.find(65.0, lon)
        assert [e.scene_id for e in hits] == ["chukotka"], lon
    patch = store.lookup(65.0, -179.995, 128)
    assert patch.shape == (128, 128) and np.isfinite(patch.vv_db).all()
    # a far-away point on the other side of the globe is not inside
    assert store.find(65.0, 0.0) == []


def test_point_in_no_scene_names_nearest(store_dir):
    store = SceneStore(store_dir)
    with pytest.raises(NoSceneHere, match="nearest: austria"):
        store.lookup(48.0, 16.5, 64)
    with pytest.raises(NoSceneHere):
        store.lookup(89.9, 0.0, 64)  # the pole


def test_utm_grid_lookup(store_dir):
    store = SceneStore(store_dir)
    lat, lon = store.read("austria").center_latlon
    patch = store.lookup(lat, lon, 64, grid="utm")
    assert patch.crs.to_epsg() == 32633 and patch.transform.a == 10 and patch.shape == (64, 64)
    assert np.isfinite(patch.vv_db).all()


def test_bad_inputs(store_dir, tmp_path):
    store = SceneStore(store_dir)
    with pytest.raises(SceneError, match="latitude"):
        store.lookup(91, 0)
    with pytest.raises(SceneError, match="patch size"):
        store.lookup(48.2, 13.7, 3)
    with pytest.raises(SceneError, match="does not exist"):
        SceneStore(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(SceneError, match="not a folder"):
        SceneStore(tmp_path / "file.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoSceneHere, match="empty"):
        SceneStore(empty).lookup(0, 0)


def test_corrupt_files_are_reported_not_fatal(store_dir):
    (store_dir / "garbage.tif").write_bytes(b"\x00" * 100)
    good = (store_dir / "austria.tif").read_bytes()
    (store_dir / "truncated.tif").write_bytes(good[:3000])
    store = SceneStore(store_dir)
    assert sorted(e.scene_id for e in store) == ["austria", "chukotka"]
    assert len(store.problems) == 2 and any("garbage.tif" in p for p in store.problems)


def test_index_cache_is_reused_and_invalidated(store_dir):
    SceneStore(store_dir)
    assert (store_dir / ".sarviz-index.json").exists()
    write_scene(make_scene(scene_id="new", origin=(500_000.0, 5_340_000.0)), store_dir / "new.tif")
    store = SceneStore(store_dir)
    assert "new" in [e.scene_id for e in store]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any folder")
def test_unreadable_folder(tmp_path):
    d = tmp_path / "locked"
    d.mkdir()
    d.chmod(0)
    try:
        with pytest.raises(SceneError, match="not readable"):
            SceneStore(d)
    finally:
        d.chmod(0o755)


def test_add_is_atomic_and_refuses_overwrite(store_dir):
    store = SceneStore(store_dir)
    scene = make_scene(scene_id="austria")
    with pytest.raises(SceneError, match="exists"):
        store.add(scene)
    path = store.add(make_scene(scene_id="other", origin=(600_000.0, 5_340_000.0)))
    assert path.name == "other.tif" and "other" in [e.scene_id for e in store]
    assert not list(store_dir.glob("*.part"))


def test_half_copied_file_is_refused_at_index_time(store_dir):
    data = (store_dir / "austria.tif").read_bytes()
    (store_dir / "half.tif").write_bytes(data[: len(data) // 2])
    store = SceneStore(store_dir)
    assert "half" not in [e.scene_id for e in store]
    assert any("half.tif" in p and "truncated" in p for p in store.problems)


def test_bad_json_tag_is_a_problem_not_a_crash(store_dir):
    import rasterio

    shutil.copy(store_dir / "austria.tif", store_dir / "badtag.tif")
    with rasterio.open(store_dir / "badtag.tif", "r+") as dst:
        dst.update_tags(DATES="{not json", SCENE_ID="badtag")
    store = SceneStore(store_dir)
    assert "badtag" not in [e.scene_id for e in store]
    assert any("badtag.tif" in p and "DATES tag is not valid JSON" in p for p in store.problems)


def test_newest_scene_wins_among_equals(tmp_path):
    a = make_scene(size=(64, 64), scene_id="older", layers=("vv_db",))
    b = make_scene(size=(64, 64), scene_id="newer", layers=("vv_db",))
    b.dates = {"s1": "2025-01-01T00:00:00", "s1_pass": "descending"}
    a.dates = {"s1": "2019-01-01T00:00:00"}
    write_scene(a, tmp_path / "a.tif")
    write_scene(b, tmp_path / "b.tif")
    store = SceneStore(tmp_path)
    lat, lon = a.center_latlon
    assert [e.scene_id for e in store.find(lat, lon)] == ["newer", "older"]


def test_lookup_falls_back_when_a_file_broke_after_indexing(store_dir):
    shutil.copy(store_dir / "austria.tif", store_dir / "austria_copy.tif")
    store = SceneStore(store_dir)
    lat, lon = store.read("austria").center_latlon
    first = store.find(lat, lon)[0]
    first.path.write_bytes(b"\x00" * 64)  # damaged behind the index's back
    patch = store.lookup(lat, lon, 64)
    assert patch.shape == (64, 64) and np.isfinite(patch.vv_db).all()


def test_find_is_consistent_while_another_thread_refreshes(store_dir):
    """The app shares one store between sessions: a refresh must never mix two indexes."""
    import threading

    store = SceneStore(store_dir)
    lat, lon = store.read("austria").center_latlon
    extra = store_dir / "aaa_first.tif"  # sorts first, shifting every index when it comes and goes
    write_scene(make_scene(crs="EPSG:32660", origin=(634_000.0, 7_214_000.0), scene_id="aaa", layers=("vv_db",)), extra)
    parked = store_dir.parent / "parked.tif"
    stop = threading.Event()
    wrong = []

    def churn():
        for i in range(30):
            (extra.rename(parked) if i % 2 == 0 else parked.rename(extra))
            store.refresh()
        stop.set()

    t = threading.Thread(target=churn)
    t.start()
    while not stop.is_set():
        ids = [e.scene_id for e in store.find(lat, lon)]
        if ids != ["austria"]:
            wrong.append(ids)
    t.join()
    assert not wrong, wrong[:3]


def test_refresh_if_changed_sees_new_files(store_dir):
    store = SceneStore(store_dir)
    assert store.refresh_if_changed() is False
    write_scene(make_scene(scene_id="late", origin=(700_000.0, 5_340_000.0)), store_dir / "late.tif")
    assert store.refresh_if_changed() is True and "late" in [e.scene_id for e in store]
