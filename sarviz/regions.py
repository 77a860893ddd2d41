"""Region files: the (Multi)Polygons of a GeoJSON file, checked, for commands that grid a region.

`sarviz batch --region` and `sarviz dataset build --region` both lay points inside a region
(each on its own grid: km spacing around the region's centre for batches, the patch stride on
local UTM for datasets); reading and checking the file is the same for both, so it lives here.
"""

from __future__ import annotations

import json
from pathlib import Path

from sarviz.errors import SceneError


def read_region(path: str | Path) -> list[tuple[object, dict]]:
    """[(shapely polygon, feature properties)] of a GeoJSON FeatureCollection, Feature or bare geometry.

    Every feature must be a valid, non-empty Polygon or MultiPolygon; otherwise a one-line
    :class:`~sarviz.errors.SceneError` names the file and the feature.
    """
    from shapely.geometry import shape

    path = Path(path)
    if not path.is_file():
        raise SceneError(f"region file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as exc:
        raise SceneError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SceneError(f"{path}: not a GeoJSON object")
    if data.get("type") == "FeatureCollection":
        feats = data.get("features") or []
    elif data.get("type") == "Feature":
        feats = [data]
    else:
        feats = [{"type": "Feature", "geometry": data, "properties": {}}]
    out = []
    for i, feat in enumerate(feats, 1):
        geom = (feat or {}).get("geometry") or {}
        if geom.get("type") not in ("Polygon", "MultiPolygon"):
            raise SceneError(f"{path}: region feature {i} is a {geom.get('type')!r}; a region is a Polygon or "
                             "MultiPolygon")
        poly = shape(geom)
        if not poly.is_valid or poly.is_empty:
            raise SceneError(f"{path}: region feature {i} is not a valid polygon")
        out.append((poly, feat.get("properties") or {}))
    if not out:
        raise SceneError(f"{path}: the region file has no polygon")
    return out
