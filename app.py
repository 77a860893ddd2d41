"""sarviz — the map page: click a place → its scene → generate → side by side.

A thin layer: everything it shows comes from the ``sarviz`` library. ``streamlit run app.py``
starts the whole app: this file names the pages (so the sidebar says "Map", not "app") and
draws the map page itself.
"""

from __future__ import annotations

import streamlit as st
from streamlit_folium import st_folium

from sarviz.access import AccessDenied, resolve_user_path
from sarviz.captions import describe_scene
from sarviz.scene import SceneError, validate_latlon, wrap_longitude
from sarviz.settings import Settings
from sarviz.store import NoSceneHere, SceneStore
from sarviz.ui.fetch import fetched_scene, render_fetch
from sarviz.ui.gate import guarded, require_page
from sarviz.ui.generate import render_generate_panel
from sarviz.ui.inspection import render_inspection
from sarviz.ui.map import build_map, clicked_point, selection_layer
from sarviz.ui.navigation import (
    acquisition_choice,
    go_to,
    initial_view,
    nearest_scene_button,
    place_search,
    scene_list,
    scene_overlay,
    scene_places,
)
from sarviz.ui.prompt import MAP_PROMPT_KEY, MAP_PROMPT_NOTE_KEY
from sarviz.ui.scene_view import render_scene
from sarviz.ui.study import add_to_pool_button, owner_logged_in, quiz_page
from sarviz.ui.text import plain

st.set_page_config(page_title="sarviz · map", page_icon="🛰️", layout="wide")


@st.cache_resource(show_spinner=False)
def open_store(folder: str) -> SceneStore:
    from sarviz.access import allowed_roots, leads_inside

    roots = allowed_roots()
    return SceneStore(folder, allowed=lambda p: leads_inside(p, roots))  # no scene file linking out of the roots


def scene_folder_box(settings: Settings) -> str:
    """The sidebar's scene-folder box (one place for its rules)."""
    return st.text_input(
        "Scene folder",
        value=str(settings.scenes),
        help="A folder of sarviz scene files (SARVIZ_SCENES). Fill it with `sarviz import SRC --out DIR`.",
    )


def take_click(clicked: tuple[float, float] | None) -> bool:
    """Select a new map click (not the one already taken); True if it was new."""
    if clicked is None or clicked == st.session_state.get("last_click"):
        return False
    st.session_state.last_click = clicked
    try:
        go_to(*validate_latlon(clicked[0], wrap_longitude(clicked[1])), zoom=None)  # a repeated world copy
    except SceneError as exc:
        st.error(f"Cannot use that click: {plain(exc)}")
        return False
    return True


def map_page() -> None:
    settings = Settings.load()
    require_page("map", settings)  # study mode: the owner's login first (server side)
    st.title("sarviz — synthetic SAR workbench")
    with st.sidebar:
        st.header("Scenes")
        folder = scene_folder_box(settings)
        size_px = st.select_slider("Patch size (px)", options=[128, 256, 512], value=512)
        if st.button("Rescan folder"):
            open_store.clear()

    store: SceneStore | None = None
    try:
        # only folders inside the configured roots (sarviz.access); never a folder a client typed
        store = open_store(str(resolve_user_path(folder, settings, must_exist=False)))
        store.refresh_if_changed()  # new or changed files since the last run (a stat a file)
    except (SceneError, AccessDenied) as exc:
        st.error(plain(exc))  # quotes the typed folder
    places: dict[str, str] = {}
    if store is not None:
        places = scene_places(store)
        with st.sidebar:
            scene_list(store, places)
            for problem in store.problems:
                st.warning(f"Skipped a file: {plain(problem)}")
        if not len(store):
            st.info(
                f"The scene folder {plain(store.folder)} is empty. Import scenes with "
                f"sarviz import ../shared/samples \\-\\-out {plain(store.folder)}"
            )

    place_search()
    first_view, view = initial_view()
    # a click on the map reruns the page with the click already in the session: take it
    # before drawing, so that the marker and the panels below follow it in this same run
    take_click(clicked_point(st.session_state.get("worldmap")))
    overlay = scene_overlay(store, st.session_state.get("point"))
    # Built afresh on every run on purpose, always from the *first* view: streamlit-folium
    # identifies the map by a hash of its HTML, and a changed map remounts (flicker, lost
    # click). Moves go through center/zoom and the marker through feature_group_to_add.
    fmap = build_map(list(store) if store is not None else [], center=first_view[0], zoom=first_view[1], places=places)
    map_state = st_folium(
        fmap,
        key="worldmap",
        height=480,
        use_container_width=True,
        returned_objects=["last_clicked", "last_object_clicked"],
        center=view[0],
        zoom=view[1],
        feature_group_to_add=selection_layer(st.session_state.get("point"), overlay),
    )

    if take_click(clicked_point(map_state)):
        st.rerun()  # a click the session did not have yet: draw its marker

    point = st.session_state.get("point")
    if point is None:
        st.info(
            "Click a place on the map (orange footprints have data), pick a scene in the sidebar, "
            "or type a place or coordinates above."
        )
        st.stop()

    lat, lon = point
    st.subheader(f"{lat:.5f}°, {lon:.5f}°")
    scene = None
    if store is not None:
        try:
            scene_id = acquisition_choice(store, lat, lon)
            scene = store.lookup(lat, lon, size_px, scene_id=scene_id)
        except NoSceneHere as exc:
            st.warning(plain(exc))
            nearest_scene_button(store, lat, lon, places)
        except SceneError as exc:
            st.error(f"Could not read the scene here: {plain(exc)}")
    fetched = fetched_scene(lat, lon, size_px)
    if fetched is not None:
        scene = fetched
    if scene is not None:
        render_scene(scene)
    if scene is None or scene.embedding is None:
        with st.container(border=True):
            why = (
                "No local scene here."
                if scene is None
                else "This scene has no AlphaEarth embedding, which every generator needs."
            )
            new_scene = render_fetch(lat, lon, size_px, settings, why, on_screen=scene)
        if new_scene is not None and new_scene is not scene:
            scene = new_scene
            render_scene(scene)
    if scene is None:
        st.stop()

    st.header("Generate")
    if st.button(
        "Describe this place",
        key="describe_place",
        help="Open the Prompt page with a caption of this place (land cover and place name)",
    ):
        described = describe_scene(scene)
        st.session_state[MAP_PROMPT_KEY] = described.caption  # the dataset captioner's words
        st.session_state[MAP_PROMPT_NOTE_KEY] = described.landcover_note  # its land-cover source and confidence
        st.switch_page("pages/1_Prompt.py")
    result = render_generate_panel(scene, key="gen")
    if result is not None:
        st.header("Inspect")
        render_inspection(scene, result, key="inspect")
        add_to_pool_button(result, scene, key="pool_add")


# The pages, named here: the sidebar says "Map" (a pages/ folder alone would call this page
# "app", after the file). URLs stay /Inspect, /Quiz and /Study_admin.
QUIZ = st.Page("pages/3_Quiz.py", title="Quiz", icon=":material/quiz:", url_path="Quiz")
ADMIN = st.Page(
    "pages/4_Study_admin.py", title="Study admin", icon=":material/admin_panel_settings:", url_path="Study_admin"
)


def study_home() -> None:
    """A study server's front page for participants: the quiz's entry form (the map is the owner's)."""
    st.set_page_config(page_title="SAR image study", layout="wide", initial_sidebar_state="collapsed")
    guarded(quiz_page)


OWNER_PAGES = [
    st.Page("pages/1_Prompt.py", title="Prompt", icon=":material/edit_note:", url_path="Prompt"),
    st.Page("pages/2_Inspect.py", title="Inspect", icon=":material/compare:", url_path="Inspect"),
    st.Page("pages/6_Batch.py", title="Batch", icon=":material/grid_view:", url_path="Batch"),
    st.Page("pages/7_Render.py", title="Render", icon=":material/hd:", url_path="Render"),
    st.Page("pages/7_Sensor.py", title="Sensor", icon=":material/satellite_alt:", url_path="Sensor"),
    st.Page(
        "pages/5_Training_runs.py", title="Training runs", icon=":material/model_training:", url_path="Training_runs"
    ),
]
# Every page exists in every mode, so /Quiz?study=CODE opens the quiz (a list with the quiz first
# made it the default page, served at "/", so /Quiz was "not found") and /Inspect, /Batch … show
# the owner login. A study server's participants get the quiz at "/" and no menu; every page but
# the quiz gates itself on the server (sarviz.ui.gate.require_page), whatever this list says.
if Settings.load().study_mode and not owner_logged_in():
    home = st.Page(study_home, title="Study", icon=":material/quiz:", default=True)
    st.navigation([home, *OWNER_PAGES, QUIZ, ADMIN], position="hidden").run()
else:
    home = st.Page(map_page, title="Map", icon=":material/map:", default=True)
    st.navigation([home, *OWNER_PAGES, QUIZ, ADMIN]).run()
