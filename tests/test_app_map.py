"""The map page through Streamlit's AppTest: click (via the shareable URL) → scene → images."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from conftest import SPAIN_LATLON


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


def _search(at: AppTest, text: str) -> AppTest:
    at.text_input(key="place_text").input(text)
    return next(b for b in at.button if b.label == "Go").click().run()


def test_type_a_place_takes_coordinates_and_names(sample_scenes, monkeypatch):
    monkeypatch.setenv("SARVIZ_SCENES", str(sample_scenes))
    at = run_app(sample_scenes)
    assert "Click a place" in at.info[0].value
    _search(at, "95, 10")
    from sarviz.ui.text import shown  # messages quote user input as escaped plain text

    assert "latitude 95.0 is outside [-90, 90]" in shown(at.error[0].value)
    _search(at, "xqzxqzxq")
    assert "No place called 'xqzxqzxq'" in at.error[0].value
    # coordinates after bad input work, and are kept in the URL
    _search(at, f"{SPAIN_LATLON[0]}, {SPAIN_LATLON[1]}")
    assert not at.error and len(images(at)) == 5
    assert str(at.query_params["lat"]).startswith("38.1058")
    # a place name from the offline gazetteer goes there (Lahore: 100 km from the Punjab scene)
    _search(at, "Lahore")
    assert not at.exception and not at.error
    assert at.session_state["point"] == pytest.approx((31.558, 74.35071), abs=1e-3)
    assert "no scene covers (31.5580, 74.3507)" in at.warning[0].value


def test_sidebar_scene_list_and_acquisition_choice(sample_scenes, monkeypatch):
    """The sidebar lists every scene (place, dates, layers, embedding); Punjab offers both dates."""
    monkeypatch.setenv("SARVIZ_SCENES", str(sample_scenes))
    at = run_app(sample_scenes)
    table = at.sidebar.dataframe[0].value
    assert len(table) == 9 and {"scene", "place", "dates", "layers", "embedding"} <= set(table.columns)
    spain = table[table.scene == "sen1floods11_Spain_7370579"].iloc[0]
    assert "Spain" in spain.place and "S1 2019-09-17" in spain.dates and spain.embedding == "PROXY"
    # a point inside the Punjab footprint: two acquisitions, the user picks the date
    punjab = table[table.scene.str.startswith("ssl4eo_")]
    assert len(punjab) == 2
    at = run_app(sample_scenes, 30.46418, 73.30563)
    radio = next(r for r in at.radio if "acquisitions cover this point" in r.label)
    assert len(radio.options) == 2
    assert radio.value in at.markdown[0].value  # the scene shown is the one chosen
    other = next(sid for sid in punjab.scene if sid != radio.value)
    radio.set_value(other).run()
    assert not at.exception
    assert other in at.markdown[0].value


def test_map_loads_nothing_from_cdns_when_local_copies_exist(sample_scenes):
    from sarviz.store import SceneStore
    from sarviz.ui import webassets
    from sarviz.ui.map import build_map, map_links

    if webassets.install():
        pytest.skip(f"web assets not in {webassets.CACHE_DIR} (./dev fetches them with npm)")
    links = map_links(build_map(list(SceneStore(sample_scenes))))
    assert links and all(u.startswith("/app/static/vendor/") for u in links), links
    assert any(u.endswith("leaflet.js") for u in links) and any("topojson" in u for u in links)


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


def test_a_place_near_a_scene_goes_there_in_one_click_and_names_are_shown(sample_scenes, monkeypatch):
    """The README's route: `Murcia` → the match named → one click → the Spain scene; `Punjab`
    lists Pakistan's province first, then India's; a failed search clears the old place."""
    monkeypatch.setenv("SARVIZ_SCENES", str(sample_scenes))
    at = _search(run_app(sample_scenes), "Murcia")
    assert not at.exception and not at.error
    pick = next(r for r in at.radio if "Places matching 'Murcia'" in r.label)
    assert pick.options[0].startswith("Murcia, Spain — town")  # AppTest gives the labels shown
    assert "no scene covers" in at.warning[0].value
    jump = next(b for b in at.button if b.label.startswith("Go to the nearest scene"))
    assert "km away" in jump.label
    at = jump.click().run()
    assert not at.exception and not at.error
    assert "sen1floods11_Spain_7370579" in at.markdown[0].value and len(images(at)) == 5
    at = _search(at, "Punjab")
    pick = next(r for r in at.radio if "Places matching 'Punjab'" in r.label)
    names = list(pick.options)
    assert names[0].startswith("Punjab, Pakistan — region") and names[1].startswith("Punjab, India — region")
    at = _search(at, "xqzxqzxq")  # a failed search: the old places and point go
    assert "No place called 'xqzxqzxq'" in at.error[0].value
    assert not [r for r in at.radio if "Places matching" in r.label] and "point" not in at.session_state
    at = _search(at, "Murica")  # a typo: the closest spelling, said so
    assert "No place is named 'Murica'" in at.warning[0].value
    assert at.session_state["point"] == pytest.approx((37.98704, -1.13004), abs=1e-3)
