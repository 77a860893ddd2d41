"""A result made from a PROXY embedding is labelled as one in every output that shows it
, and `sarviz evaluate`'s report.md tables keep their columns (item 7)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from sarviz.cli import main

PROXY_SOURCE = "proxy: real AlphaEarth 2024 vectors from alphaearth_s1_points (other places), test"


@pytest.fixture(scope="module")
def spain_pair(sample_scenes, tmp_path_factory):
    """The Spain sample scene (PROXY embedding) and the emulator's image generated from it."""
    out = tmp_path_factory.mktemp("proxy-metrics") / "generated.tif"
    assert (
        main(
            [
                "generate",
                "--lat",
                "38.1058",
                "--lon",
                "-0.7589",
                "--model",
                "emulator",
                "--scenes",
                str(sample_scenes),
                "--size",
                "64",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    from sarviz.store import SceneStore

    store = SceneStore(sample_scenes)
    real = out.with_name("real.tif")
    scene = store.lookup(38.1058, -0.7589, size_px=64)
    from sarviz.scene import write_scene

    write_scene(scene, real)
    return real, out


def test_metrics_table_json_and_cli_name_the_proxy(spain_pair, capsys):
    from sarviz.metrics.report import compare_files

    real, generated = spain_pair
    report = compare_files(real, generated)
    table = report.table()
    assert (table["caveat"].str.contains("PROXY embedding")).all()  # every number is a proxy's
    data = report.to_dict()
    assert data["proxy_embedding"] is True and data["embedding_source"].startswith("proxy")
    assert data["flags"]["proxy_embedding"] and "PROXY" in data["flags"]["proxy_note"]
    capsys.readouterr()
    assert main(["metrics", str(real), str(generated), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["proxy_embedding"] is True
    assert main(["metrics", str(real), str(generated)]) == 0
    out = capsys.readouterr().out
    assert "PROXY embedding" in out.splitlines()[2] and "PROXY: Made from a PROXY embedding" in out
    # a real image compared with itself carries no proxy label
    plain = compare_files(real, real)
    assert plain.to_dict()["proxy_embedding"] is False and not plain.table()["caveat"].str.contains("PROXY").any()


@pytest.fixture(scope="module")
def proxy_batch(tmp_path_factory):
    """A small emulator batch over scenes whose embeddings are marked as PROXY ones, evaluated."""
    from sarviz.batch.engine import run_batch
    from sarviz.batch.layout import BatchConfig
    from sarviz.batch.points import points_from_file
    from sarviz.scene import read_scene, write_scene

    from _batch_fixtures import build_scene_folder, write_points_csv

    root = tmp_path_factory.mktemp("proxy-batch")
    pts = build_scene_folder(root / "scenes")
    for path in (root / "scenes").glob("*.tif"):  # their embeddings stand in for the place's: say so
        scene = read_scene(path)
        scene.provenance = {**scene.provenance, "embedding_source": PROXY_SOURCE}
        write_scene(scene, path)
    chosen = [p for p in pts if p["id"].endswith(("_00", "_05"))]
    points = points_from_file(write_points_csv(root / "points.csv", chosen))
    run_batch(
        points,
        BatchConfig(model="emulator", size=32, seeds=(0,), scenes=str(root / "scenes")),
        root / "batches" / "b1",
        engine="inline",
        progress=False,
    )
    assert main(["evaluate", str(root / "batches" / "b1"), "--engine", "inline"]) == 0
    return root / "batches" / "b1"


def _table_rows(md: str) -> list[list[str]]:
    """The tables of a markdown text, as rows of cells (split on unescaped pipes)."""
    import re

    tables, current = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            current.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif current:
            tables.append(current)
            current = []
    return tables


def test_evaluate_report_names_the_proxy_and_its_tables_keep_their_columns(proxy_batch):
    out = proxy_batch / "evaluation"
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "**PROXY:** 4 of 4 items were generated from a PROXY embedding" in md
    evaluation = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
    assert evaluation["proxy_embedding_items"] == 4 and "PROXY" in evaluation["proxy_note"]
    with open(out / "per_item.csv", newline="", encoding="utf-8") as fh:
        assert {r["embedding"] for r in csv.DictReader(fh)} == {"proxy"}
    tables = _table_rows(md)
    assert len(tables) == 3
    for table in tables:
        assert all(len(row) == len(table[0]) for row in table), table  # no shifted columns
    assert r"Mean similarity \|Δμ\| ↓" in md  # the pipes of |Δμ| are escaped


def test_batch_page_evaluation_names_the_proxy(proxy_batch, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SARVIZ_BATCHES", str(proxy_batch.parent))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "pages" / "6_Batch.py"), default_timeout=120)
    at.run()
    at.selectbox(key="batch-pick").select(str(proxy_batch.resolve())).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("PROXY: 4 of 4 items were generated from a PROXY embedding" in w.value for w in at.warning)
    # the item's own size and pixel size (item 10: not just the batch's requested size)
    assert any("32×32 px, pixels 10.0 m" in c.value for c in at.caption), [c.value for c in at.caption]
    assert any(m.label == "seeds × requested size" for m in at.metric)


def test_study_outputs_name_proxy_made_images(sqlite_url, tmp_path, capsys, monkeypatch):
    import rasterio

    from sarviz.study import OwnerAPI, ParticipantAPI, QuizAnswer, StudyDatabase
    from sarviz.study.analysis import answers_csv, study_report

    from _study_fixtures import build_pool_folder

    folder = build_pool_folder(tmp_path / "pool", n_real=3, n_other=3, n_ours=6)
    labels = csv.DictReader(io.StringIO((folder / "labels.csv").read_text()))
    ours = [r["file"] for r in labels if r["source"] == "ours"]
    for name in ours:  # generated from a proxy: the provenance a sarviz GeoTIFF carries says so
        with rasterio.open(folder / name, "r+") as dst:
            dst.update_tags(PROVENANCE=json.dumps({"model_id": "emulator", "embedding_source": PROXY_SOURCE}))
    assert main(["study", "create", "proxy-study", "--title", "Proxy", "--db", sqlite_url]) == 0
    assert main(["study", "add-images", "proxy-study", str(folder), "--db", sqlite_url, "--quiet"]) == 0
    assert "warning: PROXY: 6 of 9 generated images were made from a PROXY embedding" in capsys.readouterr().err
    db = StudyDatabase(sqlite_url)
    owner, quiz = OwnerAPI(db), ParticipantAPI(db)
    assert any(w.startswith("PROXY: 6 of 9") for w in owner.pool_warnings("proxy-study"))  # study admin and design
    view = quiz.start("proxy-study", "L1", True)
    while not view.finished:
        view = quiz.submit(view.resume_code, view.current_public_id, QuizAnswer(True, 3, 3, 3, 3))
    report = study_report(owner, "proxy-study")
    assert report.to_dict()["proxy"] == {"proxy_items": 6, "generated_items": 9, "note": report.proxy["note"]}
    assert "PROXY: 6 of 9 generated images" in report.text()
    assert "proxy_embedding_items" in report.summary_csv()
    rows = list(csv.DictReader(io.StringIO(answers_csv(owner.answer_rows("proxy-study", include_excluded=True)))))
    assert {r["embedding"] for r in rows if r["source"] == "ours"} == {"proxy"}
    assert {r["embedding"] for r in rows if r["source"] == "real"} == {""}
    assert main(["study", "report", "proxy-study", "--db", sqlite_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["proxy"]["proxy_items"] == 6
    out_dir = tmp_path / "export"
    assert main(["study", "export", "proxy-study", "--db", sqlite_url, "--out", str(out_dir)]) == 0
    assert json.loads((out_dir / "report.json").read_text())["proxy"]["proxy_items"] == 6
    assert "proxy" in (out_dir / "answers.csv").read_text()
    db.dispose()
    # the owner's results page (Study admin) says it too
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SARVIZ_STUDY_DB", sqlite_url)
    monkeypatch.setenv("SARVIZ_STUDY_OWNER_PASSWORD", "correct horse battery staple")
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path / "home"))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "pages" / "4_Study_admin.py"), default_timeout=60)
    at.run()
    at.text_input[0].input("correct horse battery staple")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any(w.value.startswith("PROXY: 6 of 9 generated images") for w in at.warning), [w.value for w in at.warning]
