"""The Batch page (AppTest) and its folder check."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sarviz.batch.layout import BatchConfig
from sarviz.batch.points import points_from_file
from sarviz.ui.batch import BatchAccessError, check_batch_path, find_batches

from _batch_fixtures import build_scene_folder, write_points_csv

PAGE = Path(__file__).resolve().parents[1] / "pages" / "6_Batch.py"


@pytest.fixture(scope="module")
def batch_root(tmp_path_factory):
    from sarviz.batch.engine import run_batch

    root = tmp_path_factory.mktemp("batch-ui")
    pts = build_scene_folder(root / "scenes")
    chosen = [p for p in pts if p["id"].endswith(("_00", "_05"))]
    chosen.append({"id": "nowhere", "lat": 0.0, "lon": 0.0, "class": "", "region": ""})
    points = points_from_file(write_points_csv(root / "points.csv", chosen))
    summary = run_batch(
        points,
        BatchConfig(model="emulator", size=48, seeds=(0, 1), scenes=str(root / "scenes")),
        root / "batches" / "b1",
        engine="inline",
        progress=False,
    )
    assert (summary.done, summary.failed) == (4, 1)
    return root


def test_only_batch_folders_under_the_roots_open(batch_root, tmp_path):
    roots = [(batch_root / "batches").resolve()]
    assert check_batch_path(batch_root / "batches" / "b1", roots) == (batch_root / "batches" / "b1").resolve()
    with pytest.raises(BatchAccessError, match="outside the folders") as outside:
        check_batch_path(tmp_path, roots)
    assert str(tmp_path) not in str(outside.value)
    with pytest.raises(BatchAccessError, match="outside"):
        check_batch_path(batch_root / "batches" / ".." / "scenes", roots)  # no escape by ..
    with pytest.raises(BatchAccessError, match="not a sarviz batch"):
        check_batch_path(batch_root / "batches" / "b1" / "items", roots)
    assert find_batches(roots) == [(batch_root / "batches" / "b1").resolve()]


def test_batch_page_lists_opens_and_inspects_an_item(batch_root, monkeypatch):
    monkeypatch.setenv("SARVIZ_BATCHES", str(batch_root / "batches"))
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    batch = str((batch_root / "batches" / "b1").resolve())
    assert batch in at.selectbox(key="batch-pick").options
    at.selectbox(key="batch-pick").select(batch).run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["items done"] == "4" and metrics["failed"] == "1" and metrics["model"] == "emulator"
    text = "\n".join(str(m.value) for m in at.markdown) + "\n".join(str(c.value) for c in at.caption)
    assert "nowhere" in text and "no scene covers" in text  # the failed point, with its reason
    assert "median composite" in text  # the real crops of the fixture are composites, and the page says so
    assert at.selectbox(key="batch-item").options == [
        "amazon_forest_00",
        "amazon_forest_05",
        "iowa_ag_00",
        "iowa_ag_05",
    ]
    at.selectbox(key="batch-item").select("iowa_ag_05").run()
    at.radio(key="batch-seed").set_value(1).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.label for t in at.tabs][:2] == ["Side by side", "Swipe map"]  # the inspection panels
    assert any("SSIM" in str(df.value) for df in at.dataframe)  # the metrics table of the item


def test_batch_page_refuses_a_folder_outside_the_roots(batch_root, monkeypatch, tmp_path):
    monkeypatch.setenv("SARVIZ_BATCHES", str(batch_root / "batches"))
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    at.text_input(key="batch-path").input(str(batch_root / "scenes")).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors and "outside the folders" in errors[0] and str(batch_root) not in errors[0]


def test_items_without_scene_copy_still_open(batch_root, tmp_path):
    from sarviz.batch.engine import run_batch
    from sarviz.batch.layout import BatchFolder
    from sarviz.ui.batch import load_item

    points = [p for p in points_from_file(batch_root / "points.csv") if p.id == "iowa_ag_00"]
    config = BatchConfig(model="emulator", size=48, scenes=str(batch_root / "scenes"), keep_scene=False)
    assert run_batch(points, config, tmp_path / "lean", engine="inline", progress=False).done == 1
    folder = BatchFolder(tmp_path / "lean")
    assert not (folder.item_dir("iowa_ag_00") / "scene.tif").exists()
    scene, result, seeds = load_item(folder, "iowa_ag_00")
    assert seeds == [0] and scene.vv_db is not None and scene.optical is not None and scene.embedding is None
    assert result.vv_db.shape == scene.vv_db.shape
