"""Batch synthesis on a local Ray (2 workers) over scenes with real AlphaEarth embedding vectors.

One Ray runtime for the session (``ray_local``, tests/_ray_fixtures.py: started by the first test
that needs it, shut down at the end); run_batch and evaluate_batch use it instead of their own.
The runs are 5 points a region (10 items, more than the scheduler's windows of 2 workers hold)
and a point outside every scene: each property needs a few items, not many.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import rasterio

from sarviz.batch.layout import MANIFEST_COLUMNS, BatchConfig, BatchFolder
from sarviz.batch.points import points_from_file, points_from_region
from sarviz.errors import SarvizError

from _batch_fixtures import build_scene_folder, write_points_csv

SIZE = 32
N_A_REGION = 5  # points a region: 10 items in all, plus "nowhere"
N_ITEMS = 2 * N_A_REGION


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch-inputs")
    pts = build_scene_folder(root / "scenes")
    chosen = [p for p in pts if int(p["id"][-2:]) < N_A_REGION]
    chosen.append({"id": "nowhere", "lat": 0.0, "lon": 0.0, "class": "", "region": ""})
    return {"scenes": root / "scenes", "points": write_points_csv(root / "points.csv", chosen)}


def _config(inputs, **kw) -> BatchConfig:
    return BatchConfig(model="emulator", size=SIZE, scenes=str(inputs["scenes"]), **kw)


@pytest.fixture(scope="module")
def first_run(inputs, ray_local, tmp_path_factory):
    from sarviz.batch.engine import run_batch

    out = tmp_path_factory.mktemp("batch") / "run"
    points = points_from_file(inputs["points"])
    summary = run_batch(points, _config(inputs, seeds=(0, 1)), out, workers=2, fetch_workers=1, progress=False)
    return out, points, summary


def test_points_file_keeps_class_and_region(inputs):
    points = points_from_file(inputs["points"])
    assert len(points) == N_ITEMS + 1
    assert {p.cls for p in points if p.id != "nowhere"} <= {"trees", "water", "crops", "built", "grass", "bare"}
    assert {p.region for p in points} == {"amazon_forest", "iowa_ag", ""}


def test_region_grid_spacing(tmp_path):
    from pyproj import Geod

    square = {
        "type": "Feature",
        "properties": {"class": "crops", "name": "iowa"},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[-95.5, 42.0], [-95.38, 42.0], [-95.38, 42.09], [-95.5, 42.09], [-95.5, 42.0]]],
        },
    }
    path = tmp_path / "region.geojson"
    path.write_text(json.dumps(square))
    points = points_from_region(path, spacing_km=2.0)
    # about 9.9 km × 10 km: 5 × 5 points at 2 km
    assert 20 <= len(points) <= 30
    assert {p.cls for p in points} == {"crops"} and {p.region for p in points} == {"iowa"}

    def rc(item_id: str) -> tuple[int, int]:
        r, c = item_id[1:].split("_")
        return (-int(r[1:]) if r.startswith("m") else int(r)), (-int(c[1:]) if c.startswith("m") else int(c))

    cells = {rc(p.id): p for p in points}
    pairs = [(p, cells[(r, c + 1)]) for (r, c), p in cells.items() if (r, c + 1) in cells]
    pairs += [(p, cells[(r + 1, c)]) for (r, c), p in cells.items() if (r + 1, c) in cells]
    assert len(pairs) >= 30
    geod = Geod(ellps="WGS84")
    for a, b in pairs:
        assert geod.inv(a.lon, a.lat, b.lon, b.lat)[2] == pytest.approx(2000.0, rel=0.005)
    assert len({p.id for p in points}) == len(points)


def test_batch_writes_every_item_catalog_and_manifest(first_run):
    import pyarrow.parquet as pq

    from sarviz.batch.stac import validate_catalog

    out, points, summary = first_run
    assert (summary.done, summary.failed, summary.skipped) == (N_ITEMS, 1, 0)
    folder = BatchFolder(out)
    assert folder.done_ids() == {p.id for p in points if p.id != "nowhere"}
    for item_id in folder.done_ids():
        d = folder.item_dir(item_id)
        assert {f.name for f in d.iterdir()} == {
            f"{item_id}.json",
            "real.tif",
            "optical.tif",
            "scene.tif",
            "generated_s000.tif",
            "generated_s001.tif",
        }
    # COGs with CRS, provenance per seed
    with rasterio.open(folder.item_dir("iowa_ag_04") / "generated_s001.tif") as src:
        assert src.crs.to_epsg() == 32615 and src.descriptions == ("VV", "VH")
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        prov = json.loads(src.tags()["PROVENANCE"])
        assert prov["seed"] == 1 and prov["model_id"] == "emulator" and prov["scene_s1_mode"] == "composite"
        gen1 = src.read(1)
    with rasterio.open(folder.item_dir("iowa_ag_04") / "generated_s000.tif") as src:
        assert not np.array_equal(src.read(1), gen1)  # another seed, another image
    # the catalog validates offline (bundled schemas; remote ones refused), items included
    import socket

    def no_network(*_args, **_kwargs):
        raise OSError("network access during STAC validation")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", no_network)
        mp.setattr(socket, "create_connection", no_network)
        assert validate_catalog(out / "catalog.json") == N_ITEMS + 1
    item = json.loads(folder.item_json("amazon_forest_03").read_text())
    assert item["properties"]["proj:code"] == "EPSG:32721"
    assert item["properties"]["sarviz:class"] == "trees" and item["properties"]["sarviz:s1_mode"] == "composite"
    assert item["assets"]["real"]["href"] == "./real.tif"
    # manifest: one row a point, both formats
    table = pq.read_table(out / "manifest.parquet").to_pylist()
    assert [r["id"] for r in table] == sorted(p.id for p in points)
    assert tuple(pq.read_table(out / "manifest.parquet").column_names) == MANIFEST_COLUMNS
    rows = {r["id"]: r for r in folder.read_manifest()}
    assert rows.keys() == {r["id"] for r in table}
    bad = rows["nowhere"]
    assert bad["status"] == "failed" and bad["stage"] == "fetch" and "no scene covers" in bad["error"]
    for r in table:
        if r["id"] != "nowhere":
            assert r["status"] == "done" and r["seeds"] == "0,1" and r["fetch_s"] > 0 and r["generate_s"] > 0
            assert r["class"] and r["scene_id"].startswith("test_")
    assert not any(folder.staging_dir.iterdir())


def test_rerun_skips_finished_and_retries_failed(first_run, inputs):
    from sarviz.batch.engine import run_batch

    out, points, _ = first_run
    folder = BatchFolder(out)
    before = {i: folder.item_json(i).stat().st_mtime_ns for i in folder.done_ids()}
    # every point finished: the Ray engine skips them all without starting a worker
    finished = [p for p in points if p.id != "nowhere"]
    summary = run_batch(finished, _config(inputs, seeds=(0, 1)), out, workers=2, fetch_workers=1, progress=False)
    assert (summary.skipped, summary.done, summary.failed, summary.startup_s) == (N_ITEMS, 0, 0, 0.0)
    # what a killed run leaves: a half-made item in the staging area. Which points are made
    # again is run_batch's choice before any engine runs, so the retry of the failed point runs
    # inline here (Ray's own stages are the first run's and the killed-worker test's)
    (folder.staging("half_made")).mkdir(parents=True)
    (folder.staging("half_made") / "real.tif").write_bytes(b"partial")
    summary = run_batch(points, _config(inputs, seeds=(0, 1)), out, engine="inline", progress=False)
    assert (summary.skipped, summary.done, summary.failed) == (N_ITEMS, 0, 1)
    assert summary.rows["nowhere"]["status"] == "failed" and summary.rows["nowhere"]["stage"] == "fetch"
    assert {i: folder.item_json(i).stat().st_mtime_ns for i in folder.done_ids()} == before
    assert not folder.staging("half_made").exists() and "half_made" not in folder.done_ids()
    assert len(folder.read_manifest()) == N_ITEMS + 1
    with pytest.raises(SarvizError, match="other settings"):
        run_batch(points, _config(inputs, seeds=(0,)), out, workers=2, fetch_workers=1, progress=False)


def test_killed_worker_is_retried_and_the_run_completes(inputs, ray_local, tmp_path):
    from sarviz.batch.engine import run_batch

    points = [p for p in points_from_file(inputs["points"]) if p.id != "nowhere"]
    killed: list[int] = []

    def kill_once(row, stages):
        if not killed and row["status"] == "done":
            killed.append(stages.worker_pids[0])
            os.kill(stages.worker_pids[0], signal.SIGKILL)

    summary = run_batch(
        points, _config(inputs), tmp_path / "run", workers=2, fetch_workers=1, progress=False, on_row=kill_once
    )
    assert killed, "no item finished"
    assert (summary.done, summary.failed) == (N_ITEMS, 0)
    pids = {int(w.split("generate:")[1]) for w in (r["worker"] for r in summary.rows.values())}
    assert pids - {killed[0]}, pids
    assert len(BatchFolder(tmp_path / "run").done_ids()) == N_ITEMS


def test_a_retried_item_checks_what_is_already_in_place(inputs, tmp_path):
    """The race behind the flaky kill test: Ray retried an item whose first attempt
    had already published it (or had handed over scene.tif and not yet renamed), found no
    staged scene and recorded a finished item as failed. Both states, made on purpose here:
    a retried task now reports the published item as done and redoes a half-made one from the
    fetch stage."""
    from sarviz.batch.items import ItemGenerator, SceneFetcher

    config = _config(inputs)
    folder = BatchFolder(tmp_path / "run")
    points = [p for p in points_from_file(inputs["points"]) if p.id != "nowhere"][:2]
    folder.start(config, points, {})
    fetcher, generator = SceneFetcher(config, str(folder.root)), ItemGenerator(config, str(folder.root))
    # 1. the first attempt published the item, then its actor died before answering
    row = fetcher.fetch(points[0])
    first = generator.generate(row)
    assert first["status"] == "done"
    published = folder.item_json(points[0].id).read_bytes()
    retried = generator.generate(row)
    assert retried["status"] == "done" and retried["item"] == first["item"], retried
    assert folder.item_json(points[0].id).read_bytes() == published  # kept, not redone or lost
    # 2. the first attempt died after handing over scene.tif, before the rename
    row = fetcher.fetch(points[1])
    (folder.staging(points[1].id) / "scene.tif").unlink()
    retried = generator.generate(row)
    assert retried["status"] == "done", retried
    assert folder.done_ids() == {points[0].id, points[1].id}
    # the whole staging folder gone too (a cleared .staging): fetched again as well
    import shutil

    shutil.rmtree(folder.item_dir(points[1].id))
    shutil.rmtree(folder.staging_dir)
    folder.staging_dir.mkdir()
    assert generator.generate(row)["status"] == "done" and folder.item_json(points[1].id).is_file()


def test_evaluate_on_ray_gives_the_inline_numbers(first_run, ray_local):
    from sarviz.batch.evaluate import evaluate_batch, evaluate_item, item_entries

    out, _, _ = first_run
    ev = evaluate_batch(out, by="class", engine="ray", workers=2)
    assert len(ev.rows) == 2 * N_ITEMS and not any(r["error"] for r in ev.rows)  # items × 2 seeds
    assert ev.summary["all"]["kl_VV"]["n"] == N_ITEMS  # the item is the unit: seeds are averaged first
    entry = next(e for e in item_entries(BatchFolder(out)) if e["id"] == "amazon_forest_01")
    inline = evaluate_item(entry)
    on_ray = [r for r in ev.rows if r["id"] == "amazon_forest_01"]
    assert sorted(on_ray, key=lambda r: r["seed"]) == inline


def test_cli_runs_inline_and_reports_failures(inputs, tmp_path, capsys):
    from sarviz.cli import main

    rows = inputs["points"].read_text().splitlines()
    small = tmp_path / "few.csv"
    small.write_text("\n".join([rows[0], rows[1], rows[-1]]) + "\n")  # one good point and "nowhere"
    out = tmp_path / "cli"
    code = main(
        [
            "batch",
            "--points",
            str(small),
            "--model",
            "emulator",
            "--scenes",
            str(inputs["scenes"]),
            "--size",
            str(SIZE),
            "--out",
            str(out),
            "--engine",
            "inline",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "1 done, 1 failed" in err and "FAILED nowhere (fetch): no scene covers" in err
    assert "batch: 2/2 (1 failed)" in err  # the progress line
    assert (out / "catalog.json").is_file() and (out / "manifest.parquet").is_file()
    assert main(["batch", "--region", str(small), "--model", "emulator", "--out", str(out)]) == 2
    assert "--region needs --spacing-km" in capsys.readouterr().err
    assert main(["batch", "--points", str(small), "--model", "nope", "--out", str(out)]) == 2
    assert "unknown model id 'nope'" in capsys.readouterr().err


def test_a_second_run_on_a_busy_folder_is_refused(inputs, tmp_path):
    import fcntl

    from sarviz.batch.engine import run_batch

    out = tmp_path / "busy"
    out.mkdir()
    with open(out / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running batch holds it
        with pytest.raises(SarvizError, match="another sarviz batch is running"):
            run_batch(points_from_file(inputs["points"])[:1], _config(inputs), out, engine="inline", progress=False)
    assert not (out / "batch.json").exists()


def test_any_geo_model_card_works_tiny_diffusion(inputs, tiny_ckpt, tmp_path, monkeypatch):
    """The batch is model-agnostic: a (tiny, random) SD 1.5 + 65-ch ControlNet + LoRA card, same code path
    (the checkpoint is the session's, tests/conftest.py)."""
    from sarviz.batch.engine import run_batch

    from _diffusion_fixtures import write_card

    write_card(tmp_path / "cards", tiny_ckpt, model_id="tiny-geo")
    monkeypatch.setenv("SARVIZ_MODELS", str(tmp_path / "cards"))
    points = [p for p in points_from_file(inputs["points"]) if p.id in ("amazon_forest_01", "iowa_ag_03")]
    config = BatchConfig(model="tiny-geo", size=SIZE, scenes=str(inputs["scenes"]))
    summary = run_batch(points, config, tmp_path / "run", engine="inline", progress=False)
    assert (summary.done, summary.failed) == (2, 0), summary.rows
    with rasterio.open(BatchFolder(tmp_path / "run").item_dir("iowa_ag_03") / "generated_s000.tif") as src:
        prov = json.loads(src.tags()["PROVENANCE"])
        assert prov["model_id"] == "tiny-geo" and src.shape == (SIZE, SIZE)
        assert np.isfinite(src.read()).all()
