"""AppTest of render_inspection (with and without real S1) and of the Inspect page."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from sarviz.scene import Scene, write_scene
from sarviz.ui.inspection import swipe_map_html, zoom_window

from _metrics_fixtures import GRID, result_from, speckled_scene_db

PAGE = Path(__file__).resolve().parents[1] / "pages" / "2_Inspect.py"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A scene file (optical, real S1, embedding) and a generated GeoTIFF on its grid."""
    folder = tmp_path_factory.mktemp("inspect")
    vv, vh = speckled_scene_db((64, 64), seed=0)
    gv, gh = speckled_scene_db((64, 64), seed=4, looks=2.0)
    rng = np.random.default_rng(0)
    scene = Scene(
        crs="EPSG:32633",
        transform=GRID,
        width=64,
        height=64,
        vv_db=vv,
        vh_db=vh,
        optical=rng.uniform(0, 0.3, (4, 64, 64)),
        embedding=rng.normal(0, 0.1, (64, 64, 64)),
        scene_id="test-scene",
    )
    write_scene(scene, folder / "a_scene.tif")
    result_from(gv, gh).to_geotiff(folder / "b_generated.tif")
    return folder


def _app(scene_path: str, gen_path: str | None, with_real: bool) -> None:
    from sarviz.generators.base import GenerationResult
    from sarviz.scene import Scene, read_scene
    from sarviz.ui.inspection import render_inspection

    scene = read_scene(scene_path)
    if not with_real:
        scene = Scene(
            crs=scene.crs,
            transform=scene.transform,
            width=scene.width,
            height=scene.height,
            optical=scene.optical,
            embedding=scene.embedding,
            scene_id=scene.scene_id,
        )
    result = GenerationResult.from_geotiff(gen_path) if gen_path else None
    render_inspection(scene, result, key="t")


def _run(files: Path, with_real: bool, generated: bool = True) -> AppTest:
    at = AppTest.from_function(
        _app, args=(str(files / "a_scene.tif"), str(files / "b_generated.tif") if generated else None, with_real)
    )
    at.run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    return at


def _all_text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


def test_render_inspection_with_real_s1(files):
    at = _run(files, with_real=True)
    assert "No real Sentinel-1" not in _all_text(at)
    assert len(at.tabs) == 6
    for label in ("Optical (Sentinel-2 true colour)", "Real Sentinel-1", "Generated"):
        assert f"**{label}**" in _all_text(at)
    # two tables: pair metrics (one value column) and per-image statistics, no empty cells
    pair, single = at.dataframe[0].value, at.dataframe[1].value
    # (plus the protocol/variant of each number, and the composite caveat only where one applies)
    assert list(pair.columns) == ["metric", "polarisation", "value", "protocol"]
    assert list(single.columns)[:5] == ["metric", "polarisation", "real", "generated", "generated − real"]
    assert "caveat" not in pair.columns  # the test's real image is not a composite
    assert pair.notna().all().all() and single.notna().all().all()
    kl = pair[(pair.metric.str.startswith("KL")) & (pair.polarisation == "VV")]["value"].iloc[0]
    assert kl > 0
    assert any(e.label == "Metric definitions (docs/metrics.md)" for e in at.expander)
    downloads = at.get("download_button")
    labels = {d.proto.label for d in downloads}
    assert {
        "Metrics CSV",
        "Metrics JSON",
        "Generated GeoTIFF",
        "Real S1 GeoTIFF",
        "Histogram panel PNG",
        "GLCM panel PNG",
        "Embedding panel PNG",
        "Side-by-side PNG",
    } <= labels
    # the swipe map is an HTML component with the two georeferenced overlays
    assert any("sarviz-swipe" in str(el.proto) for el in at.get("iframe"))

    # switching to VH and zooming 4× re-renders the three views from the same crop
    at.radio(key="t-mode").set_value("VH").run(timeout=60)
    at.select_slider(key="t-zoom").set_value(4).run(timeout=60)
    assert not at.exception
    assert "VH σ⁰, fixed stretch [-32, -5] dB" in _all_text(at)
    assert "zoom 4×: rows 24–40, columns 24–40 of 64×64 px" in _all_text(at)


def test_render_inspection_generated_only_says_so(files):
    at = _run(files, with_real=False)
    text = _all_text(at)
    assert "No real Sentinel-1 image for this scene — showing the generated image only" in text
    assert "no real Sentinel-1 for this scene" in text
    (table,) = [d.value for d in at.dataframe]  # no pair-metric table without a real image
    assert list(table.columns)[:3] == ["metric", "polarisation", "generated"] and table["generated"].notna().all()
    labels = {d.proto.label for d in at.get("download_button")}
    assert "Generated GeoTIFF" in labels and "Real S1 GeoTIFF" not in labels


def test_render_inspection_before_generation(files):
    at = _run(files, with_real=True, generated=False)
    assert "Nothing generated yet" in _all_text(at)
    assert len(at.dataframe) == 0


def test_inspect_page_picks_two_geotiffs(files, monkeypatch):
    monkeypatch.setenv("SARVIZ_SCENES", str(files))
    at = AppTest.from_file(str(PAGE))
    at.run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    # the page starts empty (no guessed pair), in the wide layout
    assert at.selectbox(key="inspect-pick-real").value is None and at.selectbox(key="inspect-pick-gen").value is None
    assert any("Choose the generated GeoTIFF" in i.value for i in at.info)
    at.selectbox(key="inspect-pick-real").set_value("a_scene.tif").run(timeout=120)
    at.selectbox(key="inspect-pick-gen").set_value("b_generated.tif").run(timeout=120)
    assert not at.exception
    table = at.dataframe[0].value
    assert table[table.metric == "SSIM"]["value"].between(0, 1).all()
    assert not at.warning  # a generated file is not taken for a scene file


def test_inspect_page_refuses_wrong_files_clearly(files, tmp_path, monkeypatch):
    (tmp_path / "x.tif").write_bytes(b"not a tiff")
    (tmp_path / "y.tif").write_bytes((files / "b_generated.tif").read_bytes())
    monkeypatch.setenv("SARVIZ_SCENES", str(tmp_path))
    at = AppTest.from_file(str(PAGE))
    at.run(timeout=120)
    at.selectbox(key="inspect-pick-real").set_value("x.tif").run(timeout=120)
    at.selectbox(key="inspect-pick-gen").set_value("y.tif").run(timeout=120)
    assert not at.exception
    assert any("not a readable GeoTIFF" in e.value for e in at.error)


def test_false_colour_missing_colour_is_never_a_valid_pixel():
    """Cyan marks missing pixels in false colour: no (VV, VH) pair renders as cyan; magenta does occur."""
    from sarviz.ui.inspection import FALSE_COLOUR_MISSING_RGB, render_sar, stretch_caption

    vv, vh = np.meshgrid(np.arange(-60, 30, 0.05, dtype=np.float32), np.arange(-60, 30, 0.05, dtype=np.float32))
    rgb = render_sar(vv, vh, "false-colour").reshape(-1, 3)
    assert not (rgb == FALSE_COLOUR_MISSING_RGB).all(axis=1).any()
    assert (rgb == (255, 0, 255)).all(axis=1).any()  # why magenta could not mark missing pixels
    vv[0, 0] = np.nan
    assert tuple(render_sar(vv, vh, "false-colour")[0, 0]) == FALSE_COLOUR_MISSING_RGB
    assert "cyan = missing" in stretch_caption("false-colour") and "magenta" not in stretch_caption("false-colour")


def test_zoom_window_stays_inside():
    assert zoom_window(64, 64, 1) == (0, 64, 0, 64)
    assert zoom_window(64, 64, 4, 0.5, 0.5) == (24, 40, 24, 40)
    assert zoom_window(64, 64, 4, 1.0, 0.0) == (0, 16, 48, 64)
    with pytest.raises(ValueError):
        zoom_window(64, 64, 0)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_swipe_map_uses_st_iframe_without_deprecation_warning(files):
    """The swipe map is embedded with st.iframe (srcdoc), not the deprecated components.v1.html."""
    # Streamlit logs its deprecation notices on this logger (and shows them in the app only
    # with client.showErrorDetails = "full"), so listen to both.
    logger = logging.getLogger("streamlit.deprecation_util")
    records = _Records()
    logger.addHandler(records)
    try:
        at = _run(files, with_real=True)
    finally:
        logger.removeHandler(records)
    swipes = [el.proto for el in at.get("iframe") if "sarviz-swipe" in el.proto.srcdoc]
    assert len(swipes) == 1
    assert swipes[0].srcdoc.lstrip().lower().startswith("<!doctype html>")
    assert not swipes[0].src  # the HTML is inline (srcdoc), nothing is fetched
    notices = records.messages + [w.value for w in at.warning]
    assert not [m for m in notices if "deprecat" in m.lower() or "will be removed" in m.lower()], notices


def test_swipe_map_is_georeferenced():
    vv, vh = speckled_scene_db((64, 64))
    real, gen = result_from(vv, vh), result_from(vh, vv)
    html = swipe_map_html(real, gen, "VV")
    assert html.count("L.imageOverlay(") == 2
    bounds = [float(x) for x in re.findall(r"\[\[(-?[\d.]+), (-?[\d.]+)\], \[(-?[\d.]+), (-?[\d.]+)\]\]", html)[0]]
    south, west, north, east = bounds
    # GRID: UTM 33N, x 404400–405040 m, y 5341760–5342400 m → about 48.22° N, 13.72° E
    assert 48.21 < south < north < 48.23
    assert 13.71 < west < east < 13.73
    assert "tile.openstreetmap" not in html  # no base map: works offline
