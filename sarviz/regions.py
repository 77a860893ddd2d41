"""Region and points files: the strict readers of every command (one each).

:func:`read_region` — the (Multi)Polygons of a GeoJSON file, checked, for commands that grid a region.
:func:`read_points` — the points of a CSV or GeoJSON points file (``fetch``, ``batch``, ``dataset build``).

`sarviz batch --region` and `sarviz dataset build --region` both lay points inside a region
(each on its own grid: km spacing around the region's centre for batches, the patch stride on
local UTM for datasets); reading and checking the file is the same for both, so it lives here.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Callable

from sarviz.errors import SceneError

#: deepest JSON nesting a region or points file may have (a Polygon needs 4 levels, a
#: FeatureCollection of MultiPolygons 7): deeper files are refused before anything recurses
MAX_NESTING = 32
#: a grid on one azimuthal projection cannot represent regions beyond these
MAX_LON_SPAN, MAX_ABS_LAT = 170.0, 85.0
_LAT = ("lat", "latitude", "y")
_LON = ("lon", "lng", "long", "longitude", "x")


def _load_json(path: Path, what: str) -> object:
    if not path.is_file():
        raise SceneError(f"{what} {path} does not exist")
    text = path.read_text(encoding="utf-8-sig")
    depth = level = 0
    in_string = escaped = False
    for ch in text:  # nesting checked before json.loads (a 100k-deep file is a RecursionError there)
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            depth = max(depth, level)
            if depth > MAX_NESTING:
                raise SceneError(f"{path}: JSON nested more than {MAX_NESTING} levels deep; not a {what}")
        elif ch in "]}":
            level -= 1
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SceneError(f"{path}: not valid JSON ({str(exc).splitlines()[0][:200]})") from None


def _features(data: object, path: Path, what: str) -> list[object]:
    if not isinstance(data, dict):
        raise SceneError(f"{path}: not a GeoJSON object (a JSON {type(data).__name__})")
    if data.get("type") == "FeatureCollection":
        feats = data.get("features")
        if not isinstance(feats, list):
            raise SceneError(f"{path}: the FeatureCollection has no list of features")
        return feats
    if data.get("type") == "Feature":
        return [data]
    return [{"type": "Feature", "geometry": data, "properties": {}}]


def _position(pos: object, where: str) -> tuple[float, float]:
    """A [lon, lat(z)] position, checked: numbers, finite, on the globe."""
    if (
        not isinstance(pos, list)
        or not 2 <= len(pos) <= 3
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pos)
    ):
        raise SceneError(f"{where}: a position must be [longitude, latitude], got {json.dumps(pos)[:80]}")
    lon, lat = float(pos[0]), float(pos[1])
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise SceneError(f"{where}: a position is not a finite number ({json.dumps(pos)[:80]})")
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise SceneError(f"{where}: position {lon}, {lat} is off the globe (longitude −180…180, latitude −90…90)")
    return lon, lat


def _rings(coords: object, where: str) -> list[list[tuple[float, float]]]:
    if not isinstance(coords, list) or not coords:
        raise SceneError(f"{where}: a polygon needs a list of rings")
    rings = []
    for r, ring in enumerate(coords, 1):
        if not isinstance(ring, list) or len(ring) < 4:
            raise SceneError(f"{where}: ring {r} needs at least 4 positions (the first repeated last)")
        rings.append([_position(p, f"{where}, ring {r}") for p in ring])
    return rings


def _check_griddable(rings: list[list[tuple[float, float]]], where: str) -> None:
    """Refuse what one grid projection cannot represent: crossing the antimeridian, too wide, a pole."""
    lons = [p[0] for ring in rings for p in ring]
    if min(lons) <= -180.0 and max(lons) >= 180.0:
        raise SceneError(
            f"{where} spans 360° of longitude (the whole globe); a region grid covers at most "
            f"{MAX_LON_SPAN:.0f}° — give the area you want as smaller regions"
        )
    for ring in rings:
        if any(abs(b[0] - a[0]) > 180.0 for a, b in zip(ring, ring[1:])):
            raise SceneError(
                f"{where} crosses the antimeridian (±180° longitude); split it into one polygon on each side"
            )
    lons = [p[0] for ring in rings for p in ring]
    lats = [p[1] for ring in rings for p in ring]
    if max(lons) - min(lons) > MAX_LON_SPAN:
        raise SceneError(
            f"{where} spans {max(lons) - min(lons):.0f}° of longitude; a region grid covers at most "
            f"{MAX_LON_SPAN:.0f}° — split it into smaller regions"
        )
    if max(abs(v) for v in lats) > MAX_ABS_LAT:
        raise SceneError(
            f"{where} reaches beyond {MAX_ABS_LAT:.0f}° latitude (towards a pole), where a region "
            "grid is not defined; Sentinel-1/-2 coverage ends there too"
        )


def read_region(path: str | Path) -> list[tuple[object, dict]]:
    """[(shapely polygon, feature properties)] of a GeoJSON FeatureCollection, Feature or bare geometry.

    A strict reader: every feature is an object whose geometry is a Polygon or MultiPolygon of
    finite [longitude, latitude] positions on the globe, checked before shapely or pyproj see
    it, and a region a grid can represent (no antimeridian crossing, at most 170° wide, not
    beyond 85° latitude). Otherwise a one-line :class:`~sarviz.errors.SceneError` names the
    file, the feature number and what is wrong.
    """
    from shapely.geometry import shape

    path = Path(path)
    feats = _features(_load_json(path, "region file"), path, "region file")
    out = []
    for i, feat in enumerate(feats, 1):
        where = f"{path}: region feature {i}"
        if not isinstance(feat, dict):
            raise SceneError(f"{where} is a JSON {type(feat).__name__}, not a GeoJSON Feature object")
        geom = feat.get("geometry")
        if not isinstance(geom, dict):
            raise SceneError(f"{where} has no geometry object")
        kind = geom.get("type")
        if kind not in ("Polygon", "MultiPolygon"):
            raise SceneError(f"{where} is a {kind!r}; a region is a Polygon or MultiPolygon")
        coords = geom.get("coordinates")
        if kind == "Polygon":
            rings = _rings(coords, where)
        else:
            if not isinstance(coords, list) or not coords:
                raise SceneError(f"{where}: a MultiPolygon needs a list of polygons")
            rings = [r for k, poly in enumerate(coords, 1) for r in _rings(poly, f"{where}, polygon {k}")]
        _check_griddable(rings, where)
        props = feat.get("properties")
        if props is not None and not isinstance(props, dict):
            raise SceneError(f"{where}: properties must be an object")
        poly = shape(geom)
        if not poly.is_valid or poly.is_empty:
            raise SceneError(f"{where} is not a valid polygon (it crosses itself or has no area)")
        out.append((poly, props or {}))
    if not out:
        raise SceneError(f"{path}: the region file has no polygon")
    return out


#: the grid's distances may be this much longer on the ground than laid out (projection scale,
#: the aeqd/UTM grids err far less; see :func:`check_grid_covers`)
COVER_SLACK = 1.02
#: at most about this many test points inside a region (the check's cost stays the same for any size)
COVER_SAMPLES = 40_000


def densified(region: object, cell_m: float) -> object:
    """``region`` with extra vertices at most a quarter cell (and 0.25°) apart along its edges.

    GeoJSON edges are straight in longitude/latitude (RFC 7946 §3.1.1). Projected vertex by
    vertex, a long edge becomes a chord of the projected region (a 160° edge along a parallel
    cuts off a quarter of a large region; along 80° N it cuts off a sliver); projected with its
    extra vertices it follows the edge the file describes.
    """
    from shapely import segmentize

    return segmentize(region, max_segment_length=min(0.25, cell_m / 4 / 111_320.0))


def check_grid_covers(region: object, lons: object, lats: object, cell_m: float, where: str) -> None:
    """Refuse a grid that does not cover its region: :class:`~sarviz.errors.SceneError` saying what is left out.

    ``region`` is the (Multi)Polygon in longitude/latitude; ``lons``/``lats`` are the grid's
    points, each standing for a square cell of ``cell_m`` metres. The test does not trust the
    projection the grid was laid on (a grid on a projection that cannot represent the region is
    what it must catch): test points spread evenly over the region on the ground (at most
    :data:`COVER_SAMPLES`, never farther apart than half a cell) must each have a grid point
    within half a cell's diagonal, measured as straight-line distances between Earth-centred
    WGS84 coordinates. Test points closer than that to the region's edge are exempt (the
    edge tolerance: the nearest grid point of a cell cut by the edge may lie outside the region).
    """
    import numpy as np
    from pyproj import Geod, Transformer
    from scipy.spatial import cKDTree
    from shapely import contains_xy, segmentize

    lons, lats = np.asarray(lons, dtype=float), np.asarray(lats, dtype=float)
    reach = cell_m * math.sqrt(0.5) * COVER_SLACK  # half a cell's diagonal
    area = abs(Geod(ellps="WGS84").geometry_area_perimeter(region)[0])
    step_m = max(cell_m / 2, math.sqrt(area / COVER_SAMPLES))
    west, south, east, north = region.bounds  # type: ignore[attr-defined]
    m_per_deg = 111_320.0
    rows = np.arange(south + step_m / m_per_deg / 2, north, step_m / m_per_deg)
    xs_list, ys_list = [], []
    for lat in rows:  # equal ground spacing along each row of latitude
        dlon = step_m / (m_per_deg * max(math.cos(math.radians(lat)), 0.05))
        row_lons = np.arange(west + dlon / 2, east, dlon)
        xs_list.append(row_lons)
        ys_list.append(np.full(row_lons.size, lat))
    xs, ys = (np.concatenate(xs_list), np.concatenate(ys_list)) if xs_list else (np.empty(0), np.empty(0))
    inside = contains_xy(region, xs, ys)
    xs, ys = xs[inside], ys[inside]
    if xs.size == 0:
        return  # a region thinner than the test spacing: all edge, nothing to test
    ecef = Transformer.from_crs("EPSG:4326", "EPSG:4978", always_xy=True)

    def xyz(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        return np.column_stack(ecef.transform(lon, lat, np.zeros_like(lon)))

    boundary = segmentize(region.boundary, reach / 4 / m_per_deg)  # type: ignore[attr-defined]
    parts = getattr(boundary, "geoms", [boundary])
    edge = np.concatenate([np.asarray(g.coords)[:, :2] for g in parts])
    # longitude segments are shorter on the ground than latitude ones: the spacing above is an upper bound
    near_edge = cKDTree(xyz(edge[:, 0], edge[:, 1])).query(xyz(xs, ys), distance_upper_bound=reach)[0] <= reach
    if lons.size == 0:
        uncovered = ~near_edge
    else:
        dist = cKDTree(xyz(lons, lats)).query(xyz(xs, ys), distance_upper_bound=reach * 2)[0]
        uncovered = (dist > reach) & ~near_edge
    if not uncovered.any():
        return
    ux, uy = xs[uncovered], ys[uncovered]
    share = uncovered.sum() / xs.size
    examples = "; ".join(f"{y:.3f}, {x:.3f}" for x, y in list(zip(ux, uy))[:: max(1, ux.size // 3)][:3])
    raise SceneError(
        f"{where}: the grid does not cover the region — {share:.1%} of it (test points farther than "
        f"{reach / 1000:.3g} km from any grid point) is left out, within longitude {ux.min():.3f}…{ux.max():.3f} "
        f"and latitude {uy.min():.3f}…{uy.max():.3f} (e.g. at lat, lon {examples}); split the region into "
        "smaller ones"
    )


def read_points(path: str | Path, report: Callable[[str], None] | None = None) -> list[dict]:
    """Points from a CSV (lat/lon columns, or a ``place`` column resolved through the offline
    gazetteer where a row has no lat/lon) or a GeoJSON of Point features; each {lat, lon, year?, id?, place?}.

    The one strict points reader of every command (``fetch``, ``batch``, ``dataset build``): a
    CSV row with more or fewer fields than the header, a Point that is not an object or whose
    coordinates are not finite numbers on the globe is refused in one line naming the file and
    the line or feature number. ``report`` is told what each ``place`` was resolved to (the
    command line prints it, so the user can check the name meant what they thought).
    """
    path = Path(path)
    if not path.is_file():
        raise SceneError(f"points file {path} does not exist")
    points: list[dict] = []
    if path.suffix.lower() in (".geojson", ".json"):
        feats = _features(_load_json(path, "points file"), path, "points file")
        for i, feat in enumerate(feats, 1):
            where = f"{path}: feature {i}"
            if not isinstance(feat, dict):
                raise SceneError(f"{where} is a JSON {type(feat).__name__}, not a GeoJSON Feature object")
            geom = feat.get("geometry")
            if not isinstance(geom, dict) or geom.get("type") != "Point":
                kind = geom.get("type") if isinstance(geom, dict) else None
                raise SceneError(f"{where} is a {kind!r}, only Point features are supported")
            lon, lat = _position(geom.get("coordinates"), where)
            props = feat.get("properties")
            if props is not None and not isinstance(props, dict):
                raise SceneError(f"{where}: properties must be an object")
            props = props or {}
            points.append({"lat": lat, "lon": lon, "year": props.get("year"), "id": props.get("id", f"#{i}")})
    else:
        text = path.read_text(encoding="utf-8-sig")
        rows = list(csv.reader(text.splitlines()))
        while rows and not any(c.strip() for c in rows[-1]):
            rows.pop()  # trailing blank lines
        if len(rows) < 2:
            raise SceneError(f"{path}: no rows; expected a header with lat and lon columns")
        header = [c.strip() for c in rows[0]]
        cols = {c.lower(): k for k, c in enumerate(header) if c}
        lat_c = next((cols[c] for c in _LAT if c in cols), None)
        lon_c = next((cols[c] for c in _LON if c in cols), None)
        place_c = cols.get("place")
        if (lat_c is None or lon_c is None) and place_c is None:
            raise SceneError(f"{path}: needs lat and lon columns or a place column (found {header})")
        for line, row in enumerate(rows[1:], 2):
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise SceneError(f"{path}: line {line} has {len(row)} field(s) but the header has {len(header)}")
            year = row[cols["year"]].strip() if "year" in cols else ""
            point: dict[str, Any] = {
                "lat": row[lat_c].strip() if lat_c is not None else "",
                "lon": row[lon_c].strip() if lon_c is not None else "",
                "year": year or None,
                "id": (row[cols["id"]].strip() if "id" in cols else "") or f"line {line}",
            }
            name = row[place_c].strip() if place_c is not None else ""
            if name and not point["lat"] and not point["lon"]:
                # a row without coordinates names a place: the one gazetteer resolves it (an
                # ambiguous name or a typo is refused with the candidates, naming the line)
                from sarviz.gazetteer import resolution_text, resolve

                try:
                    place, others = resolve(name)
                except SceneError as exc:
                    raise SceneError(f"{path}: line {line}: place: {exc}") from None
                point.update(lat=place.lat, lon=place.lon, place=place.description)
                if report is not None:
                    report(resolution_text(f"{path.name} line {line}: place", name, place, others))
            points.append(point)
    if not points:
        raise SceneError(f"{path}: no points in the file")
    return points
