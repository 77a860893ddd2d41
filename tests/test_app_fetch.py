"""The whole map-page flow on a place with no local scene (AppTest):

click → *Fetch this place* (the real public-source code against a local Zarr v3 mosaic and
a local STAC API) → scene cached in the store → Generate (emulator) → inspection.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from sarviz.store import SceneStore

from _sources_fixtures import build_aef_zarr, make_s1_items, make_s2_items, stac_api, write_items

LAT, LON = 47.0, 8.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    build_aef_zarr(d / "aef.zarr", [(LAT, LON, 60, 90)], years=(2022, 2023, 2024))
    (d / "cogs").mkdir()
    items = make_s1_items(d / "cogs", LAT, LON, ["2024-03-01", "2024-05-01"]) + make_s2_items(
        d / "cogs", LAT, LON, ["2024-06-01"]
    )
    with stac_api(write_items(d / "cogs", items)) as url:
        yield {"aef": str(d / "aef.zarr"), "stac": url}


def test_fetch_then_generate_and_inspect(world, tmp_path, monkeypatch):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    monkeypatch.setenv("SARVIZ_SCENES", str(scenes))
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path))
    monkeypatch.setenv("SARVIZ_SOURCES", "local,public")
    monkeypatch.setenv("SARVIZ_PUBLIC_AEF_URL", world["aef"])
    monkeypatch.setenv("SARVIZ_PUBLIC_STAC_URL", world["stac"])
    monkeypatch.setenv("SARVIZ_NETWORK_TIMEOUT", "10")
    at = AppTest.from_file("../app.py", default_timeout=180)
    at.query_params["lat"] = str(LAT)
    at.query_params["lon"] = str(LON)
    at.run()
    assert not at.exception
    assert "no scene covers" in at.warning[0].value and "empty" in at.warning[0].value
    at.sidebar.select_slider[0].set_value(128)
    at.run()
    next(b for b in at.button if b.label == "Fetch this place").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    report = next(c.value for c in at.code if "Scene for" in c.value)
    assert "AlphaEarth embedding" in report and "public" in report and "cached as" in report
    # the fetched scene is in the store now, with the layers that were served
    store = SceneStore(scenes)
    assert len(store) == 1 and {"embedding", "vv_db", "vh_db"} <= set(store.entries[0].layers)
    assert any("fetch_" in m.value for m in at.markdown)  # the fetched scene is shown
    next(b for b in at.button if b.label == "Generate").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "Inspect" in [h.value for h in at.header]
    # real (fetched, σ⁰) vs generated metrics are shown in the metrics table
    assert len(at.dataframe) >= 1
