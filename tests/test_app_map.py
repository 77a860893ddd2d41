"""The map page through Streamlit's AppTest: click (via the shareable URL) → scene → images."""

from __future__ import annotations

import pytest
from conftest import SPAIN_LATLON
from streamlit.testing.v1 import AppTest


def run_app(scenes, lat=None, lon=None) -> AppTest:
    at = AppTest.from_file("../app.py", default_timeout=60)
    if lat is not None:
        at.query_params["lat"] = str(lat)
        at.query_params["lon"] = str(lon)
    return at.run()


def images(at: AppTest) -> list:
    return at.get("image")


def test_click_spain_shows_optical_and_s1(sample_scenes, monkeypatch):
    monkeypatch.setenv("SARVIZ_SCENES", str(sample_scenes))
    at = run_app(sample_scenes, *SPAIN_LATLON)
    assert not at.exception and not at.error
    assert "sen1floods11_Spain_7370579" in at.markdown[0].value
    # optical + (VV image + colour bar) + (VH image + colour bar)
    assert len(images(at)) == 5
    text = " ".join(m.value for m in at.markdown)
    assert "Sentinel-2 optical" in text and "Sentinel-1 VV" in text and "Sentinel-1 VH" in text
    assert "S1 2019-09-17" in at.markdown[0].value
    assert any("incidence angle" in c.value for c in at.caption)  # says what the scene lacks
    assert '"orbit_pass": "DESCENDING"' in at.expander[0].code[0].value  # provenance


def test_click_elsewhere_says_what_is_available(sample_scenes, monkeypatch):
    monkeypatch.setenv("SARVIZ_SCENES", str(sample_scenes))
    at = run_app(sample_scenes, 0.0, 0.0)
    assert not at.exception
    msg = at.warning[0].value
    assert "no scene covers (0.0000, 0.0000)" in msg and "9 scenes available" in msg and "km away" in msg


def test_coordinate_form_bad_input(sample_scenes, monkeypatch):
    monkeypatch.setenv("SARVIZ_SCENES", str(sample_scenes))
    at = run_app(sample_scenes)
    assert "Click a place" in at.info[0].value
    lat_box, lon_box = at.text_input[0], at.text_input[1]
    lat_box.input("95")
    lon_box.input("10")
    at.button[0].click().run()
    assert "latitude 95.0 is outside [-90, 90]" in at.error[0].value
    at.text_input[0].input("north")
    at.button[0].click().run()
    assert "coordinates must be numbers" in at.error[0].value
    # a good point after bad ones works, and is kept in the URL
    at.text_input[0].input(str(SPAIN_LATLON[0]))
    at.text_input[1].input(str(SPAIN_LATLON[1]))
    at.button[0].click().run()
    assert not at.error and len(images(at)) == 5
    assert str(at.query_params["lat"]).startswith("38.1058")


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_missing_or_empty_folder(tmp_path, monkeypatch, kind):
    folder = tmp_path / "scenes"
    if kind == "empty":
        folder.mkdir()
    monkeypatch.setenv("SARVIZ_SCENES", str(folder))
    at = run_app(folder, *SPAIN_LATLON)
    assert not at.exception
    if kind == "missing":
        assert "does not exist" in at.error[0].value
    else:
        assert "is empty" in at.info[0].value and "sarviz import" in at.info[0].value
        assert "no scene covers" in at.warning[0].value


def test_bad_url_coordinates_are_ignored_with_a_warning(sample_scenes, monkeypatch):
    monkeypatch.setenv("SARVIZ_SCENES", str(sample_scenes))
    at = run_app(sample_scenes, "abc", "1e9")
    assert not at.exception
    assert "not valid coordinates" in at.warning[0].value
