"""The points of a batch: from a points file (as ``sarviz fetch --points`` reads it) or a region grid.

A points file is read by :func:`sarviz.regions.read_points` (CSV with lat/lon columns,
optional ``id`` and ``year``; or a GeoJSON of Point features). The batch also keeps two
optional columns/properties: ``class`` (also ``label``, ``landcover``) — the scene class used by
``sarviz evaluate --by class`` and ``sarviz evaluate-downstream`` — and ``region``.

A region (GeoJSON Polygon/MultiPolygon, a Feature or a FeatureCollection of them) becomes
points on a square grid with ``spacing_km`` between neighbours, laid out in an azimuthal
equidistant projection centred on the region (distances from the centre are exact, and the
grid spacing errs by < 0.5 % within 500 km of it; see docs/batch.md). A feature's ``class`` and
``region`` (or ``name``) properties are given to the points inside it.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from sarviz.scene import SceneError, validate_latlon

_CLASS_KEYS = ("class", "label", "landcover")
_MAX_GRID_POINTS = 1_000_000


@dataclass(frozen=True)
class BatchPoint:
    """One item of a batch: where, and what it is (class/region may be empty)."""

    id: str
    lat: float
    lon: float
    year: int | None = None
    cls: str = ""
    region: str = ""


def safe_id(raw: str) -> str:
    """An item id that is a safe folder name: letters, digits, ``-_.`` (others become ``_``)."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(raw).strip()).strip("._")
    return keep[:100] or "item"


def _extra_columns(path: Path) -> list[dict[str, str]]:
    """class/region of each point, in the order :func:`read_points` returns them."""
    text = path.read_text(encoding="utf-8-sig")
    out: list[dict[str, str]] = []
    if path.suffix.lower() in (".geojson", ".json"):
        data = json.loads(text)
        for feat in data.get("features", [data]) if isinstance(data, dict) else []:
            props = (feat or {}).get("properties") or {}
            out.append(
                {
                    "class": str(next((props[k] for k in _CLASS_KEYS if props.get(k)), "")),
                    "region": str(props.get("region") or ""),
                }
            )
        return out
    for row in csv.DictReader(text.splitlines()):
        low = {(k or "").lower().strip(): (v or "").strip() for k, v in row.items()}
        out.append({"class": next((low[k] for k in _CLASS_KEYS if low.get(k)), ""), "region": low.get("region", "")})
    return out


def points_from_file(path: str | Path) -> list[BatchPoint]:
    """The points of a CSV/GeoJSON points file; ids made folder-safe and unique."""
    from sarviz.regions import read_points  # the one strict reader of points files

    path = Path(path)
    raw = read_points(path)
    extra = _extra_columns(path)
    points: list[BatchPoint] = []
    seen: set[str] = set()
    for i, (pt, more) in enumerate(zip(raw, extra), 1):
        lat, lon = validate_latlon(pt["lat"], pt["lon"])
        year = pt.get("year")
        try:
            year = int(float(year)) if year not in (None, "") else None
        except (TypeError, ValueError):
            raise SceneError(f"{path}: point {pt.get('id')}: year {year!r} is not a number") from None
        item_id = safe_id(pt.get("id") or f"p{i:05d}")
        if item_id in seen:
            raise SceneError(f"{path}: two points have the id {item_id!r}; ids name the batch items and must be unique")
        seen.add(item_id)
        points.append(BatchPoint(item_id, lat, lon, year, more["class"], more["region"]))
    return points


def points_from_region(path: str | Path, spacing_km: float) -> list[BatchPoint]:
    """Grid points inside a region every ``spacing_km`` km (azimuthal equidistant grid on the region's centre)."""
    from pyproj import CRS, Transformer
    from shapely import contains_xy
    from shapely.ops import transform as shp_transform
    from shapely.ops import unary_union

    if not (spacing_km > 0 and math.isfinite(spacing_km)):
        raise SceneError(f"--spacing-km must be a positive number, got {spacing_km}")
    from sarviz.regions import densified, read_region

    parts = read_region(path)
    union = unary_union([p for p, _ in parts])
    c = union.centroid
    aeqd = CRS.from_proj4(f"+proj=aeqd +lat_0={c.y} +lon_0={c.x} +datum=WGS84 +units=m +no_defs")
    fwd = Transformer.from_crs("EPSG:4326", aeqd, always_xy=True).transform
    inv = Transformer.from_crs(aeqd, "EPSG:4326", always_xy=True)
    projected = [(shp_transform(fwd, densified(p, spacing_km * 1000.0)), props) for p, props in parts]
    minx, miny, maxx, maxy = unary_union([p for p, _ in projected]).bounds
    step = spacing_km * 1000.0
    # columns/rows counted from the centre, so a grid is stable when the region grows
    c0, c1 = math.ceil(minx / step), math.floor(maxx / step)
    r0, r1 = math.ceil(miny / step), math.floor(maxy / step)
    if (c1 - c0 + 1) * (r1 - r0 + 1) > _MAX_GRID_POINTS:
        raise SceneError(
            f"the region at {spacing_km} km spacing spans more than {_MAX_GRID_POINTS:,} grid cells; "
            "use a larger --spacing-km"
        )
    import numpy as np

    cols, rows = np.meshgrid(np.arange(c0, c1 + 1), np.arange(r0, r1 + 1))
    xs, ys = cols.ravel() * step, rows.ravel() * step
    points: list[BatchPoint] = []
    taken = np.zeros(xs.size, dtype=bool)
    for k, (poly, props) in enumerate(projected):
        inside = contains_xy(poly, xs, ys) & ~taken
        taken |= inside
        cls = str(next((props[key] for key in _CLASS_KEYS if props.get(key)), ""))
        region = str(props.get("region") or props.get("name") or (f"feature{k + 1}" if len(projected) > 1 else ""))
        lons, lats = inv.transform(xs[inside], ys[inside])
        for col, row, lat, lon in zip(cols.ravel()[inside], rows.ravel()[inside], lats, lons):
            lat, lon = validate_latlon(float(lat), float(lon))
            points.append(
                BatchPoint(
                    f"g{'m' if row < 0 else ''}{abs(row):04d}_{'m' if col < 0 else ''}{abs(col):04d}",
                    round(lat, 6),
                    round(lon, 6),
                    None,
                    cls,
                    region,
                )
            )
    if not points:
        raise SceneError(
            f"no grid point at {spacing_km} km spacing falls inside the region; use a smaller --spacing-km"
        )
    from sarviz.regions import check_grid_covers

    check_grid_covers(union, [p.lon for p in points], [p.lat for p in points], step, f"{path}")
    return sorted(points, key=lambda p: p.id)
