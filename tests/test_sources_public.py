"""Public source on local fixtures: Zarr v3 AlphaEarth mosaic, STAC API + COGs (offline)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, reproject

from _waits import patience
from sarviz.sources.base import FetchRequest, NoDataHere, SourceError, SourceTimeout, SourceUnavailable
from sarviz.sources.public import AlphaEarthMosaic, PublicSource, dequantize, gamma0_to_sigma0_db

from _sources_fixtures import (
    AEF_SHAPE_YX,
    AEF_TRANSFORM,
    aef_codes,
    build_aef_zarr,
    closed_port_url,
    make_s1_items,
    make_s2_items,
    stac_api,
    write_items,
)

LAT, LON = 47.0, 8.0


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    d = tmp_path_factory.mktemp("public")
    build_aef_zarr(d / "aef.zarr", [(LAT, LON, 60, 90), (65.0, 180.0, 40, 260)])
    (d / "cogs").mkdir()
    items = make_s1_items(d / "cogs", LAT, LON, ["2018-03-01", "2018-05-01", "2018-07-01"]) + make_s2_items(
        d / "cogs", LAT, LON, ["2018-06-01", "2018-07-01"]
    )
    return {"dir": d, "aef": d / "aef.zarr", "items": write_items(d / "cogs", items), "raw": items}


def test_dequantisation_matches_the_published_formula():
    q = np.arange(-128, 128, dtype=np.int8)
    got = dequantize(q)
    expected = np.array([np.nan if v == -128 else np.sign(v) * (v / 127.5) ** 2 for v in range(-128, 128)], np.float32)
    np.testing.assert_allclose(got[1:], expected[1:], rtol=1e-6)
    assert np.isnan(got[0]) and got[128] == 0.0 and got[-1] == pytest.approx((127 / 127.5) ** 2)


def _expected_embedding(year_index: int, request: FetchRequest) -> np.ndarray:
    """Independent: rebuild the mosaic block as an array and warp it with GDAL (nearest)."""
    c, r = ~AEF_TRANSFORM * (request.lon, request.lat)
    r0, c0 = int(r) - 60, int(c) - 90
    rr, cc = np.meshgrid(np.arange(r0, r0 + 120), np.arange(c0, c0 + 180), indexing="ij")
    codes = aef_codes(year_index, rr.ravel(), cc.ravel())
    codes[:, (rr.ravel() * 3 + cc.ravel()) % 97 == 0] = -128
    values = np.sign(codes.astype(np.float64)) * (codes / 127.5) ** 2
    values[codes == -128] = np.nan
    src = values.reshape(64, 120, 180).astype(np.float32)
    crs, transform = request.grid
    dst = np.full((64, request.size_px, request.size_px), np.nan, np.float32)
    reproject(
        src,
        dst,
        src_transform=AEF_TRANSFORM * AEF_TRANSFORM.translation(c0, r0),
        src_crs="EPSG:4326",
        dst_transform=transform,
        dst_crs=crs,
        resampling=Resampling.nearest,
        src_nodata=np.nan,
        dst_nodata=np.nan,
    )
    return dst


@pytest.mark.parametrize("year", [2017, 2019])
def test_embedding_window_year_and_reprojection(fixtures, year):
    request = FetchRequest.make(LAT, LON, 64, year)
    crs, transform = request.grid
    got = AlphaEarthMosaic(str(fixtures["aef"])).read_patch(year, crs, transform, 64, 64)
    expected = _expected_embedding(year - 2017, request)
    both = np.isfinite(got) & np.isfinite(expected)
    assert np.isnan(got).mean() == pytest.approx(np.isnan(expected).mean(), abs=0.01)
    assert both.mean() > 0.97
    # nearest neighbour chosen by pyproj vs GDAL: identical except for pixel centres on a cell edge
    assert np.mean(np.isclose(got[both], expected[both], rtol=1e-6, atol=0)) > 0.995


def test_year_index_follows_the_years_attribute_when_it_has_gaps(tmp_path):
    """years = [2017, 2019, 2020]: 2019 is index 1 (not 2019 − 2017 = 2); 2018 is not there."""
    build_aef_zarr(tmp_path / "gaps.zarr", [(LAT, LON, 60, 90)], years=(2017, 2019, 2020))
    mosaic = AlphaEarthMosaic(str(tmp_path / "gaps.zarr"))
    assert mosaic.years == [2017, 2019, 2020]
    request = FetchRequest.make(LAT, LON, 64, 2019)
    crs, transform = request.grid
    got = mosaic.read_patch(2019, crs, transform, 64, 64)
    both = np.isfinite(got)
    for index, agrees in ((1, True), (2, False)):  # 2: what "year − start" would have read
        expected = _expected_embedding(index, request)
        close = np.mean(np.isclose(got[both], expected[both], rtol=1e-6, atol=0))
        assert (close > 0.995) == agrees, (index, close)
    with pytest.raises(NoDataHere, match="2017, 2019, 2020, not 2018"):
        mosaic.read_patch(2018, crs, transform, 64, 64)


def test_years_attribute_that_does_not_match_the_array_is_an_error(tmp_path):
    import zarr

    build_aef_zarr(tmp_path / "bad.zarr", [(LAT, LON, 4, 4)], years=(2017, 2018))
    zarr.open_group(str(tmp_path / "bad.zarr"), mode="r+").attrs["years"] = [2017, 2018, 2019]
    with pytest.raises(SourceError, match="lists 3 years.*has 2"):
        AlphaEarthMosaic(str(tmp_path / "bad.zarr")).year_index(2018)


def test_year_outside_the_mosaic_and_outside_the_products(fixtures):
    mosaic = AlphaEarthMosaic(str(fixtures["aef"]))
    crs, transform = FetchRequest.make(LAT, LON, 64, 2024).grid
    with pytest.raises(NoDataHere, match=r"AlphaEarth.*2017–2019, not 2024"):
        mosaic.read_patch(2024, crs, transform, 64, 64)
    for bad in (2016, 2026, "twenty"):
        with pytest.raises(SourceError, match="year"):
            FetchRequest.make(LAT, LON, 64, bad)


def test_open_ocean_has_no_embedding(fixtures):
    source = PublicSource(aef_url=str(fixtures["aef"]), stac_url=closed_port_url(), timeout=2)
    result = source.fetch(FetchRequest.make(-30.0, -140.0, 64, 2018), ["embedding"])
    err = result.failures["embedding"]
    assert isinstance(err, NoDataHere) and "AlphaEarth embedding" in str(err) and "Source Cooperative" in str(err)
    assert "embedding" not in result.layers


def test_antimeridian_patch_reads_both_sides(fixtures):
    request = FetchRequest.make(65.0, 179.999, 64, 2018)
    assert request.crosses_antimeridian
    crs, transform = request.grid
    mosaic = AlphaEarthMosaic(str(fixtures["aef"]))
    rows, cols = mosaic.source_pixels(crs, transform, 64, 64)
    assert cols.min() < 1000 and cols.max() > AEF_SHAPE_YX[1] - 1000  # both sides of ±180°
    got = mosaic.read_patch(2018, crs, transform, 64, 64)
    assert np.isfinite(got).mean() > 0.97
    r, c = rows[10, 5], cols[10, 5]
    codes = aef_codes(1, np.array([r]), np.array([c]))[:, 0].astype(np.float64)
    if (r * 3 + c) % 97:
        np.testing.assert_allclose(got[:, 10, 5], np.sign(codes) * (codes / 127.5) ** 2, rtol=1e-6)


def _warp(href, crs, transform, size=64):
    with rasterio.open(href) as src:
        dst = np.full((size, size), np.nan, np.float32)
        reproject(
            src.read(1),
            dst,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=transform,
            dst_crs=crs,
            resampling=Resampling.bilinear,
            src_nodata=src.nodata,
            dst_nodata=np.nan,
        )
    return dst


def _expected_centre_angle(km_beyond_near_edge=60.0, swath_km=250.0, lat=LAT):
    """θ at the fixture's point, independently: the far edge at 46.0°, the near edge ``swath_km``
    closer to nadir; ground range ↔ incidence on a sphere of the local WGS84 radius R with the
    satellite at a = 7064.94 km from the centre: g(θ) = R·(θ − asin(R·sin θ / a))."""
    A, B = 6378.137, 6356.752314245
    c, s_ = np.cos(np.radians(lat)), np.sin(np.radians(lat))
    R = np.sqrt(((A * A * c) ** 2 + (B * B * s_) ** 2) / ((A * c) ** 2 + (B * s_) ** 2))
    a = 7064.94

    def ground_range(theta_deg):
        t = np.radians(theta_deg)
        return R * (t - np.arcsin(R * np.sin(t) / a))

    g = ground_range(46.0) - swath_km + km_beyond_near_edge
    phi = g / R
    return np.degrees(phi + np.arctan2(R * np.sin(phi), a - R * np.cos(phi)))


def test_sentinel_composite_from_stac_and_cogs(fixtures):
    request = FetchRequest.make(LAT, LON, 64, 2018, s1_pass="descending", s1_mode="composite")
    crs, transform = request.grid
    with stac_api(fixtures["items"]) as url:
        result = PublicSource(aef_url=str(fixtures["aef"]), stac_url=url, timeout=5).fetch(request, ["s1", "s2"])
    assert not result.failures, result.failures
    # independent: warp each VV COG with GDAL (bilinear, linear power), median, dB
    s1 = [it for it in fixtures["raw"] if it["collection"] == "sentinel-1-rtc"]
    stack = [_warp(it["assets"]["vv"]["href"], crs, transform) for it in s1]
    gamma0_db = 10 * np.log10(np.nanmedian(np.stack(stack), axis=0))
    angle = result.layers["angle_deg"]
    assert 30.0 < np.nanmin(angle) and np.nanmax(angle) < 46.0
    assert angle[:, -1].mean() < angle[:, 0].mean()  # descending: far range (larger angle) is west
    # the RTC γ⁰ is stored as σ⁰ = γ⁰·cos θ (dB: + 10·log10 cos θ), θ the angle layer
    np.testing.assert_allclose(result.layers["vv_db"], gamma0_db + 10 * np.log10(np.cos(np.radians(angle))), atol=1e-3)
    # ... and θ at the patch centre computed independently (the fixture's swath: 250 km wide, the
    # point 60 km beyond its near edge)
    theta_centre = _expected_centre_angle()
    assert angle[32, 32] == pytest.approx(theta_centre, abs=0.2)
    sigma0_centre = gamma0_db[32, 32] + 10 * np.log10(np.cos(np.radians(theta_centre)))
    assert result.layers["vv_db"][32, 32] == pytest.approx(sigma0_centre, abs=0.02)
    assert sigma0_centre < gamma0_db[32, 32] - 0.5  # the conversion is not a no-op (≈ −0.9 dB here)
    report = result.reports["vv_db"]
    assert "relative orbit 110" in report.product and "2018-03-01" in report.dates and "σ⁰" in report.product
    assert "median of 3" in report.product
    assert report.detail["s1_mode"] == "composite" and report.detail["s1_composite"] == {
        "kind": "median",
        "n": 3,
        "dates": ["2018-03-01", "2018-05-01", "2018-07-01"],
    }
    assert report.detail["orbit"] == "descending" and report.detail["relative_orbit"] == 110
    assert report.detail["original_convention"].startswith("gamma0 RTC")
    assert "flat-terrain" in report.detail["conversion"] and report.detail["backscatter"].startswith("sigma0")
    assert any("γ⁰" in w and "σ⁰" in w for w in result.warnings)
    assert any("estimated" in w for w in result.warnings)
    assert any("median of 3" in w and "speckle" in w for w in result.warnings)
    # Sentinel-2: (DN − 1000) / 10000, SCL cloud rows masked, median of the two dates
    s2 = [it for it in fixtures["raw"] if it["collection"] == "sentinel-2-l2a"]
    b04 = []
    for it in s2:
        with rasterio.open(it["assets"]["B04"]["href"]) as src:
            dst = np.full((64, 64), np.nan, np.float32)
            reproject(
                src.read(1).astype(np.float32),
                dst,
                src_transform=src.transform,
                src_crs=src.crs,
                dst_transform=transform,
                dst_crs=crs,
                resampling=Resampling.bilinear,
                src_nodata=0,
                dst_nodata=np.nan,
            )
            b04.append((dst - 1000) / 10000)
    optical = result.layers["optical"]
    clear = np.isfinite(optical[2])
    assert 0.5 < clear.mean() < 1.0  # part of the patch is under the cloud band
    np.testing.assert_allclose(optical[2][clear], np.nanmedian(np.stack(b04), axis=0)[clear], atol=1e-5)


def test_sentinel_single_acquisition_is_the_default(fixtures):
    """One acquisition, the one nearest to the target date: no median, its own date and track."""
    request = FetchRequest.make(LAT, LON, 64, 2018, target_date="2018-04-20")
    assert request.s1_mode == "single"
    crs, transform = request.grid
    with stac_api(fixtures["items"]) as url:
        result = PublicSource(aef_url=str(fixtures["aef"]), stac_url=url, timeout=5).fetch(request, ["s1"])
    assert not result.failures, result.failures
    nearest = [
        it
        for it in fixtures["raw"]
        if it["collection"] == "sentinel-1-rtc" and it["properties"]["datetime"].startswith("2018-05-01")
    ][0]
    gamma0_db = 10 * np.log10(_warp(nearest["assets"]["vv"]["href"], crs, transform))
    angle = result.layers["angle_deg"]
    np.testing.assert_allclose(result.layers["vv_db"], gamma0_db + 10 * np.log10(np.cos(np.radians(angle))), atol=1e-3)
    report = result.reports["vv_db"]
    assert report.detail["items"] == [nearest["id"]] and report.dates == "2018-05-01"
    assert {k: report.detail[k] for k in ("s1_mode", "s1_date", "orbit", "relative_orbit")} == {
        "s1_mode": "single",
        "s1_date": "2018-05-01",
        "orbit": "descending",
        "relative_orbit": 110,
    }
    assert "s1_composite" not in report.detail and "single acquisition 2018-05-01" in report.product
    assert not any("median" in w for w in result.warnings)


def test_gamma0_to_sigma0_known_values():
    # flat ground at 30°: σ⁰ = γ⁰·cos 30° → 0.1 linear (−10 dB) becomes −10 + 10·log10(√3/2) = −10.6247 dB
    got = gamma0_to_sigma0_db(np.array([0.1, 0.0, np.nan, 1.0]), np.array([30.0, 30.0, 30.0, 60.0]))
    assert got[0] == pytest.approx(-10.6247, abs=1e-4) and got[3] == pytest.approx(-3.0103, abs=1e-4)
    assert np.isnan(got[1]) and np.isnan(got[2]) and got.dtype == np.float32


def test_no_s1_at_the_point_names_layer_and_service(fixtures):
    with stac_api(fixtures["items"]) as url:
        result = PublicSource(aef_url=str(fixtures["aef"]), stac_url=url, timeout=5).fetch(
            FetchRequest.make(LAT, LON, 64, 2018, s1_pass="ascending"), ["s1"]
        )
    msg = str(result.failures["s1"])
    assert "Sentinel-1" in msg and "Planetary Computer" in msg and "ascending" in msg


def test_network_down_and_timeout_fail_fast(fixtures, tmp_path):
    # no timed assertion (the suite runs on busy machines): the failure *kinds* show that nothing
    # waited: a refused connection is "network", and a 0.5 s timeout against a server that answers
    # after 3 s is a SourceTimeout (had the client waited, it would have had an answer)
    result = PublicSource(aef_url=str(tmp_path / "missing.zarr"), stac_url=closed_port_url(), timeout=2).fetch(
        FetchRequest.make(LAT, LON, 64, 2018), ["embedding", "s1"]
    )
    assert isinstance(result.failures["s1"], SourceUnavailable) and "network" in str(result.failures["s1"])
    assert isinstance(result.failures["embedding"], SourceUnavailable)
    with stac_api(fixtures["items"], delay_s=3.0) as url:
        result = PublicSource(aef_url=str(fixtures["aef"]), stac_url=url, timeout=0.5).fetch(
            FetchRequest.make(LAT, LON, 64, 2018), ["s2"]
        )
    assert isinstance(result.failures["s2"], SourceTimeout) and "Sentinel-2" in str(result.failures["s2"])


def test_unreachable_s3_mosaic_fails_fast():
    t0 = time.perf_counter()
    mosaic = AlphaEarthMosaic(
        "s3://no-bucket/aef-mosaic/",
        timeout=1,
        storage_options={
            "anon": True,
            "endpoint_url": closed_port_url(),
            "config_kwargs": {"connect_timeout": 1, "read_timeout": 1, "retries": {"max_attempts": 1}},
        },
    )
    with pytest.raises(SourceError, match="AlphaEarth embedding"):
        mosaic.read_patch(2018, *FetchRequest.make(LAT, LON, 64, 2018).grid, 64, 64)
    assert time.perf_counter() - t0 < patience(10)


# -- fast paths of the embedding read: each equals the straightforward computation ---------------
from affine import Affine  # noqa: E402
from pyproj import Transformer  # noqa: E402

from sarviz.sources.public import dequantize_arithmetic, gather_dequantize  # noqa: E402


def test_table_dequantisation_is_bit_identical_to_the_arithmetic():
    every_code = np.arange(256, dtype=np.uint8).view(np.int8)
    np.testing.assert_array_equal(dequantize(every_code), dequantize_arithmetic(every_code))
    q = np.random.default_rng(3).integers(-128, 128, (3, 17, 19), dtype=np.int8)
    got = dequantize(q)
    assert got.dtype == np.float32 and got.shape == q.shape
    np.testing.assert_array_equal(got, dequantize_arithmetic(q))  # NaN in the same places too


@pytest.mark.parametrize("n", [4096, 4097])  # even: two codes per look-up; odd: one
def test_fused_gather_dequantise_equals_gather_then_dequantise(n):
    rng = np.random.default_rng(n)
    codes = rng.integers(-128, 128, (64, 1000), dtype=np.int8)
    codes[:, ::13] = -128
    index = rng.integers(0, 1000, n)
    got = gather_dequantize(codes, index)
    expected = dequantize_arithmetic(codes[:, index])
    assert got.dtype == np.float32 and got.shape == (64, n)
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(IndexError, match="outside"):
        gather_dequantize(codes, np.array([0, 1000]))


def _cells_by_pyproj(mosaic_crs, mosaic_transform, shape_yx, crs, transform, size):
    """Independent reference: every pixel centre through pyproj, then floor in the mosaic grid."""
    cc, rr = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    x = transform.a * cc + transform.b * rr + transform.c
    y = transform.d * cc + transform.e * rr + transform.f
    sx, sy = Transformer.from_crs(crs, mosaic_crs, always_xy=True).transform(x, y)
    if mosaic_crs == "EPSG:4326":
        sx = np.where(sx < mosaic_transform.c, sx + 360.0, np.where(sx >= mosaic_transform.c + 360.0, sx - 360.0, sx))
    inv = ~mosaic_transform
    col = np.floor(inv.a * sx + inv.b * sy + inv.c)
    row = np.floor(inv.d * sx + inv.e * sy + inv.f)
    inside = (col >= 0) & (col < shape_yx[1]) & (row >= 0) & (row < shape_yx[0])
    return np.where(inside, row, -1).astype(np.int64), np.where(inside, col, -1).astype(np.int64)


@pytest.mark.parametrize(
    "lat, lon, size",
    [
        (47.0, 8.0, 512),  # mid-latitude, the benchmark patch
        (0.001, 0.001, 128),  # equator and prime meridian
        (70.0, 20.0, 256),
        (80.0, 179.999, 128),  # antimeridian: longitudes wrap inside the patch
        (-83.9, -60.0, 128),  # strong distortion: the lattice is refined
    ],
)
def test_fast_pixel_lookup_equals_the_exact_transform(fixtures, lat, lon, size):
    mosaic = AlphaEarthMosaic(str(fixtures["aef"]))
    crs, transform = FetchRequest.make(lat, lon, size, 2018).grid
    rows, cols = mosaic.source_pixels(crs, transform, size, size)
    ref_rows, ref_cols = _cells_by_pyproj("EPSG:4326", AEF_TRANSFORM, AEF_SHAPE_YX, crs, transform, size)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_array_equal(cols, ref_cols)
    exact_rows, exact_cols = mosaic.source_pixels_exact(crs, transform, size, size)
    np.testing.assert_array_equal(rows, exact_rows)
    np.testing.assert_array_equal(cols, exact_cols)


def test_pixel_lookup_error_bound_holds(fixtures):
    """The documented bound really bounds the interpolation error, and is not vacuous."""
    from sarviz.sources.public import _PixelLookup

    mosaic = AlphaEarthMosaic(str(fixtures["aef"]))
    for lat, lon in ((47.0, 8.0), (70.0, 20.0), (-83.9, -60.0)):
        crs, transform = FetchRequest.make(lat, lon, 256, 2018).grid
        lookup = _PixelLookup(crs, mosaic.crs, transform, mosaic.transform, 256, 256)
        for step in (32, 16):
            interpolated = lookup._interpolate(step, max_bound=1.0)
            assert interpolated is not None
            fc, fr, bound = interpolated
            ec, er = lookup.exact_grid()
            error = max(np.abs(fc - ec).max(), np.abs(fr - er).max())
            assert error < bound < 10 * error + 1e-5, (lat, step, error, bound)


def _straightforward_read(path, year_index, mosaic_crs, mosaic_transform, shape_yx, crs, transform, size):
    """The whole read done the plain way: exact lookup, one big window, gather, arithmetic."""
    import zarr

    rows, cols = _cells_by_pyproj(mosaic_crs, mosaic_transform, shape_yx, crs, transform, size)
    valid = rows >= 0
    out = np.full((64, size, size), np.nan, np.float32)
    r, c = rows[valid], cols[valid]
    window = zarr.open_group(str(path), mode="r")["embeddings"][
        year_index, :, r.min() : r.max() + 1, c.min() : c.max() + 1
    ]
    out[:, valid] = dequantize_arithmetic(window[:, r - r.min(), c - c.min()])
    return out


def test_read_patch_equals_the_straightforward_read(fixtures):
    crs, transform = FetchRequest.make(LAT, LON, 96, 2019).grid
    got = AlphaEarthMosaic(str(fixtures["aef"])).read_patch(2019, crs, transform, 96, 96)
    expected = _straightforward_read(fixtures["aef"], 2, "EPSG:4326", AEF_TRANSFORM, AEF_SHAPE_YX, crs, transform, 96)
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(got).any() and np.isfinite(got).mean() > 0.97  # nodata codes survive as NaN


def test_read_patch_on_a_projected_regional_mosaic_with_the_patch_partly_outside(tmp_path):
    """A mosaic in a projected CRS (LAEA Europe, 7 m) that covers only part of the patch:
    pixels outside it are NaN, the rest equal the straightforward read."""
    import zarr

    mosaic_crs = "EPSG:3035"
    x0, y0 = Transformer.from_crs("EPSG:4326", mosaic_crs, always_xy=True).transform(LON, LAT)
    mosaic_t = Affine(7.0, 0.0, round(x0) - 300.0, 0.0, -7.0, round(y0) + 150.0)
    shape_yx = (90, 120)  # 630 m × 840 m: the patch's north-west corner only
    rng = np.random.default_rng(5)
    codes = rng.integers(-128, 128, (2, 64) + shape_yx, dtype=np.int8)
    group = zarr.open_group(str(tmp_path / "regional.zarr"), mode="w", zarr_format=3)
    group.attrs.update({"spatial:transform": list(mosaic_t)[:6], "proj:code": mosaic_crs, "start_year": 2020})
    array = group.create_array("embeddings", shape=codes.shape, dtype="int8", fill_value=-128, chunks=(1, 64, 32, 32))
    array[...] = codes
    crs, transform = FetchRequest.make(LAT, LON, 128, 2021).grid
    got = AlphaEarthMosaic(str(tmp_path / "regional.zarr")).read_patch(2021, crs, transform, 128, 128)
    expected = _straightforward_read(tmp_path / "regional.zarr", 1, mosaic_crs, mosaic_t, shape_yx, crs, transform, 128)
    np.testing.assert_array_equal(got, expected)
    assert 0.05 < np.isfinite(got[0]).mean() < 0.95  # partly inside, partly outside the mosaic


def test_local_reads_restore_the_zarr_config_even_from_threads(fixtures):
    import threading

    import zarr

    before = zarr.config.get("async.concurrency")
    crs, transform = FetchRequest.make(LAT, LON, 64, 2018).grid
    mosaic = AlphaEarthMosaic(str(fixtures["aef"]))
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: results.append(mosaic.read_patch(2018, crs, transform, 64, 64)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(np.array_equal(r, results[0], equal_nan=True) for r in results)
    assert zarr.config.get("async.concurrency") == before


def test_settling_cancels_only_the_failed_stores_reads():
    """After a failed remote read, the store's sibling reads still running in zarr's loop are
    cancelled there (so they unwind in their own context); another store's reads are untouched."""
    import asyncio

    from zarr.core.sync import _get_loop

    from sarviz.sources.public import _cancel_store_tasks

    class Store:  # stands in for the FsspecStore whose reads failed
        pass

    class StorePath:  # what zarr's gathered metadata reads hold: a path into a store
        def __init__(self, store):
            self.store = store

    failed, other = Store(), Store()

    async def read(path):
        await asyncio.sleep(30)

    async def start():
        return asyncio.create_task(read(StorePath(failed))), asyncio.create_task(read(StorePath(other)))

    loop = _get_loop()
    mine, theirs = asyncio.run_coroutine_threadsafe(start(), loop).result(patience(5))
    t0 = time.perf_counter()
    _cancel_store_tasks(failed, timeout=2)
    assert time.perf_counter() - t0 < patience(2)
    assert mine.cancelled()
    assert not theirs.done()
    loop.call_soon_threadsafe(theirs.cancel)


def test_error_classification_ignores_ports_and_urls():
    """A port like :40329 or a URL path with 429 in it is not an HTTP status (a flaky-test find)."""
    from sarviz.sources.base import SourceAuthError, SourceQuotaError, SourceUnavailable
    from sarviz.sources.public import classify_error

    refused = ConnectionRefusedError("Cannot connect to host 127.0.0.1:40329 ssl:default [Connect call failed]")
    assert type(classify_error(refused, "S3", "embedding")) is SourceUnavailable
    url = OSError("Connection refused: http://127.0.0.1:1429/search?x=4011")
    assert type(classify_error(url, "STAC", "S1")) is SourceUnavailable
    assert type(classify_error(RuntimeError("HTTP 403 Forbidden"), "STAC", "S1")) is SourceAuthError
    assert type(classify_error(RuntimeError("status 429: Too Many Requests"), "STAC", "S1")) is SourceQuotaError


def test_mosaic_laid_out_like_the_published_store(tmp_path):
    """GeoZarr attributes only, years only in /time (2018, 2020, 2021 — not a 2017 start)."""
    from _sources_fixtures import build_published_aef_zarr

    west, north = 7.98, 47.02
    path, transform = build_published_aef_zarr(tmp_path / "aef.zarr", west, north, 450, 450)
    mosaic = AlphaEarthMosaic(str(path))
    assert mosaic.years == [2018, 2020, 2021]
    assert "years" not in mosaic.attrs and "start_year" not in mosaic.attrs
    assert mosaic.crs.to_epsg() == 4326 and mosaic.transform == transform
    request = FetchRequest.make(LAT, LON, 32, 2020)
    crs, patch_t = request.grid
    got = mosaic.read_patch(2020, crs, patch_t, 32, 32)
    rows, cols = mosaic.source_pixels_exact(crs, patch_t, 32, 32)
    # independent: the cell under each pixel centre, from pyproj and the published transform
    from pyproj import Transformer

    xs, ys = patch_t * (np.meshgrid(np.arange(32) + 0.5, np.arange(32) + 0.5))
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    c, r = ~transform * (lon, lat)
    np.testing.assert_array_equal(rows, np.floor(r).astype(int))
    np.testing.assert_array_equal(cols, np.floor(c).astype(int))
    codes = aef_codes(1, rows.ravel(), cols.ravel()).astype(np.float64)  # 2020 is index 1 of /time
    expected = (np.sign(codes) * (codes / 127.5) ** 2).reshape(64, 32, 32)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    with pytest.raises(NoDataHere, match="2018, 2020, 2021, not 2019"):
        mosaic.read_patch(2019, crs, patch_t, 32, 32)


def test_single_acquisition_mosaics_the_slices_of_one_pass(tmp_path):
    """A patch on a slice boundary: both slices of the pass (same track, 25 s apart; one of them
    not over the point) are mosaicked into one acquisition; another pass of the day is not mixed in."""
    crs, transform = FetchRequest.make(LAT, LON, 64, 2018).grid
    north = make_s1_items(tmp_path, LAT, LON, ["2018-06-10"], size_px=64, seed=1, grid=(crs, transform))[0]
    south = make_s1_items(tmp_path, LAT, LON, ["2018-06-10"], size_px=64, seed=2, grid=(crs, transform))[0]
    other = make_s1_items(
        tmp_path,
        LAT,
        LON,
        ["2018-06-10"],
        size_px=64,
        seed=3,
        grid=(crs, transform),
        orbit_state="ascending",
        relative_orbit=15,
    )[0]
    south["id"] = south["id"].replace("_0", "_1")
    south["properties"]["datetime"] = "2018-06-10T05:50:25Z"
    # the southern slice ends ~110 m south of the point: it touches the patch, not the point
    from shapely.geometry import box, mapping, shape

    south["geometry"] = mapping(shape(south["geometry"]).intersection(box(-180, -90, 180, LAT - 0.001)))
    south["bbox"] = list(shape(south["geometry"]).bounds)
    other["id"] = other["id"].replace("_0", "_asc")
    other["properties"]["datetime"] = "2018-06-10T23:00:00Z"  # same day, further from 12:00 UTC
    halves = {north["id"]: slice(32, 64), south["id"]: slice(0, 32)}  # rows each slice does NOT cover
    for item in (north, south):
        for pol in ("vv", "vh"):
            href = item["assets"][pol]["href"]
            with rasterio.open(href) as src:
                data, profile = src.read(), src.profile
            data[:, halves[item["id"]], :] = -32768.0
            new = href.replace(".tif", f"_{item['id'][-1]}.tif")
            with rasterio.open(new, "w", **profile) as dst:
                dst.write(data)
            item["assets"][pol]["href"] = new
    files = write_items(tmp_path, [north, south, other])
    request = FetchRequest.make(LAT, LON, 64, 2018, target_date="2018-06-10")  # no pass filter
    with stac_api(files) as url:
        result = PublicSource(aef_url=str(tmp_path / "none.zarr"), stac_url=url, timeout=5).fetch(request, ["s1"])
    assert not result.failures, result.failures
    report = result.reports["vv_db"]
    assert sorted(report.detail["items"]) == sorted([north["id"], south["id"]])
    assert report.detail["s1_mode"] == "single" and report.detail["s1_date"] == "2018-06-10"
    assert "2 slices" in report.product
    vv = result.layers["vv_db"]
    assert np.isfinite(vv[3:]).all()  # both halves filled (rows 0–2 are the fixture's nodata strip)
    with rasterio.open(north["assets"]["vv"]["href"]) as src:
        top = 10 * np.log10(src.read(1)[10, 10])
    assert vv[10, 10] == pytest.approx(
        top + 10 * np.log10(np.cos(np.radians(result.layers["angle_deg"][10, 10]))), abs=1e-3
    )


def test_spatial_transform_orders_and_registration(tmp_path):
    """The published [res, 0, xmin, 0, −res, ymax]; a GDAL-order list; node registration."""
    import zarr

    from _sources_fixtures import build_published_aef_zarr

    path, transform = build_published_aef_zarr(tmp_path / "aef.zarr", 7.98, 47.02, 64, 64, years=(2020,))
    assert AlphaEarthMosaic(str(path)).transform == transform
    group = zarr.open_group(str(path), mode="r+")
    group.attrs["spatial:transform"] = list(transform.to_gdal())
    assert AlphaEarthMosaic(str(path)).transform == transform
    group.attrs["spatial:transform"] = list(transform * Affine.translation(0.5, 0.5))[:6]
    group.attrs["spatial:registration"] = "node"
    assert AlphaEarthMosaic(str(path)).transform.almost_equals(transform)


def test_a_store_that_does_not_say_its_years_is_refused(tmp_path):
    import shutil

    import zarr

    from _sources_fixtures import build_published_aef_zarr

    path, _ = build_published_aef_zarr(tmp_path / "aef.zarr", 7.98, 47.02, 16, 16, years=(2020,))
    shutil.rmtree(path / "time")  # no /time, no years/start_year attribute: no guessing 2017
    assert "time" not in zarr.open_group(str(path), mode="r")
    with pytest.raises(SourceError, match="does not say which years"):
        AlphaEarthMosaic(str(path)).year_index(2020)
