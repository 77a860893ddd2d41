"""Map page end to end (AppTest): click → scene → Generate (emulator) → side-by-side inspection."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from conftest import make_scene
from sarviz.scene import write_scene


@pytest.fixture
def embedded_store(tmp_path, monkeypatch):
    folder = tmp_path / "scenes"
    scene = make_scene(size=(96, 96), scene_id="with_embedding")
    write_scene(scene, folder / "with_embedding.tif")
    monkeypatch.setenv("SARVIZ_SCENES", str(folder))
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path))
    monkeypatch.setenv("SARVIZ_STUDY_DB", f"sqlite:///{tmp_path / 'study.sqlite'}")
    return scene


def test_generate_with_emulator_and_inspect(embedded_store):
    lat, lon = embedded_store.center_latlon
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.query_params["lat"] = str(lat)
    at.query_params["lon"] = str(lon)
    at.run()
    assert not at.exception, at.exception
    assert [h.value for h in at.header][:1] == ["Generate"]
    model = at.selectbox(key="gen_model")
    assert model.value == "emulator"  # no diffusion weights here: the emulator is the default
    gen = next(b for b in at.button if b.label == "Generate")
    gen.click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    headers = [h.value for h in at.header]
    assert "Inspect" in headers
    text = " ".join(c.value for c in at.caption)
    assert "emulator" in text
    # the inspection shows real and generated side by side with metrics downloads
    labels = [d.label for d in at.get("download_button")]
    assert any("GeoTIFF" in label for label in labels)


def test_generate_refuses_scene_without_embedding(tmp_path, monkeypatch):
    folder = tmp_path / "scenes"
    scene = make_scene(size=(64, 64), scene_id="no_embedding", layers=("optical", "vv_db", "vh_db"))
    write_scene(scene, folder / "no_embedding.tif")
    monkeypatch.setenv("SARVIZ_SCENES", str(folder))
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path))
    monkeypatch.setenv("SARVIZ_SOURCES", "local")
    lat, lon = scene.center_latlon
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.query_params["lat"] = str(lat)
    at.query_params["lon"] = str(lon)
    at.run()
    assert not at.exception
    assert any("no AlphaEarth embedding" in m.value for m in at.markdown)
    assert any("No remote scene source is enabled" in i.value for i in at.info)
    # Generate is off before any click, with the reason and the ways out beside it
    gen = next(b for b in at.button if b.label == "Generate")
    assert gen.disabled
    why = " ".join(w.value for w in at.warning)
    assert "Generate is off" in why and "Fetch this place" in why and "add-proxy-embedding" in why


def test_add_result_to_study_pool_from_the_map(embedded_store, tmp_path, monkeypatch):
    """The owner adds a generated result to a study pool with one click on the map page."""
    from sqlalchemy import text

    from sarviz.study.db import StudyDatabase
    from sarviz.study.service import OwnerAPI

    monkeypatch.setenv("SARVIZ_STUDY_OWNER_PASSWORD", "correct horse")
    db_url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    OwnerAPI(StudyDatabase(db_url)).create_study("pilot", "Pilot study")
    lat, lon = embedded_store.center_latlon
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.query_params["lat"] = str(lat)
    at.query_params["lon"] = str(lon)
    at.run()
    next(b for b in at.button if b.label == "Generate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    pw = next(t for t in at.text_input if t.label == "Study owner password")
    pw.input("wrong")
    next(b for b in at.button if b.label == "Log in").click().run()
    assert any("Wrong password" in e.value for e in at.error)
    pw = next(t for t in at.text_input if t.label == "Study owner password")
    pw.input("correct horse")
    next(b for b in at.button if b.label == "Log in").click().run()
    at.selectbox(key="pool_add_study").set_value("pilot")
    at.selectbox(key="pool_add_source").set_value("ours")
    at.text_input(key="pool_add_class").input("farmland")
    next(b for b in at.button if b.label == "Add").click().run()
    assert not at.exception
    assert any("to pilot" in s.value for s in at.success), [s.value for s in at.success]
    with StudyDatabase(db_url).read() as s:
        rows = s.execute(text("select count(*) from item")).scalar_one()
    assert rows == 1


def test_result_from_a_proxy_embedding_is_labelled_everywhere(samples_dir, tmp_path, monkeypatch):
    from sarviz.embedding_proxy import add_proxy_embedding

    folder = tmp_path / "scenes"
    scene = add_proxy_embedding(
        make_scene(size=(64, 64), scene_id="proxied", layers=("optical", "vv_db", "vh_db")),
        samples_dir / "alphaearth_s1_points",
    )
    write_scene(scene, folder / "proxied.tif")
    monkeypatch.setenv("SARVIZ_SCENES", str(folder))
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path))
    lat, lon = scene.center_latlon
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.query_params["lat"] = str(lat)
    at.query_params["lon"] = str(lon)
    at.run()
    assert any("Proxy embedding" in i.value for i in at.info)  # before generating
    assert any("PROXY embedding" in c.value for c in at.caption)  # in the scene view
    next(b for b in at.button if b.label == "Generate").click().run()
    assert not at.exception and not at.error
    # the full note once, with the comparison; the result itself carries a one-line label (not
    # the same yellow box twice a screen apart)
    assert sum("Made from a PROXY embedding" in w.value for w in at.warning) == 1
    assert any("Made from a PROXY embedding" in c.value for c in at.caption)
    assert any("**Generated (from a PROXY embedding)**" in m.value for m in at.markdown)
