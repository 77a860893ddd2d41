"""Region files: the (Multi)Polygons of a GeoJSON file, checked, for commands that grid a region.

`sarviz batch --region` and `sarviz dataset build --region` both lay points inside a region
(each on its own grid: km spacing around the region's centre for batches, the patch stride on
local UTM for datasets); reading and checking the file is the same for both, so it lives here.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable

from sarviz.errors import SceneError

_LAT = ("lat", "latitude", "y")
_LON = ("lon", "lng", "long", "longitude", "x")


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


# -- points files ---------------------------------------------------------------------------------
def _gazetteer_point(name: str, where: str = "place") -> tuple[float, float]:
    from sarviz.gazetteer import resolve

    try:
        place, _others = resolve(name)
    except SceneError as exc:
        raise SceneError(f"{where}: {exc}") from None
    return place.lat, place.lon


def read_points(path: str | Path, place_point: Callable[..., tuple[float, float]] | None = None) -> list[dict]:
    """Points from a CSV (lat/lon columns, or a ``place`` column resolved through the offline
    gazetteer where a row has no lat/lon) or a GeoJSON of Point features; each {lat, lon, year?, id?}.

    ``place_point(name, where=…)`` turns a place name into (lat, lon); the default is the offline
    gazetteer's :func:`sarviz.gazetteer.resolve` (the CLI passes one that also says what it chose)."""
    path = Path(path)
    if place_point is None:
        place_point = _gazetteer_point
    if not path.is_file():
        raise SceneError(f"points file {path} does not exist")
    text = path.read_text(encoding="utf-8-sig")
    points: list[dict] = []
    if path.suffix.lower() in (".geojson", ".json"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SceneError(f"{path}: not valid JSON ({exc})") from None
        features = data.get("features", [data]) if isinstance(data, dict) else []
        for i, feat in enumerate(features, 1):
            geom = (feat or {}).get("geometry") or {}
            if geom.get("type") != "Point":
                raise SceneError(f"{path}: feature {i} is a {geom.get('type')!r}, only Point features are supported")
            lon, lat = geom["coordinates"][:2]
            props = feat.get("properties") or {}
            points.append({"lat": lat, "lon": lon, "year": props.get("year"), "id": props.get("id", f"#{i}")})
    else:
        rows = list(csv.DictReader(text.splitlines()))
        if not rows:
            raise SceneError(f"{path}: no rows; expected a header with lat and lon columns")
        cols = {c.lower().strip(): c for c in rows[0].keys() if c}
        lat_c = next((cols[c] for c in _LAT if c in cols), None)
        lon_c = next((cols[c] for c in _LON if c in cols), None)
        place_c = cols.get("place")
        if not (lat_c and lon_c) and not place_c:
            raise SceneError(f"{path}: needs lat and lon columns or a place column (found {list(rows[0].keys())})")
        for i, row in enumerate(rows, 2):
            year = row.get(cols.get("year", ""), "") if "year" in cols else ""
            lat, lon = (row.get(lat_c) or "", row.get(lon_c) or "") if lat_c and lon_c else ("", "")
            if not str(lat).strip() and not str(lon).strip() and place_c and (row.get(place_c) or "").strip():
                lat, lon = place_point(row[place_c].strip(), where=f"{path.name} line {i}: place")
            points.append({"lat": lat, "lon": lon, "year": year or None,
                           "id": row.get(cols.get("id", ""), "") or f"line {i}"})
    if not points:
        raise SceneError(f"{path}: no points in the file")
    return points
