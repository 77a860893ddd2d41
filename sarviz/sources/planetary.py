"""Sentinel-1 RTC and Sentinel-2 L2A patches from the Microsoft Planetary Computer STAC API.

* **Sentinel-1** — ``sentinel-1-rtc`` (radiometrically terrain-corrected γ⁰, linear power).
  By default **one acquisition**: the pass nearest to the target date (all slices of that
  pass over the patch, one relative orbit, its own angle); as an option a median of up to
  ``s1_max_items`` acquisitions of the one relative orbit with most acquisitions. The
  incidence angle is not in the product, so it is estimated per pixel from the swath
  footprint and orbit pass (:mod:`sarviz.sources.s1_geometry`) and the report says so. The
  γ⁰ is converted to σ⁰ (σ⁰ = γ⁰·cos θ) so that ``Scene.vv_db``/``vh_db`` mean ellipsoid σ⁰
  whatever the source; provenance records the original convention.
* **Sentinel-2** — ``sentinel-2-l2a``, scene-classification (SCL) cloud mask, per-pixel median
  of the least cloudy scenes, reflectance = (DN + offset) / 10000.

Only the needed COG windows are read (rasterio ``WarpedVRT`` onto the patch grid); every
network access has an explicit timeout. In tests the constructor points at a local STAC API
and local COGs.
"""

from __future__ import annotations

import datetime as _dt
import math
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import planetary_computer
import pystac_client
import rasterio
from affine import Affine
from pystac_client.stac_api_io import StacApiIO
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from shapely.geometry import Point, mapping, shape
from shapely.ops import unary_union
from urllib3 import Retry

from sarviz.sources.base import (
    FetchProgress,
    FetchRequest,
    LayerReport,
    NoDataHere,
    SourceError,
    SourceResult,
    classify_error,
    s1_provenance,
)
from sarviz.sources.s1_geometry import IW_MID_DEG, estimate_incidence_angle, gamma0_to_sigma0_db

PC_STAC_URL = "https://planetarycomputer.microsoft.com/api/stac/v1"
PC_SERVICE = "Microsoft Planetary Computer"
# SCL classes that are not clear ground: no data, saturated, cloud shadow, cloud medium/high, cirrus.
S2_SCL_MASKED = (0, 1, 3, 8, 9, 10)
S2_BANDS = ("B02", "B03", "B04", "B08")


#: items of one track this close in time are slices of one pass (a datatake lasts minutes)
SINGLE_PASS_MINUTES = 10
#: how many items a single-acquisition fetch reads before giving up (passes without pixels here)
MAX_SINGLE_TRIES = 8


def _covers(item, lon: float, lat: float) -> bool:
    """Does the item's footprint contain the point (any item without a footprint is kept)."""
    if not item.geometry:
        return True
    try:
        return shape(item.geometry).intersects(Point(lon, lat))
    except Exception:
        return True


def _track_key(item) -> tuple:
    return (item.properties.get("sat:orbit_state"), item.properties.get("sat:relative_orbit"))


def _item_datetime(item) -> _dt.datetime:
    dt = item.datetime or _dt.datetime.fromisoformat(str(item.properties.get("start_datetime")).replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=_dt.timezone.utc)


class PlanetaryComputerSentinel:
    """Sentinel-1 RTC and Sentinel-2 L2A patches from a STAC API (Planetary Computer)."""

    def __init__(
        self,
        stac_url: str = PC_STAC_URL,
        timeout: float = 20.0,
        sign: bool = True,
        s1_collection: str = "sentinel-1-rtc",
        s2_collection: str = "sentinel-2-l2a",
        s1_max_items: int = 6,
        s2_max_items: int = 4,
    ) -> None:
        if s1_collection != "sentinel-1-rtc":
            # GRD on the Planetary Computer is uncalibrated DN in radar geometry (GCPs); turning it
            # into σ⁰ dB needs the calibration annotation. Not supported yet: say so, don't guess.
            raise SourceError(
                f"Sentinel-1 collection {s1_collection!r} is not supported by the public source; use 'sentinel-1-rtc'",
                service=PC_SERVICE,
                layer="Sentinel-1",
            )
        self.stac_url = stac_url
        self.timeout = float(timeout)
        self.sign = sign
        self.s1_collection = s1_collection
        self.s2_collection = s2_collection
        self.s1_max_items = s1_max_items
        self.s2_max_items = s2_max_items
        self._client: pystac_client.Client | None = None

    # -- STAC ---------------------------------------------------------------------------------
    def client(self, layer: str) -> pystac_client.Client:
        if self._client is None:
            modifier = planetary_computer.sign_inplace if self.sign else None
            # a short timeout, one connection retry, no read retry (a hung service fails in ~timeout),
            # and backoff on rate limiting (429) and transient gateway errors
            retry = Retry(
                total=3,
                connect=1,
                read=0,
                backoff_factor=1.0,
                status_forcelist=(429, 502, 503, 504),
                allowed_methods=None,
                raise_on_status=False,
            )
            stac_io = StacApiIO(timeout=self.timeout, max_retries=retry)
            try:
                self._client = pystac_client.Client.open(
                    self.stac_url, modifier=modifier, stac_io=stac_io, timeout=self.timeout
                )
            except Exception as exc:
                raise classify_error(exc, f"{PC_SERVICE} STAC API ({self.stac_url})", layer) from exc
        return self._client

    def search(
        self,
        collection: str,
        request: FetchRequest,
        layer: str,
        query: dict | None = None,
        geometry: dict | None = None,
    ) -> list:
        """Items of ``collection`` over the point (or ``geometry``) in the request's date window."""
        client = self.client(layer)
        try:
            found = client.search(
                collections=[collection],
                intersects=geometry or {"type": "Point", "coordinates": [request.lon, request.lat]},
                datetime=f"{request.start.isoformat()}/{request.end.isoformat()}",
                query=query or None,
                max_items=200,
                limit=100,
            )
            return list(found.items())
        except Exception as exc:
            raise classify_error(exc, f"{PC_SERVICE} STAC API ({self.stac_url})", layer) from exc

    # -- reading COG windows ----------------------------------------------------------------
    @contextmanager
    def _gdal_env(self) -> Iterator[None]:
        t = max(1, int(math.ceil(self.timeout)))
        with rasterio.Env(
            GDAL_HTTP_TIMEOUT=t,
            GDAL_HTTP_CONNECTTIMEOUT=min(t, 10),
            GDAL_HTTP_MAX_RETRY=2,
            GDAL_HTTP_RETRY_DELAY=1,
            GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",
            GDAL_HTTP_MULTIRANGE="YES",
            GDAL_HTTP_MERGE_CONSECUTIVE_RANGES="YES",
            VSI_CACHE=True,
            CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif,.tiff,.TIF",
        ):
            yield

    def read_asset(
        self, href: str, crs: CRS, transform: Affine, width: int, height: int, resampling: Resampling, layer: str
    ) -> np.ndarray:
        """One COG band warped onto the patch grid (only the needed window is read); NaN = nodata."""
        try:
            with self._gdal_env(), rasterio.open(href) as src:
                nodata = src.nodata
                with WarpedVRT(
                    src,
                    crs=crs,
                    transform=transform,
                    width=width,
                    height=height,
                    resampling=resampling,
                    src_nodata=nodata,
                    nodata=np.nan,
                    dtype="float32",
                ) as vrt:
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
        # over the whole patch: a single acquisition needs every slice of its pass that touches the
        # patch, also one that does not contain the point; acquisitions are chosen among the items
        # over the point
        patch_items = [
            it
            for it in self.search(self.s1_collection, request, layer, query, geometry=request.patch_geojson)
            if {"VV", "VH"} <= set(it.properties.get("sar:polarizations", []))
            and "vv" in it.assets
            and "vh" in it.assets
        ]
        items = [it for it in patch_items if _covers(it, request.lon, request.lat)]
        if not items:
            when = f"{request.start} … {request.end}"
            pass_ = f" {request.s1_pass}" if request.s1_pass else ""
            raise NoDataHere(
                f"{layer}: no{pass_} IW acquisition with VV+VH in {self.s1_collection} on "
                f"{PC_SERVICE} covers ({request.lat:.4f}, {request.lon:.4f}) in {when} "
                f"(open ocean or outside Sentinel-1 coverage?)",
                service=PC_SERVICE,
                layer="s1",
            )
        target = _dt.datetime.combine(request.nearest_date, _dt.time(12), tzinfo=_dt.timezone.utc)
        crs, transform = request.grid
        size = request.size_px
        if request.s1_mode == "single":
            vv_lin, vh_lin, used, tried = self._read_single(items, target, request, progress, layer, slices=patch_items)
        else:
            vv_lin, vh_lin, used, tried = self._read_composite(items, target, request, progress, layer)
        if not used or vv_lin is None or vh_lin is None:  # pixels come with every used item
            raise NoDataHere(
                f"{layer}: the {tried} {self.s1_collection} scene(s) found have no valid pixels "
                f"at ({request.lat:.4f}, {request.lon:.4f})",
                service=PC_SERVICE,
                layer="s1",
            )
        dates = sorted({_item_datetime(it).date().isoformat() for it in used})
        first = used[0].properties
        orbit_state = first.get("sat:orbit_state", "")
        rel_orbit = first.get("sat:relative_orbit")
        when = dates[0] if len(dates) == 1 else f"{dates[0]} … {dates[-1]}"
        # one viewing geometry (one pass, or one relative orbit for a composite): one angle per pixel.
        # The footprint is the union of the slices of the acquisition nearest in time.
        geometry = self._pass_footprint(used)
        geometry_details: dict[str, Any] = {}
        angle = estimate_incidence_angle(geometry, orbit_state, crs, transform, size, size, details=geometry_details)
        angle_known = angle is not None
        if angle is None:
            angle = np.full((size, size), IW_MID_DEG, dtype=np.float32)
        vv_db, vh_db = gamma0_to_sigma0_db(vv_lin, angle), gamma0_to_sigma0_db(vh_lin, angle)
        if request.s1_mode == "single":
            how = f"single acquisition {dates[0]}" + (f" ({len(used)} slices)" if len(used) > 1 else "")
            record = s1_provenance("single", dates, orbit_state, rel_orbit)
        else:
            how = f"median of {len(used)} acquisitions in linear power"
            record = s1_provenance(
                "composite",
                [_item_datetime(it).date().isoformat() for it in used],
                orbit_state,
                rel_orbit,
                kind="median",
            )
            record["s1_composite"]["n"] = len(used)
        product = (
            f"{self.s1_collection} (Planetary Computer) γ⁰ RTC → σ⁰ by cos θ, {how}, "
            f"{orbit_state} relative orbit {rel_orbit}"
        )
        conversion = (
            "sigma0 = gamma0 · cos(theta), theta = "
            + (
                "the estimated ellipsoid incidence angle (angle layer)"
                if angle_known
                else f"{IW_MID_DEG}° (IW mid-swath; the swath geometry is unknown)"
            )
            + "; flat-terrain approximation: the RTC γ⁰ was normalised by the local terrain-facet area, "
            "so on slopes the result is not the ellipsoid σ⁰ of GRD products"
        )
        detail = {
            "items": [it.id for it in used],
            "collection": self.s1_collection,
            "orbit_state": orbit_state,
            "relative_orbit": rel_orbit,
            "platforms": sorted({str(it.properties.get("platform")) for it in used}),
            "composite": request.s1_composite,
            "backscatter": "sigma0 (ellipsoid), dB",
            "original_convention": "gamma0 RTC (terrain-flattened, linear power)",
            "conversion": conversion,
            **record,
        }
        if request.s1_mode == "single":
            detail["target_date"] = request.nearest_date.isoformat()
        result.add("vv_db", vv_db, LayerReport("vv_db", "public", product, when, detail))
        result.add("vh_db", vh_db, LayerReport("vh_db", "public", product, when, detail))
        result.dates["s1"] = when
        if request.s1_mode == "composite":
            result.warnings.append(
                f"Sentinel-1: a median of {len(used)} acquisitions — it has about {len(used)}× "
                "the looks of one, so speckle statistics (KL, ENL, GLCM, SSIM) compare with a "
                "composite, not an acquisition"
            )
        result.warnings.append(
            f"Sentinel-1: {self.s1_collection} is terrain-flattened γ⁰; converted to σ⁰ as "
            f"γ⁰·cos θ with the {'estimated' if angle_known else 'mid-swath'} incidence angle "
            f"(flat-terrain approximation, less exact on slopes)"
        )
        if angle_known:
            angle = np.where(np.isfinite(vv_db), angle, np.nan).astype(np.float32)
            result.add(
                "angle_deg",
                angle,
                LayerReport(
                    "angle_deg",
                    "public",
                    f"estimated from the {used[0].id} swath footprint and {orbit_state} pass",
                    when,
                    {
                        "method": "swath geometry: far edge 46.0°, measured footprint width, spherical Earth of the "
                        "local radius, S1 orbit",
                        "accuracy_deg": 0.5,
                        **geometry_details,
                        **record,
                    },
                ),
            )
            result.warnings.append(
                "incidence angle: estimated from the Sentinel-1 swath geometry (about ±0.5°); "
                "the Planetary Computer RTC product carries no angle band"
            )
        else:
            result.warnings.append(
                "incidence angle: missing — the Planetary Computer RTC product carries no angle "
                "band and the swath geometry is unknown; the generator will use the angle you set"
            )
        missing = float(np.mean(~np.isfinite(vv_db)))
        if missing > 0.01:
            result.warnings.append(f"Sentinel-1: {missing:.0%} of the patch has no data (swath edge or gap)")
        progress(1.0, "Sentinel-1 done")

    def _read_pair(self, item, request: FetchRequest, layer: str) -> tuple[np.ndarray, np.ndarray] | None:
        """VV and VH γ⁰ of one item on the patch grid; None when its pixels here are all empty."""
        crs, transform = request.grid
        size = request.size_px
        vv = self.read_asset(item.assets["vv"].href, crs, transform, size, size, Resampling.bilinear, layer)
        vh = self.read_asset(item.assets["vh"].href, crs, transform, size, size, Resampling.bilinear, layer)
        if not (np.isfinite(vv) & (vv > 0)).any():
            return None  # the item's footprint touches the point but its pixels are empty here
        return vv, vh

    def _read_single(
        self,
        items: list,
        target: _dt.datetime,
        request: FetchRequest,
        progress: FetchProgress,
        layer: str,
        slices: list | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray | None, list, int]:
        """One acquisition: the pass nearest to ``target`` (among ``items``, over the point) with
        valid pixels here.

        A pass is the items of one orbit direction and relative orbit within
        ``SINGLE_PASS_MINUTES`` of each other — consecutive slices of one datatake, which a
        patch may straddle; its slices come from ``slices`` (items over the whole patch) and are
        mosaicked (first valid pixel, the slice over the point first), never averaged.
        """
        ordered = sorted(items, key=lambda it: abs(_item_datetime(it) - target))
        pool = sorted(slices or items, key=lambda it: abs(_item_datetime(it) - target))
        tried, seen = 0, set[str]()
        for k, nearest in enumerate(ordered):
            if nearest.id in seen:
                continue
            track = _track_key(nearest)
            t0 = _item_datetime(nearest)
            same_pass = [nearest] + [
                it
                for it in pool
                if it.id != nearest.id
                and _track_key(it) == track
                and abs(_item_datetime(it) - t0) <= _dt.timedelta(minutes=SINGLE_PASS_MINUTES)
            ]
            seen.update(it.id for it in same_pass)
            vv: np.ndarray | None = None
            vh: np.ndarray | None = None
            used = []
            for item in same_pass:
                tried += 1
                progress(0.1 + 0.8 * min(tried, 8) / 8, f"reading Sentinel-1 {item.id}")
                pair = self._read_pair(item, request, layer)
                if pair is None:
                    continue
                if vv is None or vh is None:
                    vv, vh = pair
                else:
                    gap = ~(np.isfinite(vv) & (vv > 0))
                    vv = np.where(gap, pair[0], vv)
                    vh = np.where(gap, pair[1], vh)
                used.append(item)
            if used:
                return vv, vh, used, tried
            if tried >= MAX_SINGLE_TRIES:
                break
        return None, None, [], tried

    def _read_composite(
        self, items: list, target: _dt.datetime, request: FetchRequest, progress: FetchProgress, layer: str
    ) -> tuple[np.ndarray | None, np.ndarray | None, list, int]:
        """Median (linear power) of up to ``s1_max_items`` acquisitions of one relative orbit."""
        # one relative orbit only: a composite of one viewing geometry has one angle per pixel
        by_orbit: dict[tuple, list] = {}
        for it in items:
            by_orbit.setdefault(_track_key(it), []).append(it)
        best = max(
            by_orbit.values(), key=lambda group: (len(group), -min(abs(_item_datetime(i) - target) for i in group))
        )
        chosen = sorted(best, key=lambda it: abs(_item_datetime(it) - target))[: self.s1_max_items]
        vv_stack, vh_stack, used = [], [], []
        for k, item in enumerate(chosen):
            progress(0.1 + 0.8 * k / len(chosen), f"reading Sentinel-1 {item.id}")
            pair = self._read_pair(item, request, layer)
            if pair is None:
                continue
            vv_stack.append(pair[0])
            vh_stack.append(pair[1])
            used.append(item)
        if not used:
            return None, None, [], len(chosen)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
            vv = np.nanmedian(np.stack(vv_stack), axis=0) if len(vv_stack) > 1 else vv_stack[0]
            vh = np.nanmedian(np.stack(vh_stack), axis=0) if len(vh_stack) > 1 else vh_stack[0]
        return vv, vh, used, len(chosen)

    @staticmethod
    def _pass_footprint(used: list) -> dict:
        """The footprint of the acquisition nearest in time: the union of its slices."""
        first = used[0]
        t0 = _item_datetime(first)
        same = [
            it
            for it in used
            if _track_key(it) == _track_key(first)
            and abs(_item_datetime(it) - t0) <= _dt.timedelta(minutes=SINGLE_PASS_MINUTES)
        ]
        if len(same) == 1:
            return first.geometry
        return mapping(unary_union([shape(it.geometry) for it in same]))

    # -- Sentinel-2 ---------------------------------------------------------------------------
    def fetch_s2(self, request: FetchRequest, result: SourceResult, progress: FetchProgress) -> None:
        layer = "Sentinel-2 optical"
        progress(0.0, f"searching {self.s2_collection} on the Planetary Computer")
        items = self.search(self.s2_collection, request, layer, {"eo:cloud_cover": {"lt": request.s2_max_cloud}})
        items = [it for it in items if all(b in it.assets for b in S2_BANDS)]
        if not items:
            raise NoDataHere(
                f"{layer}: no {self.s2_collection} scene under {request.s2_max_cloud:.0f} % cloud covers "
                f"({request.lat:.4f}, {request.lon:.4f}) in {request.start} … {request.end} on "
                f"{PC_SERVICE}",
                service=PC_SERVICE,
                layer="s2",
            )
        items = sorted(items, key=lambda it: float(it.properties.get("eo:cloud_cover", 100.0)))[: self.s2_max_items]
        crs, transform = request.grid
        size = request.size_px
        stack, used = [], []
        for k, item in enumerate(items):
            progress(0.05 + 0.9 * k / len(items), f"reading Sentinel-2 {item.id}")
            bands = np.stack(
                [
                    self.read_asset(item.assets[b].href, crs, transform, size, size, Resampling.bilinear, layer)
                    for b in S2_BANDS
                ]
            )
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
            raise NoDataHere(
                f"{layer}: every {self.s2_collection} scene found is cloudy or empty at "
                f"({request.lat:.4f}, {request.lon:.4f})",
                service=PC_SERVICE,
                layer="s2",
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            optical = np.nanmedian(np.stack(stack), axis=0).astype(np.float32) if len(stack) > 1 else stack[0]
        dates = sorted(_item_datetime(it).date().isoformat() for it in used)
        when = dates[0] if len(dates) == 1 else f"{dates[0]} … {dates[-1]}"
        product = f"{self.s2_collection} (Planetary Computer), SCL cloud mask, median of {len(used)}"
        result.add(
            "optical",
            optical,
            LayerReport(
                "optical",
                "public",
                product,
                when,
                {
                    "items": [it.id for it in used],
                    "cloud_cover": [it.properties.get("eo:cloud_cover") for it in used],
                    "bands": list(S2_BANDS),
                    "scale": "reflectance = (DN + BOA offset) / 10000",
                },
            ),
        )
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
