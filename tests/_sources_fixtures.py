"""Local stand-ins for the public sources, built by code in real formats (small).

* an AlphaEarth mosaic: Zarr v3 group with an ``embeddings`` int8 array (year, 64, y, x),
  −128 fill/nodata, sharded + zstd like the published store, attributes
  ``spatial:transform``, ``proj:code``, ``start_year``; global EPSG:4326 grid at 1e-4°,
  with data written only in small blocks around chosen points (the rest is fill);
* a regional mosaic laid out exactly like the published store
  (:func:`build_published_aef_zarr`, after geospatial-jeff/aef-mosaic ``src/io/zarr_writer.rs``):
  GeoZarr group attributes only (``proj:code``, ``spatial:*``, ``geoemb:*``), the years only
  in the ``/time`` int32 coordinate array, plus ``/x``, ``/y``, ``/band``;
* Sentinel-1 RTC and Sentinel-2 L2A COGs and STAC item JSON pointing at them;
* a minimal STAC API (landing page + ``/search``) over HTTP on localhost, so that
  pystac-client runs its real request path.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer

AEF_RES = 1e-4  # degrees
AEF_TRANSFORM = Affine(AEF_RES, 0.0, -180.0, 0.0, -AEF_RES, 90.0)
AEF_SHAPE_YX = (1_800_000, 3_600_000)
AEF_CHUNK = 256


def aef_codes(year_index: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Deterministic int8 codes for mosaic pixels: (64, len) — depends on year, band, position."""
    b = np.arange(64)[:, None]
    v = (rows[None, :] * 7 + cols[None, :] * 13 + b * 31 + year_index * 57) % 255 - 127  # in [-127, 127]
    return v.astype(np.int8)


def build_aef_zarr(
    path: Path, blocks: list[tuple[float, float, int, int]], years=(2017, 2018, 2019), nodata_every: int = 97
) -> Path:
    """Write the mosaic; ``blocks`` = (lat, lon, half_rows, half_cols) regions with data.

    Every ``nodata_every``-th pixel (by position) is −128 so that nodata handling is tested.
    Blocks crossing the antimeridian are written in two parts.
    """
    import warnings

    import zarr
    from zarr.codecs import BytesCodec, ShardingCodec, ZstdCodec

    warnings.filterwarnings("ignore", message=".*sharding_indexed.*")  # the published store is sharded too

    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.attrs.update(
        {
            "spatial:transform": list(AEF_TRANSFORM)[:6],
            "proj:code": "EPSG:4326",
            "start_year": years[0],
            "years": list(years),
            "embedding_dimensions": [f"A{i:02d}" for i in range(64)],
        }
    )
    array = group.create_array(
        "embeddings",
        shape=(len(years), 64) + AEF_SHAPE_YX,
        dtype="int8",
        fill_value=-128,
        chunks=(1, 64, AEF_CHUNK * 2, AEF_CHUNK * 2),
        serializer=ShardingCodec(chunk_shape=(1, 64, AEF_CHUNK, AEF_CHUNK), codecs=[BytesCodec(), ZstdCodec(level=1)]),
        dimension_names=("time", "embedding", "y", "x"),
    )
    ny, nx = AEF_SHAPE_YX
    for lat, lon, hr, hc in blocks:
        c, r = ~AEF_TRANSFORM * (lon, lat)
        r0, r1 = int(r) - hr, int(r) + hr
        col_ranges = []
        c0, c1 = int(c) - hc, int(c) + hc
        if c0 < 0:
            col_ranges = [(0, c1), (nx + c0, nx)]
        elif c1 > nx:
            col_ranges = [(c0, nx), (0, c1 - nx)]
        else:
            col_ranges = [(c0, c1)]
        for a, b in col_ranges:
            rr, cc = np.meshgrid(np.arange(r0, r1), np.arange(a, b), indexing="ij")
            for yi in range(len(years)):
                codes = aef_codes(yi, rr.ravel(), cc.ravel())
                codes[:, (rr.ravel() * 3 + cc.ravel()) % nodata_every == 0] = -128
                array[yi, :, r0:r1, a:b] = codes.reshape(64, r1 - r0, b - a)
    return path


PUBLISHED_AEF_RES = 0.0000898  # the published mosaic's resolution (about 10 m at the equator)


def build_published_aef_zarr(
    path: Path,
    west: float,
    north: float,
    width: int,
    height: int,
    years=(2018, 2020, 2021),
    res: float = PUBLISHED_AEF_RES,
    shard: int = 512,
    chunk: int = 256,
) -> tuple[Path, Affine]:
    """A mosaic written the way aef-mosaic's ``ZarrWriter`` writes the published one.

    Group attributes (no ``years``/``start_year``): ``proj:code``, ``spatial:dimensions``,
    ``spatial:transform`` = [res, 0, xmin, 0, −res, ymax], ``spatial:transform_type``,
    ``spatial:bbox``, ``spatial:shape``, ``spatial:registration``, ``geoemb:*``,
    ``zarr_conventions``. Arrays: ``embeddings`` (time, band, y, x) int8 fill −128, sharded
    (inner chunks ``chunk``), zstd; ``x``/``y`` float64 cell centres, ``time`` int32 years,
    ``band`` strings A00…A63. Every pixel holds :func:`aef_codes` of (year index, row, col).
    """
    import warnings

    import zarr
    from zarr.codecs import BytesCodec, ShardingCodec, ZstdCodec

    warnings.filterwarnings("ignore", message=".*sharding_indexed.*")
    transform = Affine(res, 0.0, west, 0.0, -res, north)
    bounds = [west, north - height * res, west + width * res, north]
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.attrs.update(
        {
            "proj:code": "EPSG:4326",
            "spatial:dimensions": ["y", "x"],
            "spatial:transform": [res, 0.0, bounds[0], 0.0, -res, bounds[3]],
            "spatial:transform_type": "affine",
            "spatial:bbox": bounds,
            "spatial:shape": [height, width],
            "spatial:registration": "pixel",
            "geoemb:type": "pixel",
            "geoemb:dimensions": 64,
            "geoemb:model": "https://developers.google.com/earth-engine/datasets/catalog/GOOGLE_SATELLITE_EMBEDDING_V1_ANNUAL",
            "geoemb:source_data": "https://source.coop/tge-labs/aef/v1/annual/",
            "geoemb:data_type": "int8",
            "geoemb:gsd": res,
            "geoemb:quantization": {
                "method": "signed_square",
                "original_dtype": "float32",
                "quantized_dtype": "int8",
                "formula": "(x / 127.5) ** 2 * sign(x)",
                "valid_range": [-127, 127],
                "nodata": -128,
            },
            "zarr_conventions": [{"name": "proj:"}, {"name": "spatial:"}, {"name": "geoemb:"}],
        }
    )
    array = group.create_array(
        "embeddings",
        shape=(len(years), 64, height, width),
        dtype="int8",
        fill_value=-128,
        chunks=(1, 64, shard, shard),
        serializer=ShardingCodec(chunk_shape=(1, 64, chunk, chunk), codecs=[BytesCodec(), ZstdCodec(level=3)]),
        dimension_names=("time", "band", "y", "x"),
    )
    rr, cc = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    for yi in range(len(years)):
        array[yi] = aef_codes(yi, rr.ravel(), cc.ravel()).reshape(64, height, width)
    for name, values, dtype in (
        ("x", bounds[0] + (np.arange(width) + 0.5) * res, "float64"),
        ("y", bounds[3] - (np.arange(height) + 0.5) * res, "float64"),
        ("time", np.asarray(years), "int32"),
    ):
        coord = group.create_array(
            name, shape=values.shape, dtype=dtype, chunks=values.shape, fill_value=0, dimension_names=(name,)
        )
        coord[...] = values.astype(dtype)
    band = group.create_array("band", shape=(64,), dtype=str, chunks=(64,), dimension_names=("band",))
    band[...] = np.array([f"A{i:02d}" for i in range(64)])
    return path, transform


def write_cog(path: Path, data: np.ndarray, crs, transform: Affine, nodata=None) -> Path:
    data = data if data.ndim == 3 else data[None]
    profile = dict(
        driver="COG",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
        crs=crs,
        transform=transform,
        nodata=nodata,
        compress="DEFLATE",
        blocksize=256,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def _swath_footprint(
    lat: float,
    lon: float,
    orbit_state: str,
    width_km: float = 250.0,
    length_km: float = 170.0,
    near_offset_km: float = 60.0,
) -> dict:
    """A swath-like footprint (rotated rectangle, heading −12°/192°) whose near edge is
    ``near_offset_km`` from the point; far range east on ascending, west on descending."""
    heading = math.radians(-12.0 if orbit_state == "ascending" else 192.0)
    along = np.array([math.sin(heading), math.cos(heading)])
    right = np.array([math.cos(heading), -math.sin(heading)])  # the satellite looks right
    to_m = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    to_ll = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)
    x, y = to_m.transform(lon, lat)
    k = 1.0 / math.cos(math.radians(lat))  # web-mercator scale
    near = np.array([x, y]) - right * near_offset_km * 1000 * k
    pts = []
    for a, r in ((-0.5, 0), (0.5, 0), (0.5, 1), (-0.5, 1)):
        p = near + along * a * length_km * 1000 * k + right * r * width_km * 1000 * k
        pts.append(to_ll.transform(*p))
    pts.append(pts[0])
    return {"type": "Polygon", "coordinates": [[list(map(float, p)) for p in pts]]}


def make_s1_items(
    folder: Path,
    lat: float,
    lon: float,
    dates: list[str],
    orbit_state="descending",
    relative_orbit=110,
    size_px=128,
    seed=0,
    looks: float = 4.0,
    mean_power: float = 0.05,
    grid=None,
) -> list[dict]:
    """RTC-like items: VV/VH γ⁰ (linear float32, nodata −32768) COGs on a UTM 10 m grid shifted 5 m
    (or on ``grid`` = (crs, transform)): gamma speckle of ``looks`` looks around ``mean_power``."""
    from sarviz.scene import utm_crs_for

    rng = np.random.default_rng(seed)
    if grid is not None:
        crs, transform = grid
    else:
        crs = utm_crs_for(lat, lon)
        x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
        transform = Affine(
            10.0, 0, math.floor(x / 10) * 10 - size_px * 5 + 5, 0, -10.0, math.floor(y / 10) * 10 + size_px * 5 + 5
        )
    items = []
    for i, date in enumerate(dates):
        vv = rng.gamma(looks, mean_power / looks, (size_px, size_px)).astype(np.float32)
        vh = (vv * rng.uniform(0.1, 0.3, vv.shape)).astype(np.float32)
        vv[:3, :] = -32768.0  # a nodata strip
        vh[:3, :] = -32768.0
        item_id = f"S1A_IW_GRDH_1SDV_{date.replace('-', '')}T055000_rtc_{i}"
        assets = {}
        for pol, arr in (("vv", vv), ("vh", vh)):
            p = write_cog(folder / f"{item_id}_{pol}.tif", arr, crs, transform, nodata=-32768.0)
            assets[pol] = {
                "href": str(p),
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
            }
        items.append(
            {
                "type": "Feature",
                "stac_version": "1.0.0",
                "id": item_id,
                "collection": "sentinel-1-rtc",
                "geometry": _swath_footprint(lat, lon, orbit_state),
                "bbox": None,
                "properties": {
                    "datetime": f"{date}T05:50:00Z",
                    "platform": "SENTINEL-1A",
                    "sar:instrument_mode": "IW",
                    "sar:polarizations": ["VV", "VH"],
                    "sat:orbit_state": orbit_state,
                    "sat:relative_orbit": relative_orbit,
                    "constellation": "Sentinel-1",
                },
                "assets": assets,
                "links": [],
            }
        )
    for it in items:
        ring = np.asarray(it["geometry"]["coordinates"][0])
        it["bbox"] = [
            float(ring[:, 0].min()),
            float(ring[:, 1].min()),
            float(ring[:, 0].max()),
            float(ring[:, 1].max()),
        ]
    return items


def make_s2_items(
    folder: Path, lat: float, lon: float, dates: list[str], cloud=(5.0, 10.0, 20.0), size_px=128, seed=1
) -> list[dict]:
    """L2A-like items: B02/B03/B04/B08 uint16 10 m and SCL uint8 20 m COGs, baseline 05.10."""
    from sarviz.scene import utm_crs_for

    rng = np.random.default_rng(seed)
    crs = utm_crs_for(lat, lon)
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    left, top = math.floor(x / 10) * 10 - size_px * 5, math.floor(y / 10) * 10 + size_px * 5
    t10 = Affine(10.0, 0, left, 0, -10.0, top)
    t20 = Affine(20.0, 0, left, 0, -20.0, top)
    items = []
    for i, date in enumerate(dates):
        item_id = f"S2B_MSIL2A_{date.replace('-', '')}T103629_R008_T32UPU_{i}"
        assets = {}
        for b in ("B02", "B03", "B04", "B08"):
            arr = rng.integers(1100, 4000, (size_px, size_px)).astype(np.uint16)
            assets[b] = {
                "href": str(write_cog(folder / f"{item_id}_{b}.tif", arr, crs, t10, nodata=0)),
                "roles": ["data"],
            }
        scl = np.full((size_px // 2, size_px // 2), 4, np.uint8)
        scl[size_px // 8 : size_px // 8 + size_px // 16, :] = 9  # a cloud band across the upper patch
        assets["SCL"] = {
            "href": str(write_cog(folder / f"{item_id}_SCL.tif", scl, crs, t20, nodata=0)),
            "roles": ["data"],
        }
        ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        w, s = ll.transform(left - 50_000, top - 60_000)
        e, n = ll.transform(left + 60_000, top + 50_000)
        items.append(
            {
                "type": "Feature",
                "stac_version": "1.0.0",
                "id": item_id,
                "collection": "sentinel-2-l2a",
                "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
                "bbox": [w, s, e, n],
                "properties": {
                    "datetime": f"{date}T10:36:29Z",
                    "platform": "Sentinel-2B",
                    "eo:cloud_cover": cloud[i % len(cloud)],
                    "s2:processing_baseline": "05.10",
                },
                "assets": assets,
                "links": [],
            }
        )
    return items


def write_items(folder: Path, items: list[dict]) -> list[Path]:
    """The STAC item JSON files (what a static catalog would hold)."""
    paths = []
    for it in items:
        p = folder / f"{it['id']}.json"
        p.write_text(json.dumps(it))
        paths.append(p)
    return paths


def _matches(item: dict, body: dict) -> bool:
    from shapely.geometry import shape

    if body.get("collections") and item["collection"] not in body["collections"]:
        return False
    if body.get("intersects") and not shape(item["geometry"]).intersects(shape(body["intersects"])):
        return False
    if body.get("datetime"):
        start, end = body["datetime"].split("/")
        when = item["properties"]["datetime"][:10]
        if not start[:10] <= when <= end[:10]:
            return False
    for key, cond in (body.get("query") or {}).items():
        value = item["properties"].get(key)
        for op, ref in cond.items():
            if op == "eq" and value != ref or op == "lt" and not (value is not None and value < ref):
                return False
    return True


@contextmanager
def stac_api(item_files: list[Path], delay_s: float = 0.0):
    """A minimal STAC API on localhost serving the item JSON files; yields its URL."""
    items = [json.loads(Path(p).read_text()) for p in item_files]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def _send(self, payload: dict) -> None:
            import time

            if delay_s:
                time.sleep(delay_s)
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self):
            root = f"http://127.0.0.1:{self.server.server_port}"
            self._send(
                {
                    "type": "Catalog",
                    "id": "test-stac",
                    "description": "local STAC API",
                    "stac_version": "1.0.0",
                    "conformsTo": [
                        "https://api.stacspec.org/v1.0.0/core",
                        "https://api.stacspec.org/v1.0.0/item-search",
                        "https://api.stacspec.org/v1.0.0/item-search#query",
                    ],
                    "links": [
                        {"rel": "self", "href": root + "/"},
                        {"rel": "root", "href": root + "/"},
                        {"rel": "search", "href": root + "/search", "method": "POST", "type": "application/geo+json"},
                    ],
                }
            )

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            found = [it for it in items if _matches(it, body)]
            self._send({"type": "FeatureCollection", "features": found, "links": []})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """A localhost URL nobody listens on (connection refused at once)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def today() -> str:
    return dt.date.today().isoformat()


# -- Sentinel-1 acquisition geometry, simulated independently ---------------------------------------
S1_A_KM, S1_INCL_DEG, S1_PERIOD_S, EARTH_OMEGA = 7064.94, 98.18, 12 * 86400.0 / 175, 7.2921159e-5


def _sub_satellite(u: float, t: float) -> tuple[float, float]:
    """(lon, lat) under a circular orbit at argument of latitude u (rad), time t (s) after the
    node crossing at longitude 0: inertial position rotated by the Earth's turn (no J2)."""
    i = math.radians(S1_INCL_DEG)
    x, y, z = math.cos(u), math.sin(u) * math.cos(i), math.sin(u) * math.sin(i)
    lon = math.degrees(math.atan2(y, x) - EARTH_OMEGA * t)
    lat = math.degrees(math.asin(z))  # geocentric latitude; close enough for a direction
    return (lon + 180.0) % 360.0 - 180.0, lat


def simulate_iw_swath(
    lat: float, orbit_state: str, near_deg: float = 30.8, far_deg: float = 46.0, half_length_s: float = 12.0
):
    """An IW footprint by propagating the orbit, not from a heading formula.

    Returns (footprint GeoJSON, track point (lon, lat) at the middle, heading (deg) there,
    ground_range(θ) km, incidence(g) deg) — the last two on a sphere of the local radius with
    the satellite at 7064.94 km from the centre (the same physics the estimator assumes, so the
    test isolates the side choice and the swath geometry)."""
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    n = 2 * math.pi / S1_PERIOD_S
    u0 = math.asin(math.sin(math.radians(lat)) / math.sin(math.radians(S1_INCL_DEG)))
    if orbit_state == "descending":
        u0 = math.pi - u0
    t0 = u0 / n

    def at(dt):
        return _sub_satellite(n * (t0 + dt), t0 + dt)

    A, B = 6378.137, 6356.752314245
    c, s = math.cos(math.radians(lat)), math.sin(math.radians(lat))
    R = math.sqrt(((A * A * c) ** 2 + (B * B * s) ** 2) / ((A * c) ** 2 + (B * s) ** 2))

    def ground_range(theta):
        t = math.radians(theta)
        return R * (t - math.asin(R * math.sin(t) / S1_A_KM))

    def incidence(g):
        phi = g / R
        return math.degrees(phi + math.atan2(R * math.sin(phi), S1_A_KM - R * math.cos(phi)))

    corners = []
    for dt_s, g in (
        (-half_length_s, ground_range(near_deg)),
        (half_length_s, ground_range(near_deg)),
        (half_length_s, ground_range(far_deg)),
        (-half_length_s, ground_range(far_deg)),
    ):
        lon0, lat0 = at(dt_s)
        lon1, lat1 = at(dt_s + 0.5)
        heading = geod.inv(lon0, lat0, lon1, lat1)[0]
        lon2, lat2, _ = geod.fwd(lon0, lat0, heading + 90.0, g * 1000.0)  # the satellite looks right
        corners.append([lon2, lat2])
    corners.append(corners[0])
    mid = at(0.0)
    heading = geod.inv(*mid, *at(0.5))[0]
    return ({"type": "Polygon", "coordinates": [corners]}, mid, heading, ground_range, incidence)
