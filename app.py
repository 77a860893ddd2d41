"""sarviz — the map page: click a place → its scene → generate → side by side.

A thin layer: everything it shows comes from the ``sarviz`` library.
"""

from __future__ import annotations

import streamlit as st
from streamlit_folium import st_folium

from sarviz.access import AccessDenied, require_page, resolve_user_path
from sarviz.captions import caption_for_scene
from sarviz.scene import SceneError, validate_latlon, wrap_longitude
from sarviz.settings import Settings
from sarviz.store import NoSceneHere, SceneStore
from sarviz.ui.fetch import fetched_scene, render_fetch
from sarviz.ui.generate import render_generate_panel
from sarviz.ui.inspection import render_inspection
from sarviz.ui.map import build_map, clicked_point
from sarviz.ui.prompt import MAP_PROMPT_KEY
from sarviz.ui.scene_view import render_scene
from sarviz.ui.study import add_to_pool_button

st.set_page_config(page_title="sarviz · map", page_icon="🛰️", layout="wide")
settings = Settings.load()
require_page("map", settings)  # study mode: the owner's login first (server side)


@st.cache_resource(show_spinner=False)
def open_store(folder: str) -> SceneStore:
    return SceneStore(folder)


def world_map(store: SceneStore | None, center: tuple[float, float], zoom: int):
    # Built afresh on every run on purpose: streamlit-folium identifies the map by a hash of
    # its first rendering, and re-rendering a cached folium object changes that hash, which
    # remounts the map (flicker) and drops the click. A fresh, identical map keeps the hash.
    return build_map(list(store) if store is not None else [], center=center, zoom=zoom)


def initial_view() -> tuple[tuple[float, float], int]:
    """The map view from the URL, else the world.

    ``?lat=…&lon=…`` selects a point (a shared link) and centres on it; ``?view=lat,lon,zoom``
    only positions the map.
    """
    if "view" not in st.session_state:
        view: tuple[tuple[float, float], int] = ((20.0, 0.0), 2)
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
            st.warning(f"Ignoring the location in the URL ({dict(params)}): not valid coordinates.")
        st.session_state.view = (view[0], max(1, min(view[1], 18)))
    return st.session_state.view


st.title("sarviz — synthetic SAR workbench")

with st.sidebar:
    st.header("Scenes")
    folder = st.text_input("Scene folder", value=str(settings.scenes),
                           help="A folder of sarviz scene files (SARVIZ_SCENES). Fill it with `sarviz import SRC --to DIR`.")
    size_px = st.select_slider("Patch size (px)", options=[128, 256, 512], value=512)
    if st.button("Rescan folder"):
        open_store.clear()

store: SceneStore | None = None
try:
    store = open_store(str(resolve_user_path(folder, settings, must_exist=False)))  # only folders inside the configured roots
    store.refresh_if_changed()  # new or changed files since the last run (a stat a file)
except (SceneError, AccessDenied) as exc:
    st.error(str(exc))
if store is not None:
    with st.sidebar:
        st.caption(f"{len(store)} scenes in `{store.folder}`")
        for problem in store.problems:
            st.warning(f"Skipped a file: {problem}")
    if not len(store):
        st.info(f"The scene folder `{store.folder}` is empty. Import scenes with "
                f"`sarviz import ../shared/samples --to {store.folder}`.")

center, zoom = initial_view()
fmap = world_map(store, center, zoom)
map_state = st_folium(fmap, key="worldmap", height=480, use_container_width=True,
                      returned_objects=["last_clicked", "last_object_clicked"])

with st.form("goto", border=False):
    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    lat_text = c1.text_input("Latitude", placeholder="e.g. 38.1058")
    lon_text = c2.text_input("Longitude", placeholder="e.g. -0.7589")
    go = c3.form_submit_button("Go to point")

point = None
if go:
    try:
        point = validate_latlon(lat_text, lon_text)
    except SceneError as exc:
        st.error(f"Cannot go there: {exc}")
clicked = clicked_point(map_state)
if clicked is not None and clicked != st.session_state.get("last_click"):
    st.session_state.last_click = clicked
    point = (clicked[0], wrap_longitude(clicked[1]))  # a click on a repeated world copy
if point is not None:
    try:
        st.session_state.point = validate_latlon(*point)
        # keep the selection in the URL, so a reload or a shared link shows the same place
        st.query_params.update(lat=f"{st.session_state.point[0]:.6f}", lon=f"{st.session_state.point[1]:.6f}")
    except SceneError as exc:
        st.error(f"Cannot use that click: {exc}")

point = st.session_state.get("point")
if point is None:
    st.info("Click a place on the map (orange footprints have data), or enter coordinates.")
    st.stop()

lat, lon = point
st.subheader(f"{lat:.5f}°, {lon:.5f}°")
scene = None
if store is not None:
    try:
        scene = store.lookup(lat, lon, size_px)
    except NoSceneHere as exc:
        st.warning(str(exc))
    except SceneError as exc:
        st.error(f"Could not read the scene here: {exc}")
fetched = fetched_scene(lat, lon, size_px)
if fetched is not None:
    scene = fetched
if scene is not None:
    render_scene(scene)
if scene is None or scene.embedding is None:
    with st.container(border=True):
        why = ("No local scene here." if scene is None else
               "This scene has no AlphaEarth embedding, which every generator needs.")
        new_scene = render_fetch(lat, lon, size_px, settings, why)
    if new_scene is not None and new_scene is not scene:
        scene = new_scene
        render_scene(scene)
if scene is None:
    st.stop()

st.header("Generate")
if st.button("Describe this place", key="describe_place", help="Open the Prompt page with a caption of this place"):
    st.session_state[MAP_PROMPT_KEY] = caption_for_scene(scene)  # land cover + place name → a text-to-SAR prompt
    st.switch_page("pages/1_Prompt.py")
result = render_generate_panel(scene, key="gen")
if result is not None:
    st.header("Inspect")
    render_inspection(scene, result, key="inspect")
    add_to_pool_button(result, scene, key="pool_add")
