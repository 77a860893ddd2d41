"""The Generate panel: pick a model and settings, generate, follow progress, download.

``render_generate_panel(scene)`` draws the panel for a scene and returns the latest
:class:`GenerationResult` for that scene (kept in ``st.session_state`` across reruns) or
None. It never raises: problems are shown with ``st.error``.

Models are built once per process (``st.cache_resource``) and the diffusion pipeline
itself stays loaded in :data:`sarviz.generators.runtime.MODELS`, so reruns do not reload
weights; every generation goes through the process-wide queue in
:mod:`sarviz.generators.runtime`, so concurrent sessions wait for the device in turn.
"""

from __future__ import annotations

import json
import logging
import threading

import numpy as np
import streamlit as st

from sarviz.embedding_proxy import is_proxy, result_note
from sarviz.errors import SarvizError
from sarviz.generators.base import (
    DEFAULT_ANGLE_DEG,
    GenerationCancelled,
    GenerationError,
    GenerationRequest,
    GenerationResult,
    Generator,
)
from sarviz.scene import Scene
from sarviz.ui.text import plain

log = logging.getLogger(__name__)
DIFFUSION_KIND = "controlnet-lora"


@st.cache_resource(show_spinner=False, max_entries=8)
def _cached_generator(model_id: str, card_path: str, card_mtime_ns: int) -> Generator:
    # keyed by the card file and its mtime so that an edited card is rebuilt
    from sarviz.registry import ModelRegistry

    return ModelRegistry().generator(model_id)


def _card_mtime(card) -> int:
    try:
        return card.path.stat().st_mtime_ns
    except OSError:
        return 0


def _model_table() -> tuple[list, dict[str, str | None], dict[str, str]]:
    """The registry's cards; for each, None (ready) or a short line on why it cannot run; and
    the full details (missing files, how to get the weights) where there are more."""
    from sarviz.registry import ModelRegistry

    registry = ModelRegistry()
    problems: dict[str, str | None] = {}
    details: dict[str, str] = {}
    for card in registry.cards.values():
        try:
            state = _cached_generator(card.id, str(card.path), _card_mtime(card)).readiness()
            problems[card.id] = None if state.ready else state.problem
            if not state.ready and state.details and state.details != state.problem:
                details[card.id] = state.details
        except GenerationError as exc:
            problems[card.id] = str(exc)
        except Exception as exc:  # an implementation that cannot even be imported
            problems[card.id] = f"model {card.id}: cannot be loaded ({type(exc).__name__}: {exc})"
    return list(registry.cards.values()), problems, details


def default_model(cards: list, problems: dict[str, str | None]) -> str | None:
    """A ready diffusion model if there is one, else the emulator, else any ready model."""
    ready = [c for c in cards if problems.get(c.id) is None]
    for pick in (
        [c for c in ready if c.kind == DIFFUSION_KIND],
        [c for c in ready if c.kind == "emulator"],
        ready,
        cards,
    ):
        if pick:
            return pick[0].id
    return None


def scene_fingerprint(scene: Scene) -> tuple:
    return (scene.scene_id, scene.crs.to_string(), tuple(scene.transform)[:6], scene.width, scene.height)


def latest_result(scene: Scene, key: str = "gen") -> GenerationResult | None:
    """The last result generated for this scene in this session, if any."""
    stored = st.session_state.get(f"{key}_result")
    if stored and stored[0] == scene_fingerprint(scene):
        return stored[1]
    return None


PRECISIONS = ["auto", "float32", "bfloat16", "float16"]


def _initial(state_key: str, value):
    """``value=`` for a widget unless the reference preset set its value in the session state
    (passing both makes Streamlit warn)."""
    return {} if state_key in st.session_state.get("_preset_keys", ()) else {"value": value}


def _apply_preset(key: str, sampler: dict, preset: str) -> None:
    """A preset button's callback (runs before the widgets are drawn).

    "reference" fills the form with the published inference settings; "fast" forgets them, so
    the widgets start again from the card's defaults.
    """
    from sarviz.generators.diffusion import REFERENCE_PRESET, REFERENCE_SAMPLER

    names = [f"{key}_{n}" for n in ("steps", "guidance", "cn_scale", "dtype")]
    marked = set(st.session_state.get("_preset_keys", ()))
    if preset == "reference":
        values = [
            int(sampler.get("reference_steps") or REFERENCE_PRESET["steps"]),
            float(REFERENCE_SAMPLER["guidance"]),
            float(REFERENCE_SAMPLER["controlnet_scale"]),
            REFERENCE_PRESET["dtype"],
        ]
        for name, value in zip(names, values):
            st.session_state[name] = value
        marked.update(names)
    else:
        for name in names:
            st.session_state.pop(name, None)
        marked.difference_update(names)
    st.session_state["_preset_keys"] = marked
    st.session_state[f"{key}_preset"] = preset


def render_generate_panel(scene: Scene, key: str = "gen") -> GenerationResult | None:
    """The Generate panel for ``scene``; returns the latest result for it, or None."""
    try:
        _render(scene, key)
    except Exception as exc:  # the panel must never break the page
        log.exception("generate panel failed")
        st.error(f"Generation panel error: {plain(exc)}")
    result = latest_result(scene, key)
    if result is not None:
        try:
            _render_result(result, key)
        except Exception as exc:
            st.error(f"Cannot show the result: {plain(exc)}")
    return result


def _render(scene: Scene, key: str) -> None:
    from sarviz.generators import runtime

    cards, problems, details = _model_table()
    if not cards:
        st.error("No model cards found: add a card to models/ or a folder listed in SARVIZ_MODELS.")
        return
    ids = [c.id for c in cards]
    by_id = {c.id: c for c in cards}
    default = default_model(cards, problems)

    def label(model_id: str) -> str:
        return f"{by_id[model_id].name}" + ("" if problems[model_id] is None else " — weights missing")

    model_id = st.selectbox(
        "Model", ids, index=ids.index(default) if default in ids else 0, format_func=label, key=f"{key}_model"
    )
    card = by_id[model_id]
    problem = problems[model_id]
    if problem:
        st.warning(problem)
        if model_id in details:
            with st.expander("What is missing and how to get it"):
                st.markdown(details[model_id])
    missing = [c.id for c in cards if problems[c.id] and c.id != model_id]
    if missing:
        with st.expander(f"{len(missing)} other model(s) cannot run here"):
            for mid in missing:
                st.markdown(f"**{mid}**: {details.get(mid, problems[mid])}")
    is_diffusion = card.kind == DIFFUSION_KIND
    sampler = card.get("sampler", {}) if is_diffusion else {}
    no_embedding = embedding_blocker(scene)
    if no_embedding:
        st.warning(no_embedding)
    elif is_proxy(scene):
        st.info(
            "**Proxy embedding** — this scene has no AlphaEarth embedding; the generators will condition on "
            "a proxy made of real AlphaEarth vectors of other places chosen by this scene's optical land "
            "cover. The result is labelled as made from a proxy.",
            icon="⚠️",
        )

    devices = ["auto"] + runtime.available_devices()
    if is_diffusion:
        p1, p2 = st.columns(2)
        p1.button(
            "Reference settings",
            key=f"{key}_preset_reference",
            on_click=_apply_preset,
            args=(key, sampler, "reference"),
            help="the published HuiYanEarth-SAR inference: 50 steps in float32 (about twice as slow)",
        )
        p2.button(
            "Fast defaults",
            key=f"{key}_preset_fast",
            on_click=_apply_preset,
            args=(key, sampler, "fast"),
            help="the model card's defaults: fewer steps, the device's fastest precision",
        )
        st.caption(
            f"Settings: **{st.session_state.get(f'{key}_preset', 'fast')}** preset "
            "(the result records which ran; a changed value makes it 'custom')"
        )
    with st.form(key=f"{key}_form"):
        c1, c2 = st.columns(2)
        seed = c1.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key=f"{key}_seed")
        angle = None
        if scene.angle_deg is None:
            angle = c2.number_input(
                "Incidence angle (°)",
                min_value=20.0,
                max_value=50.0,
                value=DEFAULT_ANGLE_DEG,
                step=0.5,
                key=f"{key}_angle",
                help="The scene has no angle layer; this angle is used over the whole patch "
                "(Sentinel-1 IW spans about 29°–46°).",
            )
        else:
            c2.caption(f"Incidence angle from the scene: {float(np.nanmean(scene.angle_deg)):.1f}° mean")
        steps = guidance = cn_scale = None
        if is_diffusion:
            c3, c4, c5 = st.columns(3)
            steps = c3.number_input(
                "Steps",
                min_value=1,
                max_value=200,
                step=1,
                key=f"{key}_steps",
                help=f"reference: {sampler.get('reference_steps', 50)} steps",
                **_initial(f"{key}_steps", int(sampler.get("steps", 25))),
            )
            guidance = c4.number_input(
                "Guidance",
                min_value=0.0,
                max_value=30.0,
                step=0.1,
                key=f"{key}_guidance",
                **_initial(f"{key}_guidance", float(sampler.get("guidance", 2.5))),
            )
            cn_scale = c5.number_input(
                "ControlNet scale",
                min_value=0.0,
                max_value=5.0,
                step=0.05,
                key=f"{key}_cn_scale",
                **_initial(f"{key}_cn_scale", float(sampler.get("controlnet_scale", 1.1))),
            )
            c6, c7 = st.columns(2)
            device = c6.selectbox("Device", devices, key=f"{key}_device")
            dtype = c7.selectbox(
                "Precision",
                PRECISIONS,
                key=f"{key}_dtype",
                help="auto: bfloat16 on AMX CPUs and modern GPUs, float16 on older GPUs, else float32",
            )
        else:
            device, dtype = "auto", "auto"
        submitted = st.form_submit_button(
            "Generate",
            type="primary",
            disabled=problem is not None or no_embedding is not None,
            help=no_embedding or problem,
        )

    cancel = st.session_state.setdefault(f"{key}_cancel", threading.Event())
    st.button(
        "Cancel",
        key=f"{key}_cancel_button",
        on_click=cancel.set,
        help="Stops a running or queued generation after the current step.",
    )
    if not submitted:
        return
    cancel.clear()
    request = GenerationRequest(
        seed=int(seed),
        steps=None if steps is None else int(steps),
        guidance=guidance,
        controlnet_scale=cn_scale,
        angle_deg=angle,
        device=None if device == "auto" else device,
        dtype=None if dtype == "auto" else dtype,
        preset=st.session_state.get(f"{key}_preset") if is_diffusion else None,
    )
    bar = st.progress(0.0, text="starting…")

    def progress(step: int, total: int, message: str) -> None:
        bar.progress(min(1.0, step / total) if total else 0.0, text=message)

    try:
        generator = _cached_generator(card.id, str(card.path), _card_mtime(card))
        result = generator.generate(scene, request, progress=progress, cancel=cancel)
    except GenerationCancelled:
        bar.empty()
        st.info("Generation cancelled.")
        return
    except (SarvizError, ValueError) as exc:  # GenerationError, SceneError, EmulatorError, FormatError, …
        bar.empty()
        st.error(plain(exc))
        return
    except Exception as exc:  # a bug or an out-of-memory: say so, keep the page alive
        log.exception("generation failed")
        bar.empty()
        st.error(f"Generation failed unexpectedly ({type(exc).__name__}: {plain(exc)}).")
        return
    seconds = result.provenance.get("seconds")
    bar.progress(1.0, text="done" + (f" in {seconds} s" if seconds is not None else ""))
    st.session_state[f"{key}_result"] = (scene_fingerprint(scene), result)


def embedding_blocker(scene: Scene) -> str | None:
    """Why no generator can run on this scene (it has no embedding at all) and the way out, or None."""
    if scene.embedding is not None:
        return None
    how = (
        "it has a Sentinel-2 optical layer, so `sarviz scenes add-proxy-embedding DIR` (or re-running "
        "`sarviz import`) can give it a proxy embedding"
        if scene.optical is not None
        else "it has no optical layer either, so no proxy can be made for it"
    )
    return (
        f"Generate is off: scene {scene.scene_id or '(unnamed)'} has no AlphaEarth embedding (nor a proxy), and "
        f"every generator conditions on the 64-D embedding. Way out: *Fetch this place* above (needs the internet: "
        f"Earth Engine or the public AlphaEarth mosaic), or import it with an embedding; {how}."
    )


def _render_result(result: GenerationResult, key: str) -> None:
    prov = result.provenance
    if result_note(prov):  # the full note stands once, with the comparison below (not twice a screen apart)
        st.caption(
            "⚠️ Made from a PROXY embedding, not AlphaEarth for this place — see the note with the comparison below."
        )
    st.caption(
        f"{plain(prov.get('model_id'))} · seed {prov.get('seed')}"
        + (f" · {prov.get('steps')} steps · {prov.get('device')}/{prov.get('dtype')}" if "steps" in prov else "")
        + (f" · {prov.get('seconds')} s" if "seconds" in prov else "")
    )
    for note in prov.get("notes", []):
        st.warning(note)
    stem = f"synthetic_{prov.get('scene_id', 'scene')}_{prov.get('model_id', 'model')}_seed{prov.get('seed', 0)}"
    c1, c2 = st.columns(2)
    c1.download_button(
        "GeoTIFF (VV, VH dB)",
        data=result.geotiff_bytes(),
        file_name=f"{stem}.tif",
        mime="image/tiff",
        key=f"{key}_dl_tif",
    )
    c2.download_button(
        "PNG (R=VV, G=VH)", data=result.png_bytes(), file_name=f"{stem}.png", mime="image/png", key=f"{key}_dl_png"
    )
    with st.expander("Provenance"):
        st.code(json.dumps(prov, indent=2, sort_keys=True, default=str), language="json")
