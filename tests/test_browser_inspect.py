"""A real browser (Debian Chromium via Playwright) on the Inspect page: swipe map and side-by-side views.

The real image is the Sen1Floods11 Spain chip (S1 and S2, imported as a sarviz scene file,
so the optical panel is there too); the generated image is a perturbed copy of its S1 on the
same grid, written as a generated GeoTIFF. The swipe map is checked where it can break only in
a browser: both overlays drawn at the scene's WGS84 bounds, the slider clipping the top layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

from _waits import patience_ms

from _browser import chromium_page, require_browser, run_streamlit, screenshot

pytestmark = pytest.mark.browser

SEN1FLOODS11 = Path(__file__).resolve().parents[1].parent / "shared" / "samples" / "sen1floods11"
S1_CHIP = SEN1FLOODS11 / "Spain_7370579_S1Hand.tif"

# the Streamlit run has finished and no element of the previous run is still shown
IDLE_JS = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  return !!app && app.dataset.testScriptState === 'notRunning'
      && !document.querySelector("[data-stale='true']")
      && document.querySelectorAll("[role='tablist']").length <= 1;
}"""
# src of the first three images of the page: the optical | real | generated panels of the
# "Side by side" tab (the first tab; the colour bar and the other tabs' figures come later)
PANEL_SRCS_JS = """() => [...document.querySelectorAll("[data-testid='stImage'] img")]
  .filter(i => i.closest("[data-testid='stElementContainer']").dataset.stale !== 'true')
  .slice(0, 3).map(i => [i.src, i.complete ? i.naturalWidth : 0, i.complete ? i.naturalHeight : 0])"""
# state of the swipe map inside its iframe: folium names the map map_<id> and the overlays
# image_overlay_<id> as globals; the second overlay is the generated one (the swipe's top layer)
SWIPE_STATE_JS = """() => {
  const map = window[Object.keys(window).find(k => k.startsWith('map_'))];
  const overlays = Object.keys(window).filter(k => k.startsWith('image_overlay_')).map(k => window[k]);
  const mapRect = map.getContainer().getBoundingClientRect();
  const range = document.querySelector('.sarviz-swipe input[type=range]');
  const mb = map.getBounds();
  return {
    zoom: map.getZoom(),
    size: [map.getSize().x, map.getSize().y],
    mapBounds: [mb.getSouth(), mb.getWest(), mb.getNorth(), mb.getEast()],
    range: Number(range.value),
    overlays: overlays.map(o => {
      const b = o.getBounds(), el = o.getElement(), r = el.getBoundingClientRect();
      // where Leaflet says the bounds' corners are on screen, to compare with the drawn image
      const nw = map.latLngToContainerPoint(b.getNorthWest()), se = map.latLngToContainerPoint(b.getSouthEast());
      return {bounds: [b.getSouth(), b.getWest(), b.getNorth(), b.getEast()],
              rect: [r.left - mapRect.left, r.top - mapRect.top, r.width, r.height],
              expectedRect: [nw.x, nw.y, se.x - nw.x, se.y - nw.y],
              loaded: el.complete && el.naturalWidth > 0, src: el.src.slice(0, 200) + el.src.length,
              clip: el.style.clipPath, mapWidth: mapRect.width};
    }),
  };
}"""


def _clip_left(state: dict) -> float:
    """The left inset (px) of the top layer's clip-path ``inset(0 0 0 Npx)``."""
    clip = state["overlays"][1]["clip"]
    assert clip.startswith("inset("), clip
    # the browser shortens inset(0 0 0 0px) to inset(0px): the CSS 1–4 value shorthand
    values = [float(v.removesuffix("px")) for v in clip[len("inset(") : -1].split()]
    return values[{1: 0, 2: 1, 3: 1, 4: 3}[len(values)]]


@pytest.fixture(scope="module")
def inspect_folder(tmp_path_factory) -> tuple[Path, str, str, tuple[float, float, float, float], float]:
    """Folder with the imported Spain scene (real) and a perturbed generated GeoTIFF on its grid."""
    if not S1_CHIP.is_file():
        pytest.skip(f"the Sen1Floods11 sample is missing ({S1_CHIP}); ../shared is not next to the repo")
    from rasterio.warp import transform_bounds

    from sarviz.generators.base import GenerationResult
    from sarviz.importers import import_scenes
    from sarviz.scene import read_scene

    folder = tmp_path_factory.mktemp("inspect-browser")
    report = import_scenes(SEN1FLOODS11, folder)
    assert len(report.written) == 1 and not report.problems, report
    real_path = report.written[0]
    scene = read_scene(real_path)
    assert scene.vv_db is not None and scene.optical is not None
    rng = np.random.default_rng(7)
    # visibly different from the real image (brighter VV, darker VH, extra speckle), same grid
    GenerationResult(
        scene.vv_db + 3.0 + rng.normal(0, 1.5, scene.vv_db.shape),
        scene.vh_db - 3.0 + rng.normal(0, 1.5, scene.vh_db.shape),
        scene.crs,
        scene.transform,
        {"generator": "browser-test perturbation"},
    ).to_geotiff(folder / "zz_generated.tif")
    left, top = scene.transform @ (0, 0)
    right, bottom = scene.transform @ (scene.width, scene.height)
    wgs84 = transform_bounds(
        scene.crs, "EPSG:4326", min(left, right), min(top, bottom), max(left, right), max(top, bottom)
    )  # west, south, east, north
    pixel_deg = max((wgs84[2] - wgs84[0]) / scene.width, (wgs84[3] - wgs84[1]) / scene.height)
    return folder, real_path.name, "zz_generated.tif", wgs84, pixel_deg


def _settle(page, predicate_js: str = "() => true", arg=None) -> None:
    """Wait until Streamlit is idle and ``predicate_js`` holds (the change we wait for arrived)."""
    page.wait_for_function(f"(arg) => ({IDLE_JS})() && ({predicate_js})(arg)", arg=arg, timeout=patience_ms(60))


def _panel_srcs(page) -> list:
    return page.evaluate(PANEL_SRCS_JS)


def test_inspect_swipe_map_and_synced_side_by_side(inspect_folder, tmp_path):
    require_browser()
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    folder, real_name, gen_name, (west, south, east, north), pixel_deg = inspect_folder
    env = {"SARVIZ_SCENES": str(folder), "SARVIZ_HOME": str(tmp_path)}
    # the whole app (its static folder serves Leaflet to the swipe map), opened on the Inspect page
    blocked: list[str] = []  # offline: every outside request refused (the swipe map uses the app's Leaflet)
    with (
        run_streamlit("app.py", env=env, page="Inspect") as url,
        chromium_page(1400, 1100, offline=True, blocked=blocked) as page,
    ):
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        page.get_by_text("Inspect a generated SAR image").wait_for()
        _settle(page, "() => document.querySelectorAll(\"[data-testid='stSelectbox']\").length === 2")
        # the page starts empty: pick the real image, then the generated one
        page.get_by_role("combobox", name="Real Sentinel-1").click()
        page.get_by_role("option", name=real_name).click()
        expect(page.get_by_role("combobox", name="Real Sentinel-1")).to_have_value(real_name, timeout=patience_ms(60))
        _settle(page)
        page.get_by_role("combobox", name="Generated").click()
        page.get_by_role("option", name=gen_name).click()
        expect(page.get_by_role("combobox", name="Generated")).to_have_value(gen_name, timeout=patience_ms(60))
        # the pair is loaded once the swipe map (only drawn with real + generated) exists
        _settle(
            page,
            "() => !!document.querySelector(\"iframe[data-testid='stIFrame']\") && "
            "(" + PANEL_SRCS_JS + ")().filter(p => p[1] > 0).length === 3",
        )

        # -- side by side: optical | real | generated, same size; the switch and zoom act on all --
        vv = _panel_srcs(page)
        assert len({src for src, _, _ in vv}) == 3, "optical, real and generated panels should differ"
        assert len({(w, h) for _, w, h in vv}) == 1, f"panels are not the same size: {vv}"
        tab_panel = page.get_by_role("tabpanel").filter(visible=True)
        # both SAR panels have new pictures (the optical one does not depend on the polarisation)
        changed_js = (
            "(old) => { const now = (" + PANEL_SRCS_JS + ")(); "
            "return now.length === 3 && now.every(p => p[1] > 0) && now[1][0] !== old[1] && now[2][0] !== old[2]; }"
        )
        seen = {"VV": vv}
        for mode in ("VH", "false-colour"):
            tab_panel.get_by_text(mode, exact=True).click()
            _settle(page, changed_js, [s for s, _, _ in seen[list(seen)[-1]]])
            seen[mode] = _panel_srcs(page)
        for mode in ("VH", "false-colour"):
            previous = seen["VV" if mode == "VH" else "VH"]
            # the optical panel does not depend on the polarisation; both SAR panels change together
            assert seen[mode][0][0] == previous[0][0]
            assert seen[mode][1][0] != previous[1][0] and seen[mode][2][0] != previous[2][0], mode
        page.get_by_text("false colour: R = VV").first.wait_for()

        # zoom 1× → 2× (keyboard on the select-slider's thumb): all three panels are re-cropped
        before_zoom = [s for s, _, _ in seen["false-colour"]]
        thumb = tab_panel.get_by_role("slider").first
        thumb.focus()
        thumb.press("ArrowRight")
        _settle(
            page,
            "(old) => { const now = (" + PANEL_SRCS_JS + ")(); "
            "return now.length === 3 && now.every((p, i) => p[1] > 0 && p[0] !== old[i]); }",
            before_zoom,
        )
        zoomed = _panel_srcs(page)
        assert all(z[0] != b for z, b in zip(zoomed, before_zoom))
        assert len({(w, h) for _, w, h in zoomed}) == 1
        page.get_by_text("zoom 2×: rows").first.wait_for()
        tab_panel.scroll_into_view_if_needed()
        screenshot(page, "inspect-side-by-side-zoom2")

        # -- swipe map ---------------------------------------------------------------------------
        page.get_by_role("tab", name="Swipe map").click()
        iframe = page.locator("iframe[data-testid='stIFrame']").filter(visible=True)
        iframe.wait_for()
        iframe.scroll_into_view_if_needed()
        frame = iframe.element_handle().content_frame()
        frame.wait_for_selector(".leaflet-container")
        # both overlays loaded and drawn with a real size (a 0×0 hidden iframe once left them at zoom 0)
        try:
            frame.wait_for_function(
                "() => { const s = (" + SWIPE_STATE_JS + ")(); return s.overlays.length === 2 && "
                "s.overlays.every(o => o.loaded && o.rect[2] > 100 && o.rect[3] > 100) && "
                "s.overlays[1].clip.startsWith('inset('); }",
                timeout=patience_ms(60),
            )
        except PlaywrightTimeout:
            pytest.fail(f"the swipe map's overlays are not drawn at a visible size: {frame.evaluate(SWIPE_STATE_JS)}")
        state = frame.evaluate(SWIPE_STATE_JS)
        real_ov, gen_ov = state["overlays"]
        assert real_ov["src"] != gen_ov["src"], "the two overlays show the same picture"
        # georeferenced: both overlays span the chip's WGS84 bounds (warping to Web Mercator may
        # add up to a pixel or two at the edges)
        tol = 3 * pixel_deg
        for ov in (real_ov, gen_ov):
            np.testing.assert_allclose(ov["bounds"], [south, west, north, east], atol=tol)
            # ...and are drawn on screen where Leaflet puts those coordinates
            np.testing.assert_allclose(ov["rect"], ov["expectedRect"], atol=2.0)
        # the map is fitted to the scene: it shows all of it, and the scene fills much of the map
        s, w, n, e = state["mapBounds"]
        assert s <= south and w <= west and n >= north and e >= east, (state["mapBounds"], (south, west, north, east))
        assert gen_ov["rect"][3] > 0.4 * state["size"][1]

        # drag the slider's thumb with the mouse: the top (generated) layer's clip follows it
        rng_box = frame.locator(".sarviz-swipe input[type=range]").bounding_box()
        y = rng_box["y"] + rng_box["height"] / 2
        start_clip, start_rect = _clip_left(state), gen_ov["rect"]
        assert state["range"] == 50
        # targets where the line crosses the image (it spans about the middle 40 % of the map)
        for target in (40, 62):
            start_x = rng_box["x"] + rng_box["width"] * state["range"] / 100
            page.mouse.move(start_x, y)
            page.mouse.down()
            page.mouse.move(rng_box["x"] + rng_box["width"] * target / 100, y, steps=8)
            page.mouse.up()
            frame.wait_for_function(
                "(v) => Number(document.querySelector('.sarviz-swipe input').value) !== v", arg=state["range"]
            )
            previous_clip = _clip_left(state)
            state = frame.evaluate(SWIPE_STATE_JS)
            assert abs(state["range"] - target) <= 5, (target, state["range"])
            gen_ov = state["overlays"][1]
            # the map did not pan under the drag: the overlays stayed put
            np.testing.assert_allclose(gen_ov["rect"], start_rect, atol=1.0)
            # the cut is where the slider line crosses the image (clamped at the image's left edge)
            expected = max(0.0, gen_ov["mapWidth"] * state["range"] / 100 - gen_ov["rect"][0])
            assert _clip_left(state) == pytest.approx(expected, abs=1.0)
            assert 0 < _clip_left(state) < gen_ov["rect"][2], "the line should cross the generated image"
            assert (_clip_left(state) < previous_clip) if target < 50 else (_clip_left(state) > previous_clip)
            assert state["overlays"][0]["clip"] in ("", "none"), "the real (bottom) layer must not be clipped"
        assert _clip_left(state) > start_clip
        shot = screenshot(page, "inspect-swipe-map")
        assert shot.stat().st_size > 10_000
        assert not errors, errors
    assert not blocked, sorted(set(blocked))[:5]  # nothing outside was needed, nothing asked for
