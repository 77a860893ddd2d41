"""The Prompt page (AppTest and a real browser): type a prompt → tiny text-to-SAR model → panels."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from _waits import patience_ms
from sarviz.captions import caption_for_scene, describe_scene
from sarviz.ui.prompt import EXAMPLE_PROMPTS, MAP_PROMPT_KEY

from _text_fixtures import (
    one_torch_thread,  # noqa: F401  (fixture)
    tiny_text_model,
    write_captioned,
    write_text_card,
)

PAGE = "../pages/1_Prompt.py"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("text-page")
    model = tiny_text_model(root, kind="sd15", unet="lora")
    write_text_card(root / "cards", model.run, model_id="tiny-text", steps=2)
    return root


@pytest.fixture
def page_env(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("SARVIZ_MODELS", str(tiny_model / "cards"))
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path))
    monkeypatch.setenv("SARVIZ_SCENES", str(tmp_path / "scenes"))
    monkeypatch.setenv("SARVIZ_DATASETS", str(tmp_path / "datasets"))
    return tiny_model


def test_prompt_page_generates_and_shows_panels(page_env, tmp_path):
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="prompt_model").value == "tiny-text"  # the ready model, not the example card
    at.selectbox(key="prompt_example").set_value("port").run()
    assert at.text_area(key="prompt_text").value == EXAMPLE_PROMPTS["port"]
    at.number_input(key="prompt_count").set_value(2)
    next(b for b in at.button if b.label == "Generate").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "Result" in [h.value for h in at.header]
    assert at.selectbox(key="prompt_pick").options == ["seed 0", "seed 1"]  # the K-seed grid
    assert len(at.get("image")) >= 3  # two grid tiles + the inspected image (+ figures)
    labels = [d.label for d in at.get("download_button")]
    assert {"GeoTIFF (dB, no georeference)", "PNG", "Metrics (JSON)"} <= set(labels)
    text = " ".join(str(t.value) for t in at.table)
    assert "ENL (VV)" in text
    # compare with a dataset class: the pooled-amplitude KL appears
    write_captioned(tmp_path / "datasets" / "demo" / "captioned", n_per_label=2, size=64, splits=("test",))
    at.radio(key="prompt_inspect_ref").set_value("a dataset class").run()
    assert at.selectbox(key="prompt_inspect_dataset").value.name == "captioned"  # found under SARVIZ_DATASETS
    at.selectbox(key="prompt_inspect_label").set_value("trees").run()
    assert not at.exception, at.exception
    text = " ".join(str(t.value) for t in at.table)
    assert "KL amplitude" in text and "GLCM contrast" in text


def test_prompt_page_takes_the_map_caption_and_refuses_empty_prompts(page_env):
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state[MAP_PROMPT_KEY] = "<SAR> a SAR image of dense forest near Murcia, Spain"
    at.run()
    assert at.text_area(key="prompt_text").value.endswith("near Murcia, Spain")
    assert any("filled from the map" in i.value for i in at.info)
    at = AppTest.from_file(PAGE, default_timeout=120)  # (AppTest re-sends the session key it was given on every run)
    at.run()
    at.text_area(key="prompt_text").input("   ")
    next(b for b in at.button if b.label == "Generate").click().run()
    assert not at.exception
    assert any("prompt is empty" in e.value for e in at.error)


def test_missing_weights_short_message_with_details(tmp_path, monkeypatch):
    monkeypatch.setenv("SARVIZ_MODELS", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception
    warning = at.warning[0].value
    assert "weights are missing" in warning and len(warning) < 100
    assert any("sarviz train text" in m.value for m in at.markdown)


def test_caption_builder_speaks_the_dataset_captioners_words():
    import numpy as np

    from conftest import make_scene

    scene = make_scene(crs="EPSG:32630", origin=(664_000.0, 4_218_000.0))  # near Murcia
    scene.provenance.update({"landcover_fractions": {"built": 0.7, "crops": 0.3}, "orbit": "descending"})
    described = describe_scene(scene)
    assert described.landcover_source == "provenance" and described.fractions == {"built": 0.7, "crops": 0.3}
    caption = caption_for_scene(scene)
    assert caption.startswith("<SAR> Sentinel-1 SAR image, VV polarisation, mostly built-up area and cropland, ")
    assert "Spain" in caption and "summer" in caption and "descending pass" in caption
    assert "incidence angle 38°" in caption  # the scene's own angle layer (30–45°)
    # no land cover recorded: the optical rules (never the SAR); open water from a dark-NIR scene
    water = make_scene(crs="EPSG:32630", origin=(664_000.0, 4_218_000.0), layers=("optical", "vv_db", "vh_db"))
    water.optical[:] = np.array([0.05, 0.08, 0.04, 0.01], np.float32)[:, None, None]
    assert describe_scene(water).landcover_source == "optical-rules"
    assert "almost entirely water" in caption_for_scene(water) and "incidence angle" not in caption_for_scene(water)


@pytest.mark.browser
def test_prompt_page_in_a_real_browser(page_env):
    from _browser import chromium_page, run_streamlit, screenshot, wait_idle

    env = {"SARVIZ_MODELS": str(page_env / "cards"), "OMP_NUM_THREADS": "1"}  # tiny model: one thread
    with run_streamlit("app.py", env=env, page="Prompt") as url, chromium_page() as page:
        page.goto(url)
        wait_idle(page, 120)  # the first run has drawn the form: input lands on its final widgets
        box = page.get_by_label("Prompt", exact=True)
        box.fill("a SAR image of a forest with a river")
        page.get_by_role("button", name="Generate").click()
        page.get_by_text("Result", exact=True).wait_for(timeout=patience_ms(120))
        page.get_by_role("tab", name="Distributions").click()
        page.get_by_role("tab", name="Metrics & downloads").click()
        page.get_by_text("ENL (VV)").wait_for()
        download = page.get_by_role("button", name="GeoTIFF (dB, no georeference)")
        download.wait_for(state="visible")  # (is_visible alone does not wait for the rerun to settle)
        wait_idle(page, 60)
        assert download.is_visible()
        page.get_by_role("tab", name="Image").click()
        page.locator("[data-testid='stImage'] img").first.wait_for(state="visible")
        screenshot(page, "prompt_page")


def test_describe_this_place_on_the_map_page_fills_the_prompt(page_env, tmp_path, monkeypatch):
    from conftest import make_scene
    from sarviz.scene import write_scene

    scene = make_scene(size=(64, 64), scene_id="described")
    write_scene(scene, tmp_path / "scenes" / "described.tif")
    lat, lon = scene.center_latlon
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.query_params["lat"], at.query_params["lon"] = str(lat), str(lon)
    at.run()
    assert not at.exception, at.exception
    at.button(key="describe_place").click().run()
    assert not at.exception, at.exception
    # the prompt page ran with the caption of the clicked scene in its prompt box
    assert at.text_area(key="prompt_text").value == caption_for_scene(scene)
    assert at.text_area(key="prompt_text").value.startswith("<SAR> Sentinel-1 SAR image, VV polarisation, ")
    # and says where its land cover came from
    note = describe_scene(scene).landcover_note
    assert note and any(note in i.value for i in at.info), [i.value for i in at.info]


def test_a_text_result_goes_into_a_study_pool(page_env, tmp_path):
    """What the page's *Add to study pool* calls: the study service takes a result without georeference."""
    from sqlalchemy import text

    from sarviz.generators.text import TextGenerator, TextRequest, run_card
    from sarviz.study.db import StudyDatabase
    from sarviz.study.pool import ItemLabels
    from sarviz.study.service import OwnerAPI

    run = next(page_env.glob("run-*"))
    result = TextGenerator(run_card(run)).generate_text(TextRequest(prompt="a port", steps=1))[0]
    db_url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    owner = OwnerAPI(StudyDatabase(db_url))
    owner.create_study("pilot", "Pilot study")
    item = owner.add_result("pilot", result, None, ItemLabels(source="ours", scene_class="port"))
    assert item
    with StudyDatabase(db_url).read() as s:
        assert s.execute(text("select count(*) from item")).scalar_one() == 1
