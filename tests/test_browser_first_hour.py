"""The first hour in a real browser, offline (every outside request refused): *Type a place*
`Murcia` → one click to the nearest scene → the Spain sample → Generate; `Punjab` offers
Punjab, Pakistan (first) and Punjab, India, names shown; the Batch page's map draws from the
app's own Leaflet copy."""

from __future__ import annotations

import pytest
from _batch_fixtures import build_scene_folder, write_points_csv
from _browser import chromium_page, require_browser, run_streamlit, screenshot

from sarviz.ui import webassets

pytestmark = pytest.mark.browser

RUN_IDLE_JS = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  return !!app && app.dataset.testScriptState === 'notRunning' && !document.querySelector("[data-stale='true']");
}"""


def _assets() -> None:
    require_browser()
    missing = webassets.install()
    if missing:
        pytest.skip(f"local web assets missing ({', '.join(missing)}); ./dev fetches them with npm")


def test_offline_murcia_one_click_to_the_spain_scene_and_punjab_candidates(sample_scenes, tmp_path):
    _assets()
    env = {"SARVIZ_SCENES": str(sample_scenes), "SARVIZ_HOME": str(tmp_path), "SARVIZ_SOURCES": "local"}
    blocked: list[str] = []
    with run_streamlit("app.py", env=env) as url, chromium_page(offline=True, blocked=blocked) as page:
        page.goto(url)
        page.get_by_text("Click a place on the map").wait_for()
        page.wait_for_function(RUN_IDLE_JS, timeout=90_000)
        page.get_by_label("Type a place").fill("Punjab")
        page.get_by_role("button", name="Go", exact=True).click()
        main = page.locator("[data-testid='stMain']")
        radio = main.locator("[data-testid='stRadio']").filter(has_text="Places matching 'Punjab'")
        radio.wait_for(timeout=90_000)
        options = radio.locator("label").all_inner_texts()
        names = [o for o in options if o.startswith("Punjab, ")]
        assert names[0].startswith("Punjab, Pakistan — region"), options
        assert names[1].startswith("Punjab, India — region"), options
        screenshot(page, "first-hour-punjab")
        page.wait_for_function(RUN_IDLE_JS, timeout=90_000)
        page.get_by_label("Type a place").fill("Murcia")
        page.get_by_role("button", name="Go", exact=True).click()
        main.get_by_text("Murcia, Spain — town", exact=False).first.wait_for(timeout=90_000)
        jump = page.get_by_role("button", name="Go to the nearest scene")
        jump.wait_for(timeout=90_000)
        jump.click()  # the one click
        main.locator("[data-testid='stMarkdownContainer']").get_by_text("sen1floods11_Spain_7370579").first.wait_for(
            timeout=90_000)
        page.wait_for_function(RUN_IDLE_JS, timeout=90_000)
        # the scene's own optical image lies on the map where the user works (offline: no tiles)
        frame = page.locator("iframe[title*='streamlit_folium']").first.content_frame
        overlay = frame.locator("img.sarviz-scene-overlay")
        overlay.wait_for()
        assert overlay.evaluate("i => i.complete && i.naturalWidth > 100 && i.getBoundingClientRect().width > 50")
        assert float(overlay.evaluate("i => getComputedStyle(i).opacity")) == pytest.approx(0.85, abs=0.01)
        page.get_by_role("button", name="Generate").click()
        page.get_by_text("Generated (from a PROXY embedding)").wait_for(timeout=120_000)
        page.wait_for_function(RUN_IDLE_JS, timeout=120_000)
        optical_src = overlay.get_attribute("src")
        overlay_choice = page.locator("[data-testid='stRadio']").filter(has_text="Map overlay")
        overlay_choice.get_by_text("generated", exact=True).click()
        page.wait_for_function(RUN_IDLE_JS, timeout=120_000)
        frame.locator("img.sarviz-scene-overlay").first.wait_for()
        page.wait_for_function("""(old) => {
          const f = document.querySelector("iframe[title*='streamlit_folium']");
          const i = f && f.contentDocument.querySelector('img.sarviz-scene-overlay');
          return i && i.src !== old && i.complete && i.naturalWidth > 100; }""", arg=optical_src, timeout=60_000)
        screenshot(page, "first-hour-murcia-generated")
    assert all("tile.openstreetmap.org" in u for u in blocked), sorted(set(blocked))[:5]


@pytest.fixture(scope="module")
def batch_root(tmp_path_factory):
    from sarviz.batch.engine import run_batch
    from sarviz.batch.layout import BatchConfig
    from sarviz.batch.points import points_from_file

    root = tmp_path_factory.mktemp("batch-browser")
    pts = build_scene_folder(root / "scenes")
    chosen = [p for p in pts if p["id"].endswith("_00")]
    points = points_from_file(write_points_csv(root / "points.csv", chosen))
    run_batch(points, BatchConfig(model="emulator", size=32, seeds=(0,), scenes=str(root / "scenes")),
              root / "batches" / "b1", engine="inline", progress=False)
    return root


def test_offline_batch_page_map_draws_from_local_leaflet(batch_root, tmp_path):
    _assets()
    env = {"SARVIZ_BATCHES": str(batch_root / "batches"), "SARVIZ_HOME": str(tmp_path), "SARVIZ_SOURCES": "local"}
    blocked: list[str] = []
    batch = str((batch_root / "batches" / "b1").resolve())
    with run_streamlit("app.py", env=env, page="Batch") as url, chromium_page(offline=True, blocked=blocked) as page:
        page.goto(url)
        page.wait_for_function(RUN_IDLE_JS, timeout=90_000)
        page.locator("[data-testid='stSelectbox']").first.click()
        page.get_by_role("option", name=batch).click()
        frame_el = page.locator("iframe[title*='streamlit_folium']").first
        frame_el.wait_for(timeout=90_000)
        frame = frame_el.content_frame
        frame.locator(".leaflet-container").wait_for()  # Leaflet loaded from /app/static/vendor, no CDN
        frame.locator(".leaflet-container[data-sarviz-offline-base='drawn']").wait_for()  # Natural Earth drawn
        frame.locator("path.leaflet-interactive").filter(visible=True).first.wait_for()  # the items
        assert frame_el.bounding_box()["height"] > 300  # not the 0 px frame of a map that never loaded
        screenshot(page, "first-hour-batch-map")
    assert all("tile.openstreetmap.org" in u for u in blocked), sorted(set(blocked))[:5]
