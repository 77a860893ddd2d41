"""Streamlit: fetch the scene at a point from the configured sources (Earth Engine, public)."""

from __future__ import annotations

import re

import streamlit as st

from sarviz.scene import Scene, SceneError
from sarviz.settings import Settings
from sarviz.ui.text import plain


def _chain(settings: Settings):
    from sarviz.sources.chain import SourceChain

    return SourceChain.from_settings(settings)


def fetched_scene(lat: float, lon: float, size_px: int) -> Scene | None:
    """The scene fetched for this point in this session, if any."""
    stored = st.session_state.get("fetched")
    if stored and stored[0] == (round(lat, 6), round(lon, 6), size_px):
        return stored[1]
    return None


_LOCAL_MISS = re.compile(r"local: no scene[^;\n]*?covers[^;\n]*")


def report_lines(lines: list[str], on_screen: Scene | None) -> list[str]:
    """The fetch report, said right about the local scene that is on screen.

    The chain's local source asks for the whole standard patch (local UTM, 10 m); a sample
    chip smaller than it or on another grid does not "cover" that patch although it is the
    scene on screen. Say what is true: the scene is here, the fetch was for what it lacks.
    """
    if on_screen is None:
        return lines
    what = f"local: the scene on screen ({on_screen.scene_id}) has no such layer for this patch"
    return [_LOCAL_MISS.sub(what, line) for line in lines]


def render_fetch(
    lat: float, lon: float, size_px: int, settings: Settings, reason: str, on_screen: Scene | None = None
) -> Scene | None:
    """A button that fetches the patch at (lat, lon) through the source chain, with progress.

    ``reason`` says why fetching would help (no local scene, or a missing layer);
    ``on_screen`` is the local scene shown for this point, if any.
    Returns the fetched scene (also kept in the session), or None.
    """
    try:
        chain = _chain(settings)
    except SceneError as exc:
        st.error(f"The scene sources are misconfigured: {plain(exc)}")
        return None
    remote = [s.name for s in chain.sources if s.name != "local"]
    skipped = "; ".join(f"{name}: {why}" for name, why in chain.skipped.items())
    st.markdown(
        f"{reason} Fetch a {size_px}×{size_px} patch at 10 m from "
        f"**{', '.join(remote) or 'no remote source'}**" + (f" ({skipped})" if skipped else "") + "."
    )
    if not remote:
        st.info("No remote scene source is enabled (settings `sources`).")
        return None
    if st.button("Fetch this place", key="fetch_button"):
        bar = st.progress(0.0, text="asking the sources…")
        try:
            result = chain.get_scene(
                lat, lon, size_px, progress=lambda f, m: bar.progress(min(max(f, 0.0), 1.0), text=m)
            )
        except SceneError as exc:  # SourceError and subclasses: the message names layer and service
            bar.empty()
            st.error("Fetching failed: no source could deliver this place.")
            # one line a layer and service
            st.code("\n".join(report_lines(str(exc).splitlines(), on_screen)), language=None, wrap_lines=True)
            return fetched_scene(lat, lon, size_px)
        bar.empty()
        st.session_state.fetched = ((round(lat, 6), round(lon, 6), size_px), result.scene)
        st.session_state.fetch_report = result.summary_lines()
    if st.session_state.get("fetch_report") and fetched_scene(lat, lon, size_px) is not None:
        with st.expander("Fetch report", expanded=True):
            st.code("\n".join(report_lines(st.session_state.fetch_report, on_screen)), language=None, wrap_lines=True)
    return fetched_scene(lat, lon, size_px)
