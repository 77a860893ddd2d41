"""The local scene store as a source: scenes already on disk (imported or cached fetches).

A stored scene serves a click when its footprint contains the whole patch and it was
fetched for the same year (scenes without a year, e.g. imported samples, serve any
year). When the stored scene is on the same grid as the patch (every cached fetch is),
the patch is a window read — no resampling — which is what makes a second visit instant.
"""

from __future__ import annotations

import math
import os
import time
from typing import Sequence

from rasterio.crs import CRS
from rasterio.windows import Window
from shapely.geometry import box
from shapely.ops import unary_union

from sarviz.scene import LAYERS, Scene, footprint_wgs84, read_scene, read_scene_meta
from sarviz.sources.base import (
    GROUP_LABELS,
    LAYER_GROUPS,
    S1_PROVENANCE_KEYS,
    FetchProgress,
    FetchRequest,
    LayerReport,
    NoDataHere,
    SourceResult,
)
from sarviz.store import SceneEntry, SceneStore

_GROUP_OF = {layer: group for group, layers in LAYER_GROUPS.items() for layer in layers}


def _lonlat_boxes(west: float, south: float, east: float, north: float) -> list:
    if east >= west:
        return [box(west, south, east, north)]
    return [box(west, south, 180.0, north), box(-180.0, south, east, north)]


def aligned_window(meta: dict, crs: CRS, transform, width: int, height: int) -> Window | None:
    """The window of a stored scene that *is* the patch grid, or None if the grids differ."""
    if CRS.from_user_input(meta["crs"]) != crs:
        return None
    st = meta["transform"]
    if not all(
        math.isclose(a, b, abs_tol=1e-9)
        for a, b in zip((st.a, st.b, st.d, st.e), (transform.a, transform.b, transform.d, transform.e))
    ):
        return None
    col, row = ~st * (transform.c, transform.f)
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    col, row = int(round(col)), int(round(row))
    if col < 0 or row < 0 or col + width > meta["width"] or row + height > meta["height"]:
        return None
    return Window(col, row, width, height)


class LocalSource:
    """Scenes in a :class:`~sarviz.store.SceneStore` folder."""

    name = "local"

    def __init__(self, folder: str | os.PathLike, create: bool = True) -> None:
        self.store = SceneStore(folder, create=create)

    def candidates(self, request: FetchRequest) -> list[SceneEntry]:
        crs, transform = request.grid
        patch = unary_union(_lonlat_boxes(*footprint_wgs84(crs, transform, request.size_px, request.size_px)))
        out = []
        for entry in self.store.find(request.lat, request.lon):
            year = entry.dates.get("year")
            if year not in (None, "", str(request.year)):
                continue
            cover = unary_union(entry.boxes()).buffer(1e-7)
            if cover.contains(patch):
                out.append(entry)
        return out

    def read_patch(self, entry: SceneEntry, request: FetchRequest) -> Scene:
        crs, transform = request.grid
        size = request.size_px
        meta = read_scene_meta(entry.path)
        window = aligned_window(meta, crs, transform, size, size)
        if window is not None:
            return read_scene(entry.path, window=window)
        return read_scene(entry.path).reproject(crs, transform, size, size)

    @staticmethod
    def stored_s1_mode(scene: Scene) -> str | None:
        """ "single"/"composite" for a stored scene's Sentinel-1, None when it is not recorded
        (imported samples). Older fetched scenes say it as ``composite`` median/nearest."""
        prov = scene.provenance or {}
        mode = prov.get("s1_mode")
        if mode in ("single", "composite"):
            return mode
        detail = (prov.get("layers", {}).get("vv_db") or {}).get("detail") or {}
        if detail.get("s1_mode"):
            return detail["s1_mode"]
        return {"median": "composite", "nearest": "single"}.get(detail.get("composite") or "")

    def fetch(
        self, request: FetchRequest, groups: Sequence[str], progress: FetchProgress | None = None
    ) -> SourceResult:
        started = time.perf_counter()
        result = SourceResult(source=self.name)
        self.store.refresh()  # another process (or the CLI) may have cached scenes meanwhile
        wanted = [layer for layer in LAYERS if _GROUP_OF[layer] in groups]
        for entry in self.candidates(request):
            if progress:
                progress(0.5, f"reading {entry.path.name} from the local store")
            scene = self.read_patch(entry, request)
            pass_ = entry.dates.get("s1_pass")
            stored_mode = self.stored_s1_mode(scene)
            s1_keys = {k: scene.provenance[k] for k in S1_PROVENANCE_KEYS if k in (scene.provenance or {})}
            for layer in wanted:
                if layer in result.layers:
                    continue
                if _GROUP_OF[layer] == "s1" and request.s1_pass and pass_ and pass_ != request.s1_pass:
                    continue
                if _GROUP_OF[layer] == "s1" and stored_mode and stored_mode != request.s1_mode:
                    continue  # a composite never stands in for a single acquisition, nor the reverse
                arr = getattr(scene, layer)
                if arr is None:
                    continue
                origin = scene.provenance.get("layers", {}).get(layer, {})
                product = f"scene file {entry.path.name}"
                if origin:
                    product += f" (fetched from {origin.get('source')}: {origin.get('product')})"
                group = _GROUP_OF[layer]
                detail = {"path": str(entry.path)}
                if group == "s1":
                    detail.update(s1_keys or ({"s1_mode": stored_mode} if stored_mode else {}))
                result.add(
                    layer,
                    arr,
                    LayerReport(
                        layer, "local", product, str(origin.get("dates") or entry.dates.get(group, "")), detail
                    ),
                )
                if group in entry.dates:
                    result.dates[group] = entry.dates[group]
        for group in groups:
            if not any(layer in result.layers for layer in LAYER_GROUPS[group]):
                result.fail(
                    group,
                    NoDataHere(
                        f"no scene in the local store {self.store.folder} covers this patch "
                        f"with {GROUP_LABELS[group]} for {request.year}",
                        service="local store",
                        layer=group,
                    ),
                )
        if progress:
            progress(1.0, "local store done")
        result.seconds = time.perf_counter() - started
        return result
