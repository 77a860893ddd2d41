"""The Sensor page: migrate a SAR image toward another sensor (seed 003 stage 2) and measure the change.

The user names (inside the folders the app may open, :mod:`sarviz.access`) a U-Net base —
which must come from the user: sarviz ships none — a content image and a folder of the
target sensor's reference images. Migration runs as a background job with CPU defaults
(:mod:`sarviz.migration.job`); the page shows before / after / reference, the sensor-profile
table (ENL, HF energy, histogram KL, GLCM; :mod:`sarviz.metrics.sensor_profile`), the
amplitude histograms and the loss curve, and offers the migrated GeoTIFF for download.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import streamlit as st

from sarviz.access import AccessDenied, links_leaving_roots, resolve_user_path
from sarviz.errors import GenerationError, MetricError
from sarviz.formats.generated_image import GENERATED_FILE
from sarviz.metrics.sensor_profile import profile_distance, sensor_profile
from sarviz.migration.images import list_images, read_sar_image
from sarviz.migration.job import CPU_SETTINGS, MigrationJob, amplitude_png

INTRO = (
    "Render a SAR image as another sensor would (seed 003: attention distillation with speckle and spectrum "
    "losses). **The U-Net base must come from you**: a diffusers SD 1.5-style folder (model_index.json, unet/, "
    "vae/, text_encoder/, tokenizer/, scheduler/) inside a folder this app may open; sarviz ships no weights. "
    "CPU defaults: centre crop to 256², 20 timesteps (the AD code uses 200 at 512²), speckle/spectrum losses "
    "every 2nd iteration."
)


def _resolve(text: str, kind: str) -> Path | None:
    try:
        path = resolve_user_path(text, kind=kind)
    except AccessDenied as exc:
        st.error(str(exc))
        return None
    if kind == "folder" and links_leaving_roots(path):  # the weights inside are read too
        st.error(f"Refused: {text.strip()} holds links leading outside the folders this app may open.")
        return None
    return path


def _db(amplitude: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(amplitude > 0, 20 * np.log10(amplitude), np.nan)


def sensor_page() -> None:
    st.title("Sensor: render as another SAR sensor")
    st.caption(INTRO)
    job: MigrationJob | None = st.session_state.get("sensor_job")
    with st.form("sensor_form"):
        base = st.text_input("U-Net base folder (yours)", key="sensor_base")
        content = st.text_input("Content image (GeoTIFF band or grey PNG)", key="sensor_content")
        refs = st.text_input(
            "Folder of the target sensor's reference images (same size as the content)", key="sensor_refs"
        )
        c1, c2, c3 = st.columns(3)
        steps = c1.number_input("timesteps", 1, 1000, CPU_SETTINGS.steps)
        layers = c2.selectbox("layers", ["ad-default", "shallow-deep"])
        seed = c3.number_input("seed", 0, 2**31 - 1, 0)
        start = st.form_submit_button("Migrate", disabled=job is not None and not job.done)
    if start:
        base_dir, content_file, refs_dir = _resolve(base, "folder"), _resolve(content, "file"), _resolve(refs, "folder")
        if base_dir is not None and content_file is not None and refs_dir is not None:  # else _resolve said why
            try:
                styles = [read_sar_image(p, "style reference") for p in list_images(refs_dir, "style references")]
                job = MigrationJob(
                    str(base_dir),
                    read_sar_image(content_file, "content"),
                    styles,
                    replace(CPU_SETTINGS, steps=int(steps), layers=layers),
                    seed=int(seed),
                ).start()
                st.session_state.sensor_job = job
            except GenerationError as exc:
                st.error(str(exc))
    if job is not None:
        _job_view(job)


@st.fragment(run_every=2.0)
def _job_view(job) -> None:
    state = job.state
    if not job.done:
        total = max(1, state["total"])
        st.progress(min(1.0, state["step"] / total), text=state["message"])
        if st.button("Cancel"):
            job.cancel.set()
        return
    if state["status"] == "failed":
        st.error(f"Migration failed: {state['error']}")
        return
    if state["status"] == "cancelled" or job.result is None:
        st.info("Migration cancelled.")
        return
    _results(job)


def _results(job) -> None:
    import pandas as pd

    out = job.result
    after_amp, losses, run = job.amplitude, job.losses, job.run_provenance
    cols = st.columns(3)
    cols[0].image(amplitude_png(job.content.amplitude), caption="before (content)")
    cols[1].image(amplitude_png(after_amp), caption="after (migrated)")
    cols[2].image(amplitude_png(job.styles[0].amplitude), caption="reference (target sensor)")
    try:
        ref = sensor_profile("references", [_db(s.amplitude) for s in job.styles])
        before = sensor_profile("content (before)", [_db(job.content.amplitude)])
        after = sensor_profile("migrated (after)", [_db(after_amp)])
        rows = []
        for p in (ref, before, after):
            d = profile_distance(ref, p)
            rows.append(
                {
                    "set": p.name,
                    "ENL": p.enl_median,
                    "HF energy ratio": p.hf_ratio_median,
                    "|Δ log ENL| to ref": d["abs_delta_log_enl"],
                    "histogram KL(ref‖set)": d["histogram_kl"],
                    "GLCM rel. Δ": d["glcm_mean_relative_delta"],
                    **{f"GLCM {k}": v for k, v in p.glcm.items()},
                }
            )
        st.subheader("Sensor profile (distance to the references: lower is closer)")
        st.dataframe(pd.DataFrame(rows), hide_index=True)
        edges = np.linspace(0, 1, len(ref.histogram) + 1)
        st.line_chart(
            pd.DataFrame({p.name: p.histogram for p in (ref, before, after)}, index=(edges[:-1] + edges[1:]) / 2),
            x_label="A/(μ+3σ)",
            y_label="share",
        )
    except MetricError as exc:  # image too small for ENL/GLCM windows
        st.warning(f"Sensor profile unavailable: {exc}")
    st.line_chart(
        pd.DataFrame(losses).set_index(np.arange(len(losses)))[
            [k for k in ("total", "L_AD", "L_cnt", "L_sp", "L_f") if k in losses[0]]
        ],
        x_label="iteration",
    )
    st.download_button(
        "Download the migrated GeoTIFF", out.geotiff_bytes(), file_name=GENERATED_FILE, mime="image/tiff"
    )
    st.caption(
        f"{out.provenance['seconds']:.0f} s on {out.provenance['device']} ({out.provenance['dtype']}); "
        f"layers {', '.join(run['layers'])}."
    )
