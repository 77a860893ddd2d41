"""The Batch page's map in a real browser, offline (every outside request refused): it draws
from the app's own Leaflet copy. (The place search — `Murcia` → one click → the Spain scene →
Generate, `Punjab`'s candidates — is in test_browser_offline.py, on the map page's server.)"""

from __future__ import annotations

import pytest

from _waits import patience_ms
from sarviz.ui import webassets

from _batch_fixtures import build_scene_folder, write_points_csv
from _browser import RUN_IDLE_JS, chromium_page, require_browser, run_streamlit, screenshot

pytestmark = pytest.mark.browser


def _assets() -> None:
    require_browser()
    missing = webassets.install()
    if missing:
        pytest.skip(f"local web assets missing ({', '.join(missing)}); ./dev fetches them with npm")


@pytest.fixture(scope="module")
def batch_root(tmp_path_factory):
    from sarviz.batch.engine import run_batch
    from sarviz.batch.layout import BatchConfig
    from sarviz.batch.points import points_from_file

    root = tmp_path_factory.mktemp("batch-browser")
    pts = build_scene_folder(root / "scenes")
    chosen = [p for p in pts if p["id"].endswith("_00")]
    points = points_from_file(write_points_csv(root / "points.csv", chosen))
    run_batch(
        points,
        BatchConfig(model="emulator", size=32, seeds=(0,), scenes=str(root / "scenes")),
        root / "batches" / "b1",
        engine="inline",
        progress=False,
    )
    return root


def test_offline_batch_page_map_draws_from_local_leaflet(batch_root, tmp_path):
    _assets()
    env = {"SARVIZ_BATCHES": str(batch_root / "batches"), "SARVIZ_HOME": str(tmp_path), "SARVIZ_SOURCES": "local"}
    blocked: list[str] = []
    batch = str((batch_root / "batches" / "b1").resolve())
    with run_streamlit("app.py", env=env, page="Batch") as url, chromium_page(offline=True, blocked=blocked) as page:
        page.goto(url)
        page.wait_for_function(RUN_IDLE_JS, timeout=patience_ms(90))
        page.locator("[data-testid='stSelectbox']").first.click()
        page.get_by_role("option", name=batch).click()
        frame_el = page.locator("iframe[title*='streamlit_folium']").first
        frame_el.wait_for(timeout=patience_ms(90))
        frame = frame_el.content_frame
        frame.locator(".leaflet-container").wait_for()  # Leaflet loaded from /app/static/vendor, no CDN
        frame.locator(".leaflet-container[data-sarviz-offline-base='drawn']").wait_for()  # Natural Earth drawn
        frame.locator("path.leaflet-interactive").filter(visible=True).first.wait_for()  # the items
        # not the 0 px frame of a map that never loaded (the frame is resized a moment after drawing)
        page.wait_for_function(
            """() => document.querySelector("iframe[title*='streamlit_folium']").getBoundingClientRect().height > 300""",
            timeout=patience_ms(60),
        )
        screenshot(page, "first-hour-batch-map")
    assert all("tile.openstreetmap.org" in u for u in blocked), sorted(set(blocked))[:5]
