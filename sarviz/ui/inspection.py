"""Side-by-side inspection of a generated SAR image (Streamlit).

:func:`render_inspection` shows optical | real Sentinel-1 | generated at the same size with
one fixed dB stretch and colour bar, a VV / VH / false-colour switch and one zoom that
crops all three alike; a georeferenced swipe map (generated over real); the histogram,
GLCM and embedding panels; the metrics table; and downloads. It works for a scene without
real S1 (generated only, and says so) and for a result from any generator.

:func:`inspect_page` is the "Inspect" page: two GeoTIFFs (uploaded, or picked from a
folder) → the same inspection. The science lives in :mod:`sarviz.metrics` and
:mod:`sarviz.viz`; this module only lays it out.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from branca.element import MacroElement, Template

from sarviz.access import AccessDenied, inside_roots, resolve_user_path
from sarviz.embedding_proxy import is_proxy, result_note
from sarviz.errors import SarvizError
from sarviz.generators.base import GenerationResult
from sarviz.metrics.report import MetricError, MetricsReport, check_same_grid, read_sar_file
from sarviz.scene import Scene, check_file_size
from sarviz.settings import Settings
from sarviz.ui.text import plain
from sarviz.ui.webassets import localize
from sarviz.viz import images, panels
from sarviz.viz.inspect import inspect_results


def scene_sar_as_result(scene: Any, provenance: dict[str, Any] | None = None):
    """The VV/VH of a scene as a :class:`GenerationResult` (for GeoTIFF export and comparison)."""
    if scene.vv_db is None or scene.vh_db is None:
        raise MetricError(f"{scene.scene_id or 'the image'}: VV or VH is missing everywhere (no valid pixel)")
    return GenerationResult(
        scene.vv_db,
        scene.vh_db,
        scene.crs,
        scene.transform,
        provenance if provenance is not None else dict(scene.provenance),
    )


DISPLAY_MODES: tuple[str, ...] = ("VV", "VH", "false-colour")
ZOOM_LEVELS: tuple[int, ...] = (1, 2, 4, 8)
NO_REAL_MESSAGE = (
    "No real Sentinel-1 image for this scene — showing the generated image only. KL, Mean/Std "
    "similarity, SSIM and FSIM need a real image; ENL and GLCM are shown for the generated image."
)


# -- pure helpers (tested without Streamlit) -----------------------------------------------------
def zoom_window(
    height: int, width: int, zoom: int, centre_x: float = 0.5, centre_y: float = 0.5
) -> tuple[int, int, int, int]:
    """Rows/cols (r0, r1, c0, c1) of a 1/zoom crop centred at fractional (x, y), kept inside the image."""
    if zoom < 1:
        raise ValueError(f"zoom must be ≥ 1, got {zoom}")
    h, w = max(1, round(height / zoom)), max(1, round(width / zoom))
    r0 = int(np.clip(round(centre_y * height - h / 2), 0, height - h))
    c0 = int(np.clip(round(centre_x * width - w / 2), 0, width - w))
    return r0, r0 + h, c0, c0 + w


def enlarge(rgb: np.ndarray, size: int = 512) -> np.ndarray:
    """Nearest-neighbour enlargement so that every view has the same pixel size (speckle stays sharp)."""
    factor = max(1, size // max(rgb.shape[:2]))
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1) if factor > 1 else rgb


# In false colour magenta is a valid colour (high VV, low VH, so high VV − VH). Cyan is not:
# R = 0 needs VV ≤ the VV floor and G = 255 needs VH ≥ the VH ceiling, so VV − VH is below the
# floor of its own range and B = 0. No valid pixel is ever cyan, so cyan marks missing pixels.
FALSE_COLOUR_MISSING_RGB = (0, 255, 255)


def render_sar(vv_db: np.ndarray, vh_db: np.ndarray, mode: str, calibration: Any = None) -> np.ndarray:
    """:func:`sarviz.viz.images.render_sar`, with missing pixels in a colour no valid pixel takes."""
    rgb = images.render_sar(vv_db, vh_db, mode, calibration)
    if mode == "false-colour":
        rgb[~(np.isfinite(vv_db) & np.isfinite(vh_db))] = FALSE_COLOUR_MISSING_RGB
    return rgb


def stretch_caption(mode: str, calibration: Any = None) -> str:
    """The caption of a display mode's fixed stretch (the calibration's dB ranges)."""
    if mode == "false-colour":
        vv, vh, d = (images.display_range(p, calibration) for p in ("VV", "VH", "VV-VH"))
        return (
            f"false colour: R = VV [{vv[0]:g}, {vv[1]:g}] dB, G = VH [{vh[0]:g}, {vh[1]:g}] dB, "
            f"B = VV − VH [{d[0]:g}, {d[1]:g}] dB; cyan = missing (no valid pixel can be cyan: it would need "
            f"VV ≤ {vv[0]:g} dB with VH ≥ {vh[1]:g} dB)"
        )
    lo, hi = images.display_range(mode, calibration)
    return f"{mode} σ⁰, fixed stretch [{lo:g}, {hi:g}] dB (same in every panel); magenta = missing"


def fingerprint(*arrays: np.ndarray | None) -> str:
    """A content hash of arrays, to cache metrics and figures per image pair."""
    digest = hashlib.blake2b(digest_size=16)
    for arr in arrays:
        if arr is None:
            digest.update(b"none")
        else:
            digest.update(str(arr.shape).encode())
            digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()


def _web_mercator_rgba(rgb: np.ndarray, crs: Any, transform: Any) -> tuple[np.ndarray, list[list[float]]]:
    """Warp an RGB display image to Web Mercator (nearest) → RGBA and its [[S, W], [N, E]] bounds.

    Leaflet stretches an image overlay linearly between its corner coordinates in Web
    Mercator, so the image must be on a Web Mercator grid to sit in the right place.
    """
    from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_bounds

    h, w = rgb.shape[:2]
    left, top = transform @ (0, 0)
    right, bottom = transform @ (w, h)
    dst_tf, dst_w, dst_h = calculate_default_transform(
        crs,
        "EPSG:3857",
        w,
        h,
        left=min(left, right),
        bottom=min(top, bottom),
        right=max(left, right),
        top=max(top, bottom),
    )
    src = np.concatenate([np.moveaxis(rgb, 2, 0), np.full((1, h, w), 255, np.uint8)])
    dst = np.zeros((4, dst_h, dst_w), np.uint8)
    reproject(
        src,
        dst,
        src_transform=transform,
        src_crs=crs,
        dst_transform=dst_tf,
        dst_crs="EPSG:3857",
        resampling=Resampling.nearest,
        src_nodata=None,
        dst_nodata=0,
    )
    west, north = dst_tf @ (0, 0)
    east, south = dst_tf @ (dst_w, dst_h)
    w_deg, s_deg, e_deg, n_deg = transform_bounds("EPSG:3857", "EPSG:4326", west, south, east, north)
    return np.moveaxis(dst, 0, 2), [[s_deg, w_deg], [n_deg, e_deg]]


_SWIPE_JS = """
{% macro script(this, kwargs) %}
(function() {
  // A swipe for image overlays: the leaflet-side-by-side plugin only clips tile layers.
  var map = {{ this._parent.get_name() }};
  var top = {{ this.top_layer }};
  var box = L.DomUtil.create('div', 'sarviz-swipe', map.getContainer());
  box.style.cssText = 'position:absolute;left:0;right:0;bottom:8px;z-index:1000;text-align:center;pointer-events:none';
  var line = L.DomUtil.create('div', '', map.getContainer());
  line.style.cssText = 'position:absolute;top:0;bottom:0;width:3px;margin-left:-1px;background:#fff;'
                     + 'box-shadow:0 0 4px #000;z-index:999;pointer-events:none';
  var range = L.DomUtil.create('input', '', box);
  range.type = 'range'; range.min = 0; range.max = 100; range.value = 50;
  range.style.cssText = 'width:70%;pointer-events:auto';
  range.title = 'drag: left = {{ this.left_label }}, right = {{ this.right_label }}';
  L.DomEvent.disableClickPropagation(box);
  L.DomEvent.on(range, 'mousedown touchstart pointerdown', L.DomEvent.stopPropagation);
  function clip() {
    var el = top.getElement(); if (!el) { return; }
    var mapRect = map.getContainer().getBoundingClientRect();
    var x = mapRect.width * range.value / 100;
    line.style.left = x + 'px';
    var r = el.getBoundingClientRect();
    var scale = r.width / (el.offsetWidth || r.width || 1);
    var cut = Math.max(0, (x - (r.left - mapRect.left)) / scale);
    el.style.clipPath = 'inset(0 0 0 ' + cut + 'px)';
  }
  range.addEventListener('input', clip);
  map.on('move zoom zoomend moveend resize', clip);
  top.on('load', clip);
  setTimeout(clip, 0);
  // Streamlit builds the iframe inside a tab that is hidden until it is opened, so Leaflet
  // first sees a 0×0 container and its fitBounds ends at zoom 0, where the overlays are
  // 0 px wide. Once the container has a size, re-measure it and fit the scene once more
  // (only the first time: later resizes keep the user's own pan and zoom).
  var fitTo = {{ this.fit_bounds_json }};
  var fitted = false;
  function sizeChanged() {
    var c = map.getContainer();
    if (!c.clientWidth || !c.clientHeight) { return; }
    map.invalidateSize({animate: false});
    if (!fitted) { map.fitBounds(fitTo, {animate: false}); fitted = true; }
    clip();
  }
  if (window.ResizeObserver) { new ResizeObserver(sizeChanged).observe(map.getContainer()); }
  window.addEventListener('resize', sizeChanged);
})();
{% endmacro %}
"""


class _SwipeControl(MacroElement):
    """The swipe slider over a folium map; ``_SWIPE_JS`` reads these attributes."""

    def __init__(self, top_layer: str, fit_bounds_json: str, left_label: str, right_label: str) -> None:
        super().__init__()
        self._template = Template(_SWIPE_JS)
        self.top_layer = top_layer
        self.fit_bounds_json = fit_bounds_json
        self.left_label, self.right_label = left_label, right_label


def swipe_map_html(real: Any, generated: Any, mode: str = "VV", height_px: int = 520, calibration: Any = None) -> str:
    """A folium map (HTML) with the real S1 on the left and the generated image on the right of a swipe.

    ``real`` and ``generated`` have ``vv_db``, ``vh_db``, ``crs``, ``transform``. No base
    map tiles are loaded (the app works offline); both layers are warped to Web Mercator.
    """
    import folium

    layers = []
    for obj in (real, generated):
        rgb = render_sar(obj.vv_db, obj.vh_db, mode, calibration)
        rgba, bounds = _web_mercator_rgba(rgb, obj.crs, obj.transform)
        layers.append((rgba, bounds))
    (_, bounds), _ = layers
    centre = [(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2]
    fmap = folium.Map(location=centre, tiles=None, control_scale=True, zoom_start=13, height=f"{height_px}px")
    overlays = []
    for (rgba, b), name in zip(layers, ("real Sentinel-1", "generated")):
        url = "data:image/png;base64," + base64.b64encode(images.png_bytes(rgba)).decode()
        overlay = folium.raster_layers.ImageOverlay(
            url, bounds=b, name=name, interactive=False, cross_origin=False, zindex=1 if name.startswith("real") else 2
        )
        overlay.add_to(fmap)
        overlays.append(overlay)
    fmap.fit_bounds(bounds)
    fmap.add_child(_SwipeControl(overlays[1].get_name(), json.dumps(bounds), "real Sentinel-1", "generated"))
    folium.LayerControl(collapsed=False).add_to(fmap)
    localize(fmap)  # Leaflet from the app's own copy: the swipe map works offline
    return fmap.get_root().render()


# -- Streamlit ---------------------------------------------------------------------------------------
def _cached(key: str, fp: str, name: str, build, max_entries: int = 24):
    """Per-widget-key cache in the session: metrics and figures are rebuilt only for new images.

    Entries are keyed by (name, content fingerprint); the oldest are dropped beyond
    ``max_entries`` so that a long session does not keep every figure it ever drew.
    """
    import streamlit as st

    store: dict = st.session_state.setdefault(f"{key}-cache", {})
    entry = (name, fp)
    if entry not in store:
        store[entry] = build()
        while len(store) > max_entries:
            store.pop(next(iter(store)))
    return store[entry]


def _real_result(scene: Scene):
    return scene_sar_as_result(
        scene,
        {
            "source": "real Sentinel-1",
            "scene_id": scene.scene_id,
            **{k: v for k, v in scene.provenance.items() if k != "source"},
        },
    )


def render_inspection(scene: Scene, result: Any | None = None, key: str = "inspect") -> MetricsReport | None:
    """Inspect ``result`` (a GenerationResult, or None) against ``scene``'s real S1 and optical.

    Returns the metrics report (None when there is no generated image or it failed).
    """
    import streamlit as st

    real_available = scene.vv_db is not None and scene.vh_db is not None
    if result is None and not real_available:
        st.info("Nothing to inspect yet: this scene has no real Sentinel-1 image and nothing has been generated.")
        return None
    if result is not None and real_available:
        try:
            check_same_grid(scene, result)
        except MetricError as exc:
            st.error(f"The generated image cannot be compared with this scene's Sentinel-1: {plain(exc)}")
            real_available = False
    if result is not None and not real_available:
        st.info(NO_REAL_MESSAGE)
    elif result is None:
        st.info("Nothing generated yet — showing the scene's optical and real Sentinel-1 image.")

    note = None if result is None else result_note(result.provenance)
    if note:
        st.warning(note, icon="⚠️")
    fp = fingerprint(
        scene.vv_db if real_available else None,
        scene.vh_db if real_available else None,
        None if result is None else result.vv_db,
        None if result is None else result.vh_db,
    )
    report: MetricsReport | None = None
    emb_fp = fingerprint(scene.embedding)
    panel_pngs: dict[str, bytes] = {}
    if result is not None:

        def build_inspection():
            # metrics and figures together: FSIM and the embedding PCA overlap the other metrics
            bar = st.progress(0.0, text="computing metrics and figures…")
            try:
                return inspect_results(
                    scene if real_available else None,
                    result,
                    embedding=scene.embedding,
                    progress=lambda i, n, msg: bar.progress(min(i / n, 1.0), text=msg),
                )
            finally:
                bar.empty()

        try:
            report, panel_pngs = _cached(key, fp + emb_fp, "inspection", build_inspection)
        except (SarvizError, ValueError) as exc:  # MetricError, CalibrationError (a malformed provenance), …
            st.error(f"Metrics cannot be computed: {plain(exc)}")
    if report is not None and report.composite_note:
        st.warning(report.composite_note)

    tabs = st.tabs(["Side by side", "Swipe map", "Distributions", "Texture (GLCM)", "Embedding", "Metrics & downloads"])
    with tabs[0]:
        side_png = _side_by_side(scene, result, real_available, key, report.calibration if report else None)
    with tabs[1]:
        if result is not None and real_available:
            mode = st.radio("Swipe display", DISPLAY_MODES, horizontal=True, key=f"{key}-swipe-mode")
            cal = report.calibration if report is not None else None
            html = _cached(
                key, fp, f"swipe-{mode}", lambda: swipe_map_html(_real_result(scene), result, mode, calibration=cal)
            )
            st.caption(
                "Left of the slider: real Sentinel-1; right: generated. Both georeferenced (Web Mercator), "
                "no base map (offline). " + stretch_caption(mode, cal)
            )
            # st.iframe, not the deprecated components.v1.html (removal announced for 2026-06-01):
            # the HTML string goes into the iframe's srcdoc, scripts (Leaflet, the slider) run.
            st.iframe(html, height=540)
        else:
            st.info("The swipe map needs both a real Sentinel-1 image and a generated one on the same grid.")
    figures: dict[str, bytes] = {}
    with tabs[2]:
        if report is not None:
            figures["histograms"] = panel_pngs["histograms"]  # drawn with the report
            st.image(figures["histograms"], width="stretch")
        else:
            st.info("Distributions need a generated image.")
    with tabs[3]:
        if report is not None:
            figures["glcm"] = panel_pngs["glcm"]
            st.image(figures["glcm"], width="stretch")
        else:
            st.info("Texture features need a generated image.")
    with tabs[4]:
        figures["embedding"] = panel_pngs.get("embedding") or _cached(
            key, fp + emb_fp, "fig-emb", lambda: panels.embedding_png(scene.embedding)
        )
        if scene.embedding is None:
            st.info("This scene has no AlphaEarth embedding layer.")
        else:
            if is_proxy(scene):
                st.warning(
                    "This is a PROXY embedding, not AlphaEarth for this place: "
                    + scene.provenance.get("embedding_source", ""),
                    icon="⚠️",
                )
            st.image(figures["embedding"], width="stretch")
    with tabs[5]:
        _metrics_and_downloads(scene, result, report, real_available, figures, side_png, key)
    return report


def _side_by_side(
    scene: Scene, result: Any | None, real_available: bool, key: str, calibration: Any = None
) -> bytes | None:
    import streamlit as st

    c1, c2, c3 = st.columns([2, 2, 3])
    mode = c1.radio("Display", DISPLAY_MODES, horizontal=True, key=f"{key}-mode")
    zoom = c2.select_slider("Zoom (all panels)", ZOOM_LEVELS, value=1, format_func=lambda z: f"{z}×", key=f"{key}-zoom")
    cx, cy = 0.5, 0.5
    if zoom > 1:
        cx = c3.slider("Centre across (%)", 0, 100, 50, key=f"{key}-cx") / 100
        cy = c3.slider("Centre down (%)", 0, 100, 50, key=f"{key}-cy") / 100
    r0, r1, c0, c1_ = zoom_window(scene.height, scene.width, zoom, cx, cy)
    crop = (slice(r0, r1), slice(c0, c1_))

    xy = scene.pixel_size_xy_m  # drawn with the ground's aspect, as the footprint and swipe map

    def shown(rgb):
        return images.true_aspect(enlarge(rgb), xy)

    optical = (
        shown(images.render_true_colour(scene.optical[:, crop[0], crop[1]])) if scene.optical is not None else None
    )
    vv, vh = scene.vv_db, scene.vh_db  # both present when real_available
    real = None
    if real_available and vv is not None and vh is not None:
        real = shown(render_sar(vv[crop], vh[crop], mode, calibration))
    gen = shown(render_sar(result.vv_db[crop], result.vh_db[crop], mode, calibration)) if result is not None else None
    cols = st.columns(3)
    labels = (
        "Optical (Sentinel-2 true colour)",
        "Real Sentinel-1",
        "Generated (from a PROXY embedding)" if result is not None and is_proxy(result.provenance) else "Generated",
    )
    missing = ("no optical layer in this scene", "no real Sentinel-1 for this scene", "nothing generated yet")
    for col, rgb, label, note in zip(cols, (optical, real, gen), labels, missing):
        with col:
            st.markdown(f"**{label}**")
            if rgb is None:
                st.info(note)
            else:
                st.image(rgb, width="stretch")
    if mode != "false-colour":
        st.image(images.colourbar_png(images.sar_stretch(mode, calibration)))
    st.caption(
        stretch_caption(mode, calibration) + f" · {scene.width}×{scene.height} px, {scene.pixel_size_text()}, "
        "drawn with the ground's aspect"
    )
    if zoom > 1:
        st.caption(f"zoom {zoom}×: rows {r0}–{r1}, columns {c0}–{c1_} of {scene.height}×{scene.width} px")
    fp = fingerprint(
        scene.optical, scene.vv_db, None if result is None else result.vv_db, None if result is None else result.vh_db
    )
    proxy = result is not None and is_proxy(result.provenance)
    titles = (
        "optical (S2 true colour)",
        "real Sentinel-1",
        "generated (from a PROXY embedding)" if proxy else "generated",
    )  # the downloaded PNG says so too
    cal_key = sorted(calibration.ranges.items()) if calibration is not None else "default"
    return _cached(
        key,
        fp,
        f"side-{mode}-{r0}-{r1}-{c0}-{c1_}-{cal_key}-{proxy}",
        lambda: panels.figure_png(
            panels.side_by_side_panel(optical, real, gen, stretch_caption(mode, calibration), titles=titles)
        ),
    )


def _metrics_and_downloads(
    scene: Scene,
    result: Any | None,
    report: MetricsReport | None,
    real_available: bool,
    figures: dict[str, bytes],
    side_png: bytes | None,
    key: str,
) -> None:
    import streamlit as st

    if report is not None:
        per_angle = st.toggle("GLCM per angle", value=False, key=f"{key}-per-angle")
        pair, single = split_metrics_table(report.table(per_angle=per_angle), real_available)
        if pair is not None:
            st.markdown("**Pair metrics** (generated against real)")
            st.dataframe(pair, hide_index=True, width="stretch", height=_table_height(len(pair)))
            st.caption(
                "Lower is better for KL and Mean/Std similarity; higher for SSIM and FSIM. The 'protocol' "
                "column says which protocol or variant each number is (Mean/Std similarity is our reading "
                "of seed 000: no formula in the paper)."
            )
        st.markdown(
            "**Per-image statistics**"
            + (" (real, generated and their difference)" if real_available else " (generated image)")
        )
        st.dataframe(single, hide_index=True, width="stretch", height=_table_height(len(single)))
        st.caption(
            f"Calibration: {report.calibration_source} "
            + ", ".join(f"{p} [{lo:g}, {hi:g}] dB" for p, (lo, hi) in report.calibration.ranges.items())
            + "."
        )
        with st.expander("Metric definitions (docs/metrics.md)"):
            st.markdown(metrics_doc())
        if st.toggle(
            "Seed-001 protocol (GLCM on amplitude in 64×64 homogeneous patches)", value=False, key=f"{key}-seed001"
        ):
            import pandas as pd

            from sarviz.metrics.protocols import seed001_table

            fp = fingerprint(
                *(m.real_db for m in report.polarisations.values()), *(m.gen_db for m in report.polarisations.values())
            )
            seed001 = _cached(
                key,
                fp,
                "seed001",
                lambda: pd.concat(
                    [
                        seed001_table(None if m.real_db is None else [m.real_db], [m.gen_db], pol)
                        for pol, m in report.polarisations.items()
                    ],
                    ignore_index=True,
                ),
            )
            st.dataframe(seed001, hide_index=True, width="stretch")
            st.caption(
                "Seed 001's protocol on this one pair: not comparable with the per-pair numbers above, nor "
                "with the paper's tables (which pool 30 images per scene category). docs/metrics.md."
            )
    stem = (scene.scene_id or "scene").replace("/", "_")
    cols = st.columns(4)
    downloads: list[tuple[str, bytes, str, str]] = []
    if side_png:
        downloads.append(("Side-by-side PNG", side_png, f"{stem}_side_by_side.png", "image/png"))
    for name, label in (
        ("histograms", "Histogram panel PNG"),
        ("glcm", "GLCM panel PNG"),
        ("embedding", "Embedding panel PNG"),
    ):
        if name in figures and (name != "embedding" or scene.embedding is not None):
            downloads.append((label, figures[name], f"{stem}_{name}.png", "image/png"))
    if report is not None:
        downloads.append(("Metrics CSV", report.csv().encode(), f"{stem}_metrics.csv", "text/csv"))
        downloads.append(("Metrics JSON", report.to_json().encode(), f"{stem}_metrics.json", "application/json"))
    if result is not None:
        downloads.append(("Generated GeoTIFF", result.geotiff_bytes(), f"{stem}_generated.tif", "image/tiff"))
    if real_available:
        downloads.append(("Real S1 GeoTIFF", _real_result(scene).geotiff_bytes(), f"{stem}_real_s1.tif", "image/tiff"))
    for i, (label, data, name, mime) in enumerate(downloads):
        cols[i % 4].download_button(label, data, file_name=name, mime=mime, key=f"{key}-dl-{i}")


def split_metrics_table(table: Any, real_available: bool) -> tuple[Any | None, Any]:
    """The report table as (pair metrics, per-image statistics): no column is empty by design.

    Pair rows (KL, Mean/Std similarity, SSIM, FSIM) have only a comparison value; single-image
    rows have real, generated and their difference. Without a real image the pair table is
    None and the per-image table keeps the generated column only.
    """
    is_pair = table["generated"].isna() & table["real"].isna()
    # which protocol/variant each number is, and the composite caveat, where the report has them
    notes = [c for c in ("protocol", "caveat") if c in table.columns]

    def keep(frame):  # drop a note column that is empty for every row of this table
        return frame[[c for c in frame.columns if c not in notes or frame[c].fillna("").astype(str).str.strip().any()]]

    pair = table.loc[is_pair, ["metric", "polarisation", "comparison", *notes]].rename(columns={"comparison": "value"})
    single = table.loc[~is_pair, ["metric", "polarisation", "real", "generated", "generated − real", *notes]]
    if not real_available:
        single = single[["metric", "polarisation", "generated", *notes]]
    pair = keep(pair[pair["value"].notna()]) if real_available else None
    return (pair if pair is not None and len(pair) else None), keep(single).reset_index(drop=True)


def _table_height(rows: int) -> int:
    # every row visible up to 30 rows (35 px a row + header), then the table scrolls
    return 38 + 35 * min(max(rows, 1), 30)


def metrics_doc() -> str:
    """docs/metrics.md, shown in the app (a path in a caption cannot be clicked)."""
    path = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return "The metric definitions (docs/metrics.md) are not in this installation."


# -- the Inspect page --------------------------------------------------------------------------------
def load_pair(
    real_source: Any | None, generated_source: Any | None, real_name: str = "real", generated_name: str = "generated"
) -> tuple[Scene, Any | None]:
    """Read the page's two GeoTIFFs (paths or bytes) → (scene with real S1, generated result).

    Without a real file the scene is the generated image's grid with no layers
    (generated-only inspection).
    """
    generated = None
    if generated_source is not None:
        gen_scene = read_sar_file(generated_source, generated_name)
        generated = scene_sar_as_result(gen_scene)
    if real_source is not None:
        return read_sar_file(real_source, real_name), generated
    if generated is None:
        raise MetricError("choose at least the generated GeoTIFF")
    return Scene(
        crs=generated.crs,
        transform=generated.transform,
        width=generated.width,
        height=generated.height,
        scene_id=generated_name,
        provenance={"source": "none"},
    ), generated


def inspect_page() -> None:
    import streamlit as st

    st.title("Inspect a generated SAR image")
    st.caption(
        "Two GeoTIFFs with bands named VV and VH (dB) on the same grid — the real Sentinel-1 (or a sarviz "
        "scene file, which adds optical and embedding) and the generated image."
    )
    how = st.radio("Source", ["Pick from a folder", "Upload"], horizontal=True, key="inspect-source")
    real_src = gen_src = None
    real_name, gen_name = "real", "generated"
    if how == "Upload":
        real_up = st.file_uploader("Real Sentinel-1 GeoTIFF (optional)", type=["tif", "tiff"], key="inspect-up-real")
        gen_up = st.file_uploader("Generated GeoTIFF", type=["tif", "tiff"], key="inspect-up-gen")
        if real_up is not None:
            real_src, real_name = real_up.getvalue(), real_up.name
        if gen_up is not None:
            gen_src, gen_name = gen_up.getvalue(), gen_up.name
    else:
        typed = st.text_input("Folder", value=str(Settings.load().scenes), key="inspect-folder")
        try:
            folder = resolve_user_path(typed)  # only folders inside the configured roots
        except AccessDenied as exc:
            st.warning(plain(exc))
            return
        # listed files get the typed folder's check too: a .tif symlinked out of a root is not offered
        files = sorted(
            p.name
            for p in folder.iterdir()
            if p.suffix.lower() in (".tif", ".tiff") and inside_roots(p, kind="file") is not None
        )
        if not files:
            st.warning(f"No GeoTIFF in {plain(folder)}.")
            return
        # both start empty: a guessed pair (the first two files) is usually two unrelated scenes
        c1, c2 = st.columns(2)
        real_pick = c1.selectbox(
            "Real Sentinel-1 (or a sarviz scene file)",
            files,
            index=None,
            placeholder="none — inspect the generated image alone",
            key="inspect-pick-real",
        )
        gen_pick = c2.selectbox(
            "Generated", files, index=None, placeholder="choose the generated GeoTIFF", key="inspect-pick-gen"
        )
        try:  # a picked name is checked again when it is read (the folder may have changed since)
            if real_pick is not None:
                real_src, real_name = str(resolve_user_path(folder / real_pick, kind="file")), real_pick
            if gen_pick is not None:
                gen_src, gen_name = str(resolve_user_path(folder / gen_pick, kind="file")), gen_pick
        except AccessDenied as exc:
            st.warning(plain(exc))
            return
    if gen_src is None:
        st.info("Choose the generated GeoTIFF to inspect (and the real Sentinel-1 or scene file to compare with).")
        return
    try:
        for src in (real_src, gen_src):
            if isinstance(src, str):
                check_file_size(src)  # a header claiming 200000² px is refused before reading
        scene, result = load_pair(real_src, gen_src, real_name, gen_name)
        if result is None:  # cannot happen: gen_src is set, and load_pair returns what it read
            raise MetricError("choose the generated GeoTIFF")
    except (SarvizError, ValueError) as exc:  # SceneError, MetricError, the GeoTIFF reader's GenerationError
        st.error(plain(exc))  # quotes the uploaded file's name
        return
    if "model_id" not in result.provenance:
        st.warning(
            f"{plain(gen_name)} does not look like a generated image (its provenance names no model): if it is a "
            "scene file, its VV/VH are the real Sentinel-1. Pick it as the real image instead."
        )
    render_inspection(scene, result, key="inspect-page")
