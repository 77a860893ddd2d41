"""The Batch page: open a batch folder, see its items on the map, inspect one with the usual panels.

The page only opens batch folders under the allowed roots (:func:`batch_roots`), and every
path a user gives goes through :func:`check_batch_path` — the one place that decides, so a
site-wide access policy can replace it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sarviz.errors import AccessDenied, SarvizError
from sarviz.formats import evaluation_report as er
from sarviz.formats.batch_folder import EVALUATION_DIR, OPTICAL_FILE, REAL_FILE, SCENE_FILE, SETTINGS_FILE, BatchFolder
from sarviz.ui.text import plain

STATUS_COLOURS = {"done": "#1a9850", "failed": "#d73027"}
MAX_LISTED = 200


class BatchAccessError(AccessDenied):
    """The folder may not be opened from the app (outside the allowed roots, or not a batch)."""


def batch_roots() -> list[Path]:
    """Where the app may open batch folders: the app's allowed roots (:func:`sarviz.access.allowed_roots`:
    the scene folder, ``SARVIZ_BATCHES`` — default ``$SARVIZ_HOME/batches`` — and ``SARVIZ_ROOTS``)."""
    from sarviz.access import allowed_roots

    return list(allowed_roots())


def check_batch_path(path: str | os.PathLike, roots: list[Path] | None = None) -> Path:
    """The resolved batch folder if it lies under an allowed root and is a batch, else BatchAccessError.

    The message never names server paths beyond what the user typed.
    """
    if roots is None:  # the app's one access policy (sarviz.access): roots, symlinks, control characters
        from sarviz.access import AccessDenied, resolve_user_path

        try:
            resolved = resolve_user_path(str(path), kind="folder")
        except AccessDenied as exc:
            raise BatchAccessError(str(exc)) from None
    else:
        try:
            resolved = Path(os.path.expanduser(str(path))).resolve(strict=True)
        except (OSError, RuntimeError):
            raise BatchAccessError("no such folder") from None
        if not any(resolved == r or r in resolved.parents for r in roots):
            raise BatchAccessError("this folder is outside the folders the app may open")
    if not BatchFolder.is_batch_folder(resolved):
        raise BatchAccessError(f"this folder is not a sarviz batch folder (no {SETTINGS_FILE})")
    from sarviz.access import links_leaving_roots

    # the page reads the manifest, items, images and reports inside: none may lead out of the roots
    leaving = links_leaving_roots(resolved, roots=roots)
    if leaving:
        names = ", ".join(str(p.relative_to(resolved)) for p in leaving[:3]) + (" …" if len(leaving) > 3 else "")
        raise BatchAccessError(
            f"this batch folder holds {len(leaving)} link(s) leading outside the folders the app may open ({names})"
        )
    return resolved


def find_batches(roots: list[Path] | None = None, depth: int = 3) -> list[Path]:
    """Batch folders (holding batch.json) under the roots, at most ``depth`` levels down.

    Linked folders are not entered, and a folder whose batch.json leads outside the roots is not
    listed (:func:`sarviz.access.leads_inside`, the check of every listed path).
    """
    from sarviz.access import leads_inside

    roots = batch_roots() if roots is None else roots
    real_roots = [r.resolve() for r in roots]
    found: list[Path] = []
    for root in roots:
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            level = len(here.relative_to(root).parts)
            if SETTINGS_FILE in filenames:
                if leads_inside(here / SETTINGS_FILE, real_roots):
                    found.append(here)
                dirnames[:] = []
            elif level >= depth:
                dirnames[:] = []
            else:
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            if len(found) >= MAX_LISTED:
                return sorted(found)
    return sorted(found)


def manifest_rows(folder: BatchFolder) -> list[dict[str, Any]]:
    """The manifest, with the finished items' records filling in for a manifest not written yet."""
    rows = {r["id"]: r for r in folder.read_manifest()}
    for item_id in folder.done_ids():
        rows.setdefault(item_id, folder.item_record(item_id))
    return sorted(rows.values(), key=lambda r: str(r["id"]))


def items_geojson(folder: BatchFolder, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Item footprints (finished items, from their STAC Items) and failed points, as GeoJSON."""
    features = []
    for row in rows:
        props = {
            "id": row["id"],
            "status": row.get("status", ""),
            "class": row.get("class") or "",
            "error": (row.get("error") or "")[:160],
        }
        if row.get("status") == "done" and folder.item_json(row["id"]).is_file():
            item = json.loads(folder.item_json(row["id"]).read_text(encoding="utf-8"))
            features.append({"type": "Feature", "geometry": item["geometry"], "properties": props})
        else:
            try:
                lon, lat = float(row["lon"]), float(row["lat"])
            except (KeyError, TypeError, ValueError):
                continue
            features.append(
                {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": props}
            )
    return {"type": "FeatureCollection", "features": features}


def build_batch_map(folder: BatchFolder, rows: list[dict[str, Any]], tiles: str | None = "OpenStreetMap"):
    """A leafmap (folium) map: item footprints and a marker a point, green done / red failed."""
    import folium
    import leafmap.foliumap as leafmap

    points = [(float(r["lat"]), float(r["lon"])) for r in rows if r.get("lat") not in (None, "")]
    center = [sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)] if points else [20, 0]
    m = leafmap.Map(
        center=center,
        zoom=10 if points else 2,
        draw_control=False,
        measure_control=False,
        fullscreen_control=False,
        search_control=False,
        scale_control=True,
        layers_control=False,
        toolbar_control=False,
        tiles=tiles,
    )
    gj = items_geojson(folder, rows)
    polys = {"type": "FeatureCollection", "features": [f for f in gj["features"] if f["geometry"]["type"] != "Point"]}
    if polys["features"]:
        folium.GeoJson(
            polys,
            name="items",
            style_function=lambda f: {
                "color": STATUS_COLOURS.get(f["properties"]["status"], "#555"),
                "weight": 2,
                "fillOpacity": 0.2,
            },
            tooltip=folium.GeoJsonTooltip(fields=["id", "status", "class"]),
        ).add_to(m)
    for row in rows:
        try:
            lat, lon = float(row["lat"]), float(row["lon"])
        except (KeyError, TypeError, ValueError):
            continue
        tip = f"{row['id']} · {row.get('status')}" + (f" · {row.get('class')}" if row.get("class") else "")
        if row.get("status") == "failed":
            tip += f" · {(row.get('error') or '')[:120]}"
        folium.CircleMarker(
            [lat, lon],
            radius=5,
            color=STATUS_COLOURS.get(str(row.get("status")), "#555"),
            fill=True,
            fill_opacity=0.9,
            tooltip=tip,
        ).add_to(m)
    if points:
        lats, lons = [p[0] for p in points], [p[1] for p in points]
        m.fit_bounds([[min(lats), min(lons)], [max(lats), max(lons)]])
    from sarviz.ui.map import served_locally

    return served_locally(m)  # the map page's local Leaflet and offline base map, not the CDNs


def nearest_item(rows: list[dict[str, Any]], lat: float, lon: float) -> str | None:
    """The id of the finished item nearest to a click (for picking an item on the map)."""
    import math

    best, best_d = None, math.inf
    for r in rows:
        if r.get("status") != "done":
            continue
        d = (float(r["lat"]) - lat) ** 2 + ((float(r["lon"]) - lon) * math.cos(math.radians(lat))) ** 2
        if d < best_d:
            best, best_d = r["id"], d
    return best


def item_seeds(folder: BatchFolder, item_id: str) -> list[int]:
    return list(folder.generated_files(item_id))


def load_item(folder: BatchFolder, item_id: str, seed: int | None = None):
    """(scene with optical/real S1/embedding, generated result of ``seed`` (first if None), seeds)."""
    from sarviz.generators.base import GenerationResult
    from sarviz.metrics.report import read_sar_file
    from sarviz.scene import Scene, read_scene

    base = folder.item_dir(item_id)
    seeds = item_seeds(folder, item_id)
    if (base / SCENE_FILE).is_file():
        scene = read_scene(base / SCENE_FILE)
    else:  # a batch made with --no-scene-copy: real and optical only
        real = read_sar_file(str(base / REAL_FILE), "real") if (base / REAL_FILE).is_file() else None
        optical = read_scene(base / OPTICAL_FILE, layers=("optical",)) if (base / OPTICAL_FILE).is_file() else None
        like = real or optical
        if like is None:
            raise BatchAccessError(f"item {item_id} has neither {SCENE_FILE}, {REAL_FILE} nor {OPTICAL_FILE}")
        scene = Scene(
            crs=like.crs,
            transform=like.transform,
            width=like.width,
            height=like.height,
            vv_db=real.vv_db if real else None,
            vh_db=real.vh_db if real else None,
            optical=optical.optical if optical else None,
        )
    scene.scene_id = item_id
    result = GenerationResult.from_geotiff(folder.generated_files(item_id)[seeds[0] if seed is None else seed])
    return scene, result, seeds


def batch_page() -> None:
    import streamlit as st
    from streamlit_folium import st_folium

    from sarviz.ui.inspection import render_inspection

    st.title("Batch runs")
    st.caption(
        "Batch folders written by `sarviz batch` (layout: docs/batch.md). The app opens batch folders in the "
        "scene folder, in SARVIZ_HOME/batches and in SARVIZ_BATCHES."
    )
    roots = batch_roots()
    known = find_batches(roots)
    labels = {str(p): p for p in known}
    choice = st.selectbox("Batch folder", ["(type a path)"] + list(labels), key="batch-pick")
    typed = st.text_input("Path of a batch folder", key="batch-path") if choice == "(type a path)" else choice
    if not typed:
        if not known:
            st.info(
                "No batch folder found under the allowed folders yet. Make one with `sarviz batch --points FILE "
                "--model emulator --out ~/.sarviz/batches/NAME`."
            )
        return
    try:
        folder = BatchFolder(check_batch_path(typed, roots))
        settings = folder.read_settings()
    except SarvizError as exc:  # BatchAccessError, or a folder that is not a valid batch
        st.error(f"Cannot open this batch: {plain(exc)}")
        return
    cfg = settings.get("config", {})
    rows = manifest_rows(folder)
    done = sum(r.get("status") == "done" for r in rows)
    failed = sum(r.get("status") == "failed" for r in rows)
    c = st.columns(4)
    c[0].metric("items done", done)
    c[1].metric("failed", failed)
    c[2].metric("model", cfg.get("model", "?"))
    c[3].metric(
        "seeds × requested size",
        f"{len(cfg.get('seeds', []))} × {cfg.get('size', '?')} px",
        help="the patch size asked for; an item is smaller where its scene is (each item's own size is "
        "given above its images)",
    )
    state = st_folium(
        build_batch_map(folder, rows),
        height=420,
        use_container_width=True,
        returned_objects=["last_clicked", "last_object_clicked"],
        key="batch-map",
    )
    from sarviz.ui.map import clicked_point

    clicked = clicked_point(state)
    done_ids = [r["id"] for r in rows if r.get("status") == "done"]
    if clicked is not None:
        picked = nearest_item(rows, *clicked)
        if picked and st.session_state.get("batch-clicked") != clicked:
            st.session_state["batch-clicked"] = clicked
            st.session_state["batch-item"] = picked
    with st.expander(f"Manifest ({len(rows)} rows)", expanded=False):
        import pandas as pd

        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if failed:
        with st.expander(f"Failed items ({failed})"):
            for r in rows:
                if r.get("status") == "failed":
                    # plain(): errors quote file names and user text, never rendered as markdown
                    st.markdown(f"- **{plain(r['id'])}** ({plain(r.get('stage'))}): {plain(r.get('error'))}")
    _evaluation(folder)
    if not done_ids:
        st.info("No finished item in this batch yet.")
        return
    if st.session_state.get("batch-item") not in done_ids:
        st.session_state["batch-item"] = done_ids[0]
    item_id = st.selectbox("Item (or click on the map)", done_ids, key="batch-item")
    record = next(r for r in rows if r["id"] == item_id)
    seeds = item_seeds(folder, item_id)
    seed = st.radio("Seed", seeds, horizontal=True, key="batch-seed") if len(seeds) > 1 else seeds[0]
    scene, result, _ = load_item(folder, item_id, seed)
    mode = record.get("s1_mode") or "unknown"
    st.caption(
        f"{plain(item_id)} · {scene.width}×{scene.height} px, {scene.pixel_size_text()} · class "
        f"{plain(record.get('class') or '–')} · scene {plain(record.get('scene_id'))} · real Sentinel-1: "
        f"{mode}"
        + (
            " (a median composite, not one acquisition: speckle statistics are not comparable)"
            if mode == "composite"
            else ""
        )
    )
    render_inspection(scene, result, key=f"batch-{item_id}-{seed}")


def _evaluation(folder: BatchFolder) -> None:
    import streamlit as st

    report = folder.root / EVALUATION_DIR
    if not (report / er.TABLE1_CSV).is_file():
        st.caption(f"No evaluation yet: `sarviz evaluate {folder.root.name}` writes the papers' tables.")
        return
    import json

    import pandas as pd

    try:
        proxy_note = json.loads((report / "evaluation.json").read_text(encoding="utf-8")).get("proxy_note")
    except (OSError, ValueError, AttributeError):
        proxy_note = None
    with st.expander("Evaluation (sarviz evaluate)", expanded=False):
        if proxy_note:
            st.warning(f"PROXY: {proxy_note}; every number below measures the generator on a stand-in input.")
        st.markdown("**Table I layout (seed 000)**")
        st.dataframe(pd.read_csv(report / er.TABLE1_CSV), hide_index=True, width="stretch")
        if (report / er.KL_BY_CLASS_CSV).is_file():
            st.markdown("**Per-class KL (seed 001 protocol)**")
            st.dataframe(pd.read_csv(report / er.KL_BY_CLASS_CSV), hide_index=True, width="stretch")
        for name in (er.METRICS_BOXPLOT_PNG, er.KL_BY_CLASS_PNG):
            if (report / name).is_file():
                st.image(str(report / name))
        if (report / er.DOWNSTREAM_MD).is_file():
            st.markdown((report / er.DOWNSTREAM_MD).read_text(encoding="utf-8"))
