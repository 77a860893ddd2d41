"""A real browser (Debian Chromium via Playwright) clicks the Spain scene on the map."""

from __future__ import annotations

import pytest

from _waits import patience_ms
from conftest import SPAIN_LATLON

from _browser import chromium_page, require_browser, screenshot, wait_idle, wait_images_drawn

pytestmark = pytest.mark.browser


def test_click_spain_scene_shows_s1(sample_workbench):
    require_browser()
    # the imported samples' server (conftest.py), shared with test_browser_offline; own browser session
    url = sample_workbench
    with chromium_page() as page:
        lat, lon = SPAIN_LATLON
        page.goto(f"{url}/?view={lat},{lon},13")
        page.get_by_text("Click a place on the map").wait_for()
        # the map lives in streamlit-folium's component iframe; wait for Leaflet to draw it
        frame_el = page.locator("iframe[title*='streamlit_folium']").first
        frame_el.wait_for()
        frame = frame_el.content_frame
        frame.locator(".leaflet-container").wait_for()
        frame.locator("path.leaflet-interactive").filter(visible=True).first.wait_for()  # footprint drawn
        box = frame.locator(".leaflet-container").bounding_box()
        # click a little off the centre marker, inside the 4.6 km footprint
        page.mouse.click(box["x"] + box["width"] / 2 + 40, box["y"] + box["height"] / 2 + 30)
        page.get_by_text("sen1floods11_Spain_7370579").first.wait_for(timeout=patience_ms(60))
        page.get_by_text("Sentinel-1 VV").first.wait_for()
        imgs = page.locator("[data-testid='stImage'] img")
        imgs.nth(4).wait_for()
        wait_idle(page, 60)  # the page's final run: no element still to come or to go
        assert imgs.count() == 5
        # the real S1 image has loaded, not only its element
        wait_images_drawn(page, "[data-testid='stImage'] img", min_width=100)
        shot = screenshot(page, "map-click-spain")
        assert shot.stat().st_size > 10_000
