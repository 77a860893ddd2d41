"""The world map of the map page: scene footprints on a leafmap (folium) map.

Only the click matters: ``st_folium`` is asked for ``last_clicked`` alone, so panning and
zooming do not rerun the page, and the map object is cached so that reruns do not rebuild
it (no flicker).
"""

from __future__ import annotations

from typing import Any, Iterable

import folium

from sarviz.scene import LAYER_LABELS
from sarviz.store import SceneEntry

FOOTPRINT_STYLE = {"color": "#ff7800", "weight": 2, "fillOpacity": 0.15}


def footprints_geojson(entries: Iterable[SceneEntry]) -> dict[str, Any]:
    """Scene footprints as a GeoJSON FeatureCollection (split at the antimeridian)."""
    features = []
    for e in entries:
        for geom in e.boxes():
            features.append({
                "type": "Feature",
                "geometry": geom.__geo_interface__,
                "properties": {
                    "scene_id": e.scene_id,
                    "size": f"{e.width}×{e.height} px",
                    "layers": ", ".join(LAYER_LABELS[layer].split(" (")[0] for layer in e.layers),
                    "dates": ", ".join(f"{k}: {v[:10]}" for k, v in sorted(e.dates.items())),
                },
            })
    return {"type": "FeatureCollection", "features": features}


def build_map(entries: list[SceneEntry], center: tuple[float, float] = (20.0, 0.0), zoom: int = 2,
              tiles: str | None = "OpenStreetMap") -> folium.Map:
    """A leafmap (folium backend) map with scene footprints and centre markers.

    Small scenes (a BigEarthNet patch is 1.2 km across) vanish at world zoom, so each scene
    also gets a fixed-size circle marker at its centre.
    """
    import leafmap.foliumap as leafmap

    m = leafmap.Map(center=list(center), zoom=zoom, draw_control=False, measure_control=False,
                    fullscreen_control=False, attribution_control=True, search_control=False,
                    scale_control=True, layers_control=False, toolbar_control=False,
                    tiles=tiles)
    if entries:
        folium.GeoJson(
            footprints_geojson(entries), name="scenes", style_function=lambda _f: FOOTPRINT_STYLE,
            tooltip=folium.GeoJsonTooltip(fields=["scene_id", "size", "layers", "dates"],
                                          aliases=["scene", "size", "layers", "dates"]),
        ).add_to(m)
        for e in entries:
            lat, lon = e.center_latlon
            folium.CircleMarker([lat, lon], radius=5, color="#ff7800", fill=True, fill_opacity=0.9,
                                tooltip=e.scene_id).add_to(m)
    return m


def clicked_point(state: dict[str, Any] | None) -> tuple[float, float] | None:
    """(lat, lon) of the last map click from ``st_folium``'s return value, if any."""
    if not state:
        return None
    for key in ("last_clicked", "last_object_clicked"):
        point = state.get(key)
        if point and point.get("lat") is not None and point.get("lng") is not None:
            return float(point["lat"]), float(point["lng"])
    return None
