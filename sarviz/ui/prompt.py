"""The Prompt page: type a prompt → text-to-SAR → the image with histogram, GLCM, metrics, downloads.

``prompt_page()`` draws the page. A text-to-SAR result has no place on the map, so the
pixel-paired panels of the map page (swipe, SSIM) do not apply; what does apply is the
distribution comparison of seed 001: the generated image's amplitude histogram and GLCM
against a chosen *reference* — a real scene from the scene folder or the real patches of a
dataset class — with the pooled KL (:mod:`sarviz.evaluation.text`). A batch of K seeds is
shown as a grid; any image of it can be inspected, downloaded and added to a study pool.

The map page's "Describe this place" puts a caption (:func:`sarviz.captions.caption_for_scene`)
into ``st.session_state[MAP_PROMPT_KEY]``; this page takes it into the prompt box.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.access import allowed_roots, leads_inside, links_leaving_roots
from sarviz.errors import DatasetError, SarvizError, SceneError
from sarviz.evaluation.captioned import open_captioned
from sarviz.evaluation.figures import comparison_pngs
from sarviz.formats.captioned import INFO_FILE as CAPTION_INFO_FILE
from sarviz.generators.base import GenerationCancelled, GenerationError, PromptGenerator
from sarviz.generators.text import DEFAULT_SAMPLER, TextRequest
from sarviz.metrics import sar
from sarviz.metrics.sar import MetricError
from sarviz.registry import ModelRegistry, build_generator
from sarviz.settings import Settings
from sarviz.store import SceneStore
from sarviz.ui.text import plain
from sarviz.viz import images

log = logging.getLogger(__name__)
MAP_PROMPT_KEY = "prompt_from_map"
MAP_PROMPT_NOTE_KEY = "prompt_from_map_note"  # where the caption's land cover came from, and how sure
KEY = "prompt"
#: example prompts per scene class (seed 001's categories, Sentinel-1-scale wording)
EXAMPLE_PROMPTS: dict[str, str] = {
    "forest": "a SAR image of a dense forest with a river crossing it",
    "field": "a SAR image of agricultural fields in a regular patchwork of parcels",
    "city": "a SAR image of a dense city with a grid of streets and tall buildings",
    "airport": "a SAR image of an airport with two runways and terminal buildings",
    "coast": "a SAR image of a rocky coastline with the open sea on one side",
    "port": "a SAR image of a port with docks, cranes and ships in the water",
    "mountains": "a SAR image of steep mountains with valleys and ridges",
    "beach": "a SAR image of a long sandy beach between the sea and dunes",
    "industrial": "a SAR image of an industrial zone with large warehouses and storage tanks",
    "residential": "a SAR image of a residential area with houses, gardens and small roads",
}
TEXT_KIND = "text-to-sar"
GRID_COLUMNS = 4


# -- pure helpers (tested without Streamlit) ---------------------------------------------------------
def text_cards() -> tuple[list, dict[str, str | None], dict[str, str | None]]:
    """Text-to-SAR cards, and for each the short and the detailed reason it cannot run (None = ready)."""
    cards = [c for c in ModelRegistry().cards.values() if c.kind == TEXT_KIND]
    short: dict[str, str | None] = {}
    details: dict[str, str | None] = {}
    for card in cards:
        try:
            state = build_generator(card).readiness()
            short[card.id], details[card.id] = (None, None) if state.ready else (state.problem, state.message)
        except GenerationError as exc:
            short[card.id] = details[card.id] = str(exc)
    return cards, short, details


def display_rgb(result: Any, mode: str = "VV") -> np.ndarray:
    """The result as RGB with the app's fixed dB stretch (VV grey; VH / false colour when there is VH)."""
    if result.vh_db is None or mode == "VV":
        return images.render_gray(result.vv_db, images.sar_stretch("VV"))
    return images.render_sar(result.vv_db, result.vh_db, mode)


def reference_from_scene(scene: Any) -> list[np.ndarray]:
    if scene.vv_db is None:
        raise SceneError(f"scene {scene.scene_id} has no real Sentinel-1 VV layer")
    return [scene.vv_db]


def reference_from_dataset(folder: str | Path, label: str, limit: int = 30) -> list[np.ndarray]:
    """The real VV (dB) of up to ``limit`` patches of class ``label`` of a captioned dataset (test split first)."""
    for split in ("test", "validation", "train"):
        try:
            data = open_captioned(folder, split)
        except DatasetError:
            continue
        items = data.by_label(limit).get(label)
        if items:
            return [data.read_db(i)["VV"] for i in items]
    raise SceneError(f"no {label!r} patches in {folder}")


def datasets_root() -> Path:
    """Where the page looks for captioned datasets: SARVIZ_DATASETS, else SARVIZ_HOME/datasets.

    The browser picks among the datasets found here; it never names a path itself (a page
    strangers may reach must not read folders outside configured roots).
    """
    return Settings.load().datasets


def find_captioned(root: Path, max_depth: int = 3) -> list[Path]:
    """Captioned dataset folders (with caption_info.json) under ``root``, at most ``max_depth`` levels down."""
    if not root.is_dir():
        return []
    roots = allowed_roots()
    found = []
    for depth in range(max_depth + 1):
        found += [p.parent for p in root.glob("/".join(["*"] * depth + [CAPTION_INFO_FILE]))]
    # glob follows linked folders: keep what stays inside the roots, file and folder alike
    return sorted({p for p in found if leads_inside(p, roots) and leads_inside(p / CAPTION_INFO_FILE, roots)})


def dataset_labels(folder: str | Path) -> list[str]:
    labels: set[str] = set()
    for split in ("test", "validation", "train"):
        try:
            labels |= set(open_captioned(folder, split).labels())
        except DatasetError:
            continue
    return sorted(labels)


def image_metrics(result: Any, summary: Any | None) -> dict[str, Any]:
    """Numbers for one generated image (and against the reference when there is one)."""
    vv = result.vv_db[np.isfinite(result.vv_db)]
    out: dict[str, Any] = {"VV mean (dB)": round(float(vv.mean()), 2), "VV std (dB)": round(float(vv.std()), 2)}
    if result.vh_db is not None:
        vh = result.vh_db[np.isfinite(result.vh_db)]
        out.update({"VH mean (dB)": round(float(vh.mean()), 2), "VH std (dB)": round(float(vh.std()), 2)})
    try:
        out["ENL (VV)"] = round(sar.enl(result.vv_db).enl, 2)
    except sar.MetricError as exc:
        out["ENL (VV)"] = f"n/a ({exc})"
    if summary is not None:
        out["KL amplitude (reference ‖ generated)"] = round(summary.kl, 4)
        out["saturated: reference"] = f"{summary.saturated_real:.2%}"
        out["saturated: generated"] = f"{summary.saturated_generated:.2%}"
        for name in sar.GLCM_FEATURES:
            if summary.glcm_real is not None and summary.glcm_generated is not None:
                out[f"GLCM {name}: reference / generated"] = (
                    f"{np.mean(summary.glcm_real[name]):.4g} / {np.mean(summary.glcm_generated[name]):.4g}"
                )
    return out


# -- Streamlit -------------------------------------------------------------------------------------
def _take_map_prompt(st) -> None:
    prompt = st.session_state.pop(MAP_PROMPT_KEY, None)
    note = st.session_state.pop(MAP_PROMPT_NOTE_KEY, None)
    if prompt:
        st.session_state[f"{KEY}_text"] = prompt
        st.session_state[f"{KEY}_from_map"] = note or True


def _use_example() -> None:
    import streamlit as st

    cls = st.session_state.get(f"{KEY}_example")
    if cls in EXAMPLE_PROMPTS:
        st.session_state[f"{KEY}_text"] = EXAMPLE_PROMPTS[cls]


def prompt_page() -> None:
    import streamlit as st

    st.title("Type a prompt — text-to-SAR")
    st.caption(
        "A text-to-image diffusion model adapted to SAR (seed paper 001): the prompt, the learned <SAR> token "
        "and the model's calibration give σ⁰ in dB — without a place on the map."
    )
    _take_map_prompt(st)
    cards, short, details = text_cards()
    if not cards:
        st.error('No text-to-SAR model card: add one (kind "text-to-sar") to models/ or a folder in SARVIZ_MODELS.')
        return
    ids = [c.id for c in cards]
    by_id = {c.id: c for c in cards}
    ready = [i for i in ids if short[i] is None]
    model_id = st.selectbox(
        "Model",
        ids,
        index=ids.index(ready[0]) if ready else 0,
        key=f"{KEY}_model",
        format_func=lambda i: by_id[i].name + ("" if short[i] is None else " — weights missing"),
    )
    if short[model_id]:
        st.warning(short[model_id])
        with st.expander("Details: what is missing and how to get it"):
            st.markdown(details[model_id])
    from_map = st.session_state.get(f"{KEY}_from_map")
    if from_map:
        st.info(
            "Prompt filled from the map page (land cover and nearest place); edit it freely."
            + (f" {from_map}" if isinstance(from_map, str) else "")
        )
    st.selectbox(
        "Example prompts",
        ["(choose a scene class)"] + list(EXAMPLE_PROMPTS),
        key=f"{KEY}_example",
        on_change=_use_example,
    )
    card = by_id[model_id]
    sampler = {**DEFAULT_SAMPLER, **(card.get("sampler", {}) or {})}
    with st.form(f"{KEY}_form"):
        prompt = st.text_area(
            "Prompt", key=f"{KEY}_text", height=90, placeholder="a SAR image of a port with ships in the water"
        )
        negative = st.text_input("Negative prompt", value=str(sampler.get("negative_prompt", "")), key=f"{KEY}_neg")
        c1, c2, c3, c4 = st.columns(4)
        seed = c1.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key=f"{KEY}_seed")
        steps = c2.number_input(
            "Steps", min_value=1, max_value=200, value=int(sampler.get("steps", 30)), step=1, key=f"{KEY}_steps"
        )
        guidance = c3.number_input(
            "Guidance",
            min_value=0.0,
            max_value=30.0,
            value=float(sampler.get("guidance", 7.0)),
            step=0.5,
            key=f"{KEY}_guidance",
        )
        count = c4.number_input(
            "Images (seeds)",
            min_value=1,
            max_value=16,
            value=1,
            step=1,
            key=f"{KEY}_count",
            help="K images with seeds seed … seed+K−1, shown as a grid",
        )
        submitted = st.form_submit_button("Generate", type="primary", disabled=short[model_id] is not None)
    cancel = st.session_state.setdefault(f"{KEY}_cancel", threading.Event())
    st.button(
        "Cancel",
        key=f"{KEY}_cancel_button",
        on_click=cancel.set,
        help="Stops a running or queued generation after the current step.",
    )
    if submitted:
        _generate(card, prompt, negative, int(seed), int(steps), float(guidance), int(count), cancel)
    results = st.session_state.get(f"{KEY}_results")
    if results:
        _render_results(results)


def _generate(card, prompt, negative, seed, steps, guidance, count, cancel) -> None:
    import streamlit as st

    cancel.clear()
    bar = st.progress(0.0, text="starting…")

    def progress(step: int, total: int, message: str) -> None:
        bar.progress(min(1.0, step / total) if total else 0.0, text=message)

    try:
        generator = build_generator(card)
        if not isinstance(generator, PromptGenerator):  # the page lists text models only
            raise GenerationError(f"{card.name} is not a text-to-SAR model")
        results = generator.generate(
            TextRequest(
                seed=seed, steps=steps, guidance=guidance, prompt=prompt, negative_prompt=negative, num_images=count
            ),
            progress=progress,
            cancel=cancel,
        )
    except GenerationCancelled:
        bar.empty()
        st.info("Generation cancelled.")
        return
    except (SarvizError, ValueError) as exc:
        bar.empty()
        st.error(plain(exc))  # may quote the prompt
        return
    except Exception as exc:  # a bug or out-of-memory: say so, keep the page alive
        log.exception("text generation failed")
        bar.empty()
        st.error(f"Generation failed unexpectedly ({type(exc).__name__}).")
        return
    bar.progress(1.0, text=f"done: {len(results)} image(s)")
    st.session_state[f"{KEY}_results"] = results
    st.session_state.pop(f"{KEY}_pick", None)


def _render_results(results: list) -> None:
    import streamlit as st

    first = results[0].provenance
    st.header("Result")
    st.caption(
        f"{plain(first.get('model_id'))} · “{plain(first.get('prompt'))}”"
        + (" (token prepended)" if first.get("token_prepended") else "")
        + f" · {first.get('steps')} steps · guidance {first.get('guidance')} · {first.get('device')}/"
        f"{first.get('dtype')}"
    )
    if len(results) > 1:
        cols = st.columns(GRID_COLUMNS)
        for i, res in enumerate(results):
            cols[i % GRID_COLUMNS].image(display_rgb(res), caption=f"seed {res.provenance['seed']}", width="stretch")
        seeds = [r.provenance["seed"] for r in results]
        pick = st.selectbox("Inspect", seeds, key=f"{KEY}_pick", format_func=lambda s: f"seed {s}")
        result = results[seeds.index(pick)]
    else:
        result = results[0]
    _inspect(result)


def _reference(key: str) -> tuple[list[np.ndarray] | None, str]:
    import streamlit as st

    how = st.radio(
        "Compare with",
        ["nothing", "a real scene", "a dataset class"],
        horizontal=True,
        key=f"{key}_ref",
        help="Text-to-SAR images have no place: they are compared by distribution (seed 001), not pixel by pixel.",
    )
    settings = Settings.load()
    try:
        if how == "a real scene":
            roots = allowed_roots(settings)
            store = SceneStore(settings.scenes, allowed=lambda p: leads_inside(p, roots))
            names = [e.scene_id for e in store if "vv_db" in e.layers]
            if not names:
                st.info(f"No scene with a real Sentinel-1 layer in {plain(store.folder)}.")
                return None, ""
            name = st.selectbox("Scene", names, key=f"{key}_scene")
            return reference_from_scene(store.read(name)), f"real S1 {name}"
        if how == "a dataset class":
            root = datasets_root()
            folders = find_captioned(root)
            if not folders:
                st.info(
                    f"No captioned dataset under the datasets folder (SARVIZ_DATASETS, now {plain(root.name)}); "
                    "build one with `sarviz dataset build` and `sarviz dataset caption`."
                )
                return None, ""
            folder = st.selectbox(
                "Captioned dataset",
                folders,
                key=f"{key}_dataset",
                format_func=lambda p: str(p.relative_to(root)) if p != root else p.name,
            )
            if links_leaving_roots(folder, settings):  # its metadata and patches are read below
                st.error("That dataset holds links leading outside the folders this app may open.")
                return None, ""
            labels = dataset_labels(folder)
            if not labels:
                st.info("That dataset has no labelled patches.")
                return None, ""
            label = st.selectbox("Class", labels, key=f"{key}_label")
            return reference_from_dataset(folder, label), f"real {label}"
    except (SarvizError, ValueError, OSError) as exc:
        st.error(f"Cannot use that reference: {plain(exc)}")
    return None, ""


def _inspect(result: Any) -> None:
    import streamlit as st

    from sarviz.ui.study import add_to_pool_button

    key = f"{KEY}_inspect"
    reference, ref_label = _reference(key)
    summary = None
    pngs: dict[str, bytes] = {}
    try:
        pngs, summary = comparison_pngs(
            [result.vv_db], reference, ref_label or "reference", title=f"seed {result.provenance.get('seed')}"
        )
    except MetricError as exc:
        st.warning(f"Distribution panels unavailable: {plain(exc)}")
    tabs = st.tabs(["Image", "Distributions", "Texture (GLCM)", "Metrics & downloads"])
    with tabs[0]:
        modes = ["VV"] + (["VH", "false-colour"] if result.vh_db is not None else [])
        mode = st.radio("Display", modes, horizontal=True, key=f"{key}_mode")
        st.image(display_rgb(result, mode), width=min(640, max(256, result.width)))
        st.caption(
            f"{mode} σ⁰, fixed stretch {images.DB_RANGES.get(mode, images.DB_RANGES['VV'])} dB; "
            f"{result.width}×{result.height} px, no georeference"
        )
    with tabs[1]:
        if "histogram" in pngs:
            st.image(pngs["histogram"], width="stretch")
            if summary is None:
                st.caption("Choose a reference above to compare the amplitude distribution (KL, seed 001).")
    with tabs[2]:
        if "glcm" in pngs:
            st.image(pngs["glcm"], width="stretch")
        else:
            st.info("No complete 64×64 px patch for GLCM features.")
    with tabs[3]:
        metrics = image_metrics(result, summary)
        st.table({"metric": list(metrics), "value": [str(v) for v in metrics.values()]})
        prov = result.provenance
        stem = f"text2sar_{prov.get('model_id', 'model')}_seed{prov.get('seed', 0)}"
        c1, c2, c3 = st.columns(3)
        c1.download_button(
            "GeoTIFF (dB, no georeference)",
            data=result.geotiff_bytes(),
            file_name=f"{stem}.tif",
            mime="image/tiff",
            key=f"{key}_dl_tif",
        )
        c2.download_button(
            "PNG", data=result.png_bytes(), file_name=f"{stem}.png", mime="image/png", key=f"{key}_dl_png"
        )
        c3.download_button(
            "Metrics (JSON)",
            data=json.dumps({"metrics": metrics, "provenance": prov}, indent=2, default=str),
            file_name=f"{stem}_metrics.json",
            mime="application/json",
            key=f"{key}_dl_json",
        )
        with st.expander("Provenance"):
            st.code(json.dumps(prov, indent=2, sort_keys=True, default=str), language="json")
    add_to_pool_button(result, None, key=f"{key}_pool")
