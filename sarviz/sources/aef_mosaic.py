"""The AlphaEarth annual embedding mosaic (Source Cooperative, Zarr v3), read a patch at a time.

The published store (written by geospatial-jeff/aef-mosaic, ``src/io/zarr_writer.rs``) is
a Zarr v3 group whose attributes follow the GeoZarr conventions:

* ``proj:code`` — the CRS (``EPSG:4326``);
* ``spatial:transform`` — ``[res, 0, xmin, 0, −res, ymax]`` (rasterio/``Affine`` order, not GDAL's; pixel
  registration), with ``spatial:dimensions`` ``["y", "x"]`` and ``spatial:shape``;
* ``geoemb:quantization`` — int8 "signed_square": ``(q / 127.5)² · sign(q)``, nodata −128.

Arrays: ``embeddings`` (time, band, y, x) int8, fill −128, sharded + zstd; and the
coordinate arrays ``/time`` (int32 **years**, the only place the years are recorded),
``/band`` (A00…A63), ``/x`` and ``/y`` (cell centres). The year axis is read from
``/time``; older local stores with a ``years`` or ``start_year`` attribute still work.

Resampling: the mosaic is itself a nearest-neighbour reprojection of the native UTM
AlphaEarth tiles onto the 4326 grid; we map each patch pixel to the mosaic cell under its
centre (one more nearest-neighbour step) — the position jitter this adds is measured in
``benchmarks/bench_geometry.py`` (``RESULTS_geometry.md``).
"""

from __future__ import annotations

import functools
import math
import os
import threading
from typing import Any, Sequence

import numpy as np
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS

from sarviz.sources.base import NoDataHere, SourceError, SourceUnavailable, classify_error

AEF_MOSAIC_URL = "s3://us-west-2.opendata.source.coop/tge-labs/aef-mosaic/"
AEF_SERVICE = "the AlphaEarth mosaic on Source Cooperative"
AEF_NODATA = -128
AEF_FIRST_YEAR = 2017


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

    def __init__(
        self, dst_crs: CRS, src_crs: CRS, dst_transform: Affine, src_transform: Affine, width: int, height: int
    ) -> None:
        self.transformer = _cached_transformer(
            CRS.from_user_input(dst_crs).to_wkt(), CRS.from_user_input(src_crs).to_wkt()
        )
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

    def __init__(
        self, url: str = AEF_MOSAIC_URL, timeout: float = 20.0, storage_options: dict[str, Any] | None = None
    ) -> None:
        self.url = str(url)
        self.timeout = float(timeout)
        self.storage_options = storage_options
        self._array = None
        self._local = False
        self._remote_store = None  # the FsspecStore, kept to settle its reads after a failure
        self.attrs: dict[str, Any] = {}
        self._time: list[int] | None = None  # the /time coordinate array (years)

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
                            config_kwargs={
                                "connect_timeout": self.timeout,
                                "read_timeout": self.timeout,
                                "retries": {"max_attempts": 2, "mode": "standard"},
                            },
                        )
                store = zarr.storage.FsspecStore.from_url(self.url, storage_options=opts, read_only=True)
                self._remote_store = store
            else:
                path = self.url[len("file://") :] if self.url.startswith("file://") else self.url
                if not os.path.isdir(path):
                    raise SourceUnavailable(
                        f"AlphaEarth embedding: the mosaic folder {path} does not exist",
                        service=AEF_SERVICE,
                        layer="embedding",
                    )
                store = zarr.storage.LocalStore(path, read_only=True)
                local = True
            # the mosaic is Zarr v3: saying so reads one metadata key (zarr.json) instead of four
            # concurrent guesses (v2 and consolidated keys too) — fewer round-trips, and no reads
            # left running when the first one fails. Local folders may be either format.
            group = zarr.open_group(store, mode="r", zarr_format=None if local else 3)
            if "embeddings" not in group:
                raise SourceError(
                    f"AlphaEarth embedding: {self.url} has no 'embeddings' array; is it the AEF mosaic?",
                    service=AEF_SERVICE,
                    layer="embedding",
                )
            array = group["embeddings"]
            attrs = {**dict(group.attrs), **dict(array.attrs)}
        except SourceError:
            raise
        except Exception as exc:  # fsspec/botocore/aiohttp errors: classified by message
            self._settle_remote_reads()
            raise classify_error(exc, AEF_SERVICE, "AlphaEarth embedding") from exc
        if array.ndim != 4 or array.shape[1] != 64:
            raise SourceError(
                f"AlphaEarth embedding: 'embeddings' in {self.url} has shape {array.shape}, expected (year, 64, y, x)",
                service=AEF_SERVICE,
                layer="embedding",
            )
        if "spatial:transform" not in attrs and "transform" not in attrs:
            raise SourceError(
                f"AlphaEarth embedding: {self.url} has no 'spatial:transform' attribute",
                service=AEF_SERVICE,
                layer="embedding",
            )
        self.attrs = attrs
        self._time = self._read_time_coordinate(group, array)
        self._local = local
        self._array = array
        return array

    def _read_time_coordinate(self, group, array) -> list[int] | None:
        """The years of the year axis from the ``/time`` coordinate array (int32 years), or
        None when the store has none (older local stores: ``years``/``start_year`` attributes)."""
        if "time" not in group:
            return None
        try:
            values = np.asarray(group["time"][...]).reshape(-1)
        except Exception as exc:
            raise classify_error(exc, AEF_SERVICE, "AlphaEarth embedding") from exc
        if values.size != array.shape[0]:
            raise SourceError(
                f"AlphaEarth embedding: {self.url} has {values.size} entries in /time but "
                f"'embeddings' has {array.shape[0]} along its year axis",
                service=AEF_SERVICE,
                layer="embedding",
            )
        years = [int(v) for v in values]
        if not all(1900 <= y <= 2200 for y in years):
            raise SourceError(
                f"AlphaEarth embedding: /time in {self.url} does not hold years ({years[:5]}…)",
                service=AEF_SERVICE,
                layer="embedding",
            )
        return years

    @property
    def transform(self) -> Affine:
        """The mosaic's affine (pixel corners), from ``spatial:transform``.

        The published store writes ``[res, 0, xmin, 0, −res, ymax]``: rasterio/``Affine``
        order (x = a·col + b·row + c, y = d·col + e·row + f), *not* GDAL's geotransform order
        ``[xmin, res, 0, ymax, 0, −res]``. A north-up list in GDAL order (zeros at 2 and 4
        rather than 1 and 3) is recognised too. ``spatial:registration: "node"`` (the
        transform locates pixel centres) is shifted by half a pixel.
        """
        self._open()
        t = [float(v) for v in (self.attrs.get("spatial:transform") or self.attrs["transform"])[:6]]
        if len(t) != 6:
            raise SourceError(
                f"AlphaEarth embedding: spatial:transform in {self.url} needs 6 numbers, got {t}",
                service=AEF_SERVICE,
                layer="embedding",
            )
        if t[1] == 0 and t[3] == 0 or not (t[2] == 0 and t[4] == 0):
            affine = Affine(*t)
        else:
            affine = Affine.from_gdal(*t)
        if self.attrs.get("spatial:registration") == "node":
            affine = affine * Affine.translation(-0.5, -0.5)
        return affine

    @property
    def crs(self) -> CRS:
        self._open()
        for key in ("proj:code", "crs", "proj:wkt2", "proj:projjson"):
            if self.attrs.get(key):
                return CRS.from_user_input(self.attrs[key])
        return CRS.from_epsg(4326)

    @property
    def years(self) -> list[int]:
        """The year of each index of the year axis: the ``/time`` array of the published store
        (the only place it records them), else a ``years`` attribute, else ``start_year`` + i."""
        array = self._open()
        if self._time is not None:
            return list(self._time)
        if self.attrs.get("years"):
            years = [int(y) for y in self.attrs["years"]]
            if len(years) != array.shape[0]:
                raise SourceError(
                    f"AlphaEarth embedding: {self.url} lists {len(years)} years in its 'years' "
                    f"attribute but 'embeddings' has {array.shape[0]} along its year axis",
                    service=AEF_SERVICE,
                    layer="embedding",
                )
            return years
        if "start_year" not in self.attrs:
            # guessing a 2017 start would silently read the wrong year of a store that began later
            raise SourceError(
                f"AlphaEarth embedding: {self.url} does not say which years it holds (no /time "
                f"array, no 'years' or 'start_year' attribute)",
                service=AEF_SERVICE,
                layer="embedding",
            )
        start = int(self.attrs["start_year"])
        return list(range(start, start + array.shape[0]))

    def year_index(self, year: int) -> int:
        years = self.years
        if year not in years:
            contiguous = years == list(range(years[0], years[0] + len(years)))
            have = f"{years[0]}–{years[-1]}" if contiguous else ", ".join(map(str, years))
            raise NoDataHere(
                f"AlphaEarth embedding: {AEF_SERVICE} has years {have}, not {year}",
                service=AEF_SERVICE,
                layer="embedding",
            )
        # /time (or the years attribute) lists the year of each index; it may have gaps
        return years.index(year)

    def source_pixels(self, crs: CRS, transform: Affine, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) in the mosaic of each patch pixel centre (nearest neighbour), −1 outside.

        The cells are those of transforming every pixel centre exactly; see
        :class:`_PixelLookup` for how that is done at a fraction of the cost.
        """
        fc, fr = _PixelLookup(crs, self.crs, transform, self.transform, width, height).fast()
        return self._cells(fc, fr)

    def source_pixels_exact(
        self, crs: CRS, transform: Affine, width: int, height: int
    ) -> tuple[np.ndarray, np.ndarray]:
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
