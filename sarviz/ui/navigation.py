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
    """ "Type a place": a town or country (offline GeoNames gazetteer) or coordinates → go there."""
    from sarviz.gazetteer import search

    with st.form("goto", border=False):
        c1, c2 = st.columns([5, 1], vertical_alignment="bottom")
        text = c1.text_input("Type a place", placeholder="a town or country (Murcia, Punjab…) or coordinates "
                                                          "(38.1058, -0.7589)", key="place_text")
        go = c2.form_submit_button("Go")
    if go and text.strip():
        try:
            hits = search(text)
        except SceneError as exc:  # coordinates out of range
            st.error(f"Cannot go there: {plain(exc)}")
            return
        if not hits:
            st.error(f"No place called '{plain(text.strip())}' in the offline gazetteer (GeoNames towns of 5,000+ people "
                     "and countries); try a larger town nearby or coordinates like 38.1, -0.76.")
            return
        st.session_state.place_hits = hits
        st.session_state.place_pick = 0
        best = hits[0]
        go_to(best.lat, best.lon, zoom=5 if best.kind == "country" else PLACE_ZOOM)
    hits = st.session_state.get("place_hits") or []
    if len(hits) > 1:
        labels = [h.label + (f" (pop. {h.population:,})" if h.kind == "town" and h.population else "") for h in hits]
        st.selectbox("Other places with that name", range(len(hits)), format_func=labels.__getitem__,
                     key="place_pick", on_change=_go_to_pick)


def _go_to_pick() -> None:
    hit = st.session_state.place_hits[st.session_state.place_pick]
    go_to(hit.lat, hit.lon, zoom=5 if hit.kind == "country" else PLACE_ZOOM)


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
    table = [{"scene": r["id"], "place": places.get(r["id"], ""), "dates": _dates(r["dates"]),
              "layers": " ".join(short.get(x, x) for x in r["layers"]),
              "embedding": {"proxy": "PROXY", "AlphaEarth": "AlphaEarth"}.get(r["embedding"], "none")} for r in rows]
    st.caption(f"{len(rows)} scenes in {plain(store.folder)} — click a row to go there (scroll sideways for "
               "dates, layers and embedding)")
    event = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="single-row",
                         key="scene_table", height=38 + 35 * min(len(table), 12),
                         column_order=("place", "dates", "embedding", "layers", "scene"),
                         column_config={"place": st.column_config.TextColumn(width="medium"),
                                        "scene": st.column_config.TextColumn(width="large")})
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
    choice = st.radio(f"{len(hits)} acquisitions cover this point — choose the date", ids, index=index,
                      format_func=labels.__getitem__, key=f"acq_{round(lat, 5)}_{round(lon, 5)}")
    st.session_state.acquisition = choice
    return choice
