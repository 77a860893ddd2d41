"""Streamlit view of one scene: optical true colour and real Sentinel-1 VV / VH, labelled."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import streamlit as st

from sarviz.embedding_proxy import embedding_label, is_proxy
from sarviz.scene import LAYER_LABELS, Scene
from sarviz.viz.images import OPTICAL_RANGE, colourbar_png, render_sar, render_true_colour, sar_stretch, true_aspect


@dataclass
class SceneImages:
    """Display-ready RGB arrays of a scene (None where the layer is missing)."""

    optical: np.ndarray | None
    vv: np.ndarray | None
    vh: np.ndarray | None


def scene_images(scene: Scene) -> SceneImages:
    """The layers drawn with the ground's aspect (:func:`sarviz.viz.images.true_aspect`)."""
    xy = scene.pixel_size_xy_m
    return SceneImages(
        optical=true_aspect(render_true_colour(scene.optical), xy) if scene.optical is not None else None,
        vv=true_aspect(render_sar(scene.vv_db, None, "VV"), xy) if scene.vv_db is not None else None,
        vh=true_aspect(render_sar(None, scene.vh_db, "VH"), xy) if scene.vh_db is not None else None,
    )


@st.cache_data(show_spinner=False)
def _colourbar(pol: str) -> bytes:
    return colourbar_png(sar_stretch(pol))


def _when(value: str) -> str:
    """'2019-09-17' for a date without a time of day (not '2019-09-17T00:00:00'), else to the second."""
    value = str(value)
    return value[:10] if value[10:19] in ("", "T00:00:00", " 00:00:00") else value[:19]


def describe_scene(scene: Scene) -> str:
    lat, lon = scene.center_latlon
    dates = ", ".join(f"{k.upper()} {_when(v)}" for k, v in sorted(scene.dates.items())) or "unknown dates"
    return (
        f"**{scene.scene_id}** · centre {lat:.5f}°, {lon:.5f}° · {scene.width}×{scene.height} px, "
        f"{scene.pixel_size_text()} · {scene.crs.to_string()} · {dates}"
    )


def render_scene(scene: Scene) -> None:
    st.markdown(describe_scene(scene))
    images = scene_images(scene)
    cols = st.columns(3)
    with cols[0]:
        st.markdown("**Sentinel-2 optical** (B4, B3, B2)")
        if images.optical is not None:
            level = scene.provenance.get("optical_level", "")
            st.image(
                images.optical,
                width="stretch",
                caption=f"true colour, reflectance {OPTICAL_RANGE[0]}–{OPTICAL_RANGE[1]} {level}".strip(),
            )
        else:
            st.info("This scene has no Sentinel-2 optical layer.")
    for col, pol, img in ((cols[1], "VV", images.vv), (cols[2], "VH", images.vh)):
        with col:
            st.markdown(f"**Sentinel-1 {pol}** (real)")
            if img is not None:
                lo, hi = sar_stretch(pol).lo, sar_stretch(pol).hi
                st.image(img, width="stretch", caption=f"σ⁰ {pol}, fixed stretch {lo:g} to {hi:g} dB")
                st.image(_colourbar(pol), width="stretch")
            else:
                st.info(f"This scene has no Sentinel-1 {pol} layer.")
    label = embedding_label(scene)
    if label and is_proxy(scene):
        st.caption("⚠️ " + label)
    elif label:
        st.caption("Embedding: AlphaEarth (64-D) for this place.")
    missing = scene.layers_missing()
    if missing:
        st.caption("Not in this scene: " + "; ".join(LAYER_LABELS[m] for m in missing) + ".")
    with st.expander("Provenance"):
        st.code(
            json.dumps({"scene_id": scene.scene_id, "dates": scene.dates, **scene.provenance}, indent=2, default=str),
            language="json",
        )
