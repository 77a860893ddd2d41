"""Earth Engine source: embedding, Sentinel-1 (with the angle band) and Sentinel-2.

Pixels come back as NumPy arrays on the patch grid through ``ee.data.computePixels``
(``fileFormat: NUMPY_NDARRAY``), no export tasks. Masked pixels are filled with a
sentinel value server-side (``unmask``) and turned into NaN here, because the NPY
format carries no mask.

Authentication: a service-account key file (``SARVIZ_EE_KEY_FILE``), else the user's stored
credentials (``earthengine authenticate``, or gcloud application-default credentials),
with the Cloud project id from settings (``SARVIZ_EE_PROJECT``). Every call has a short
timeout; quota errors are retried with exponential backoff.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from sarviz.scene import EMBEDDING_BANDS as SCENE_EMBEDDING_BANDS
from sarviz.sources.base import (
    FetchProgress,
    FetchRequest,
    LayerReport,
    NoDataHere,
    SourceAuthError,
    SourceError,
    SourceNotConfigured,
    SourceQuotaError,
    SourceResult,
    SourceTimeout,
    SourceUnavailable,
    error_mentions,
    s1_provenance,
    scale_progress,
)

SERVICE = "Google Earth Engine"
EE_HOST = "earthengine.googleapis.com"
EMBEDDING_COLLECTION = "GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL"
S1_COLLECTION = "COPERNICUS/S1_GRD"
S2_COLLECTION = "COPERNICUS/S2_SR_HARMONIZED"
EMBEDDING_BANDS = list(SCENE_EMBEDDING_BANDS)  # A00..A63: EE names the bands as our scene files do
S1_BANDS = ["VV", "VH", "angle"]
S2_BANDS = ["B2", "B3", "B4", "B8"]
FILL = -9999.0  # stands for "masked" in the NPY response (outside every band's range)
# computePixels answers at most 48 MB; 16 float32 bands of 512×512 are 16.8 MB
MAX_BANDS_PER_REQUEST = 16
S2_CLEAR_SCL = [4, 5, 6, 7, 11]  # vegetation, bare soil, water, unclassified, snow


def _ee():
    import ee

    return ee


def embedding_image(year: int):
    """The annual AlphaEarth embedding mosaic for one year."""
    ee = _ee()
    return (
        ee.ImageCollection(EMBEDDING_COLLECTION)
        .filterDate(f"{year}-01-01", f"{year + 1}-01-01")
        .mosaic()
        .select(EMBEDDING_BANDS)
    )


def s1_collection(request: FetchRequest, region):
    ee = _ee()
    col = (
        ee.ImageCollection(S1_COLLECTION)
        .filterBounds(region)
        .filterDate(request.start.isoformat(), (request.end + _dt.timedelta(days=1)).isoformat())
        .filter(ee.Filter.eq("instrumentMode", "IW"))
        .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VV"))
        .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VH"))
        .filter(ee.Filter.eq("resolution_meters", 10))
    )
    if request.s1_pass:
        col = col.filter(ee.Filter.eq("orbitProperties_pass", request.s1_pass.upper()))
    return col.select(S1_BANDS)


# Constant bands sent back with VV/VH/angle: which relative orbit and pass the server chose, how
# many acquisitions went in and their first/last day (days since 1970, exact in float32). They
# ride in the same computePixels answer, so the choice costs no extra round-trip.
S1_TRACK_BANDS = ["sarviz_relative_orbit", "sarviz_pass", "sarviz_count", "sarviz_first_day", "sarviz_last_day"]
S1_PASS_CODES = {"ASCENDING": 1, "DESCENDING": 2}
_NO_TRACK = "none/0"
_DAY_MS = 86_400_000
#: acquisitions of one track this close in time are slices of one pass (mosaicked, not averaged)
SINGLE_PASS_MINUTES = 10


def _track_of(img):
    """``"DESCENDING/95"``: orbit pass and relative orbit of one acquisition (a viewing geometry)."""
    ee = _ee()
    return (
        ee.String(img.get("orbitProperties_pass"))
        .cat("/")
        .cat(ee.Number(img.get("relativeOrbitNumber_start")).format("%d"))
    )


def most_frequent_track(col):
    """The ``"PASS/orbit"`` with most acquisitions in ``col`` (``"none/0"`` if it is empty), server-side.

    aggregate_histogram counts the acquisitions of each track; a sentinel entry with count 0 keeps
    the lists non-empty so that an empty collection yields "none/0" rather than an error.
    """
    ee = _ee()
    hist = ee.Dictionary(col.aggregate_histogram("sarviz_track"))
    keys = hist.keys().add(_NO_TRACK)
    counts = hist.values().add(0)
    return ee.String(keys.get(counts.indexOf(counts.reduce(ee.Reducer.max()))))


def _track_bands(track, count, first_ms, last_ms):
    ee = _ee()
    parts = ee.String(track).split("/")
    orbit = ee.Number.parse(parts.get(1))
    pass_code = ee.Number(ee.Dictionary({**S1_PASS_CODES, "none": 0}).get(parts.get(0)))
    first_day = ee.Number(first_ms).divide(_DAY_MS).floor()
    last_day = ee.Number(last_ms).divide(_DAY_MS).floor()
    return ee.Image.constant([orbit, pass_code, count, first_day, last_day]).toFloat().rename(S1_TRACK_BANDS)


def s1_image(request: FetchRequest, region):
    """One acquisition (default) or a median of one relative orbit; + the track bands.

    * single: the acquisition nearest to the target date; every slice of that pass (same
      track, within ``SINGLE_PASS_MINUTES``) is mosaicked, so a patch on a slice boundary
      is whole. Its own ``angle`` band comes with it.
    * composite: the median over the window of the track (pass + relative orbit) with the most
      acquisitions over the point: mixing tracks would mix viewing geometries, and the
      median ``angle`` would then belong to none of them. The median is taken in dB (it
      commutes with the dB transform).

    An empty collection gives a fully masked image (→ "no data here"), not a server error.
    """
    ee = _ee()
    col = s1_collection(request, region).map(lambda img: img.set("sarviz_track", _track_of(img)))
    if request.s1_mode == "single":
        target = ee.Date(request.nearest_date.isoformat())
        col = col.map(lambda img: img.set("sarviz_days", ee.Number(img.date().difference(target, "day")).abs()))
        nearest = ee.Image(col.sort("sarviz_days").first())
        when = nearest.date()
        # the pass's slices over the whole patch (one may not contain the point)
        slices = s1_collection(request, patch_region(request)).map(lambda img: img.set("sarviz_track", _track_of(img)))
        same_pass = slices.filter(ee.Filter.eq("sarviz_track", nearest.get("sarviz_track"))).filterDate(
            when.advance(-SINGLE_PASS_MINUTES, "minute"), when.advance(SINGLE_PASS_MINUTES, "minute")
        )
        found = same_pass.mosaic().addBands(_track_bands(nearest.get("sarviz_track"), 1, when.millis(), when.millis()))
        empty = ee.Image.constant([0, 0, 0]).rename(S1_BANDS).updateMask(0).addBands(_track_bands(_NO_TRACK, 0, 0, 0))
        return ee.Image(ee.Algorithms.If(col.size().gt(0), found, empty))
    track = most_frequent_track(col)
    chosen = col.filter(ee.Filter.eq("sarviz_track", track))
    return chosen.median().addBands(
        _track_bands(
            track, chosen.size(), chosen.aggregate_min("system:time_start"), chosen.aggregate_max("system:time_start")
        )
    )


def _mask_s2_clouds(img):
    scl = img.select("SCL")
    clear = scl.remap(S2_CLEAR_SCL, [1] * len(S2_CLEAR_SCL), 0)
    return img.updateMask(clear)


def s2_image(request: FetchRequest, region):
    """Cloud-masked (SCL) median of Sentinel-2 L2A, as reflectance (DN / 10000)."""
    ee = _ee()
    col = (
        ee.ImageCollection(S2_COLLECTION)
        .filterBounds(region)
        .filterDate(request.start.isoformat(), (request.end + _dt.timedelta(days=1)).isoformat())
        .filter(ee.Filter.lt("CLOUDY_PIXEL_PERCENTAGE", request.s2_max_cloud))
        .map(_mask_s2_clouds)
    )
    return col.select(S2_BANDS).median().divide(10000)


def pixel_grid(request: FetchRequest) -> dict[str, Any]:
    """The computePixels ``grid``: the patch grid's CRS, affine transform and size."""
    crs, t = request.grid
    return {
        "dimensions": {"width": request.size_px, "height": request.size_px},
        "affineTransform": {
            "scaleX": t.a,
            "shearX": t.b,
            "translateX": t.c,
            "shearY": t.d,
            "scaleY": t.e,
            "translateY": t.f,
        },
        "crsCode": crs.to_string(),
    }


def region_of(request: FetchRequest):
    ee = _ee()
    return ee.Geometry.Point([request.lon, request.lat])


def patch_region(request: FetchRequest):
    """The patch's lon/lat bounding box (planar, split across the antimeridian)."""
    ee = _ee()
    return ee.Geometry(request.patch_geojson, None, False)


def pixel_requests(request: FetchRequest, group: str) -> list[dict[str, Any]]:
    """The computePixels requests for one layer group (the embedding is split in 4)."""
    region = region_of(request)
    if group == "embedding":
        image, bands = embedding_image(request.year), EMBEDDING_BANDS
    elif group == "s1":
        image, bands = s1_image(request, region), S1_BANDS + S1_TRACK_BANDS
    elif group == "s2":
        image, bands = s2_image(request, region), S2_BANDS
    else:
        raise SourceError(f"unknown layer group {group!r}")
    image = image.toFloat().unmask(FILL, False)
    grid = pixel_grid(request)
    out = []
    for i in range(0, len(bands), MAX_BANDS_PER_REQUEST):
        chunk = bands[i : i + MAX_BANDS_PER_REQUEST]
        out.append({"expression": image.select(chunk), "fileFormat": "NUMPY_NDARRAY", "bandIds": chunk, "grid": grid})
    return out


def structured_to_bands(array: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """EE's NPY answer (structured array, one field a band) → (bands, H, W) float32, NaN = masked."""
    if array.dtype.names is None:
        raise SourceError(
            f"{SERVICE} answered with an unexpected array (dtype {array.dtype}); expected one field a band",
            service=SERVICE,
        )
    missing = [b for b in bands if b not in array.dtype.names]
    if missing:
        raise SourceError(f"{SERVICE} answer lacks bands {missing}", service=SERVICE)
    out = np.stack([np.asarray(array[b], dtype=np.float32) for b in bands])
    out[out <= FILL + 1] = np.nan
    return out


def validate_key_file(key_file: str) -> Path:
    """Check a service-account key file locally (exists, readable, JSON with the key fields).

    Done before any network access so that a wrong path or a wrong file is reported as
    such — not as "the network is down" — with the file named in the message.
    """
    path = Path(os.path.expanduser(str(key_file)))
    where = f"the service-account key file {path} (SARVIZ_EE_KEY_FILE or ee_key_file in .streamlit/secrets.toml)"
    if not path.exists():
        raise SourceAuthError(f"{SERVICE}: {where} does not exist", service=SERVICE)
    if not path.is_file():
        raise SourceAuthError(f"{SERVICE}: {where} is not a file", service=SERVICE)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceAuthError(f"{SERVICE}: {where} cannot be read ({exc})", service=SERVICE) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SourceAuthError(
            f"{SERVICE}: {where} is not JSON ({exc}); download the key again from the "
            f"Cloud console (IAM → service accounts → keys)",
            service=SERVICE,
        ) from None
    missing = [k for k in ("client_email", "private_key") if not (isinstance(data, dict) and data.get(k))]
    if missing:
        raise SourceAuthError(
            f"{SERVICE}: {where} is not a service-account JSON key (no {' or '.join(missing)})", service=SERVICE
        )
    return path


def _read_track(track_bands: np.ndarray) -> dict[str, Any] | None:
    """Pass, relative orbit, count and first/last date from the constant track bands; None if unreadable."""
    values = [track_bands[i][np.isfinite(track_bands[i])] for i in range(len(S1_TRACK_BANDS))]
    if any(v.size == 0 for v in values):
        return None
    orbit, code, count, first, last = (int(round(float(np.median(v)))) for v in values)
    pass_ = {c: p.lower() for p, c in S1_PASS_CODES.items()}.get(code)
    if pass_ is None or orbit <= 0:
        return None
    epoch = _dt.date(1970, 1, 1)
    return {
        "pass": pass_,
        "orbit": orbit,
        "count": count,
        "first": (epoch + _dt.timedelta(days=first)).isoformat() if count else None,
        "last": (epoch + _dt.timedelta(days=last)).isoformat() if count else None,
    }


def _credentials(key_file: str):
    """Service-account key file, else stored user credentials; never probes the GCE metadata server."""
    ee = _ee()
    if key_file:
        path = validate_key_file(key_file)
        email = json.loads(path.read_text(encoding="utf-8"))["client_email"]
        try:
            return ee.ServiceAccountCredentials(email, key_file=str(path))
        except (ValueError, KeyError) as exc:
            raise SourceAuthError(
                f"{SERVICE}: {path} is not a usable service-account key ({exc})", service=SERVICE
            ) from None
    from ee import oauth

    try:
        args = oauth.get_credentials_arguments()
    except (OSError, ValueError):
        args = {}
    if args.get("refresh_token"):
        import google.oauth2.credentials

        return google.oauth2.credentials.Credentials(None, **args)
    adc = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS") or str(
        Path.home() / ".config" / "gcloud" / "application_default_credentials.json"
    )
    if os.path.isfile(adc):
        import google.auth

        creds, _ = google.auth.load_credentials_from_file(adc, scopes=oauth.SCOPES)
        return creds
    raise SourceAuthError(
        f"{SERVICE}: no credentials on this machine — run `earthengine authenticate`, or set "
        f"SARVIZ_EE_KEY_FILE to a service-account key (or ee_key_file in .streamlit/secrets.toml)",
        service=SERVICE,
    )


def translate_ee_error(exc: BaseException, what: str) -> SourceError:
    """EE / HTTP / auth exceptions → SourceError subclasses whose message says what to do."""
    if isinstance(exc, SourceError):
        return exc
    text = str(exc)
    low = f"{type(exc).__name__} {text}".lower()
    if "refresherror" in low or "invalid_grant" in low or "expired" in low or "revoked" in low:
        return SourceAuthError(
            f"{what}: the {SERVICE} credentials have expired or were revoked ({text}); run "
            f"`earthengine authenticate` again or check the service-account key",
            service=SERVICE,
        )
    if error_mentions(low, "quota", "too many", "rate limit", "resource_exhausted", "429"):
        return SourceQuotaError(
            f"{what}: {SERVICE} quota exceeded ({text}); wait a minute and try again", service=SERVICE
        )
    if error_mentions(
        low,
        "permission",
        "unauthenticated",
        "not registered",
        "401",
        "403",
        "forbidden",
        "please authorize",
        "caller does not have",
    ):
        return SourceAuthError(
            f"{what}: {SERVICE} refused the credentials ({text}); check that the account is "
            f"registered for Earth Engine and may use the project",
            service=SERVICE,
        )
    if "timed out" in low or "timeout" in low:
        return SourceTimeout(f"{what}: {SERVICE} did not answer in time ({text})", service=SERVICE)
    if any(
        k in low
        for k in (
            "servernotfound",
            "unable to find the server",
            "connection",
            "resolve",
            "network is unreachable",
            "name or service",
        )
    ):
        return SourceUnavailable(
            f"{what}: {SERVICE} cannot be reached — is the network down? ({text})", service=SERVICE
        )
    if "not initialized" in low:
        return SourceNotConfigured(f"{what}: {SERVICE} is not initialised ({text})", service=SERVICE)
    return SourceError(f"{what}: {SERVICE} failed: {text}", service=SERVICE)


class EarthEngineSource:
    """Layers from Earth Engine. Needs a Cloud project id and credentials."""

    name = "earthengine"

    def __init__(
        self,
        project: str,
        key_file: str = "",
        timeout: float = 20.0,
        http_transport: Any = None,
        credentials: Any = "auto",
        quota_retries: int = 3,
        backoff_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.project = (project or "").strip()
        self.key_file = key_file
        self.timeout = float(timeout)
        # http_transport: an httplib2.Http-like object; tests pass a fake serving recorded answers
        self.http_transport = http_transport
        self._credentials = credentials
        self.quota_retries = int(quota_retries)
        self.backoff_s = float(backoff_s)
        self.sleep = sleep
        self._ready = False

    def connect(self) -> None:
        """Initialise the client once (fast failure: no project, no credentials, no network)."""
        if self._ready:
            return
        if not self.project:
            raise SourceNotConfigured(
                f"{SERVICE} is not configured: set the Cloud project id (SARVIZ_EE_PROJECT or "
                f"ee_project in .streamlit/secrets.toml)",
                service=SERVICE,
            )
        ee = _ee()
        # credentials first: they are local files, and a wrong key file must be reported as
        # such, not hidden behind "is the network down?"
        credentials = _credentials(self.key_file) if self._credentials == "auto" else self._credentials
        transport = self.http_transport
        if transport is None:
            self._check_reachable()
            import httplib2

            transport = httplib2.Http(timeout=self.timeout)
        ee.data.setMaxRetries(0)  # our own backoff handles quota; a dead network must not be retried for 40 s
        try:
            ee.Initialize(credentials=credentials, project=self.project, http_transport=transport)
        except Exception as exc:
            raise translate_ee_error(exc, "connecting") from exc
        self._ready = True

    def _check_reachable(self) -> None:
        try:
            socket.create_connection((EE_HOST, 443), timeout=min(self.timeout, 5.0)).close()
        except OSError as exc:
            raise SourceUnavailable(
                f"{SERVICE} ({EE_HOST}) cannot be reached — is the network down? ({exc})", service=SERVICE
            ) from None

    def compute(self, params: dict[str, Any], what: str) -> np.ndarray:
        """One computePixels call through the real client, retried with backoff on quota errors."""
        ee = _ee()
        delay = self.backoff_s
        for attempt in range(self.quota_retries + 1):
            try:
                return ee.data.computePixels(params)
            except Exception as exc:
                error = translate_ee_error(exc, what)
                if isinstance(error, SourceQuotaError) and attempt < self.quota_retries:
                    self.sleep(delay)
                    delay *= 2
                    continue
                raise error from exc
        raise AssertionError("unreachable")

    def fetch_group(self, request: FetchRequest, group: str, result: SourceResult, progress: FetchProgress) -> None:
        from sarviz.sources.base import GROUP_LABELS

        label = GROUP_LABELS[group]
        calls = pixel_requests(request, group)
        parts = []
        for k, params in enumerate(calls):
            progress(k / len(calls), f"{label} from Earth Engine ({k + 1}/{len(calls)})")
            answer = self.compute(params, label)
            parts.append(structured_to_bands(answer, params["bandIds"]))
        bands = np.concatenate(parts)
        track = None
        if group == "s1":
            bands, track = bands[: len(S1_BANDS)], _read_track(bands[len(S1_BANDS) :])
        if not np.isfinite(bands).any():
            what = {
                "embedding": f"no AlphaEarth embedding for {request.year}",
                "s1": f"no Sentinel-1 IW VV+VH acquisition{' (' + request.s1_pass + ')' if request.s1_pass else ''} "
                f"in {request.start} … {request.end}",
                "s2": f"no Sentinel-2 scene under {request.s2_max_cloud:.0f} % cloud in {request.start} … {request.end}",
            }[group]
            raise NoDataHere(
                f"{label}: {SERVICE} has {what} at ({request.lat:.4f}, {request.lon:.4f})", service=SERVICE, layer=group
            )
        window = f"{request.start} … {request.end}"
        if group == "embedding":
            result.add(
                "embedding",
                bands,
                LayerReport(
                    "embedding",
                    "earthengine",
                    EMBEDDING_COLLECTION,
                    str(request.year),
                    {"collection": EMBEDDING_COLLECTION},
                ),
            )
            result.dates["embedding"] = str(request.year)
        elif group == "s1":
            orbit_state, rel_orbit = (track["pass"], track["orbit"]) if track else (request.s1_pass, None)
            where = f"{orbit_state or 'unknown pass'} relative orbit {rel_orbit if rel_orbit is not None else '?'}"
            if request.s1_mode == "single":
                date = track["first"] if track else None
                how = f"single acquisition {date or '(date unknown)'}"
                record = s1_provenance("single", [date] if date else [], orbit_state, rel_orbit)
                when = date or window
            else:
                dates = [d for d in ((track or {}).get("first"), (track or {}).get("last")) if d]
                how = f"median of {track['count']} acquisitions" if track else "median"
                record = s1_provenance("composite", dates, orbit_state, rel_orbit, kind="median", dates_complete=False)
                record["s1_composite"]["n"] = track["count"] if track else None
                when = f"{dates[0]} … {dates[-1]}" if len(dates) == 2 else window
                result.warnings.append(
                    f"Sentinel-1: {how} — about that many times the looks of one acquisition, "
                    "so speckle statistics (KL, ENL, GLCM, SSIM) compare with a composite"
                )
            product = f"{S1_COLLECTION} IW σ⁰, {how}, {where}"
            detail = {
                "collection": S1_COLLECTION,
                "composite": request.s1_composite,
                "pass": request.s1_pass,
                "orbit_state": orbit_state,
                "relative_orbit": rel_orbit,
                "backscatter": "sigma0 (ellipsoid), dB",
                "window": window,
                **record,
            }
            if request.s1_mode == "composite":
                detail["track_choice"] = "the relative orbit with the most acquisitions over the point in the window"
            else:
                detail["target_date"] = request.nearest_date.isoformat()
            result.add("vv_db", bands[0], LayerReport("vv_db", "earthengine", product, when, detail))
            result.add("vh_db", bands[1], LayerReport("vh_db", "earthengine", product, when, detail))
            result.add(
                "angle_deg",
                bands[2],
                LayerReport("angle_deg", "earthengine", f"{S1_COLLECTION} angle band, {where}", when, detail),
            )
            result.dates["s1"] = when
        else:
            result.add(
                "optical",
                bands,
                LayerReport(
                    "optical",
                    "earthengine",
                    f"{S2_COLLECTION}, SCL cloud mask, median",
                    window,
                    {"collection": S2_COLLECTION},
                ),
            )
            result.dates["s2"] = window
        progress(1.0, f"{label} done")

    def fetch(
        self, request: FetchRequest, groups: Sequence[str], progress: FetchProgress | None = None
    ) -> SourceResult:
        started = time.perf_counter()
        result = SourceResult(source=self.name)
        self.connect()  # raises for the whole source: not configured / no credentials / no network
        groups = [g for g in groups if g in ("embedding", "s1", "s2")]
        for k, group in enumerate(groups):
            sub = scale_progress(progress, k / len(groups), (k + 1) / len(groups))
            try:
                self.fetch_group(request, group, result, sub)
            except (SourceAuthError, SourceUnavailable):
                raise  # no point asking for the other layers
            except SourceError as exc:
                result.fail(group, exc)
        result.seconds = time.perf_counter() - started
        return result
