"""Getting around the map page: the URL view, "Type a place", the sidebar scene list and the
choice between acquisitions of one footprint.

State in ``st.session_state``: ``point`` (the selected (lat, lon)), ``first_view`` (the view
the map was built with; it never changes, so the map is not remounted) and ``view`` (where
the map should be; passed to ``st_folium`` as center/zoom).
"""

from __future__ import annotations

import streamlit as st

from sarviz.scene import SceneError, validate_latlon
from sarviz.store import SceneStore
from sarviz.ui.text import plain

SCENE_ZOOM = 13  # a 5 km scene fills the map
PLACE_ZOOM = 11
WORLD = ((20.0, 0.0), 2)


def go_to(lat: float, lon: float, zoom: int | None = PLACE_ZOOM, select: bool = True) -> None:
    """Move the map to (lat, lon) (keeping the zoom if None) and, with ``select``, select the point."""
    view = st.session_state.get("view", WORLD)
    st.session_state.view = ((lat, lon), view[1] if zoom is None else max(1, min(int(zoom), 18)))
    if select:
        st.session_state.point = (lat, lon)
        # keep the selection in the URL, so a reload or a shared link shows the same place
        st.query_params.update(lat=f"{lat:.6f}", lon=f"{lon:.6f}")


def initial_view() -> tuple[tuple[tuple[float, float], int], tuple[tuple[float, float], int]]:
    """(the view the map is built with, the view it should show now).

    The first comes from the URL: ``?lat=…&lon=…`` selects a point (a shared link) and
    centres on it; ``?view=lat,lon,zoom`` only positions the map; else the world.
    """
    if "first_view" not in st.session_state:
        view = WORLD
        params = st.query_params
        try:
            if "lat" in params and "lon" in params:
                lat, lon = validate_latlon(params["lat"], params["lon"])
                view = ((lat, lon), int(params.get("zoom", 11)))
                st.session_state.point = (lat, lon)
            elif "view" in params:
                lat_s, lon_s, zoom_s = (params["view"].split(",") + ["11"])[:3]
                view = (validate_latlon(lat_s, lon_s), int(zoom_s))
        except (SceneError, ValueError):
            st.warning(f"Ignoring the location in the URL ({plain(dict(params))}): not valid coordinates.")
        st.session_state.first_view = (view[0], max(1, min(view[1], 18)))
        st.session_state.setdefault("view", st.session_state.first_view)
    return st.session_state.first_view, st.session_state.view


def place_search() -> None:
    """ "Type a place": a town, region or country (offline GeoNames gazetteer) or coordinates →
    go there. The match is named (name, country, kind); a name several places share, or a
    typo's closest spellings, are listed to choose from; a failed search clears the old one."""
    from sarviz.gazetteer import search

    with st.form("goto", border=False):
        c1, c2 = st.columns([5, 1], vertical_alignment="bottom")
        text = c1.text_input(
            "Type a place",
            placeholder="a town, region or country (Murcia, Punjab…) or coordinates (38.1058, -0.7589)",
            key="place_text",
        )
        go = c2.form_submit_button("Go")
    if go and text.strip():
        try:
            hits = search(text, limit=6)
        except SceneError as exc:  # coordinates out of range
            _forget_search()
            st.error(f"Cannot go there: {plain(exc)}")
            return
        if not hits:
            _forget_search()
            st.error(
                f"No place called '{plain(text.strip())}' in the offline gazetteer (GeoNames towns of 5,000+ "
                "people, regions and countries), nor a close spelling; try a larger town nearby or "
                "coordinates like 38.1, -0.76."
            )
            return
        st.session_state.place_hits = hits
        st.session_state.place_query = text.strip()
        st.session_state.place_pick = 0
        _go_to_place(hits[0])
    hits = st.session_state.get("place_hits") or []
    if not hits:
        return
    query = st.session_state.get("place_query", "")
    if hits[0].match == "spelling":
        st.warning(f"No place is named '{plain(query)}'; going to the closest spelling. Other spellings below.")
    if len(hits) > 1:
        st.radio(
            f"Places matching '{plain(query)}' (best first)",
            range(len(hits)),
            key="place_pick",
            format_func=lambda i: hits[i].description,
            on_change=_go_to_pick,
        )
    else:
        st.text(f"Found: {hits[0].description}")


def _forget_search() -> None:
    """A failed search: the previous place, its candidates and its point leave the screen."""
    for key in ("place_hits", "place_query", "point"):
        st.session_state.pop(key, None)
    for key in ("lat", "lon"):
        if key in st.query_params:
            del st.query_params[key]


def _go_to_place(place) -> None:
    go_to(place.lat, place.lon, zoom={"country": 5, "region": 7}.get(place.kind, PLACE_ZOOM))


def _go_to_pick() -> None:
    _go_to_place(st.session_state.place_hits[st.session_state.place_pick])


NEAR_SCENE_KM = 150.0  # "near" for the one-click jump: a region's centre can lie ~100 km from a scene in it


def nearest_scene_button(store: SceneStore, lat: float, lon: float, places: dict[str, str]) -> None:
    """Where no scene covers the point but one lies within :data:`NEAR_SCENE_KM`, one click goes there."""
    near = store.nearest(lat, lon, k=1)
    if not near or near[0][1] > NEAR_SCENE_KM:
        return
    entry, km = near[0]
    where = places.get(entry.scene_id, "")
    label = f"Go to the nearest scene ({km:,.0f} km away{': ' + where if where else ''})"
    if st.button(label, key="nearest_scene", type="primary", help=entry.scene_id):
        clat, clon = entry.center_latlon
        go_to(clat, clon, zoom=SCENE_ZOOM)
        st.session_state.acquisition = entry.scene_id
        st.rerun()


@st.cache_data(show_spinner="naming the scene places…", max_entries=8)
def _places(key: tuple[tuple[str, float, float], ...]) -> dict[str, str]:
    from sarviz.gazetteer import describe_location

    return {sid: describe_location(lat, lon) for sid, lat, lon in key}


def scene_places(store: SceneStore) -> dict[str, str]:
    """'12 km from Murcia, Spain' for every scene (offline gazetteer), cached per set of scenes."""
    key = tuple((e.scene_id, round(e.center_latlon[0], 5), round(e.center_latlon[1], 5)) for e in store)
    try:
        return _places(key)
    except Exception:  # the gazetteer package missing or broken: the list works without places
        return {}


def _dates(dates: dict) -> str:
    return ", ".join(f"{k.upper()} {v[:10]}" for k, v in sorted(dates.items())) or "—"


def scene_list(store: SceneStore, places: dict[str, str]) -> None:
    """The scenes as a table (id, place, dates, layers, embedding); a click on a row goes there."""
    from sarviz.scene_summary import scene_summaries

    rows = scene_summaries(store)
    if not rows:
        return
    short = {"optical": "S2", "vv_db": "VV", "vh_db": "VH", "angle_deg": "angle", "embedding": "emb"}
    table = [
        {
            "scene": r["id"],
            "place": places.get(r["id"], ""),
            "dates": _dates(r["dates"]),
            "layers": " ".join(short.get(x, x) for x in r["layers"]),
            "embedding": {"proxy": "PROXY", "AlphaEarth": "AlphaEarth"}.get(r["embedding"], "none"),
        }
        for r in rows
    ]
    st.caption(
        f"{len(rows)} scenes in {plain(store.folder)} — click a row to go there (scroll sideways for "
        "dates, layers and embedding)"
    )
    event = st.dataframe(
        table,
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="scene_table",
        height=38 + 35 * min(len(table), 12),
        column_order=("place", "dates", "embedding", "layers", "scene"),
        column_config={
            "place": st.column_config.TextColumn(width="medium"),
            "scene": st.column_config.TextColumn(width="large"),
        },
    )
    picked = event.selection.rows if event is not None else []
    if picked and st.session_state.get("scene_table_last") != picked[0]:
        st.session_state.scene_table_last = picked[0]
        row = rows[picked[0]]
        go_to(row["lat"], row["lon"], zoom=SCENE_ZOOM)
        st.session_state.acquisition = row["id"]
    elif not picked:
        st.session_state.scene_table_last = None


def acquisition_choice(store: SceneStore, lat: float, lon: float) -> str | None:
    """Where several scenes cover the point (one footprint, several dates), let the user choose.

    Returns the chosen scene id, or None (the store's best, when there is only one).
    """
    hits = store.find(lat, lon)
    if len(hits) < 2:
        return None
    ids = [e.scene_id for e in hits]
    labels = {e.scene_id: f"{_dates(e.dates)} · {e.scene_id}" for e in hits}
    wanted = st.session_state.get("acquisition")
    index = ids.index(wanted) if wanted in ids else 0
    choice = st.radio(
        f"{len(hits)} acquisitions cover this point — choose the date",
        ids,
        index=index,
        format_func=labels.__getitem__,
        key=f"acq_{round(lat, 5)}_{round(lon, 5)}",
    )
    st.session_state.acquisition = choice
    return choice


@st.cache_data(show_spinner=False, max_entries=16)
def _scene_overlay(path: str, mtime: float, layer: str) -> tuple[str, list[list[float]]] | None:
    """(data URL, bounds) of one layer of a whole scene file, for the map (cached per file version)."""
    from sarviz.scene import read_scene
    from sarviz.ui.map import overlay_image
    from sarviz.viz.images import render_sar, render_true_colour

    scene = read_scene(path)
    if layer == "optical":
        rgb = render_true_colour(scene.optical) if scene.optical is not None else None
    else:
        rgb = render_sar(scene.vv_db, None, "VV") if scene.vv_db is not None else None
    return None if rgb is None else overlay_image(rgb, scene.crs, scene.transform)


def scene_overlay(store: SceneStore | None, point: tuple[float, float] | None, result_key: str = "gen"):
    """The map overlay of the scene under the selected point: its optical image (default), its
    real VV or the last generated image, georeferenced, with an opacity — so the place shows on
    the map where the user works, offline too. Returns (url, bounds, opacity, name) or None."""
    from sarviz.ui.map import OVERLAY_LAYERS, overlay_image
    from sarviz.viz.images import render_sar

    if store is None or point is None:
        return None
    hits = store.find(*point)
    if not hits:
        return None
    c1, c2 = st.columns([3, 2])
    layer = c1.radio("Map overlay (the scene here)", OVERLAY_LAYERS, horizontal=True, key="overlay_layer")
    opacity = c2.slider("Overlay opacity", 0.0, 1.0, 0.85, 0.05, key="overlay_opacity")
    if layer == "none":
        return None
    wanted = st.session_state.get("acquisition")
    entry = next((e for e in hits if e.scene_id == wanted), hits[0])
    if layer == "generated":
        stored = st.session_state.get(f"{result_key}_result")
        if not stored or stored[0][0] != entry.scene_id:
            c1.caption("Nothing generated for this scene yet: the overlay shows once you press *Generate*.")
            return None
        result = stored[1]
        mark = (entry.scene_id, result.provenance.get("timestamp"), result.provenance.get("seed"))
        cached = st.session_state.get("overlay_generated")
        if not cached or cached[0] != mark:
            cached = (mark, overlay_image(render_sar(result.vv_db, None, "VV"), result.crs, result.transform))
            st.session_state.overlay_generated = cached
        url, bounds = cached[1]
    else:
        try:
            made = _scene_overlay(str(entry.path), entry.path.stat().st_mtime, layer)
        except (OSError, SceneError) as exc:
            c1.caption(f"No overlay: {exc}")
            return None
        if made is None:
            c1.caption(f"This scene has no {layer} layer.")
            return None
        url, bounds = made
    return url, bounds, opacity, f"{layer} · {entry.scene_id}"
