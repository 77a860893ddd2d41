"""The Render page (seed 002): a scene's real Sentinel-1 (or any SAR GeoTIFF in the scenes folder)
rendered at a finer pixel spacing by a `sarviz train sar2sar` run, with the consistency gate.

Runs come only from the configured runs folder and inputs only from the scenes folder: no path a
user types reaches the file system. Errors are shown as one line without server paths.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

RENDER_KEY = "render_result"


def _safe_message(exc: BaseException) -> str:
    """One line, absolute paths reduced to their last part."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return re.sub(r"(/[^\s:'\"]+)+", lambda m: Path(m.group(0)).name, text)


def strip_paths(obj):
    """A provenance without server paths (each absolute path reduced to its last part) for the browser."""
    if isinstance(obj, dict):
        return {k: strip_paths(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [strip_paths(v) for v in obj]
    if isinstance(obj, str):
        return re.sub(r"(/[^\s:'\"]+)+", lambda m: Path(m.group(0)).name, obj)
    return obj


def sar2sar_runs(root: Path) -> list[Path]:
    """SAR→SAR run folders in ``root`` that lie inside the app's roots with nothing in them linking out."""
    from sarviz.access import allowed_roots, leads_inside, links_leaving_roots
    from sarviz.formats.sar2sar import RUN_FILE

    if not root.is_dir():
        return []
    roots = allowed_roots()
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir()
        and (p / RUN_FILE).is_file()
        and leads_inside(p, roots)
        and not links_leaving_roots(p, roots=roots)
    )


def input_files(root: Path) -> list[Path]:
    """GeoTIFFs in ``root`` that lie inside the app's roots (a link out of them is not offered)."""
    from sarviz.access import allowed_roots, leads_inside

    if not root.is_dir():
        return []
    roots = allowed_roots()
    return sorted(p for p in root.glob("*.tif") if p.is_file() and leads_inside(p, roots))


def to_png(db: np.ndarray, lo: float, hi: float) -> bytes:
    from PIL import Image

    unit = np.clip((np.nan_to_num(db, nan=lo) - lo) / (hi - lo), 0, 1)
    buf = io.BytesIO()
    Image.fromarray((unit * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def swipe(left: np.ndarray, right: np.ndarray, position: float) -> np.ndarray:
    """Left image up to ``position`` (0–1 of the width), right image after it, a 1-px line between."""
    out = np.where(np.arange(left.shape[1])[None, :] < position * left.shape[1], left, right).astype(np.float32)
    col = min(left.shape[1] - 1, int(position * left.shape[1]))
    out[:, col] = np.nanmax(out)
    return out


def disagreement_png(ratio_db: np.ndarray, limit: float = 3.0) -> bytes:
    import matplotlib

    cmap = matplotlib.colormaps["RdBu_r"]
    rgba = cmap(np.clip((np.nan_to_num(ratio_db) + limit) / (2 * limit), 0, 1))
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((rgba[..., :3] * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def render_page() -> None:
    import streamlit as st

    from sarviz.settings import Settings

    st.title("Render (SAR → SAR)")
    settings = Settings.load()
    st.caption(
        "A real SAR image rendered at a finer pixel spacing by a ControlNet (seed 002's pipeline; the "
        "choices are sarviz's, see docs/sar2sar.md). The consistency gate checks the rendering against "
        "its input at the input's spacing."
    )
    runs = sar2sar_runs(settings.runs)
    inputs = input_files(settings.scenes)
    if not runs:
        st.info(
            "No SAR→SAR model yet. Train one with `sarviz dataset pairs` and `sarviz train sar2sar --out "
            "$SARVIZ_RUNS/NAME` (docs/sar2sar.md)."
        )
        return
    if not inputs:
        st.info("No SAR GeoTIFF in the scenes folder (SARVIZ_SCENES): fetch or import a scene first.")
        return
    run = st.selectbox("Model", runs, format_func=lambda p: p.name, key="render_run")
    src = st.selectbox(
        "Input (its real Sentinel-1 or any σ⁰ dB GeoTIFF)", inputs, format_func=lambda p: p.name, key="render_input"
    )
    c1, c2, c3, c4 = st.columns(4)
    factor = c1.number_input("Factor (input / output spacing)", 1.0, 8.0, 2.0, 0.25, key="render_factor")
    strength = c2.slider("Strength", 0.05, 1.0, 0.6, 0.05, key="render_strength")
    steps = c3.number_input("Steps", 1, 100, 20, key="render_steps")
    seeds = c4.number_input("Seeds (≥ 2: spread map)", 1, 4, 1, key="render_seeds")
    if st.button("Render", type="primary", key="render_go"):
        from sarviz.formats.sar2sar import SarGeoTiff
        from sarviz.generators.sar2sar import Sar2SarRenderer, TransformRequest

        bar = st.progress(0.0)
        try:
            renderer = Sar2SarRenderer(run)
            img = SarGeoTiff.read(src)
            req = TransformRequest(
                steps=int(steps), strength=float(strength), options={"factor": float(factor), "seeds": int(seeds)}
            )
            result = renderer.render(img, req, progress=lambda i, n, m: bar.progress(min(1.0, i / max(n, 1)), m))
        except Exception as exc:  # noqa: BLE001 — a page shows every failure as one line, no paths, no traceback
            st.error(f"Render failed: {_safe_message(exc)}")
            return
        st.session_state[RENDER_KEY] = result
    result = st.session_state.get(RENDER_KEY)
    if result is None:
        return
    prov = strip_paths(result.output.provenance)
    if prov["extrapolation"].startswith("yes"):
        st.warning(
            f"Extrapolation — {_safe_message(prov['extrapolation'])}; the training pairs taught: "
            f"{prov['training_pairs'].get('teaches')}"
        )
    rows = [
        {
            "polarisation": p,
            "score (dB)": round(c["score_db"], 3),
            "threshold (dB)": round(c["threshold_db"], 3),
            "bias (dB)": round(c["bias_db"], 3),
            "spread (dB)": round(c["spread_db"], 3),
            "verdict": c["verdict"],
            "threshold source": c["threshold_source"],
        }
        for p, c in result.consistency.items()
    ]
    st.subheader("Consistency with the input")
    st.dataframe(rows, hide_index=True, use_container_width=True)
    from sarviz.metrics import sar
    from sarviz.metrics.protocols import seed001_kl
    from sarviz.sar2sar.consistency import radial_power_spectrum

    for pol, out_db in ((p, b) for p, b in result.output.bands.items() if p in result.input_db):
        st.subheader(pol)
        up = result.upsampled_db[pol]
        lo, hi = np.nanpercentile(up, [2, 98])
        pos = st.slider(f"Swipe {pol}: input (left) ↔ rendering (right)", 0.0, 1.0, 0.5, 0.01, key=f"swipe_{pol}")
        a, b = st.columns(2)
        a.image(
            to_png(swipe(up, out_db, pos), lo, hi),
            caption=f"{pol}: up-sampled input | rendering",
            use_container_width=True,
        )
        b.image(
            disagreement_png(result.disagreement[pol]),
            caption="disagreement: block log-ratio, ±3 dB (red: rendering brighter)",
            use_container_width=True,
        )
        metrics = []
        for name, db in (("input (up-sampled)", up), ("rendering", out_db)):
            try:
                e = round(sar.enl(db).enl, 2)
            except sar.MetricError:
                e = None
            metrics.append(
                {"image": name, "ENL": e, "mean σ⁰ (dB)": round(float(10 * np.log10(np.nanmean(10 ** (db / 10)))), 2)}
            )
        try:
            kl = seed001_kl([up], [out_db], pol).kl
        except sar.MetricError:
            kl = None
        st.dataframe(metrics, hide_index=True)
        st.caption(
            f"KL(input ‖ rendering), seed 001 protocol (A/(μ+3σ) histograms, saturated pixels excluded): {kl if kl is None else round(kl, 4)} nats"
        )
        f, p_in = radial_power_spectrum(up)
        _, p_out = radial_power_spectrum(out_db)
        st.line_chart(
            {
                "log10 frequency (cycles/px)": np.log10(f),
                "input": np.log10(p_in + 1e-30),
                "rendering": np.log10(p_out + 1e-30),
            },
            x="log10 frequency (cycles/px)",
            y=["input", "rendering"],
        )
        st.caption("Radially averaged power spectrum of intensity (log10)")
        spread = result.output.bands.get(f"{pol}_seed_spread_db")
        if spread is not None:
            st.image(
                to_png(spread, 0.0, max(1e-3, float(np.nanpercentile(spread, 99)))),
                caption=f"{pol}: per-pixel spread over the seeds (dB, black = 0)",
                use_container_width=True,
            )
    from dataclasses import replace

    from sarviz.formats.sar2sar import RENDER_FILE

    st.download_button(
        "Download the rendering (COG, σ⁰ dB, provenance)",
        replace(result.output, provenance=prov).to_bytes(),
        file_name=RENDER_FILE,
        mime="image/tiff",
        key="render_download",
    )
    bands = result.output.bands
    if "VV" in bands and "VH" in bands:
        from sarviz.generators.base import GenerationResult
        from sarviz.ui.study import add_to_pool_button

        add_to_pool_button(
            GenerationResult(
                bands["VV"], bands["VH"], result.output.crs, result.output.transform, {**prov, "model_id": "sar2sar"}
            ),
            None,
            key="render_pool",
        )
    with st.expander("Provenance"):
        st.json(prov)
