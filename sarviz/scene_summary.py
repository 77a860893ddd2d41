"""One row a scene for listings (CLI ``sarviz scenes``, the app's sidebar): id, place, dates,
layers and what the embedding layer is (AlphaEarth, a proxy, or none)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from sarviz.store import SceneEntry, SceneStore


@lru_cache(maxsize=4096)
def _embedding_kind(path: str, mtime_ns: int) -> str | None:
    # a header read (the EMBEDDING_SOURCE tag); cached per file version
    from sarviz.scene import SceneError, read_scene_meta

    try:
        tags = read_scene_meta(path)["tags"]
    except SceneError:
        return None
    source = tags.get("EMBEDDING_SOURCE")
    if source is None:
        import json

        source = json.loads(tags.get("PROVENANCE") or "{}").get("embedding_source")
    return "proxy" if str(source or "").startswith("proxy") else "AlphaEarth"


def embedding_kind(entry: SceneEntry) -> str | None:
    """'AlphaEarth', 'proxy' or None (no embedding layer) for a store entry."""
    if "embedding" not in entry.layers:
        return None
    try:
        mtime = Path(entry.path).stat().st_mtime_ns
    except OSError:
        return None
    return _embedding_kind(str(entry.path), mtime)


def scene_summaries(store: SceneStore, places: bool = False) -> list[dict[str, Any]]:
    """Rows for every scene of the store, sorted by id. ``places`` adds the nearest town."""
    rows = []
    for e in sorted(store, key=lambda e: e.scene_id):
        lat, lon = e.center_latlon
        row = {
            "id": e.scene_id,
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "width": e.width,
            "height": e.height,
            "crs": e.crs,
            "layers": list(e.layers),
            "dates": e.dates,
            "embedding": embedding_kind(e),
        }
        if places:
            from sarviz.gazetteer import describe_location

            row["place"] = describe_location(lat, lon)
        rows.append(row)
    return rows
