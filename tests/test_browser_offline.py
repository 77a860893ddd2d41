"""The first minute of the product on a machine without the internet, in a real browser.

Open the app → the map draws (local Leaflet, offline Natural Earth base map) → click the
Spain sample → Generate with the emulator → the side-by-side, histogram and GLCM panels show
a generated image, labelled as made from a proxy embedding. Every request that leaves the
machine fails at once (CDNs, tiles), as it would offline.
"""

from __future__ import annotations

import pytest

from _waits import patience_ms
from conftest import SPAIN_LATLON
from sarviz.ui import webassets

from _browser import RUN_IDLE_JS, chromium_page, require_browser, screenshot, wait_idle, wait_images_drawn

pytestmark = pytest.mark.browser


def _settled_box(page, locator):  # noqa: ANN001, ANN202
    """The element's box once it stopped moving (two frames apart), not after a fixed pause."""
    box = None
    for _ in range(200):
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        now = locator.bounding_box()
        if now is not None and now == box:
            return now
        box = now
    return box


def test_offline_first_minute_spain_generate(sample_workbench):
    require_browser()
    missing = webassets.install()
    if missing:
        pytest.skip(f"local web assets missing ({', '.join(missing)}); ./dev fetches them with npm")
    url = sample_workbench  # the imported samples, local sources only (conftest.py)
    blocked: list[str] = []
    with chromium_page(offline=True, blocked=blocked) as page:
        lat, lon = SPAIN_LATLON
        page.goto(f"{url}/?view={lat},{lon},13")
        page.get_by_text("Click a place on the map").wait_for()
        wait_idle(page, 90)
        # the main page is called Map in the sidebar, not "app"
        nav = page.locator("[data-testid='stSidebarNav']")
        assert nav.get_by_text("Map", exact=True).count() == 1 and nav.get_by_text("app", exact=True).count() == 0
        frame_el = page.locator("iframe[title*='streamlit_folium']").first
        frame_el.wait_for()
        frame = frame_el.content_frame
        frame.locator(".leaflet-container").wait_for()  # Leaflet loaded without any CDN
        frame.locator(".leaflet-container[data-sarviz-offline-base='drawn']").wait_for()  # Natural Earth drawn
        assert frame.locator(".leaflet-sarviz-offline-base-pane path").count() >= 2  # land + borders
        frame.locator("path.leaflet-interactive").filter(visible=True).first.wait_for()  # the footprint
        screenshot(page, "offline-map")
        box = frame.locator(".leaflet-container").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2 + 40, box["y"] + box["height"] / 2 + 30)
        main = page.locator("[data-testid='stMain']")
        main.locator("[data-testid='stMarkdownContainer']").get_by_text("sen1floods11_Spain_7370579").first.wait_for(
            timeout=patience_ms(90)
        )
        main.get_by_text("Proxy embedding", exact=False).first.wait_for()
        page.wait_for_function(RUN_IDLE_JS, timeout=patience_ms(90))
        # the clicked point is marked on the map (a second, red circle)
        frame.locator("path[fill='#d7191c']").first.wait_for()
        generate = page.get_by_role("button", name="Generate")
        assert generate.is_enabled()
        generate.click()
        page.get_by_text("Generated (from a PROXY embedding)").wait_for(timeout=patience_ms(120))
        page.wait_for_function(RUN_IDLE_JS, timeout=patience_ms(120))
        page.get_by_text("Made from a PROXY embedding").first.wait_for()
        # side by side: optical | real | generated, all three drawn
        inspect = page.locator("[data-testid='stTabs']").first
        panels = inspect.locator("[data-testid='stImage'] img")
        panels.nth(2).wait_for()
        wait_images_drawn(page, "[data-testid='stTabs'] [data-testid='stImage'] img", min_width=100, first=3)
        panels.nth(0).scroll_into_view_if_needed()
        screenshot(page, "offline-side-by-side")
        for tab in ("Distributions", "Texture (GLCM)"):
            page.get_by_role("tab", name=tab).click()
            panel = page.locator("[role='tabpanel']:visible [data-testid='stImage'] img").first
            panel.wait_for()
            page.wait_for_function("""() => [...document.querySelectorAll("[role='tabpanel'] [data-testid='stImage'] img")]
                                        .filter(i => i.offsetParent !== null).every(i => i.complete && i.naturalWidth > 300)""")
            panel.scroll_into_view_if_needed()
            screenshot(page, f"offline-{tab.split()[0].lower()}")
    # the page asked the outside world for nothing it needed: only map tiles were refused
    assert all("tile.openstreetmap.org" in u for u in blocked), sorted(set(blocked))[:5]


def test_offline_sidebar_list_and_type_a_place(sample_workbench):
    """A click on the sidebar's Spain row goes there; "Type a place" offline: Punjab's candidates,
    then the README's route `Murcia` → one click → the Spain scene (drawn on the map) → Generate."""
    require_browser()
    if webassets.install():
        pytest.skip("local web assets missing; ./dev fetches them with npm")
    url = sample_workbench  # the imported samples, local sources only (conftest.py)
    with chromium_page(offline=True) as page:
        page.goto(url)
        page.get_by_text("Click a place on the map").wait_for()
        page.wait_for_function(RUN_IDLE_JS, timeout=patience_ms(90))
        grid = page.locator("[data-testid='stSidebar'] [data-testid='stDataFrame']")
        grid.wait_for()
        grid.scroll_into_view_if_needed()  # the sidebar's page list sits above it
        box = _settled_box(page, grid)
        # rows sorted by id: six BigEarthNet patches, then the Spain chip (7th row); 35 px rows
        page.mouse.click(box["x"] + 14, box["y"] + 35 + 6 * 35 + 17)
        main = page.locator("[data-testid='stMain']")
        main.locator("[data-testid='stMarkdownContainer']").get_by_text("sen1floods11_Spain_7370579").first.wait_for(
            timeout=patience_ms(90)
        )
        page.wait_for_function(RUN_IDLE_JS, timeout=patience_ms(90))
        # Type a place: `Punjab` lists Pakistan's province first, then India's, names shown
        page.get_by_label("Type a place").fill("Punjab")
        page.get_by_role("button", name="Go", exact=True).click()
        radio = main.locator("[data-testid='stRadio']").filter(has_text="Places matching 'Punjab'")
        radio.wait_for(timeout=patience_ms(90))
        wait_idle(page, 90)
        names = [o for o in radio.locator("label").all_inner_texts() if o.startswith("Punjab, ")]
        assert names[0].startswith("Punjab, Pakistan — region"), names
        assert names[1].startswith("Punjab, India — region"), names
        screenshot(page, "offline-type-a-place-punjab")
        page.wait_for_function(RUN_IDLE_JS, timeout=patience_ms(90))
        # the README's route: `Murcia` → one click to the nearest scene → the Spain sample → Generate
        page.get_by_label("Type a place").fill("Murcia")
        page.get_by_role("button", name="Go", exact=True).click()
        main.get_by_text("Murcia, Spain — town", exact=False).first.wait_for(timeout=patience_ms(90))
        jump = page.get_by_role("button", name="Go to the nearest scene")
        jump.wait_for(timeout=patience_ms(90))
        jump.click()  # the one click
        main.locator("[data-testid='stMarkdownContainer']").get_by_text("sen1floods11_Spain_7370579").first.wait_for(
            timeout=patience_ms(90)
        )
        page.wait_for_function(RUN_IDLE_JS, timeout=patience_ms(90))
        # the scene's own optical image lies on the map where the user works (offline: no tiles)
        frame = page.locator("iframe[title*='streamlit_folium']").first.content_frame
        overlay = frame.locator("img.sarviz-scene-overlay")
        overlay.wait_for(timeout=patience_ms(90))
        page.wait_for_function(  # loaded and drawn at a visible size, not only in the DOM
            """() => { const f = document.querySelector("iframe[title*='streamlit_folium']");
                       const i = f && f.contentDocument.querySelector('img.sarviz-scene-overlay');
                       return i && i.complete && i.naturalWidth > 100 && i.getBoundingClientRect().width > 50; }""",
            timeout=patience_ms(60),
        )
        assert float(overlay.evaluate("i => getComputedStyle(i).opacity")) == pytest.approx(0.85, abs=0.01)
        page.get_by_role("button", name="Generate").click()
        page.get_by_text("Generated (from a PROXY embedding)").wait_for(timeout=patience_ms(120))
        page.wait_for_function(RUN_IDLE_JS, timeout=patience_ms(120))
        optical_src = overlay.get_attribute("src")
        overlay_choice = page.locator("[data-testid='stRadio']").filter(has_text="Map overlay")
        overlay_choice.get_by_text("generated", exact=True).click()
        page.wait_for_function(RUN_IDLE_JS, timeout=patience_ms(120))
        page.wait_for_function(
            """(old) => {
          const f = document.querySelector("iframe[title*='streamlit_folium']");
          const i = f && f.contentDocument.querySelector('img.sarviz-scene-overlay');
          return i && i.src !== old && i.complete && i.naturalWidth > 100; }""",
            arg=optical_src,
            timeout=patience_ms(60),
        )
        screenshot(page, "offline-murcia-generated")
