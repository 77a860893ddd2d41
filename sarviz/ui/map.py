"""The world map of the map page: scene footprints on a leafmap (folium) map.

Only the click matters: ``st_folium`` is asked for ``last_clicked`` alone, so panning and
zooming do not rerun the page. The map HTML stays the same from run to run (no flicker):
the clicked-point marker goes in a separate feature group and the view moves through
``st_folium``'s ``center``/``zoom``, neither of which remounts the map.

Offline: Leaflet & co. come from local copies (:mod:`sarviz.ui.webassets`), and a Natural
Earth base layer (land, coastlines, country borders) sits *under* the online tiles. Where
the tiles load they cover it; where they cannot (no internet) it shows through, so the map
is never a grey canvas.
"""

from __future__ import annotations

from typing import Any, Iterable

import folium
from branca.element import MacroElement, Template
from folium.elements import JSCSSMixin

from sarviz.scene import LAYER_LABELS
from sarviz.store import SceneEntry
from sarviz.ui import webassets

FOOTPRINT_STYLE = {"color": "#ff7800", "weight": 2, "fillOpacity": 0.15}
SELECTED_COLOUR = "#d7191c"
# colours of the offline base map (OpenStreetMap-like: water, land, borders)
OFFLINE_STYLE = {"water": "#aad3df", "land": "#f2efe9", "coast": "#6b8fa3", "border": "#9e8aa8"}

_OFFLINE_JS = """
{% macro script(this, kwargs) %}
(function() {
  // The offline base map: Natural Earth 1:50m land and borders (world-atlas), drawn in a
  // pane under the tile pane. Online tiles are opaque and hide it; offline it shows.
  var map = {{ this._parent.get_name() }};
  var pane = map.createPane('sarviz-offline-base');
  pane.style.zIndex = 150;
  pane.style.pointerEvents = 'none';
  map.getContainer().style.background = {{ this.style.water|tojson }};
  fetch({{ this.url|tojson }}).then(function(r) { return r.json(); }).then(function(topo) {
    if (typeof topojson === 'undefined') { return; }
    var style = {{ this.style|tojson }};
    L.geoJSON(topojson.feature(topo, topo.objects.land), {pane: 'sarviz-offline-base', interactive: false,
      style: {stroke: true, color: style.coast, weight: 1, fillColor: style.land, fillOpacity: 1}}).addTo(map);
    L.geoJSON(topojson.mesh(topo, topo.objects.countries, function(a, b) { return a !== b; }),
      {pane: 'sarviz-offline-base', interactive: false,
       style: {color: style.border, weight: 1, dashArray: '4 3', fill: false}}).addTo(map);
    map.getContainer().setAttribute('data-sarviz-offline-base', 'drawn');
  }).catch(function(e) { console.warn('sarviz offline base map:', e); });
})();
{% endmacro %}
"""


class OfflineBaseLayer(JSCSSMixin, MacroElement):
    """Natural Earth land + borders served by the app itself, under the tiles."""

    _template = Template(_OFFLINE_JS)

    def __init__(self, url: str, topojson_js: str) -> None:
        super().__init__()
        self._name = "OfflineBaseLayer"
        self.url = url
        self.style = OFFLINE_STYLE
        self.default_js = [("topojson-client", topojson_js)]


def footprints_geojson(entries: Iterable[SceneEntry], places: dict[str, str] | None = None) -> dict[str, Any]:
    """Scene footprints as a GeoJSON FeatureCollection (split at the antimeridian)."""
    features = []
    for e in entries:
        for geom in e.boxes():
            features.append(
                {
                    "type": "Feature",
                    "geometry": geom.__geo_interface__,
                    "properties": {
                        "scene_id": e.scene_id,
                        "place": (places or {}).get(e.scene_id, ""),
                        "size": f"{e.width}×{e.height} px",
                        "layers": ", ".join(LAYER_LABELS[layer].split(" (")[0] for layer in e.layers),
                        "dates": ", ".join(f"{k}: {v[:10]}" for k, v in sorted(e.dates.items())),
                    },
                }
            )
    return {"type": "FeatureCollection", "features": features}


def build_map(
    entries: list[SceneEntry],
    center: tuple[float, float] = (20.0, 0.0),
    zoom: int = 2,
    tiles: str | None = "OpenStreetMap",
    places: dict[str, str] | None = None,
    offline_base: bool = True,
) -> folium.Map:
    """A leafmap (folium backend) map with scene footprints and centre markers.

    Small scenes (a BigEarthNet patch is 1.2 km across) vanish at world zoom, so each scene
    also gets a fixed-size circle marker at its centre. With the local web assets installed
    the map loads nothing from CDNs and carries the offline base layer.
    """
    import leafmap.foliumap as leafmap

    m = leafmap.Map(
        center=list(center),
        zoom=zoom,
        draw_control=False,
        measure_control=False,
        fullscreen_control=False,
        attribution_control=True,
        search_control=False,
        scale_control=True,
        layers_control=False,
        toolbar_control=False,
        tiles=tiles,
    )
    if entries:
        folium.GeoJson(
            footprints_geojson(entries, places),
            name="scenes",
            style_function=lambda _f: FOOTPRINT_STYLE,
            tooltip=folium.GeoJsonTooltip(
                fields=["scene_id", "place", "size", "layers", "dates"],
                aliases=["scene", "place", "size", "layers", "dates"],
            ),
        ).add_to(m)
        for e in entries:
            lat, lon = e.center_latlon
            folium.CircleMarker(
                [lat, lon], radius=5, color="#ff7800", fill=True, fill_opacity=0.9, tooltip=e.scene_id
            ).add_to(m)
    return served_locally(m, offline_base)


def served_locally(m: folium.Map, offline_base: bool = True) -> folium.Map:
    """Every map of the app goes through here: Leaflet & co. from the app's own copies
    (``/app/static/vendor``) and the offline Natural Earth base layer under the tiles."""
    basemap = webassets.local_url(*webassets.BASEMAP_FILE)
    topo_js = webassets.local_url(*webassets.TOPOJSON_JS)
    if offline_base and basemap and topo_js:
        m.add_child(OfflineBaseLayer(basemap, topo_js))
    webassets.localize(m)
    return m


OVERLAY_LAYERS: tuple[str, ...] = ("optical", "real VV", "generated", "none")
OVERLAY_MAX_PX = 384  # the overlay travels with every rerun of the page: a screen's worth of pixels


def overlay_image(rgb, crs: Any, transform: Any) -> tuple[str, list[list[float]]]:
    """A display image as a georeferenced overlay: (PNG data URL, [[S, W], [N, E]]), warped to Web
    Mercator (Leaflet stretches an overlay linearly between its corners) and at most
    :data:`OVERLAY_MAX_PX` on a side (nearest neighbour: speckle stays speckle)."""
    import base64

    import numpy as np
    from affine import Affine

    from sarviz.ui.inspection import _web_mercator_rgba
    from sarviz.viz.images import png_bytes

    step = max(1, int(np.ceil(max(rgb.shape[:2]) / OVERLAY_MAX_PX)))
    small = rgb[::step, ::step]
    tf = transform * Affine.scale(rgb.shape[1] / small.shape[1], rgb.shape[0] / small.shape[0])
    rgba, bounds = _web_mercator_rgba(np.ascontiguousarray(small), crs, tf)
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgba)).decode("ascii"), bounds


def selection_layer(
    point: tuple[float, float] | None, overlay: tuple[str, list[list[float]], float, str] | None = None
) -> folium.FeatureGroup | None:
    """The clicked point as a marker, in a group that ``st_folium`` adds without a remount;
    ``overlay`` = (image URL, bounds, opacity, name) draws a scene layer under the marker."""
    if point is None and overlay is None:
        return None
    group = folium.FeatureGroup(name="selected point")
    if overlay is not None:
        url, bounds, opacity, name = overlay
        folium.raster_layers.ImageOverlay(
            url,
            bounds=bounds,
            opacity=opacity,
            name=name,
            interactive=False,
            zindex=1,
            className="sarviz-scene-overlay",
        ).add_to(group)
    if point is None:
        return group
    lat, lon = point
    folium.CircleMarker(
        [lat, lon],
        radius=9,
        color="#ffffff",
        weight=3,
        fill=True,
        fill_color=SELECTED_COLOUR,
        fill_opacity=1.0,
        tooltip=f"selected: {lat:.5f}°, {lon:.5f}°",
    ).add_to(group)
    return group


def clicked_point(state: dict[str, Any] | None) -> tuple[float, float] | None:
    """(lat, lon) of the last map click from ``st_folium``'s return value, if any."""
    if not state:
        return None
    for key in ("last_clicked", "last_object_clicked"):
        point = state.get(key)
        if point and point.get("lat") is not None and point.get("lng") is not None:
            return float(point["lat"]), float(point["lng"])
    return None


def map_links(fmap: folium.Map) -> list[str]:
    """Every JS/CSS URL the map will load (what ``st_folium`` collects), for checks and tests."""
    links: list[str] = []

    def walk(el: Any) -> None:
        for attr in ("default_js", "default_css"):
            links.extend(url for _, url in getattr(el, attr, []) or [])
        for child in getattr(el, "_children", {}).values():
            walk(child)

    walk(fmap)
    return list(dict.fromkeys(links))
