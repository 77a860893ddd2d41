"""Earth Engine source offline: the real client, initialised from the discovery document and
algorithm list shipped in the earthengine-api wheel; only the HTTP layer is fake."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import httplib2
import numpy as np
import pytest

from _waits import patience

ee = pytest.importorskip("ee")

from sarviz.sources.base import (  # noqa: E402
    FetchRequest,
    SourceAuthError,
    SourceNotConfigured,
    SourceQuotaError,
    SourceUnavailable,
)
from sarviz.sources.earthengine import FILL, EarthEngineSource, pixel_requests, validate_key_file  # noqa: E402

EE_TESTDATA = Path(ee.__file__).parent / "tests"
REQUEST = FetchRequest.make(48.1, 11.5, 32, 2023, s1_pass="descending")


def npy(bands, fill_rows=0, value=lambda i: float(i), constant=None):
    """A recorded computePixels NUMPY_NDARRAY answer: structured array, one float32 field a band.

    ``constant``: extra bands with one value everywhere (like the S1 track bands)."""
    constant = constant or {}
    arr = np.zeros((32, 32), dtype=[(b, "<f4") for b in list(bands) + list(constant)])
    for i, b in enumerate(bands):
        arr[b] = value(i) + np.arange(32)[None, :] * 0.01
        arr[b][:fill_rows] = FILL
    for b, v in constant.items():
        arr[b] = v
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


class FakeEarthEngineHttp:
    """httplib2.Http stand-in: discovery + algorithms from the wheel, then queued answers."""

    def __init__(self, answers=None):
        self.answers = list(answers or [])
        self.calls = []

    def request(self, uri, method="GET", body=None, headers=None, redirections=5, connection_type=None):
        self.calls.append({"uri": uri, "method": method, "body": body})
        if "$discovery" in uri:
            return httplib2.Response({"status": "200"}), (
                EE_TESTDATA / "cloud_api_discovery_document.json"
            ).read_bytes()
        if "/algorithms" in uri:
            return httplib2.Response({"status": "200"}), (EE_TESTDATA / "algorithms.json").read_bytes()
        if "oauth2" in uri or "token" in uri:
            return httplib2.Response({"status": "400"}), json.dumps(
                {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
            ).encode()
        if ":computePixels" in uri:
            status, payload = self.answers.pop(0) if self.answers else (200, None)
            if payload is None:
                payload = npy(json.loads(body)["bandIds"])
            return httplib2.Response({"status": str(status)}), payload
        return httplib2.Response({"status": "404"}), b"{}"

    def pixel_calls(self):
        return [json.loads(c["body"]) for c in self.calls if ":computePixels" in c["uri"]]


def track(orbit, pass_code, first, count=1, last=None):
    """The constant track bands of a recorded S1 answer: relative orbit, pass, count, first/last day."""
    import datetime as dt

    day = (lambda d: float((dt.date.fromisoformat(d) - dt.date(1970, 1, 1)).days)) if first else (lambda d: 0.0)
    return {
        "sarviz_relative_orbit": float(orbit),
        "sarviz_pass": float(pass_code),
        "sarviz_count": float(count),
        "sarviz_first_day": day(first),
        "sarviz_last_day": day(last or first),
    }


def error(code, status, message):
    return code, json.dumps({"error": {"code": code, "message": message, "status": status}}).encode()


@pytest.fixture
def connected():
    http = FakeEarthEngineHttp()
    source = EarthEngineSource(
        "sarviz-test", http_transport=http, credentials=None, backoff_s=0.5, sleep=lambda s: sleeps.append(s)
    )
    sleeps: list[float] = []
    source.sleeps = sleeps
    source.connect()
    yield source, http
    ee.Reset()


def _inline(expr):
    """The serialized expression with every shared value (``valueReference``) written in place."""
    values = expr["values"]

    def walk(node):
        if isinstance(node, dict):
            if set(node) == {"valueReference"}:
                return walk(values[node["valueReference"]])
            if "body" in node and "argumentNames" in node:  # a mapped function: its body is a reference
                return {**node, "body": walk(values[node["body"]])}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(values[expr["result"]])


def _const(node):
    if "arrayValue" in node:
        return [_const(v) for v in node["arrayValue"]["values"]]
    return node.get("constantValue")


def _functions(node, out):
    if isinstance(node, dict):
        if "functionName" in node:
            out.append((node["functionName"], node.get("arguments", {})))
        for v in node.values():
            _functions(v, out)
    elif isinstance(node, list):
        for v in node:
            _functions(v, out)
    return out


def test_expressions_collections_filters_bands_and_grid(connected):
    source, http = connected
    emb = pixel_requests(REQUEST, "embedding")
    assert [r["bandIds"] for r in emb] == [[f"A{i:02d}" for i in range(k, k + 16)] for k in (0, 16, 32, 48)]
    expr = _inline(json.loads(emb[0]["expression"].serialize()))
    fns = _functions(expr, [])
    names = [f for f, _ in fns]
    assert {"ImageCollection.load", "ImageCollection.mosaic", "Image.toFloat", "Image.unmask"} <= set(names)
    loads = [a["id"]["constantValue"] for f, a in fns if f == "ImageCollection.load"]
    assert loads == ["GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL"]
    dr = [a for f, a in fns if f == "DateRange"][0]
    assert (dr["start"]["constantValue"], dr["end"]["constantValue"]) == ("2023-01-01", "2024-01-01")

    s1 = _inline(json.loads(pixel_requests(REQUEST, "s1")[0]["expression"].serialize()))
    fns = _functions(s1, [])
    # (the inlined tree repeats shared sub-expressions, hence sets)
    assert {a["id"]["constantValue"] for f, a in fns if f == "ImageCollection.load"} == {"COPERNICUS/S1_GRD"}
    eqs = {
        a["leftField"]["constantValue"]: a["rightValue"].get("constantValue") for f, a in fns if f == "Filter.equals"
    }
    assert eqs == {
        "instrumentMode": "IW",
        "resolution_meters": 10,
        "orbitProperties_pass": "DESCENDING",
        "sarviz_track": None,
    }  # the track is computed server-side (see the next test)
    contains = {a["rightValue"]["constantValue"] for f, a in fns if f == "Filter.listContains"}
    assert contains == {"VH", "VV"}
    # the default is one acquisition: no median anywhere; the pass's slices are mosaicked
    assert "reduce.median" not in [f for f, _ in fns] and "ImageCollection.mosaic" in [f for f, _ in fns]
    selects = [_const(a["bandSelectors"]) for f, a in fns if f == "Image.select"]
    assert ["VV", "VH", "angle"] in selects
    assert pixel_requests(REQUEST, "s1")[0]["bandIds"] == [
        "VV",
        "VH",
        "angle",
        "sarviz_relative_orbit",
        "sarviz_pass",
        "sarviz_count",
        "sarviz_first_day",
        "sarviz_last_day",
    ]
    composite = FetchRequest.make(48.1, 11.5, 32, 2023, s1_pass="descending", s1_mode="composite")
    fns = _functions(_inline(json.loads(pixel_requests(composite, "s1")[0]["expression"].serialize())), [])
    assert "reduce.median" in [f for f, _ in fns]

    s2 = _inline(json.loads(pixel_requests(REQUEST, "s2")[0]["expression"].serialize()))
    fns = _functions(s2, [])
    assert [a["id"]["constantValue"] for f, a in fns if f == "ImageCollection.load"] == ["COPERNICUS/S2_SR_HARMONIZED"]
    lt = [a for f, a in fns if f == "Filter.lessThan"][0]
    assert lt["leftField"]["constantValue"] == "CLOUDY_PIXEL_PERCENTAGE" and lt["rightValue"]["constantValue"] == 40.0
    assert [a["from"]["constantValue"] for f, a in fns if f == "Image.remap"] == [[4, 5, 6, 7, 11]]
    assert "reduce.median" in [f for f, _ in fns] and "Image.divide" in [f for f, _ in fns]

    # the grid sent over HTTP is the patch grid: UTM 32N, 10 m, 32×32, origin on the 10 m lattice
    source.fetch(REQUEST, ["embedding"])
    body = http.pixel_calls()[0]
    crs, t = REQUEST.grid
    assert body["fileFormat"] == "NPY"
    assert body["grid"]["crsCode"] == "EPSG:32632" == crs.to_string()
    assert body["grid"]["dimensions"] == {"width": 32, "height": 32}
    at = body["grid"]["affineTransform"]
    assert (at["scaleX"], at["scaleY"], at["translateX"], at["translateY"]) == (10.0, -10.0, t.c, t.f)


def _tree(node):
    """The inlined expression as nested {function: {argument: subtree}} with constants in place."""
    if isinstance(node, dict):
        if "functionName" in node:
            return {node["functionName"]: {k: _tree(v) for k, v in node.get("arguments", {}).items()}}
        if "functionInvocationValue" in node:
            return _tree(node["functionInvocationValue"])
        if "constantValue" in node:
            return node["constantValue"]
        if "arrayValue" in node:
            return [_tree(v) for v in node["arrayValue"]["values"]]
        return {k: _tree(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_tree(v) for v in node]
    return node


def _track_tag(body):
    """Assert a mapped function sets sarviz_track = "<orbitProperties_pass>/<relativeOrbitNumber_start %d>"."""
    setter = body["Element.set"]
    assert setter["key"] == "sarviz_track"
    cat = setter["value"]["String.cat"]
    assert (
        cat["string1"]["String.cat"]["string1"]["String"]["input"]["Element.get"]["property"] == "orbitProperties_pass"
    )
    assert cat["string1"]["String.cat"]["string2"] == "/"
    fmt = cat["string2"]["Number.format"]
    assert fmt["number"]["Element.get"]["property"] == "relativeOrbitNumber_start" and fmt["pattern"] == "%d"


@pytest.mark.parametrize("s1_pass", [None, "ascending"])
def test_median_uses_only_the_most_frequent_relative_orbit(connected, s1_pass):
    """Without the restriction the median would mix passes and relative orbits (and their angles)."""
    req = FetchRequest.make(48.1, 11.5, 32, 2023, s1_pass=s1_pass, s1_mode="composite")
    tree = _tree(_inline(json.loads(pixel_requests(req, "s1")[0]["expression"].serialize())))
    # toFloat → unmask → select(bands) wraps the composite; find the median and the track bands
    image = tree["Image.select"]["input"]["Image.unmask"]["input"]["Image.toFloat"]["value"]["Image.addBands"]
    filtered = image["dstImg"]["reduce.median"]["collection"]["Collection.filter"]
    tagged = filtered["collection"]["Collection.map"]
    _track_tag(tagged["baseAlgorithm"]["functionDefinitionValue"]["body"])
    equals = filtered["filter"]["Filter.equals"]
    assert equals["leftField"] == "sarviz_track"
    # the chosen track: keys[indexOf(counts, max(counts))] of the histogram of sarviz_track over the same
    # tagged collection, with a "none/0" sentinel of count 0 (an empty collection is not an error)
    get = equals["rightValue"]["String"]["input"]["List.get"]
    keys, index = get["list"]["List.add"], get["index"]["List.indexOf"]
    assert keys["element"] == "none/0"
    hist = keys["list"]["Dictionary.keys"]["dictionary"]["AggregateFeatureCollection.histogram"]
    assert hist["property"] == "sarviz_track" and hist["collection"]["Collection.map"] == tagged
    counts = index["list"]["List.add"]
    assert counts["element"] == 0
    assert counts["list"]["Dictionary.values"]["dictionary"]["AggregateFeatureCollection.histogram"] == hist
    assert index["element"]["List.reduce"]["list"]["List.add"] == counts
    assert "Reducer.max" in index["element"]["List.reduce"]["reducer"]
    # the collection under the tags carries the request's filters (pass only when asked for)
    base = json.dumps(tagged["collection"])
    assert ('"orbitProperties_pass", "rightValue": "ASCENDING"' in base) == (s1_pass == "ascending")
    # the track goes back as constant bands: relative orbit, pass code, count, first and last day
    bands = image["srcImg"]["Image.rename"]
    assert bands["names"] == [
        "sarviz_relative_orbit",
        "sarviz_pass",
        "sarviz_count",
        "sarviz_first_day",
        "sarviz_last_day",
    ]
    parts = bands["input"]["Image.toFloat"]["value"]["Image.constant"]["value"]
    orbit = parts[0]["Number.parse"]["input"]["String"]["input"]["List.get"]
    split = orbit["list"]["String.split"]
    assert orbit["index"] == 1 and split["regex"] == "/" and split["string"] == equals["rightValue"]
    pass_code = parts[1]["Dictionary.get"]
    assert pass_code["dictionary"] == {"ASCENDING": 1, "DESCENDING": 2, "none": 0}
    assert pass_code["key"]["String"]["input"]["List.get"] == {"index": 0, "list": orbit["list"]}


def test_nearest_acquisition_sorts_by_time_distance(connected):
    req = FetchRequest.make(48.1, 11.5, 32, 2023, s1_composite="nearest", target_date="2023-07-14")
    fns = _functions(_inline(json.loads(pixel_requests(req, "s1")[0]["expression"].serialize())), [])
    names = [f for f, _ in fns]
    assert "Collection.first" in names
    assert any(f == "Collection.limit" and _const(a["key"]) == "sarviz_days" for f, a in fns)  # sort by |Δt|
    assert "reduce.median" not in names
    assert any(f == "Date" and a["value"]["constantValue"] == "2023-07-14" for f, a in fns)
    # the nearest image is chosen over the point; its pass's slices are gathered over the whole patch
    polygons = [a for f, a in fns if f == "GeometryConstructors.Polygon"]
    assert polygons and all(f != "reduce.median" for f, _ in fns)
    ring = [v["constantValue"] for v in polygons[0]["coordinates"]["arrayValue"]["values"][0]["arrayValue"]["values"]]
    assert ring == req.patch_geojson["coordinates"][0]
    assert "ImageCollection.mosaic" in names and "Date.advance" in names


def test_recorded_pixels_parse_to_layers_with_nan_for_masked(connected):
    source, http = connected
    http.answers = [
        (200, npy([f"A{i:02d}" for i in range(k, k + 16)], value=lambda i, k=k: (k + i) / 100)) for k in (0, 16, 32, 48)
    ]
    http.answers += [
        (
            200,
            npy(
                ["VV", "VH", "angle"],
                fill_rows=4,
                value=lambda i: (-12.0, -19.0, 38.0)[i],
                constant=track(95, 2, "2023-06-30"),
            ),
        )
    ]
    http.answers += [(200, npy(["B2", "B3", "B4", "B8"], value=lambda i: 0.05 * (i + 1)))]
    result = source.fetch(REQUEST, ["embedding", "s1", "s2"])
    assert not result.failures
    emb = result.layers["embedding"]
    assert emb.shape == (64, 32, 32)
    np.testing.assert_allclose(emb[:, 0, 0], np.arange(64) / 100, rtol=1e-6)
    np.testing.assert_allclose(emb[5, 3, 10], 0.05 + 0.10, rtol=1e-6)
    vv, angle = result.layers["vv_db"], result.layers["angle_deg"]
    assert np.isnan(vv[:4]).all() and np.isfinite(vv[4:]).all()  # the unmask fill became NaN
    assert vv[10, 0] == pytest.approx(-12.0) and angle[10, 0] == pytest.approx(38.0)
    np.testing.assert_allclose(result.layers["optical"][:, 0, 0], [0.05, 0.10, 0.15, 0.20], rtol=1e-6)
    report = result.reports["vv_db"]
    assert report.product.startswith("COPERNICUS/S1_GRD") and "descending relative orbit 95" in report.product
    assert report.detail["relative_orbit"] == 95 and report.detail["orbit_state"] == "descending"
    # one acquisition by default: its date (from the constant day band), direction and track
    assert {k: report.detail[k] for k in ("s1_mode", "s1_date", "orbit", "relative_orbit")} == {
        "s1_mode": "single",
        "s1_date": "2023-06-30",
        "orbit": "descending",
        "relative_orbit": 95,
    }
    assert "s1_composite" not in report.detail and report.dates == "2023-06-30"
    assert "single acquisition 2023-06-30" in report.product
    assert "relative orbit 95" in result.reports["angle_deg"].product
    assert "sarviz_relative_orbit" not in result.layers and not any("mixes" in w for w in result.warnings)


def test_all_masked_answer_is_no_data_for_that_layer(connected):
    source, http = connected
    http.answers = [(200, npy(["VV", "VH", "angle"], fill_rows=32, constant=track(0, 0, None, count=0)))]
    result = source.fetch(REQUEST, ["s1"])
    msg = str(result.failures["s1"])
    assert "Sentinel-1" in msg and "Earth Engine" in msg and "descending" in msg


def test_quota_errors_are_retried_with_backoff(connected):
    source, http = connected
    quota = error(429, "RESOURCE_EXHAUSTED", "Too many concurrent aggregations.")
    http.answers = [quota, quota, (200, npy(["B2", "B3", "B4", "B8"]))]
    result = source.fetch(REQUEST, ["s2"])
    assert "optical" in result.layers and source.sleeps == [0.5, 1.0]
    http.answers = [quota] * 4
    result = source.fetch(REQUEST, ["s2"])
    err = result.failures["s2"]
    assert isinstance(err, SourceQuotaError) and "Sentinel-2" in str(err) and "quota" in str(err)


def test_permission_denied_is_an_auth_error(connected):
    source, http = connected
    http.answers = [error(403, "PERMISSION_DENIED", "Caller does not have required permission to use project x")]
    with pytest.raises(SourceAuthError, match="refused the credentials"):
        source.fetch(REQUEST, ["s2"])


def test_not_configured_and_no_credentials_fail_fast(tmp_path, monkeypatch):
    with pytest.raises(SourceNotConfigured, match="SARVIZ_EE_PROJECT"):
        EarthEngineSource("").connect()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    t0 = time.perf_counter()
    with pytest.raises((SourceAuthError, SourceUnavailable)) as info:
        EarthEngineSource("sarviz-test", timeout=3).connect()  # the real network path
    assert time.perf_counter() - t0 < patience(6)
    assert "earthengine authenticate" in str(info.value) or "network" in str(info.value)
    with pytest.raises(SourceAuthError, match="does not exist"):
        EarthEngineSource("p", key_file=str(tmp_path / "key.json"), http_transport=FakeEarthEngineHttp()).connect()


def test_expired_credentials_give_an_honest_message():
    import google.oauth2.credentials

    creds = google.oauth2.credentials.Credentials(
        token=None,
        refresh_token="old",
        client_id="id",
        client_secret="s",
        token_uri="https://oauth2.googleapis.com/token",
    )
    source = EarthEngineSource("sarviz-test", http_transport=FakeEarthEngineHttp(), credentials=creds)
    t0 = time.perf_counter()
    with pytest.raises(SourceAuthError, match="expired or were revoked"):
        source.connect()
    assert time.perf_counter() - t0 < patience(3)
    ee.Reset()


def test_median_without_a_pass_reports_the_track_the_server_chose(connected):
    source, http = connected
    http.answers = [
        (
            200,
            npy(
                ["VV", "VH", "angle"],
                value=lambda i: (-11.0, -18.0, 41.0)[i],
                constant=track(117, 1, "2023-01-04", count=27, last="2023-12-29"),
            ),
        )
    ]
    result = source.fetch(FetchRequest.make(48.1, 11.5, 32, 2023, s1_mode="composite"), ["s1"])
    assert "ascending relative orbit 117" in result.reports["vv_db"].product
    assert result.reports["vh_db"].detail["track_choice"].startswith("the relative orbit with the most")
    detail = result.reports["vv_db"].detail
    assert detail["s1_mode"] == "composite" and "s1_date" not in detail
    assert detail["s1_composite"] == {
        "kind": "median",
        "n": 27,
        "dates": ["2023-01-04", "2023-12-29"],
        "dates_are": "first and last",
    }
    assert any("median of 27" in w and "speckle" in w for w in result.warnings)
    assert not any("both orbit passes" in w for w in result.warnings)


def _fail_if_network_is_touched(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the key file must be checked before any network access")

    monkeypatch.setattr(socket, "create_connection", no_network)


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing", "does not exist"),
        ("folder", "is not a file"),
        ("not-json", "is not JSON"),
        ("no-private-key", "no private_key"),
    ],
)
def test_key_file_is_checked_before_the_network(tmp_path, monkeypatch, case, match):
    _fail_if_network_is_touched(monkeypatch)
    path = {"missing": tmp_path / "nope.json", "folder": tmp_path}.get(case, tmp_path / "key.json")
    if case == "not-json":
        path.write_text("-----BEGIN PRIVATE KEY-----\n")
    elif case == "no-private-key":
        path.write_text(json.dumps({"type": "service_account", "client_email": "a@b.iam.gserviceaccount.com"}))
    t0 = time.perf_counter()
    with pytest.raises(SourceAuthError, match=match) as info:
        EarthEngineSource("sarviz-test", key_file=str(path), timeout=3).connect()  # no fake transport: real path
    assert time.perf_counter() - t0 < patience(1)
    assert str(path) in str(info.value) and "SARVIZ_EE_KEY_FILE" in str(info.value)
    assert "network" not in str(info.value)


def test_a_valid_key_file_passes_the_local_check(tmp_path):
    key = tmp_path / "key.json"
    key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": "a@b.iam.gserviceaccount.com",
                "private_key": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n",
            }
        )
    )
    assert validate_key_file(str(key)) == key
