"""What every scene source has in common: the request, the per-layer report, the errors.

A *source* turns a point (and a year, a date window, an orbit pass) into the layers of
a :class:`~sarviz.scene.Scene` on the standard patch grid (local UTM, 10 m, centred on
the point). Sources are tried in order by :class:`sarviz.sources.chain.SourceChain`:
a source may serve only some layers (e.g. the embedding but no Sentinel-1 over the
open ocean); the chain asks the next source for what is still missing.

Errors are :class:`SourceError` subclasses whose message names the *layer* and the
*service* that failed, written for a person (they are shown as-is in the app and the CLI).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from sarviz.scene import LAYER_LABELS, LAYERS, SceneError, patch_grid, validate_latlon

#: progress(fraction in [0, 1], message) — what the app's progress bar takes
FetchProgress = Callable[[float, str], None]

FIRST_YEAR = 2017  # the AlphaEarth annual embeddings start in 2017
LAST_YEAR = 2025
DEFAULT_YEAR = 2024  # latest complete year of every product
S1_PASSES = ("ascending", "descending")
S1_COMPOSITES = ("median", "nearest")
#: what real Sentinel-1 a fetch returns: one acquisition (the default) or a temporal composite.
#: A median of N acquisitions has N times the looks of one (ENL ≈ 20 for 6 instead of 4.4) and
#: a dB bias, so every speckle-sensitive comparison (KL, ENL, GLCM, SSIM) against a composite
#: measures compositing, not fidelity. ``s1_composite`` is the older spelling:
#: "nearest" = single, "median" = composite.
S1_MODES = ("single", "composite")
DEFAULT_S1_MODE = "single"
_MODE_OF_COMPOSITE = {"nearest": "single", "median": "composite"}
_COMPOSITE_OF_MODE = {v: k for k, v in _MODE_OF_COMPOSITE.items()}
#: the scene-provenance keys that say which Sentinel-1 the scene holds (read by the metrics and
#: the UI to flag speckle-sensitive numbers): s1_mode, and s1_date (single) or s1_composite
#: ({"kind", "n", "dates"}), plus the orbit direction and relative orbit of the track
S1_PROVENANCE_KEYS = ("s1_mode", "s1_date", "s1_composite", "orbit", "relative_orbit")


def s1_provenance(
    mode: str,
    dates: Sequence[str],
    orbit: str | None,
    relative_orbit: int | None,
    kind: str = "median",
    dates_complete: bool = True,
) -> dict[str, Any]:
    """The :data:`S1_PROVENANCE_KEYS` record of one fetched Sentinel-1 layer pair.

    ``dates``: the acquisition date(s) used (ISO); for a composite, every date when
    ``dates_complete`` (else the first and last, and the record says so).
    """
    dates = sorted(dict.fromkeys(str(d) for d in dates))
    out: dict[str, Any] = {
        "s1_mode": mode,
        "orbit": orbit or None,
        "relative_orbit": None if relative_orbit is None else int(relative_orbit),
    }
    if mode == "single":
        out["s1_date"] = dates[0] if dates else None
    else:
        composite: dict[str, Any] = {"kind": kind, "n": None, "dates": dates}
        if dates_complete:
            composite["n"] = len(dates)
        else:
            composite["dates_are"] = "first and last"
        out["s1_composite"] = composite
    return out


#: layer groups a source fetches together (one request / one product each)
LAYER_GROUPS: dict[str, tuple[str, ...]] = {
    "embedding": ("embedding",),
    "s1": ("vv_db", "vh_db", "angle_deg"),
    "s2": ("optical",),
}
GROUP_LABELS = {
    "embedding": "AlphaEarth embedding",
    "s1": "Sentinel-1 VV/VH",
    "s2": "Sentinel-2 optical",
}


# -- errors ----------------------------------------------------------------------------------
class SourceError(SceneError):
    """A source could not deliver a layer; the message names the layer and the service."""

    def __init__(self, message: str, *, service: str = "", layer: str | None = None) -> None:
        super().__init__(message)
        self.service = service
        self.layer = layer


class SourceNotConfigured(SourceError):
    """The source needs settings it does not have (e.g. no Earth Engine project id)."""


class SourceAuthError(SourceError):
    """Credentials are missing, expired or not allowed to use the service."""


class SourceQuotaError(SourceError):
    """The service refused because a quota or rate limit was exceeded (after retries)."""


class SourceTimeout(SourceError):
    """The service did not answer within the configured timeout."""


class SourceUnavailable(SourceError):
    """The service cannot be reached (network down, DNS failure, connection refused)."""


class NoDataHere(SourceError):
    """The service has no data for this layer at this place and time."""


def layer_label(layer: str) -> str:
    return LAYER_LABELS.get(layer) or GROUP_LABELS.get(layer) or layer


# -- the request -----------------------------------------------------------------------------
def _parse_date(value: Any, what: str) -> _dt.date:
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    try:
        return _dt.date.fromisoformat(str(value))
    except ValueError:
        raise SourceError(f"{what} must be a date like 2024-06-30, got {value!r}") from None


@dataclass(frozen=True)
class FetchRequest:
    """One patch to fetch. Build with :meth:`make`, which checks every input."""

    lat: float
    lon: float
    size_px: int = 512
    year: int = DEFAULT_YEAR
    start: _dt.date = _dt.date(DEFAULT_YEAR, 1, 1)  # Sentinel date window, inclusive
    end: _dt.date = _dt.date(DEFAULT_YEAR, 12, 31)
    s1_pass: str | None = None  # "ascending" / "descending" / None = whichever has data
    s1_composite: str = "nearest"  # "nearest" acquisition (s1_mode single) or "median" (composite)
    target_date: _dt.date | None = None  # for a single acquisition; default the middle of the window
    s2_max_cloud: float = 40.0  # scene cloud cover (%) above which S2 scenes are skipped
    res_m: float = 10.0
    s1_mode: str = DEFAULT_S1_MODE  # "single" acquisition or "composite" (median of one track)

    @classmethod
    def make(
        cls,
        lat: Any,
        lon: Any,
        size_px: Any = 512,
        year: Any = None,
        start: Any = None,
        end: Any = None,
        s1_pass: str | None = None,
        s1_composite: str | None = None,
        target_date: Any = None,
        s2_max_cloud: float = 40.0,
        s1_mode: str | None = None,
    ) -> "FetchRequest":
        lat_f, lon_f = validate_latlon(lat, lon)
        if isinstance(size_px, bool) or not isinstance(size_px, (int, np.integer)) or not 16 <= int(size_px) <= 2048:
            raise SourceError(f"patch size must be a whole number of pixels in [16, 2048], got {size_px!r}")
        if year is None:
            year = DEFAULT_YEAR
        try:
            year_i = int(year)
            if year_i != float(year):
                raise ValueError
        except (TypeError, ValueError):
            raise SourceError(f"year must be a whole number like 2024, got {year!r}") from None
        if not FIRST_YEAR <= year_i <= LAST_YEAR:
            raise SourceError(
                f"year {year_i} is outside {FIRST_YEAR}–{LAST_YEAR}: the AlphaEarth annual embeddings "
                f"start in {FIRST_YEAR} and sarviz knows products up to {LAST_YEAR}"
            )
        start_d = _parse_date(start, "start date") if start is not None else _dt.date(year_i, 1, 1)
        end_d = _parse_date(end, "end date") if end is not None else _dt.date(year_i, 12, 31)
        if end_d < start_d:
            raise SourceError(f"the date window is empty: end {end_d} is before start {start_d}")
        if start_d < _dt.date(2014, 4, 3):
            raise SourceError(f"start date {start_d} is before Sentinel-1 began (2014-04-03)")
        if s1_pass is not None:
            s1_pass = str(s1_pass).strip().lower() or None
        if s1_pass is not None and s1_pass not in S1_PASSES:
            raise SourceError(f"orbit pass must be 'ascending' or 'descending', got {s1_pass!r}")
        if s1_composite is not None and s1_composite not in S1_COMPOSITES:
            raise SourceError(f"Sentinel-1 composite must be 'median' or 'nearest', got {s1_composite!r}")
        if s1_mode is not None:
            s1_mode = str(s1_mode).strip().lower()
            if s1_mode not in S1_MODES:
                raise SourceError(
                    f"Sentinel-1 mode must be 'single' (one acquisition) or 'composite' (median of "
                    f"one track), got {s1_mode!r}"
                )
            if s1_composite is not None and _MODE_OF_COMPOSITE[s1_composite] != s1_mode:
                raise SourceError(f"Sentinel-1 mode {s1_mode!r} contradicts composite {s1_composite!r}")
        else:
            s1_mode = _MODE_OF_COMPOSITE[s1_composite] if s1_composite else DEFAULT_S1_MODE
        s1_composite = _COMPOSITE_OF_MODE[s1_mode]
        target = _parse_date(target_date, "target date") if target_date is not None else None
        try:
            cloud = float(s2_max_cloud)
        except (TypeError, ValueError):
            raise SourceError(f"maximum cloud cover must be a percentage, got {s2_max_cloud!r}") from None
        if not 0.0 <= cloud <= 100.0:
            raise SourceError(f"maximum cloud cover must be within 0–100 %, got {cloud}")
        return cls(
            lat=lat_f,
            lon=lon_f,
            size_px=int(size_px),
            year=year_i,
            start=start_d,
            end=end_d,
            s1_pass=s1_pass,
            s1_composite=s1_composite,
            target_date=target,
            s2_max_cloud=cloud,
            s1_mode=s1_mode,
        )

    @property
    def grid(self) -> tuple[CRS, Affine]:
        """The patch grid: local UTM (UPS near the poles), ``res_m`` pixels, centred on the point."""
        return patch_grid(self.lat, self.lon, self.size_px, self.res_m)

    @property
    def nearest_date(self) -> _dt.date:
        if self.target_date is not None:
            return self.target_date
        return self.start + (self.end - self.start) / 2

    @property
    def crosses_antimeridian(self) -> bool:
        from sarviz.scene import footprint_wgs84

        crs, transform = self.grid
        west, _, east, _ = footprint_wgs84(crs, transform, self.size_px, self.size_px)
        return west > east

    @property
    def patch_geojson(self) -> dict[str, Any]:
        """The patch's lon/lat bounding box as GeoJSON (split in two across the antimeridian)."""
        from sarviz.scene import footprint_wgs84

        crs, transform = self.grid
        west, south, east, north = footprint_wgs84(crs, transform, self.size_px, self.size_px)

        def ring(w: float, e: float) -> list:
            return [[[w, south], [e, south], [e, north], [w, north], [w, south]]]

        if west <= east:
            return {"type": "Polygon", "coordinates": ring(west, east)}
        return {"type": "MultiPolygon", "coordinates": [ring(west, 180.0), ring(-180.0, east)]}

    def describe(self) -> str:
        return f"({self.lat:.5f}, {self.lon:.5f}), {self.size_px}×{self.size_px} px, {self.year}"

    def to_json(self) -> dict[str, Any]:
        return {
            "lat": self.lat,
            "lon": self.lon,
            "size_px": self.size_px,
            "year": self.year,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "s1_pass": self.s1_pass,
            "s1_composite": self.s1_composite,
            "s1_mode": self.s1_mode,
            "target_date": self.target_date.isoformat() if self.target_date else None,
            "s2_max_cloud": self.s2_max_cloud,
            "res_m": self.res_m,
        }


# -- what a source returns ---------------------------------------------------------------------
@dataclass
class LayerReport:
    """Which source and product served one layer (shown next to the map)."""

    layer: str
    source: str  # "local", "earthengine", "public"
    product: str  # e.g. "COPERNICUS/S1_GRD median of 12 (descending)"
    dates: str = ""  # e.g. "2024-01-03 … 2024-12-28" or "2024"
    detail: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        when = f", {self.dates}" if self.dates else ""
        return f"{layer_label(self.layer)}: {self.source} — {self.product}{when}"

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "source": self.source,
            "product": self.product,
            "dates": self.dates,
            "detail": self.detail,
        }


@dataclass
class SourceResult:
    """Layers one source delivered (arrays on the request's patch grid), and what failed."""

    source: str
    layers: dict[str, np.ndarray] = field(default_factory=dict)
    reports: dict[str, LayerReport] = field(default_factory=dict)
    failures: dict[str, SourceError] = field(default_factory=dict)  # layer group → why
    warnings: list[str] = field(default_factory=list)
    dates: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, layer: str, array: np.ndarray | None, report: LayerReport) -> None:
        """Keep a layer unless it is empty (all NaN): an empty layer is a missing layer."""
        if array is None:
            return
        array = np.asarray(array, dtype=np.float32)
        if not np.isfinite(array).any():
            return
        self.layers[layer] = array
        self.reports[layer] = report

    def fail(self, group: str, error: SourceError) -> None:
        self.failures[group] = error


@runtime_checkable
class Source(Protocol):
    """A place layers come from. ``fetch`` only raises for problems with the whole source
    (not configured, no credentials, network down); a missing layer is a ``failures`` entry."""

    name: str

    def fetch(
        self, request: FetchRequest, groups: Sequence[str], progress: FetchProgress | None = None
    ) -> SourceResult: ...


def nan_fraction(array: np.ndarray) -> float:
    return float(np.mean(~np.isfinite(array))) if array.size else 1.0


def describe_seconds(seconds: float) -> str:
    if seconds < 1.0:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{math.floor(seconds / 60)} min {seconds % 60:.0f} s"


def scale_progress(progress: FetchProgress | None, lo: float, hi: float) -> FetchProgress:
    """A progress callback reporting into the [lo, hi] part of a parent's range."""

    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(lo + (hi - lo) * min(1.0, max(0.0, fraction)), message)

    return report


__all__ = [
    "DEFAULT_S1_MODE",
    "DEFAULT_YEAR",
    "FIRST_YEAR",
    "S1_MODES",
    "S1_PROVENANCE_KEYS",
    "s1_provenance",
    "LAST_YEAR",
    "LAYERS",
    "LAYER_GROUPS",
    "FetchProgress",
    "FetchRequest",
    "LayerReport",
    "NoDataHere",
    "Source",
    "SourceAuthError",
    "SourceError",
    "SourceNotConfigured",
    "SourceQuotaError",
    "SourceResult",
    "SourceTimeout",
    "SourceUnavailable",
    "layer_label",
    "scale_progress",
]


def error_mentions(text: str, *keys: str) -> bool:
    """Whether an error message mentions any of ``keys`` (case-insensitive).

    URLs and host:port pairs are removed first and numeric keys match whole numbers only,
    so that a port such as 127.0.0.1:40329 or a URL with 429 in it never reads as an HTTP
    status 403 or 429.
    """
    low = re.sub(r"[a-z][a-z0-9+.-]*://\S+|\b[\w.-]+:\d+\b", " ", text.lower())
    return any(re.search(rf"\b{re.escape(k)}\b", low) if k.isdigit() else k in low for k in keys)


def classify_error(exc: BaseException, service: str, layer: str) -> SourceError:
    """Turn an exception from a network library into a SourceError naming layer and service."""
    if isinstance(exc, SourceError):
        return exc
    text = f"{type(exc).__name__}: {exc}"
    what = f"{layer} from {service}"

    def has(*keys: str) -> bool:
        return error_mentions(text, *keys)

    if has("timed out", "timeout", "time out"):
        return SourceTimeout(
            f"{what}: the service did not answer in time ({exc}); try again later or raise SARVIZ_NETWORK_TIMEOUT",
            service=service,
            layer=layer,
        )
    if has("429", "too many requests", "rate limit", "quota", "slowdown", "throttl"):
        return SourceQuotaError(
            f"{what}: the service refused because of its rate limit or quota ({exc}); wait a minute and try again",
            service=service,
            layer=layer,
        )
    if has("401", "403", "unauthorized", "forbidden", "accessdenied", "access denied", "signature", "expired"):
        return SourceAuthError(
            f"{what}: access was refused ({exc}); the signed URL or token may have expired — try again",
            service=service,
            layer=layer,
        )
    if has(
        "resolve",
        "name or service",
        "nodename",
        "connection refused",
        "connect",
        "network is unreachable",
        "unreachable",
        "no route",
        "connection",
        "ssl",
        "curl error",
    ):
        return SourceUnavailable(
            f"{what}: the service cannot be reached — is the network down? ({exc})", service=service, layer=layer
        )
    return SourceError(f"{what} failed: {text}", service=service, layer=layer)
