"""Public, no-account sources: the AlphaEarth Zarr mosaic and Planetary Computer Sentinel.

* **Embedding** — the AlphaEarth annual embedding mosaic on Source Cooperative, a Zarr v3
  store (anonymous S3). Array ``embeddings`` has dims (year index counted from the
  ``start_year`` attribute, default 2017; 64 bands; y; x), int8 with −128 as nodata,
  dequantised as ``(q / 127.5)² · sign(q)``; the grid's affine transform is the
  ``spatial:transform`` attribute and its CRS ``proj:code`` (or ``crs``).
* **Sentinel-1** — ``sentinel-1-rtc`` (radiometrically terrain-corrected γ⁰, linear power)
  from the Microsoft Planetary Computer STAC API; the incidence angle is not in the product,
  so it is estimated per pixel from the swath footprint and orbit pass (see
  :func:`estimate_incidence_angle`) and the report says so. The γ⁰ is converted to σ⁰
  (σ⁰ = γ⁰·cos θ, :func:`gamma0_to_sigma0_db`) so that ``Scene.vv_db``/``vh_db`` mean
  ellipsoid σ⁰ whatever the source; provenance records the original convention.
* **Sentinel-2** — ``sentinel-2-l2a``, scene-classification (SCL) cloud mask, per-pixel median
  of the least cloudy scenes, reflectance = (DN + offset) / 10000.

Only the needed COG windows are read (rasterio ``WarpedVRT`` onto the patch grid); every
network access has an explicit timeout. In tests the constructors point at a local Zarr
store, a local STAC API and local COGs.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import os
import re
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT

from sarviz.sources.base import (
    error_mentions,
    FetchProgress,
    FetchRequest,
    LayerReport,
    NoDataHere,
    SourceAuthError,
    SourceError,
    SourceQuotaError,
    SourceResult,
    SourceTimeout,
    SourceUnavailable,
    scale_progress,
)

AEF_MOSAIC_URL = "s3://us-west-2.opendata.source.coop/tge-labs/aef-mosaic/"
AEF_SERVICE = "the AlphaEarth mosaic on Source Cooperative"
PC_STAC_URL = "https://planetarycomputer.microsoft.com/api/stac/v1"
PC_SERVICE = "Microsoft Planetary Computer"
AEF_NODATA = -128
AEF_FIRST_YEAR = 2017

# Sentinel-1 IW swath: incidence from near to far range (ESA product specification).
IW_NEAR_DEG, IW_FAR_DEG = 29.1, 46.0
IW_MID_DEG = 37.5  # what the γ⁰ → σ⁰ conversion uses when the swath geometry is unknown
S1_ORBIT_ALTITUDE_KM = 693.0
EARTH_RADIUS_KM = 6371.0
# SCL classes that are not clear ground: no data, saturated, cloud shadow, cloud medium/high, cirrus.
S2_SCL_MASKED = (0, 1, 3, 8, 9, 10)
S2_BANDS = ("B02", "B03", "B04", "B08")


# -- errors from libraries → messages for people ------------------------------------------------
def classify_error(exc: BaseException, service: str, layer: str) -> SourceError:
    """Turn an exception from a network library into a SourceError naming layer and service."""
    if isinstance(exc, SourceError):
        return exc
    text = f"{type(exc).__name__}: {exc}"
    what = f"{layer} from {service}"

    def has(*keys: str) -> bool:
        return error_mentions(text, *keys)

    if has("timed out", "timeout", "time out"):
        return SourceTimeout(f"{what}: the service did not answer in time ({exc}); try again later or raise "
                             f"SARVIZ_NETWORK_TIMEOUT", service=service, layer=layer)
    if has("429", "too many requests", "rate limit", "quota", "slowdown", "throttl"):
        return SourceQuotaError(f"{what}: the service refused because of its rate limit or quota ({exc}); "
                                f"wait a minute and try again", service=service, layer=layer)
    if has("401", "403", "unauthorized", "forbidden", "accessdenied", "access denied", "signature", "expired"):
        return SourceAuthError(f"{what}: access was refused ({exc}); the signed URL or token may have expired — "
                               f"try again", service=service, layer=layer)
    if has("resolve", "name or service", "nodename", "connection refused", "connect", "network is unreachable",
           "unreachable", "no route", "connection", "ssl", "curl error"):
        return SourceUnavailable(f"{what}: the service cannot be reached — is the network down? ({exc})",
                                 service=service, layer=layer)
    return SourceError(f"{what} failed: {text}", service=service, layer=layer)


# -- AlphaEarth Zarr mosaic ---------------------------------------------------------------------
def dequantize_arithmetic(q: np.ndarray) -> np.ndarray:
    """The straightforward dequantisation: (q/127.5)²·sign(q) as q·|q| / 127.5² in float32.

    The reference that the lookup tables below are built from (and tested against); kept
    so the published formula is visible in one place.
    """
    q = np.asarray(q, dtype=np.int8)
    f = q.astype(np.float32)
    out = np.abs(f)
    out *= f
    out *= np.float32(1.0 / 127.5**2)
    out[q == AEF_NODATA] = np.nan
    return out


# 256-entry table indexed by the code's bit pattern (q.view(uint8)); entry 128 (= −128) is NaN.
# Built from dequantize_arithmetic so that the table path is bit-for-bit the formula above.
_DEQUANT_LUT = dequantize_arithmetic(np.arange(256, dtype=np.uint8).view(np.int8))


@functools.lru_cache(maxsize=1)
def _pair_lut() -> np.ndarray:
    """65 536-entry table: two adjacent codes (read as one uint16) → their two float32 values.

    Stored as uint64 so that one gather writes both floats: half as many table look-ups,
    and half as many indices to widen to intp, as the 256-entry table (≈30 % faster on the
    16.7 M values of a 512×512 patch). Built through a byte view, so it is right on any
    byte order. 512 KB, built once.
    """
    pairs = np.arange(65536, dtype=np.uint16).view(np.uint8).reshape(-1, 2)
    return np.ascontiguousarray(_DEQUANT_LUT[pairs]).view(np.uint64).reshape(-1)


def dequantize(q: np.ndarray) -> np.ndarray:
    """int8 AlphaEarth codes → float32 embedding values (NaN where the code is −128).

    One look-up in a 256-entry table (identical values to :func:`dequantize_arithmetic`).
    """
    q = np.asarray(q, dtype=np.int8)
    return _DEQUANT_LUT[q.view(np.uint8)]


def gather_dequantize(codes: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``dequantize(codes[:, index])`` for (bands, M) int8 ``codes`` and flat ``index`` in [0, M).

    The nearest-neighbour gather is done on the int8 codes (4× fewer bytes than gathering
    floats), one band at a time so that the band's codes and the index stay in cache,
    and the dequantisation is a table look-up on the gathered codes, two codes at a time
    (see :func:`_pair_lut`). No float64 or full-size temporary is made: the only large
    allocation is the float32 result. Hand-written because numpy has no fused
    gather-through-table; it is bit-for-bit ``dequantize(codes[:, index])`` (tested).
    """
    codes = np.ascontiguousarray(codes, dtype=np.int8)
    index = np.ascontiguousarray(index, dtype=np.intp).reshape(-1)
    bands, size = codes.shape
    n = index.size
    out = np.empty((bands, n), dtype=np.float32)
    if n == 0:
        return out
    # mode="clip" skips numpy's per-element range check; the range is checked here once instead
    lo, hi = int(index.min()), int(index.max())
    if lo < 0 or hi >= size:
        raise IndexError(f"gather index {lo}…{hi} outside the {size} source pixels")
    src = codes.view(np.uint8)
    gathered = np.empty(n, dtype=np.uint8)
    if n % 2 == 0:
        table = _pair_lut()
        pairs = np.empty(n // 2, dtype=np.intp)
        out64 = out.view(np.uint64)
        for b in range(bands):
            np.take(src[b], index, out=gathered, mode="clip")
            np.copyto(pairs, gathered.view(np.uint16))
            np.take(table, pairs, out=out64[b], mode="clip")
    else:  # odd pixel count: no pairs, one code per look-up
        wide = np.empty(n, dtype=np.intp)
        for b in range(bands):
            np.take(src[b], index, out=gathered, mode="clip")
            np.copyto(wide, gathered)
            np.take(_DEQUANT_LUT, wide, out=out[b], mode="clip")
    return out


# Zarr's async pipeline decodes up to ``async.concurrency`` chunks at once. On a local store
# the read is CPU-bound (zstd) and that parallelism only adds thread hand-offs and fresh
# buffers: one chunk at a time is ~1.5–2× faster for a patch window (benchmarks/
# bench_public_source.py). zarr.config is process-wide, so the setting is applied only
# around our own local reads, under a lock that keeps concurrent sessions from
# interleaving set/restore. Remote stores keep zarr's default: there latency dominates.
_LOCAL_ZARR_READ = {"async.concurrency": 1}
_ZARR_CONFIG_LOCK = threading.Lock()


@functools.lru_cache(maxsize=64)
def _cached_transformer(dst_wkt: str, src_wkt: str) -> Transformer:
    # building a PROJ pipeline costs milliseconds; pyproj Transformers are thread-safe (≥ 3.1)
    return Transformer.from_crs(dst_wkt, src_wkt, always_xy=True)


def _apply_affine(t: Affine, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``t`` applied to coordinate arrays (affine ≥ 3 deprecates ``t * (x, y)``)."""
    return t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f


class _PixelLookup:
    """Fractional mosaic (col, row) of patch pixel centres: exact, and fast-with-error-bound.

    ``exact`` transforms every requested pixel centre with pyproj — the straightforward
    computation. ``source_pixels`` in :class:`AlphaEarthMosaic` uses ``fast``, which gives
    the same integer cells:

    1. transform a coarse lattice (every ``step`` = 32 pixels plus the last row/column)
       exactly and interpolate the fractional mosaic coordinates bilinearly in between
       (the mosaic affine is linear, so interpolating pixel coordinates is the same as
       interpolating map coordinates);
    2. bound the interpolation error from the exact transform of the midpoints of the
       lattice's edges, where bilinear error peaks:
       ``bound = 2 × (max error mid-row-edge + max error mid-column-edge) + 1e-6 px``
       (the 1e-6 covers floating-point rounding of the two paths). Measured true errors
       for a 512×512 10 m patch at step 32 (UTM → the 1e-4° mosaic): 1e-5 px at the
       equator, 2e-4 px at 47° N, 5e-4 px at 70° N, 1e-3 px at 80° N, 1.4e-2 px at 84° S.
       If the bound exceeds ``max_bound`` (0.02 px) the lattice is refined (16, then 8);
    3. recompute exactly every pixel whose interpolated position lies within ``bound`` of a
       mosaic cell edge — the only pixels whose nearest cell could differ (≈4·bound of
       them: ~800 of 262 144 at 47° N).

    So the nearest-neighbour cells are those of the exact transform (tested against it),
    at a small fraction of its cost. If even the finest lattice's bound is too large, or
    the lattice leaves the projection's domain, every pixel is transformed exactly.
    """

    def __init__(self, dst_crs: CRS, src_crs: CRS, dst_transform: Affine, src_transform: Affine,
                 width: int, height: int) -> None:
        self.transformer = _cached_transformer(CRS.from_user_input(dst_crs).to_wkt(),
                                               CRS.from_user_input(src_crs).to_wkt())
        self.dst_t, self.src_t = dst_transform, src_transform
        self.inv_src = ~src_transform
        self.width, self.height = int(width), int(height)
        self.geographic = CRS.from_user_input(src_crs).is_geographic
        self._lon_ref: float | None = None

    def exact(self, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fractional mosaic (col, row) of patch pixels (cols, rows) — pyproj on every point."""
        xs, ys = _apply_affine(self.dst_t, np.asarray(cols, np.float64) + 0.5, np.asarray(rows, np.float64) + 0.5)
        sx, sy = self.transformer.transform(xs, ys)
        sx, sy = np.asarray(sx, np.float64), np.asarray(sy, np.float64)
        if self.geographic:
            # bring longitudes into the mosaic's range so points beyond ±180° land on the grid
            west = self.src_t.c
            sx = np.where(sx < west, sx + 360.0, sx)
            sx = np.where(sx >= west + 360.0, sx - 360.0, sx)
        fc, fr = _apply_affine(self.inv_src, sx, sy)
        return np.asarray(fc, np.float64), np.asarray(fr, np.float64)

    def exact_grid(self) -> tuple[np.ndarray, np.ndarray]:
        cc, rr = np.meshgrid(np.arange(self.width), np.arange(self.height))
        return self.exact(cc, rr)

    def fast(self, steps: Sequence[int] = (32, 16, 8), max_bound: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
        """Interpolated from the coarsest lattice in ``steps`` whose error bound is ≤ ``max_bound``
        px, near-edge pixels recomputed exactly; the exact transform if none qualifies."""
        w, h = self.width, self.height
        t = self.src_t
        # the lattice path wraps longitudes in column space: needs a north-up mosaic grid
        if w < 3 or h < 3 or t.b != 0 or t.d != 0 or t.a <= 0:
            return self.exact_grid()
        for step in steps:
            lattice = self._interpolate(step, max_bound)
            if lattice is not None:
                fc, fr, bound = lattice
                break
        else:
            return self.exact_grid()
        period = 360.0 / t.a  # columns per turn of the globe
        if self.geographic and not (fc.min() >= 0 and fc.max() < period):  # off the grid's edge
            fc = np.where(fc < 0, fc + period, fc)
            fc = np.where(fc >= period, fc - period, fc)
        near = _near_integer(fc, bound)
        near |= _near_integer(fr, bound)
        rr, cc = np.nonzero(near)
        if rr.size:
            fc[rr, cc], fr[rr, cc] = self.exact(cc, rr)
        self.last_bound, self.last_step, self.last_recomputed = bound, step, int(rr.size)
        return fc, fr

    def _interpolate(self, step: int, max_bound: float) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(col, row, error bound) interpolated from a lattice every ``step`` px; None if the
        bound exceeds ``max_bound`` or the lattice leaves the projection's domain."""
        w, h = self.width, self.height
        cols_n = np.unique(np.r_[np.arange(0, w, step), w - 1]).astype(np.float64)
        rows_n = np.unique(np.r_[np.arange(0, h, step), h - 1]).astype(np.float64)
        gc, gr = self._lattice(cols_n, rows_n)
        if not (np.isfinite(gc).all() and np.isfinite(gr).all()):
            return None
        # interpolation error, measured where it peaks: midway along the lattice's horizontal
        # edges (≈ hx²/8·|∂²/∂x²|) and vertical edges (≈ hy²/8·|∂²/∂y²|). Not at cell
        # centres alone: there the two terms can cancel (longitude near a pole is harmonic).
        cols_m, rows_m = (cols_n[:-1] + cols_n[1:]) / 2, (rows_n[:-1] + rows_n[1:]) / 2
        err = 0.0
        for (mid_c, mid_r), (interp_c, interp_r) in (
            (self._lattice(cols_m, rows_n), ((gc[:, :-1] + gc[:, 1:]) / 2, (gr[:, :-1] + gr[:, 1:]) / 2)),
            (self._lattice(cols_n, rows_m), ((gc[:-1] + gc[1:]) / 2, (gr[:-1] + gr[1:]) / 2)),
        ):
            e = max(float(np.abs(interp_c - mid_c).max()), float(np.abs(interp_r - mid_r).max()))
            if not math.isfinite(e):
                return None
            err += e
        # bilinear error ≤ hx²/8·max|f_xx| + hy²/8·max|f_yy| (+ higher-order terms): the sum
        # of the two edge errors, doubled for the variation of the derivatives within a patch
        bound = 2.0 * err + 1e-6
        if bound > max_bound:
            return None
        wr, wc = _interp_weights(h, rows_n), _interp_weights(w, cols_n)
        return _bilinear(gc, wr, wc), _bilinear(gr, wr, wc), bound

    def _lattice(self, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fractional mosaic coords on a lattice, longitudes unwrapped around its middle."""
        cc, rr = np.meshgrid(cols + 0.5, rows + 0.5)
        xs, ys = _apply_affine(self.dst_t, cc, rr)
        sx, sy = self.transformer.transform(xs, ys)
        sx, sy = np.asarray(sx, np.float64), np.asarray(sy, np.float64)
        if self.geographic:
            if self._lon_ref is None:  # one reference for every lattice, so they agree
                self._lon_ref = float(sx[sx.shape[0] // 2, sx.shape[1] // 2])
            ref = self._lon_ref
            sx = np.where(sx - ref > 180.0, sx - 360.0, np.where(sx - ref < -180.0, sx + 360.0, sx))
        fc, fr = _apply_affine(self.inv_src, sx, sy)
        return np.asarray(fc, np.float64), np.asarray(fr, np.float64)


def _interp_weights(n: int, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For 0…n−1: index of the node at or below, and the fraction of the way to the next."""
    x = np.arange(n, dtype=np.float64)
    k = np.clip(np.searchsorted(nodes, x, side="right") - 1, 0, len(nodes) - 2)
    return k, (x - nodes[k]) / (nodes[k + 1] - nodes[k])


def _bilinear(grid: np.ndarray, rows: tuple[np.ndarray, np.ndarray], cols: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Separable bilinear interpolation of a lattice ``grid`` (nodes × nodes) to every pixel.

    Two sparse passes (2 nodes per pixel) rather than a matrix product: BLAS's threads
    stall badly on a busy shared machine, and this is only 4 passes over the output.
    """
    kc, tc = cols
    kr, tr = rows
    along = grid[:, kc] * (1.0 - tc) + grid[:, kc + 1] * tc  # (row nodes, width)
    step = np.diff(along, axis=0)  # change from each row node to the next
    out = np.take(step, kr, axis=0)
    out *= tr[:, None]
    out += np.take(along, kr, axis=0)
    return out


def _near_integer(values: np.ndarray, margin: float) -> np.ndarray:
    """True where ``values`` is within ``margin`` of an integer (a cell edge); NaN → True."""
    frac = values - np.floor(values)
    return ~((frac >= margin) & (frac <= 1.0 - margin))


class AlphaEarthMosaic:
    """The AlphaEarth annual embedding mosaic (Zarr v3), read a patch window at a time."""

    def __init__(self, url: str = AEF_MOSAIC_URL, timeout: float = 20.0,
                 storage_options: dict[str, Any] | None = None) -> None:
        self.url = str(url)
        self.timeout = float(timeout)
        self.storage_options = storage_options
        self._array = None
        self._local = False
        self._remote_store = None  # the FsspecStore, kept to settle its reads after a failure
        self.attrs: dict[str, Any] = {}

    # opening is lazy and cached: the group metadata is read once per process
    def _open(self):
        if self._array is not None:
            return self._array
        import zarr
        import zarr.storage

        local = False
        try:
            if "://" in self.url and not self.url.startswith("file://"):
                opts = self.storage_options
                if opts is None:
                    opts = {"anon": True}
                    if self.url.startswith("s3://"):
                        # explicit short timeouts and a single retry: a dead network must fail fast
                        opts.update(
                            client_kwargs={"region_name": "us-west-2"},
                            config_kwargs={"connect_timeout": self.timeout, "read_timeout": self.timeout,
                                           "retries": {"max_attempts": 2, "mode": "standard"}},
                        )
                store = zarr.storage.FsspecStore.from_url(self.url, storage_options=opts, read_only=True)
                self._remote_store = store
            else:
                path = self.url[len("file://"):] if self.url.startswith("file://") else self.url
                if not os.path.isdir(path):
                    raise SourceUnavailable(f"AlphaEarth embedding: the mosaic folder {path} does not exist",
                                            service=AEF_SERVICE, layer="embedding")
                store = zarr.storage.LocalStore(path, read_only=True)
                local = True
            # the mosaic is Zarr v3: saying so reads one metadata key (zarr.json) instead of four
            # concurrent guesses (v2 and consolidated keys too) — fewer round-trips, and no reads
            # left running when the first one fails. Local folders may be either format.
            group = zarr.open_group(store, mode="r", zarr_format=None if local else 3)
            if "embeddings" not in group:
                raise SourceError(f"AlphaEarth embedding: {self.url} has no 'embeddings' array; is it the AEF mosaic?",
                                  service=AEF_SERVICE, layer="embedding")
            array = group["embeddings"]
            attrs = {**dict(group.attrs), **dict(array.attrs)}
        except SourceError:
            raise
        except Exception as exc:  # fsspec/botocore/aiohttp errors: classified by message
            self._settle_remote_reads()
            raise classify_error(exc, AEF_SERVICE, "AlphaEarth embedding") from exc
        if array.ndim != 4 or array.shape[1] != 64:
            raise SourceError(f"AlphaEarth embedding: 'embeddings' in {self.url} has shape {array.shape}, "
                              f"expected (year, 64, y, x)", service=AEF_SERVICE, layer="embedding")
        if "spatial:transform" not in attrs and "transform" not in attrs:
            raise SourceError(f"AlphaEarth embedding: {self.url} has no 'spatial:transform' attribute",
                              service=AEF_SERVICE, layer="embedding")
        self.attrs = attrs
        self._local = local
        self._array = array
        return array

    @property
    def transform(self) -> Affine:
        self._open()
        t = self.attrs.get("spatial:transform") or self.attrs["transform"]
        return Affine(*[float(v) for v in t[:6]])

    @property
    def crs(self) -> CRS:
        self._open()
        for key in ("proj:code", "crs", "proj:wkt2", "proj:projjson"):
            if self.attrs.get(key):
                return CRS.from_user_input(self.attrs[key])
        return CRS.from_epsg(4326)

    @property
    def years(self) -> list[int]:
        array = self._open()
        if self.attrs.get("years"):
            years = [int(y) for y in self.attrs["years"]]
            if len(years) != array.shape[0]:
                raise SourceError(f"AlphaEarth embedding: {self.url} lists {len(years)} years in its 'years' "
                                  f"attribute but 'embeddings' has {array.shape[0]} along its year axis",
                                  service=AEF_SERVICE, layer="embedding")
            return years
        start = int(self.attrs.get("start_year", AEF_FIRST_YEAR))
        return list(range(start, start + array.shape[0]))

    def year_index(self, year: int) -> int:
        years = self.years
        if year not in years:
            contiguous = years == list(range(years[0], years[0] + len(years)))
            have = f"{years[0]}–{years[-1]}" if contiguous else ", ".join(map(str, years))
            raise NoDataHere(f"AlphaEarth embedding: {AEF_SERVICE} has years {have}, not {year}",
                             service=AEF_SERVICE, layer="embedding")
        if self.attrs.get("years"):
            # the attribute lists the year of each index along the first axis; it may have gaps
            return years.index(year)
        return year - years[0]

    def source_pixels(self, crs: CRS, transform: Affine, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) in the mosaic of each patch pixel centre (nearest neighbour), −1 outside.

        The cells are those of transforming every pixel centre exactly; see
        :class:`_PixelLookup` for how that is done at a fraction of the cost.
        """
        fc, fr = _PixelLookup(crs, self.crs, transform, self.transform, width, height).fast()
        return self._cells(fc, fr)

    def source_pixels_exact(self, crs: CRS, transform: Affine, width: int,
                            height: int) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`source_pixels`, transforming every pixel centre with pyproj (the reference)."""
        fc, fr = _PixelLookup(crs, self.crs, transform, self.transform, width, height).exact_grid()
        return self._cells(fc, fr)

    def _cells(self, fc: np.ndarray, fr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        array = self._open()
        ny, nx = array.shape[2], array.shape[3]
        c, r = np.floor(fc), np.floor(fr)
        if c.min() >= 0 and c.max() < nx and r.min() >= 0 and r.max() < ny:  # all inside (and finite)
            return r.astype(np.int64), c.astype(np.int64)
        with np.errstate(invalid="ignore"):
            inside = np.isfinite(fc) & np.isfinite(fr) & (fc >= 0) & (fc < nx) & (fr >= 0) & (fr < ny)
            c = np.where(inside, c, -1).astype(np.int64)
            r = np.where(inside, r, -1).astype(np.int64)
        return r, c

    def read_patch(self, year: int, crs: CRS, transform: Affine, width: int, height: int) -> np.ndarray:
        """The (64, height, width) float32 embedding on a patch grid; NaN where there is none.

        Resampling is nearest neighbour: each patch pixel takes the AlphaEarth vector of
        the mosaic pixel under its centre, so every value is a real (unit-length) embedding
        rather than an average of neighbours. The lookup is hand-written rather than a GDAL
        warp so that a patch on the antimeridian reads two windows (one each side of ±180°)
        and so that only the int8 codes of the window are touched: the codes are gathered
        onto the patch grid and dequantised in one table look-up (:func:`gather_dequantize`).
        """
        array = self._open()
        yi = self.year_index(year)
        rows, cols = self.source_pixels(crs, transform, width, height)
        valid = rows >= 0
        if not valid.any():
            return np.full((64, height, width), np.nan, dtype=np.float32)
        nx = array.shape[3]
        if valid.all():
            vr, vc = rows.ravel(), cols.ravel()
        else:
            vr, vc = rows[valid], cols[valid]
        straddles = int(vc.max()) - int(vc.min()) > nx // 2  # the patch crosses the grid's edge (antimeridian)
        if not straddles and valid.all():  # the usual case: one window, no gaps — gather directly
            r0, r1, c0, c1 = int(vr.min()), int(vr.max()) + 1, int(vc.min()), int(vc.max()) + 1
            window = self._read(yi, r0, r1, c0, c1)
            index = (vr - r0) * (c1 - c0) + (vc - c0)
            return gather_dequantize(window.reshape(64, -1), index).reshape(64, height, width)
        # windows side by side as one (64, M + 1) code table; the last column is nodata for
        # pixels outside the mosaic
        parts, offset = [], 0
        index_valid = np.empty(vr.shape, dtype=np.intp)
        groups = [vc < nx // 2, vc >= nx // 2] if straddles else [np.ones(vr.shape, bool)]
        for sel in groups:
            if not sel.any():
                continue
            r0, r1 = int(vr[sel].min()), int(vr[sel].max()) + 1
            c0, c1 = int(vc[sel].min()), int(vc[sel].max()) + 1
            window = self._read(yi, r0, r1, c0, c1).reshape(64, -1)
            index_valid[sel] = offset + (vr[sel] - r0) * (c1 - c0) + (vc[sel] - c0)
            parts.append(window)
            offset += window.shape[1]
        parts.append(np.full((64, 1), AEF_NODATA, dtype=np.int8))
        index = np.full(valid.shape, offset, dtype=np.intp)
        index[valid] = index_valid
        return gather_dequantize(np.concatenate(parts, axis=1), index.ravel()).reshape(64, height, width)

    def _read(self, yi: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """The int8 codes of one window, in one ``array[...]`` call (Zarr fetches only the
        chunks the window touches)."""
        array = self._open()
        try:
            if self._local:
                import zarr

                with _ZARR_CONFIG_LOCK, zarr.config.set(_LOCAL_ZARR_READ):
                    return np.asarray(array[yi, :, r0:r1, c0:c1])
            return np.asarray(array[yi, :, r0:r1, c0:c1])
        except Exception as exc:
            self._settle_remote_reads()
            raise classify_error(exc, AEF_SERVICE, "AlphaEarth embedding") from exc

    def _settle_remote_reads(self) -> None:
        """After a failed remote read, cancel this store's sibling reads still in flight.

        Zarr gathers chunk/metadata reads concurrently on its own event loop; when one fails
        the others keep running. Left alone they are destroyed at interpreter exit, and
        aiobotocore's context manager then fails in the wrong context, printing dozens of
        "Exception ignored in: <coroutine StorePath.get> … was created in a different
        Context" tracebacks. Cancelling them *in that loop* lets them unwind normally.
        Only tasks whose coroutine chain touches this store are cancelled, so concurrent
        reads of other stores (other app sessions) are left alone.
        """
        store = self._remote_store
        if store is None:
            return
        _cancel_store_tasks(store, timeout=min(self.timeout, 5.0))


def _task_uses_store(task, store) -> bool:
    """Does any frame of ``task``'s suspended coroutine chain hold ``store`` (or a path into it)?"""
    coro = task.get_coro()
    for _ in range(64):  # the chain is a few frames deep; the bound guards against odd awaitables
        frame = getattr(coro, "cr_frame", None)
        if frame is None:
            return False
        for value in frame.f_locals.values():
            if value is store or getattr(value, "store", None) is store:
                return True
        coro = getattr(coro, "cr_await", None)
    return False


def _cancel_store_tasks(store, timeout: float) -> None:
    """Cancel and await, in zarr's event loop, the pending tasks reading ``store``."""
    import asyncio
    import logging

    from zarr.core.sync import _get_loop

    async def settle() -> int:
        current = asyncio.current_task()
        mine = [t for t in asyncio.all_tasks() if t is not current and not t.done() and _task_uses_store(t, store)]
        for t in mine:
            t.cancel()
        if mine:
            await asyncio.wait(mine, timeout=timeout)
        return len(mine)

    try:
        n = asyncio.run_coroutine_threadsafe(settle(), _get_loop()).result(timeout + 1.0)
    except Exception as exc:  # cleanup only: never hide the real error behind this one
        logging.getLogger(__name__).debug("could not settle pending mosaic reads: %s", exc)
        return
    if n:
        logging.getLogger(__name__).debug("cancelled %d pending mosaic read(s) after a failure", n)


# -- Planetary Computer Sentinel-1 / Sentinel-2 -------------------------------------------------
def _incidence_at_ground_range(g_km: np.ndarray | float) -> np.ndarray:
    """Incidence angle (deg) at ground distance g from nadir, spherical Earth."""
    phi = np.asarray(g_km, dtype=np.float64) / EARTH_RADIUS_KM
    look = np.arctan2(EARTH_RADIUS_KM * np.sin(phi), EARTH_RADIUS_KM + S1_ORBIT_ALTITUDE_KM - EARTH_RADIUS_KM * np.cos(phi))
    return np.degrees(look + phi)


def _ground_range_at_incidence(theta_deg: float) -> float:
    lo, hi = 0.0, 2000.0
    for _ in range(60):  # bisection: the incidence grows monotonically with ground range
        mid = (lo + hi) / 2
        if _incidence_at_ground_range(mid) < theta_deg:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def estimate_incidence_angle(footprint: dict, orbit_state: str, crs: CRS, transform: Affine,
                             width: int, height: int) -> np.ndarray | None:
    """Per-pixel incidence angle of an IW acquisition from its swath footprint and pass.

    Sentinel-1 looks right: on an ascending pass far range is to the east of the swath, on
    a descending pass to the west. The across-track position of each pixel inside the
    footprint (its minimum rotated rectangle) maps to ground range between the near edge
    (29.1°) and the far edge (46.0°), and ground range to incidence on a spherical Earth
    at 693 km altitude. Accurate to about a degree, which is what the generator needs.
    """
    from shapely.geometry import shape
    from shapely.ops import transform as shp_transform

    if orbit_state not in ("ascending", "descending"):
        return None
    to_grid = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    try:
        poly = shp_transform(to_grid.transform, shape(footprint))
        rect = poly.minimum_rotated_rectangle
        corners = np.asarray(rect.exterior.coords)[:4]
    except Exception:
        return None
    edges = [corners[(i + 1) % 4] - corners[i] for i in range(2)]
    lengths = [max(float(np.hypot(*e)), 1e-9) for e in edges]
    # the orbit is near-polar: the along-track side is the one closer to north-south
    # (a slice can be wider than long, so the longer side says nothing)
    k = int(np.argmax([abs(e[1]) / n for e, n in zip(edges, lengths)]))
    along = edges[k]
    across = np.array([along[1], -along[0]]) / lengths[k]
    # make `across` point towards far range: east on ascending, west on descending
    if (across[0] > 0) != (orbit_state == "ascending"):
        across = -across
    proj = corners @ across
    near, far = float(proj.min()), float(proj.max())
    if far - near < 1_000.0:
        return None
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    xs, ys = transform * (cols, rows)
    frac = np.clip((xs * across[0] + ys * across[1] - near) / (far - near), 0.0, 1.0)
    g_near, g_far = _ground_range_at_incidence(IW_NEAR_DEG), _ground_range_at_incidence(IW_FAR_DEG)
    return _incidence_at_ground_range(g_near + frac * (g_far - g_near)).astype(np.float32)


def gamma0_to_sigma0_db(gamma0_linear: np.ndarray, incidence_deg: np.ndarray | float) -> np.ndarray:
    """Terrain-flattened γ⁰ (linear power) → σ⁰ in dB: σ⁰ = γ⁰ · cos θ.

    σ⁰ (ellipsoid, what Earth Engine's S1_GRD, the emulator's training data and HuiYanEarth
    use) and γ⁰ differ by the cosine of the incidence angle: γ⁰ = σ⁰ / cos θ. θ here is the
    ellipsoid incidence angle. RTC products normalise by the local terrain-facet area
    instead, so this is the flat-terrain approximation: exact on flat ground, and on slopes
    it keeps the terrain flattening (the brightness of foreslopes is not restored).
    NaN / non-positive γ⁰ → NaN.
    """
    g = np.asarray(gamma0_linear, dtype=np.float64)
    cos_t = np.cos(np.radians(np.asarray(incidence_deg, dtype=np.float64)))
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma0 = g * cos_t
        return np.where(np.isfinite(sigma0) & (sigma0 > 0), 10.0 * np.log10(sigma0), np.nan).astype(np.float32)


def _item_datetime(item) -> _dt.datetime:
    dt = item.datetime or _dt.datetime.fromisoformat(str(item.properties.get("start_datetime")).replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=_dt.timezone.utc)


class PlanetaryComputerSentinel:
    """Sentinel-1 RTC and Sentinel-2 L2A patches from a STAC API (Planetary Computer)."""

    def __init__(self, stac_url: str = PC_STAC_URL, timeout: float = 20.0, sign: bool = True,
                 s1_collection: str = "sentinel-1-rtc", s2_collection: str = "sentinel-2-l2a",
                 s1_max_items: int = 6, s2_max_items: int = 4) -> None:
        if s1_collection != "sentinel-1-rtc":
            # GRD on the Planetary Computer is uncalibrated DN in radar geometry (GCPs); turning it
            # into σ⁰ dB needs the calibration annotation. Not supported yet: say so, don't guess.
            raise SourceError(f"Sentinel-1 collection {s1_collection!r} is not supported by the public source; "
                              f"use 'sentinel-1-rtc'", service=PC_SERVICE, layer="Sentinel-1")
        self.stac_url = stac_url
        self.timeout = float(timeout)
        self.sign = sign
        self.s1_collection = s1_collection
        self.s2_collection = s2_collection
        self.s1_max_items = s1_max_items
        self.s2_max_items = s2_max_items
        self._client = None

    # -- STAC ---------------------------------------------------------------------------------
    def client(self, layer: str):
        if self._client is None:
            import pystac_client

            modifier = None
            if self.sign:
                import planetary_computer

                modifier = planetary_computer.sign_inplace
            from pystac_client.stac_api_io import StacApiIO
            from urllib3 import Retry

            # a short timeout, one connection retry, no read retry (a hung service fails in ~timeout),
            # and backoff on rate limiting (429) and transient gateway errors
            retry = Retry(total=3, connect=1, read=0, backoff_factor=1.0, status_forcelist=(429, 502, 503, 504),
                          allowed_methods=None, raise_on_status=False)
            stac_io = StacApiIO(timeout=self.timeout, max_retries=retry)
            try:
                self._client = pystac_client.Client.open(self.stac_url, modifier=modifier, stac_io=stac_io,
                                                         timeout=self.timeout)
            except Exception as exc:
                raise classify_error(exc, f"{PC_SERVICE} STAC API ({self.stac_url})", layer) from exc
        return self._client

    def search(self, collection: str, request: FetchRequest, layer: str, query: dict | None = None) -> list:
        client = self.client(layer)
        try:
            found = client.search(
                collections=[collection],
                intersects={"type": "Point", "coordinates": [request.lon, request.lat]},
                datetime=f"{request.start.isoformat()}/{request.end.isoformat()}",
                query=query or None, max_items=200, limit=100,
            )
            return list(found.items())
        except Exception as exc:
            raise classify_error(exc, f"{PC_SERVICE} STAC API ({self.stac_url})", layer) from exc

    # -- reading COG windows ----------------------------------------------------------------
    @contextmanager
    def _gdal_env(self) -> Iterator[None]:
        t = max(1, int(math.ceil(self.timeout)))
        with rasterio.Env(GDAL_HTTP_TIMEOUT=t, GDAL_HTTP_CONNECTTIMEOUT=min(t, 10), GDAL_HTTP_MAX_RETRY=2,
                          GDAL_HTTP_RETRY_DELAY=1, GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", GDAL_HTTP_MULTIRANGE="YES",
                          GDAL_HTTP_MERGE_CONSECUTIVE_RANGES="YES", VSI_CACHE=True,
                          CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif,.tiff,.TIF"):
            yield

    def read_asset(self, href: str, crs: CRS, transform: Affine, width: int, height: int,
                   resampling: Resampling, layer: str) -> np.ndarray:
        """One COG band warped onto the patch grid (only the needed window is read); NaN = nodata."""
        try:
            with self._gdal_env(), rasterio.open(href) as src:
                nodata = src.nodata
                with WarpedVRT(src, crs=crs, transform=transform, width=width, height=height,
                               resampling=resampling, src_nodata=nodata, nodata=np.nan, dtype="float32") as vrt:
                    data = vrt.read(1, out_dtype="float32")
        except RasterioError as exc:
            raise classify_error(exc, PC_SERVICE, layer) from exc
        return data

    # -- Sentinel-1 ---------------------------------------------------------------------------
    def fetch_s1(self, request: FetchRequest, result: SourceResult, progress: FetchProgress) -> None:
        layer = "Sentinel-1 VV/VH"
        query: dict[str, Any] = {"sar:instrument_mode": {"eq": "IW"}}
        if request.s1_pass:
            query["sat:orbit_state"] = {"eq": request.s1_pass}
        progress(0.0, f"searching {self.s1_collection} on the Planetary Computer")
        items = [it for it in self.search(self.s1_collection, request, layer, query)
                 if {"VV", "VH"} <= set(it.properties.get("sar:polarizations", []))
                 and "vv" in it.assets and "vh" in it.assets]
        if not items:
            when = f"{request.start} … {request.end}"
            pass_ = f" {request.s1_pass}" if request.s1_pass else ""
            raise NoDataHere(f"{layer}: no{pass_} IW acquisition with VV+VH in {self.s1_collection} on "
                             f"{PC_SERVICE} covers ({request.lat:.4f}, {request.lon:.4f}) in {when} "
                             f"(open ocean or outside Sentinel-1 coverage?)", service=PC_SERVICE, layer="s1")
        target = _dt.datetime.combine(request.nearest_date, _dt.time(12), tzinfo=_dt.timezone.utc)
        if request.s1_composite == "nearest":
            chosen = [min(items, key=lambda it: abs(_item_datetime(it) - target))]
        else:
            # one relative orbit only: a composite of one viewing geometry has one angle per pixel
            by_orbit: dict[tuple, list] = {}
            for it in items:
                key = (it.properties.get("sat:orbit_state"), it.properties.get("sat:relative_orbit"))
                by_orbit.setdefault(key, []).append(it)
            best = max(by_orbit.values(), key=lambda group: (len(group), -min(abs(_item_datetime(i) - target) for i in group)))
            chosen = sorted(best, key=lambda it: abs(_item_datetime(it) - target))[: self.s1_max_items]
        crs, transform = request.grid
        size = request.size_px
        vv_stack, vh_stack, used = [], [], []
        for k, item in enumerate(chosen):
            progress(0.1 + 0.8 * k / len(chosen), f"reading Sentinel-1 {item.id}")
            vv = self.read_asset(item.assets["vv"].href, crs, transform, size, size, Resampling.bilinear, layer)
            vh = self.read_asset(item.assets["vh"].href, crs, transform, size, size, Resampling.bilinear, layer)
            if not (np.isfinite(vv) & (vv > 0)).any():
                continue  # the item's footprint touches the point but its pixels are empty here
            vv_stack.append(vv)
            vh_stack.append(vh)
            used.append(item)
        if not used:
            raise NoDataHere(f"{layer}: the {len(chosen)} {self.s1_collection} scene(s) found have no valid pixels "
                             f"at ({request.lat:.4f}, {request.lon:.4f})", service=PC_SERVICE, layer="s1")
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
            gamma0_vv = np.nanmedian(np.stack(vv_stack), axis=0) if len(vv_stack) > 1 else vv_stack[0]
            gamma0_vh = np.nanmedian(np.stack(vh_stack), axis=0) if len(vh_stack) > 1 else vh_stack[0]
        dates = sorted(_item_datetime(it).date().isoformat() for it in used)
        first = used[0].properties
        orbit_state = first.get("sat:orbit_state", "")
        rel_orbit = first.get("sat:relative_orbit")
        when = dates[0] if len(dates) == 1 else f"{dates[0]} … {dates[-1]}"
        # every item used is of one relative orbit (median) or is the one nearest acquisition: one
        # viewing geometry, so one angle per pixel serves the whole composite
        angle = estimate_incidence_angle(used[0].geometry, orbit_state, crs, transform, size, size)
        angle_known = angle is not None
        if angle is None:
            angle = np.full((size, size), IW_MID_DEG, dtype=np.float32)
        vv_db, vh_db = gamma0_to_sigma0_db(gamma0_vv, angle), gamma0_to_sigma0_db(gamma0_vh, angle)
        how = "nearest acquisition" if request.s1_composite == "nearest" else f"median of {len(used)} in linear power"
        product = (f"{self.s1_collection} (Planetary Computer) γ⁰ RTC → σ⁰ by cos θ, {how}, "
                   f"{orbit_state} relative orbit {rel_orbit}")
        conversion = ("sigma0 = gamma0 · cos(theta), theta = " +
                      ("the estimated ellipsoid incidence angle (angle layer)" if angle_known else
                       f"{IW_MID_DEG}° (IW mid-swath; the swath geometry is unknown)") +
                      "; flat-terrain approximation: the RTC γ⁰ was normalised by the local terrain-facet area, "
                      "so on slopes the result is not the ellipsoid σ⁰ of GRD products")
        detail = {"items": [it.id for it in used], "collection": self.s1_collection, "orbit_state": orbit_state,
                  "relative_orbit": rel_orbit, "platforms": sorted({str(it.properties.get("platform")) for it in used}),
                  "composite": request.s1_composite, "backscatter": "sigma0 (ellipsoid), dB",
                  "original_convention": "gamma0 RTC (terrain-flattened, linear power)", "conversion": conversion}
        result.add("vv_db", vv_db, LayerReport("vv_db", "public", product, when, detail))
        result.add("vh_db", vh_db, LayerReport("vh_db", "public", product, when, detail))
        result.dates["s1"] = when
        result.warnings.append(f"Sentinel-1: {self.s1_collection} is terrain-flattened γ⁰; converted to σ⁰ as "
                               f"γ⁰·cos θ with the {'estimated' if angle_known else 'mid-swath'} incidence angle "
                               f"(flat-terrain approximation, less exact on slopes)")
        if angle_known:
            angle = np.where(np.isfinite(vv_db), angle, np.nan).astype(np.float32)
            result.add("angle_deg", angle, LayerReport(
                "angle_deg", "public", f"estimated from the {used[0].id} swath footprint and {orbit_state} pass",
                when, {"method": "swath geometry, spherical Earth, IW 29.1°–46.0°", "accuracy_deg": 1.0}))
            result.warnings.append("incidence angle: estimated from the Sentinel-1 swath geometry (about ±1°); "
                                   "the Planetary Computer RTC product carries no angle band")
        else:
            result.warnings.append("incidence angle: missing — the Planetary Computer RTC product carries no angle "
                                   "band and the swath geometry is unknown; the generator will use the angle you set")
        missing = float(np.mean(~np.isfinite(vv_db)))
        if missing > 0.01:
            result.warnings.append(f"Sentinel-1: {missing:.0%} of the patch has no data (swath edge or gap)")
        progress(1.0, "Sentinel-1 done")

    # -- Sentinel-2 ---------------------------------------------------------------------------
    def fetch_s2(self, request: FetchRequest, result: SourceResult, progress: FetchProgress) -> None:
        layer = "Sentinel-2 optical"
        progress(0.0, f"searching {self.s2_collection} on the Planetary Computer")
        items = self.search(self.s2_collection, request, layer, {"eo:cloud_cover": {"lt": request.s2_max_cloud}})
        items = [it for it in items if all(b in it.assets for b in S2_BANDS)]
        if not items:
            raise NoDataHere(f"{layer}: no {self.s2_collection} scene under {request.s2_max_cloud:.0f} % cloud covers "
                             f"({request.lat:.4f}, {request.lon:.4f}) in {request.start} … {request.end} on "
                             f"{PC_SERVICE}", service=PC_SERVICE, layer="s2")
        items = sorted(items, key=lambda it: float(it.properties.get("eo:cloud_cover", 100.0)))[: self.s2_max_items]
        crs, transform = request.grid
        size = request.size_px
        stack, used = [], []
        for k, item in enumerate(items):
            progress(0.05 + 0.9 * k / len(items), f"reading Sentinel-2 {item.id}")
            bands = np.stack([self.read_asset(item.assets[b].href, crs, transform, size, size, Resampling.bilinear,
                                              layer) for b in S2_BANDS])
            bands[bands <= 0] = np.nan  # DN 0 is nodata in L2A
            if "SCL" in item.assets:
                scl = self.read_asset(item.assets["SCL"].href, crs, transform, size, size, Resampling.nearest, layer)
                bands[:, np.isin(scl, S2_SCL_MASKED) | ~np.isfinite(scl)] = np.nan
            offset = _s2_offset(item.properties)
            refl = (bands + offset) / 10000.0
            if np.isfinite(refl).any():
                stack.append(refl.astype(np.float32))
                used.append(item)
        if not used:
            raise NoDataHere(f"{layer}: every {self.s2_collection} scene found is cloudy or empty at "
                             f"({request.lat:.4f}, {request.lon:.4f})", service=PC_SERVICE, layer="s2")
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            optical = np.nanmedian(np.stack(stack), axis=0).astype(np.float32) if len(stack) > 1 else stack[0]
        dates = sorted(_item_datetime(it).date().isoformat() for it in used)
        when = dates[0] if len(dates) == 1 else f"{dates[0]} … {dates[-1]}"
        product = f"{self.s2_collection} (Planetary Computer), SCL cloud mask, median of {len(used)}"
        result.add("optical", optical, LayerReport("optical", "public", product, when, {
            "items": [it.id for it in used], "cloud_cover": [it.properties.get("eo:cloud_cover") for it in used],
            "bands": list(S2_BANDS), "scale": "reflectance = (DN + BOA offset) / 10000"}))
        result.dates["s2"] = when
        missing = float(np.mean(~np.isfinite(optical[0])))
        if missing > 0.01:
            result.warnings.append(f"Sentinel-2: {missing:.0%} of the patch is cloud-masked or without data")
        progress(1.0, "Sentinel-2 done")


def _s2_offset(properties: dict) -> float:
    """BOA_ADD_OFFSET: −1000 DN from processing baseline 04.00 (25 Jan 2022) on, else 0."""
    baseline = properties.get("s2:processing_baseline")
    try:
        return -1000.0 if baseline is not None and float(baseline) >= 4.0 else 0.0
    except ValueError:
        return 0.0


# -- the public source ----------------------------------------------------------------------------
class PublicSource:
    """Embedding from the AlphaEarth mosaic, Sentinel-1/2 from the Planetary Computer. No account."""

    name = "public"

    def __init__(self, aef_url: str = AEF_MOSAIC_URL, stac_url: str = PC_STAC_URL, timeout: float = 20.0,
                 sign: bool = True, aef_storage_options: dict[str, Any] | None = None,
                 s1_collection: str = "sentinel-1-rtc") -> None:
        self.mosaic = AlphaEarthMosaic(aef_url, timeout=timeout, storage_options=aef_storage_options)
        self.sentinel = PlanetaryComputerSentinel(stac_url, timeout=timeout, sign=sign, s1_collection=s1_collection)

    def fetch_embedding(self, request: FetchRequest, result: SourceResult, progress: FetchProgress) -> None:
        progress(0.0, "reading the AlphaEarth embedding mosaic")
        crs, transform = request.grid
        emb = self.mosaic.read_patch(request.year, crs, transform, request.size_px, request.size_px)
        if not np.isfinite(emb).any():
            raise NoDataHere(f"AlphaEarth embedding: {AEF_SERVICE} has no embedding at ({request.lat:.4f}, "
                             f"{request.lon:.4f}) for {request.year} (open ocean, polar region or outside coverage)",
                             service=AEF_SERVICE, layer="embedding")
        result.add("embedding", emb, LayerReport(
            "embedding", "public", "AlphaEarth annual embedding mosaic (Source Cooperative, Zarr v3)",
            str(request.year), {"url": self.mosaic.url, "mosaic_crs": self.mosaic.crs.to_string(),
                                "resampling": "nearest", "quantisation": "int8, (q/127.5)²·sign(q)"}))
        result.dates["embedding"] = str(request.year)
        missing = float(np.mean(~np.isfinite(emb[0])))
        if missing > 0.01:
            result.warnings.append(f"AlphaEarth embedding: {missing:.0%} of the patch has no embedding "
                                   f"(coast, or the mosaic's edge)")
        progress(1.0, "embedding done")

    def fetch(self, request: FetchRequest, groups: Sequence[str], progress: FetchProgress | None = None) -> SourceResult:
        started = time.perf_counter()
        result = SourceResult(source=self.name)
        steps = {"embedding": self.fetch_embedding, "s1": self.sentinel.fetch_s1, "s2": self.sentinel.fetch_s2}
        groups = [g for g in groups if g in steps]
        for k, group in enumerate(groups):
            sub = scale_progress(progress, k / len(groups), (k + 1) / len(groups))
            try:
                steps[group](request, result, sub)
            except SourceError as exc:
                result.fail(group, exc)
        result.seconds = time.perf_counter() - started
        return result
