"""Scene: one georeferenced patch with optional layers, and its file format.

A scene holds whatever is known about one place on one grid:

* ``optical``   – Sentinel-2 B2, B3, B4, B8 as reflectance factor (DN / 10000), (4, H, W)
* ``vv_db``     – Sentinel-1 VV backscatter in dB, (H, W)
* ``vh_db``     – Sentinel-1 VH backscatter in dB, (H, W)
* ``angle_deg`` – incidence angle in degrees, per pixel, (H, W)
* ``embedding`` – AlphaEarth 64-D embedding field, (64, H, W)

A missing layer is ``None`` — never zeros. In a scene *file* a missing layer is NaN.

Scene file format (the contract other tools rely on): a cloud-optimised GeoTIFF with
71 float32 bands in the band order of the HuiYanEarth-SAR dataset,
``B2, B3, B4, B8, VV, VH, angle, A00 … A63``, band descriptions set to exactly those
names, NaN where a layer is missing, and the metadata (id, dates, provenance) as JSON in
GeoTIFF tags. HuiYanEarth training patches (67 bands: ``VV, VH, angle, A00 … A63``) are
read too.
"""

from __future__ import annotations

import errno
import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
from affine import Affine
from rasterio import shutil as rio_shutil
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.io import MemoryFile
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window

from sarviz.atomic import atomic_path
from sarviz.errors import SceneError  # noqa: F401 - re-exported: sarviz.scene.SceneError
from sarviz.gdal_messages import gdal_write_errors, route_gdal_messages
from sarviz.settings import max_read_bytes

OPTICAL_BANDS: tuple[str, ...] = ("B2", "B3", "B4", "B8")
SAR_BANDS: tuple[str, ...] = ("VV", "VH")
ANGLE_BAND = "angle"
EMBEDDING_DIM = 64
EMBEDDING_BANDS: tuple[str, ...] = tuple(f"A{i:02d}" for i in range(EMBEDDING_DIM))
SCENE_BANDS: tuple[str, ...] = OPTICAL_BANDS + SAR_BANDS + (ANGLE_BAND,) + EMBEDDING_BANDS
TRAINING_PATCH_BANDS: tuple[str, ...] = SAR_BANDS + (ANGLE_BAND,) + EMBEDDING_BANDS
FORMAT_VERSION = "1"
LAYERS: tuple[str, ...] = ("optical", "vv_db", "vh_db", "angle_deg", "embedding")
LAYER_LABELS = {
    "optical": "Sentinel-2 optical (B2, B3, B4, B8)",
    "vv_db": "Sentinel-1 VV (dB)",
    "vh_db": "Sentinel-1 VH (dB)",
    "angle_deg": "incidence angle (deg)",
    "embedding": "AlphaEarth embedding (64-D)",
}
# Band slices of each layer inside the 71-band scene file.
_LAYER_BANDS = {
    "optical": OPTICAL_BANDS,
    "vv_db": ("VV",),
    "vh_db": ("VH",),
    "angle_deg": (ANGLE_BAND,),
    "embedding": EMBEDDING_BANDS,
}


@dataclass
class Scene:
    """A georeferenced patch. Arrays are float32; missing layers are ``None``."""

    crs: CRS
    transform: Affine
    width: int
    height: int
    optical: np.ndarray | None = None
    vv_db: np.ndarray | None = None
    vh_db: np.ndarray | None = None
    angle_deg: np.ndarray | None = None
    embedding: np.ndarray | None = None
    scene_id: str = ""
    dates: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.crs = CRS.from_user_input(self.crs)
        expected = {"optical": 4, "embedding": EMBEDDING_DIM}
        for name in LAYERS:
            arr = getattr(self, name)
            if arr is None:
                continue
            arr = np.asarray(arr, dtype=np.float32)
            want = (expected[name], self.height, self.width) if name in expected else (self.height, self.width)
            if arr.shape != want:
                raise SceneError(f"layer {name!r} has shape {arr.shape}, expected {want}")
            if np.isnan(arr).all():
                arr = None  # an all-NaN layer is an absent layer
            setattr(self, name, arr)

    # -- geometry -------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the scene CRS."""
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (self.width, self.height)
        return (min(left, right), min(bottom, top), max(left, right), max(bottom, top))

    @property
    def bounds_wgs84(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees; west > east when crossing 180°."""
        return footprint_wgs84(self.crs, self.transform, self.width, self.height)

    @property
    def center_latlon(self) -> tuple[float, float]:
        x, y = self.transform @ (self.width / 2, self.height / 2)
        lon, lat = _to_wgs84(self.crs, [x], [y])
        return (float(lat[0]), float(lon[0]))

    @property
    def pixel_size_xy_m(self) -> tuple[float, float]:
        """Ground pixel size (east–west, north–south) in metres; they differ on a geographic grid
        away from the equator (the EPSG:4326 Spain chip: 7.9 × 10.0 m)."""
        rx, ry = abs(self.transform.a), abs(self.transform.e)
        if self.crs.is_geographic:
            lat, _ = self.center_latlon
            return rx * 111_320.0 * math.cos(math.radians(lat)), ry * 110_574.0
        unit = self.crs.linear_units_factor[1]
        return rx * unit, ry * unit

    def pixel_size_text(self) -> str:
        """'pixels 7.9 m (E–W) × 10.0 m (N–S)', or 'pixels 10.0 m' when square."""
        x, y = self.pixel_size_xy_m
        return f"pixels {x:.1f} m" if abs(x - y) <= 0.02 * max(x, y) else f"pixels {x:.1f} m (E–W) × {y:.1f} m (N–S)"

    @property
    def pixel_size_m(self) -> float:
        """Approximate ground pixel size in metres (mean of x and y; geographic CRSs at the centre)."""
        rx, ry = abs(self.transform.a), abs(self.transform.e)
        if self.crs.is_geographic:
            lat, _ = self.center_latlon
            return 0.5 * (rx * 111_320.0 * math.cos(math.radians(lat)) + ry * 110_574.0)
        return 0.5 * (rx + ry) * self.crs.linear_units_factor[1]

    # -- layers -----------------------------------------------------------------------
    def layers_present(self) -> list[str]:
        return [name for name in LAYERS if getattr(self, name) is not None]

    def layers_missing(self) -> list[str]:
        return [name for name in LAYERS if getattr(self, name) is None]

    def has(self, layer: str) -> bool:
        return getattr(self, layer) is not None

    def to_bands(self) -> np.ndarray:
        """The (71, H, W) float32 array of the scene file, NaN where a layer is missing."""
        out = np.full((len(SCENE_BANDS), self.height, self.width), np.nan, dtype=np.float32)
        i = 0
        for name in LAYERS:
            n = len(_LAYER_BANDS[name])
            arr = getattr(self, name)
            if arr is not None:
                out[i : i + n] = arr.reshape(n, self.height, self.width)
            i += n
        return out

    @classmethod
    def from_bands(cls, bands: np.ndarray, names: tuple[str, ...], **kwargs: Any) -> "Scene":
        """Build a scene from a band stack with named bands (any subset of SCENE_BANDS)."""
        index = {name: i for i, name in enumerate(names)}
        # keyword arguments for Scene's layer fields (each np.ndarray | None); Any because they go through ** next to
        # the other fields, which a dict of arrays would not type-check against
        layers: dict[str, Any] = {}
        for name in LAYERS:
            wanted = _LAYER_BANDS[name]
            if all(b in index for b in wanted):
                idx = [index[b] for b in wanted]
                if idx == list(range(idx[0], idx[0] + len(idx))):  # contiguous: a view, no copy
                    arr = bands[idx[0] : idx[0] + len(idx)].astype(np.float32, copy=False)
                else:
                    arr = np.stack([bands[i] for i in idx]).astype(np.float32, copy=False)
                layers[name] = arr if len(wanted) > 1 else arr[0]
            else:
                layers[name] = None
        _, h, w = bands.shape
        return cls(height=h, width=w, **layers, **kwargs)

    def crop(self, window: Window) -> "Scene":
        """The part of the scene inside ``window`` (pixel offsets; must lie inside)."""
        r0, c0 = int(window.row_off), int(window.col_off)
        h, w = int(window.height), int(window.width)
        if r0 < 0 or c0 < 0 or r0 + h > self.height or c0 + w > self.width:
            raise SceneError(f"window {window} is outside the scene ({self.height}x{self.width})")
        layers: dict[str, Any] = {}  # Scene's layer fields (np.ndarray | None), passed through ** as in from_bands
        for name in LAYERS:
            arr = getattr(self, name)
            layers[name] = None if arr is None else np.ascontiguousarray(arr[..., r0 : r0 + h, c0 : c0 + w])
        return replace(self, transform=self.transform @ Affine.translation(c0, r0), width=w, height=h, **layers)

    def reproject(self, crs: CRS | str, transform: Affine, width: int, height: int) -> "Scene":
        """The scene resampled onto another grid (bilinear; angle and embedding too).

        SAR layers are resampled in linear power, not dB, so that averaging is physical.
        """
        crs = CRS.from_user_input(crs)

        def warp(arr: np.ndarray) -> np.ndarray:
            src = arr if arr.ndim == 3 else arr[None]
            dst = np.full((src.shape[0], height, width), np.nan, dtype=np.float32)
            reproject(
                src,
                dst,
                src_transform=self.transform,
                src_crs=self.crs,
                dst_transform=transform,
                dst_crs=crs,
                resampling=Resampling.bilinear,
                src_nodata=np.nan,
                dst_nodata=np.nan,
            )
            return dst if arr.ndim == 3 else dst[0]

        layers: dict[str, Any] = {}  # Scene's layer fields (np.ndarray | None), passed through ** as in from_bands
        for name in LAYERS:
            arr = getattr(self, name)
            if arr is None:
                layers[name] = None
            elif name in ("vv_db", "vh_db"):
                with np.errstate(divide="ignore", invalid="ignore"):
                    layers[name] = (10.0 * np.log10(warp(10.0 ** (arr / 10.0)))).astype(np.float32)
            else:
                layers[name] = warp(arr)
        return replace(self, crs=crs, transform=transform, width=width, height=height, **layers)


# -- geometry helpers ---------------------------------------------------------------------
def _to_wgs84(crs: CRS, xs, ys):
    from pyproj import Transformer

    t = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return t.transform(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))


def footprint_wgs84(crs: CRS, transform: Affine, width: int, height: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a grid, sampling its edges (not just the corners).

    When the footprint crosses the antimeridian the result has west > east.
    """
    n = 21
    cols = np.concatenate([np.linspace(0, width, n), np.full(n, width), np.linspace(width, 0, n), np.zeros(n)])
    rows = np.concatenate([np.zeros(n), np.linspace(0, height, n), np.full(n, height), np.linspace(height, 0, n)])
    xs, ys = transform @ (cols, rows)  # type: ignore[operator]  # affine's stubs lack the array-pair overload it has
    lons, lats = _to_wgs84(crs, xs, ys)
    lons = np.asarray(lons)
    south, north = float(np.min(lats)), float(np.max(lats))
    west, east = float(np.min(lons)), float(np.max(lons))
    if east - west > 180.0:  # the ring crosses 180°: measure longitudes in [0, 360)
        shifted = np.mod(lons, 360.0)
        west, east = float(np.min(shifted)), float(np.max(shifted))
        west = west - 360.0 if west > 180.0 else west
        east = east - 360.0 if east > 180.0 else east
    return (west, south, east, north)


def validate_latlon(lat: Any, lon: Any) -> tuple[float, float]:
    """Parse and check a coordinate pair: latitude in −90…90, longitude in −180…180.

    A longitude outside −180…180 is refused, not silently wrapped (373.8 would quietly become
    13.8, somewhere else than the user typed); the message shows the wrapped value in case it
    was meant. Map clicks on a repeated world copy are wrapped where they happen, with
    :func:`wrap_longitude`.
    """
    try:
        lat_f, lon_f = float(lat), float(lon)
    except (TypeError, ValueError):
        raise SceneError(f"coordinates must be numbers, got lat={lat!r}, lon={lon!r}") from None
    if not (math.isfinite(lat_f) and math.isfinite(lon_f)):
        raise SceneError(f"coordinates must be finite numbers, got lat={lat!r}, lon={lon!r}")
    if not -90.0 <= lat_f <= 90.0:
        raise SceneError(f"latitude {lat_f} is outside [-90, 90]")
    if not -180.0 <= lon_f <= 180.0:
        raise SceneError(
            f"longitude {lon_f:g} is outside [-180, 180] (the same meridian is {wrap_longitude(lon_f):g}; "
            "give that if you meant it)"
        )
    return lat_f, lon_f


def wrap_longitude(lon: float) -> float:
    """A longitude brought into [-180, 180) (for map clicks on a repeated world copy)."""
    lon = float(lon)
    return lon if -180.0 <= lon <= 180.0 else ((lon + 180.0) % 360.0) - 180.0


def utm_crs_for(lat: float, lon: float) -> CRS:
    """The local UTM zone (UPS beyond ±84°/−80°) for a point."""
    if lat >= 84.0:
        return CRS.from_epsg(32661)
    if lat <= -80.0:
        return CRS.from_epsg(32761)
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def patch_grid(lat: float, lon: float, size_px: int = 512, res_m: float = 10.0) -> tuple[CRS, Affine]:
    """The standard patch grid: local UTM, ``res_m`` pixels, ``size_px`` square, centred on the point."""
    from pyproj import Transformer

    lat, lon = validate_latlon(lat, lon)
    crs = utm_crs_for(lat, lon)
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    half = size_px * res_m / 2.0
    # snap the origin to the pixel grid so that neighbouring patches align
    left = math.floor((x - half) / res_m) * res_m
    top = math.floor((y + half) / res_m) * res_m
    return crs, Affine(res_m, 0.0, left, 0.0, -res_m, top)


# -- file format ----------------------------------------------------------------------------
def write_scene(
    scene: Scene,
    path: str | os.PathLike,
    bands: tuple[str, ...] = SCENE_BANDS,
    extra_tags: dict[str, str] | None = None,
    zstd_level: int | None = None,
) -> Path:
    """Write a scene file (71-band float32 COG) atomically: temp file, then rename.

    ``bands`` picks a subset in a given order (e.g. :data:`TRAINING_PATCH_BANDS` for the
    67-band training patch layout); ``extra_tags`` are added to the GeoTIFF tags;
    ``zstd_level`` sets the compression level (GDAL's default, 9, when None).
    """
    route_gdal_messages()  # a failed write says one line of ours, not libtiff's on stderr
    path = Path(path)
    unknown = [b for b in bands if b not in SCENE_BANDS]
    if unknown:
        raise SceneError(f"unknown band names {unknown}; a scene file holds {', '.join(SCENE_BANDS[:7])}, A00..A63")
    all_bands = scene.to_bands()
    if tuple(bands) == SCENE_BANDS:
        data = all_bands
    else:
        data = all_bands[[SCENE_BANDS.index(b) for b in bands]]
    layers = [name for name in scene.layers_present() if all(b in bands for b in _LAYER_BANDS[name])]
    tags = {
        "SARVIZ_FORMAT": FORMAT_VERSION,
        "SCENE_ID": scene.scene_id or path.stem,
        "DATES": json.dumps(scene.dates, sort_keys=True),
        "PROVENANCE": json.dumps(scene.provenance, sort_keys=True, default=str),
        "LAYERS": json.dumps(layers),
        **(extra_tags or {}),
    }
    if scene.embedding is not None:
        # says at a glance (gdalinfo) whether A00..A63 are AlphaEarth for this place or a proxy
        tags["EMBEDDING_SOURCE"] = str(scene.provenance.get("embedding_source") or "AlphaEarth")
    block = 256 if min(scene.width, scene.height) >= 256 else 128
    profile = dict(
        driver="GTiff",
        width=scene.width,
        height=scene.height,
        count=len(bands),
        dtype="float32",
        crs=scene.crs,
        transform=scene.transform,
        nodata=np.nan,
    )
    # A COG by the classic recipe (GDAL CreateCopy with COPY_SRC_OVERVIEWS=YES: tiled, IFDs
    # before the pixel data). GDAL 3.10's COG driver only writes pixel-interleaved multi-band
    # files; band interleave lets a reader decode only the layers it needs (a SAR-only scene
    # then costs 2 bands, not 71). ZSTD decodes about twice as fast as DEFLATE here.
    cog = dict(
        driver="GTiff",
        tiled=True,
        blockxsize=block,
        blockysize=block,
        interleave="band",
        compress="ZSTD",
        predictor=3,
        BIGTIFF="IF_SAFER",
        COPY_SRC_OVERVIEWS="YES",
    )
    if zstd_level is not None:
        cog["ZSTD_LEVEL"] = int(zstd_level)
    with atomic_path(path, suffix=".tif.part") as tmp, MemoryFile() as mem, mem.open(**profile) as staging:
        staging.write(data)
        staging.descriptions = tuple(bands)
        staging.update_tags(**tags)
        with gdal_write_errors(path):
            rio_shutil.copy(staging, tmp, **cog)
        verify_written_tiff(tmp, path)  # before the rename: a short write must not replace a good file
    return path


def verify_written_tiff(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Check a GeoTIFF just written to ``tmp`` is complete; raise OSError naming ``target`` if not.

    GDAL reports some write failures (a full disk while flushing the last blocks or the
    directory) only as log messages, leaving a short file; renaming that over ``target`` would
    replace a good file with a broken one.
    """
    try:
        with rasterio.open(tmp) as src:
            _check_complete(src, tmp)
            src.read(src.count, window=Window(src.width - 1, src.height - 1, 1, 1))
    except (SceneError, rasterio.errors.RasterioError):
        raise OSError(errno.EIO, "the file came out incomplete (disk full or write error)", str(target)) from None


def _band_names(src: rasterio.DatasetReader) -> tuple[str, ...]:
    names = tuple(d or "" for d in src.descriptions)
    if set(names) <= set(SCENE_BANDS) and all(names):
        return names
    if src.count == len(SCENE_BANDS):
        return SCENE_BANDS
    if src.count == len(TRAINING_PATCH_BANDS):
        return TRAINING_PATCH_BANDS
    raise SceneError(
        f"{src.name}: {src.count} bands without sarviz band names; a scene file has "
        f"{len(SCENE_BANDS)} bands ({', '.join(SCENE_BANDS[:7])}, A00..A63) and a HuiYanEarth "
        f"training patch {len(TRAINING_PATCH_BANDS)} (VV, VH, angle, A00..A63)"
    )


def _json_tag(tags: dict, name: str, default: Any, path: Any) -> Any:
    try:
        return json.loads(tags[name]) if name in tags else default
    except ValueError:
        raise SceneError(
            f"{path}: its {name} tag is not valid JSON; the file was not written by sarviz or was edited by hand"
        ) from None


def _tag_layers(tags: dict, path: Any) -> tuple[str, ...] | None:
    layers = _json_tag(tags, "LAYERS", None, path)
    if layers is None:
        return None
    if not isinstance(layers, list) or not set(layers) <= set(LAYERS):
        raise SceneError(f"{path}: its LAYERS tag {layers!r} names unknown layers; known: {', '.join(LAYERS)}")
    return tuple(layers)


def _check_complete(src: rasterio.DatasetReader, path: Any) -> None:
    """Refuse a truncated file: its last pixel block must end inside the file.

    Reading only the header (as the index does) would take a half-copied file for a good one.
    """
    last = src.count
    rows, cols = (src.height - 1) // src.block_shapes[0][0], (src.width - 1) // src.block_shapes[0][1]
    offset = src.get_tag_item(f"BLOCK_OFFSET_{cols}_{rows}", "TIFF", bidx=last)
    size = src.get_tag_item(f"BLOCK_SIZE_{cols}_{rows}", "TIFF", bidx=last)
    if offset and size and int(offset) + int(size) > os.path.getsize(path):
        raise SceneError(f"{path}: the file is truncated (its pixel data ends early); copy or import it again")


#: the most pixel data (decoded, float32) sarviz reads from one file in one go; a file whose
#: header claims more is refused before reading (a 2 MB sparse GeoTIFF can claim 200000² px)
MAX_READ_BYTES = max_read_bytes()


def check_claimed_size(src: Any, path: Any, bands: int | None = None, window: Window | None = None) -> None:
    """Refuse to read a raster whose header claims more pixels than sarviz reads at once.

    ``src`` is an open rasterio dataset; ``bands`` how many bands will be read (default all);
    ``window`` the part that will be read. Raises :class:`SceneError` naming the file and the
    claimed size, so a folder scan can skip the file and go on.
    """
    h = int(window.height) if window is not None else int(src.height)
    w = int(window.width) if window is not None else int(src.width)
    n = int(bands if bands is not None else src.count)
    need = h * w * max(n, 1) * 4
    if need > MAX_READ_BYTES:
        raise SceneError(
            f"{Path(str(path)).name}: its header claims {src.width}×{src.height} pixels × {n} band(s) "
            f"({need / 2**30:.1f} GiB to read), more than sarviz reads from one file "
            f"({MAX_READ_BYTES / 2**30:.1f} GiB, SARVIZ_MAX_READ_MB); skipped"
        )


def check_file_size(path: str | os.PathLike, bands: int | None = None) -> None:
    """:func:`check_claimed_size` for a file path (opens only the header)."""
    if not Path(str(path)).exists():
        raise SceneError(f"{path} does not exist")
    try:
        with rasterio.open(path) as src:
            check_claimed_size(src, path, bands)
    except RasterioIOError as exc:
        raise SceneError(f"{Path(str(path)).name}: not a readable GeoTIFF ({exc})") from None


def read_scene_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The header of a scene file without reading pixels: grid, band names, tags, layers."""
    try:
        with rasterio.open(path) as src:
            names = _band_names(src)
            tags = src.tags()
            if src.crs is None:
                raise SceneError(f"{path}: the file has no CRS; a scene must be georeferenced")
            _check_complete(src, path)
            return {
                "crs": src.crs,
                "transform": src.transform,
                "width": src.width,
                "height": src.height,
                "bands": names,
                "tags": tags,
                "layers": _tag_layers(tags, path),
                "dates": _json_tag(tags, "DATES", {}, path),
            }
    except RasterioIOError as exc:
        raise SceneError(f"{path}: not a readable GeoTIFF ({exc})") from None


def read_scene(path: str | os.PathLike, window: Window | None = None, layers: tuple[str, ...] | None = None) -> Scene:
    """Read a scene file (71-band) or a HuiYanEarth training patch (67-band).

    Only the bands of ``layers`` are decoded (default: the layers the file says it holds,
    else all); the others are absent in the result.
    """
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise SceneError(f"{path}: the file has no CRS; a scene must be georeferenced")
            names = _band_names(src)
            tags = src.tags()
            if layers is None:
                layers = _tag_layers(tags, path)
            wanted = [b for layer in (layers if layers is not None else LAYERS) for b in _LAYER_BANDS[layer]]
            picked = [i for i, name in enumerate(names) if name in wanted]
            check_claimed_size(src, path, len(picked), window)
            data = (
                src.read([i + 1 for i in picked], window=window, out_dtype="float32")
                if picked
                else np.empty(
                    (0, int(window.height) if window else src.height, int(window.width) if window else src.width),
                    np.float32,
                )
            )
            transform = src.window_transform(window) if window is not None else src.transform
            crs = src.crs
    except RasterioIOError as exc:
        raise SceneError(f"{path}: not a readable GeoTIFF ({exc})") from None
    except rasterio.errors.RasterioError as exc:  # a tile fails to decode: a damaged file
        raise SceneError(f"{path}: the file is truncated or corrupt; its pixels cannot be read ({exc})") from None
    return Scene.from_bands(
        data,
        tuple(names[i] for i in picked),
        crs=crs,
        transform=transform,
        scene_id=tags.get("SCENE_ID", Path(path).stem),
        dates=_json_tag(tags, "DATES", {}, path),
        provenance=_json_tag(tags, "PROVENANCE", {}, path) or {"source": "file", "path": str(path)},
    )
