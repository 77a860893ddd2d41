"""Scene file format: round trip, band contract, training patches, bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine

from conftest import make_scene
from sarviz.scene import (
    SCENE_BANDS,
    TRAINING_PATCH_BANDS,
    Scene,
    SceneError,
    patch_grid,
    read_scene,
    utm_crs_for,
    validate_latlon,
    write_scene,
)


def test_band_contract():
    assert len(SCENE_BANDS) == 71 and SCENE_BANDS[:7] == ("B2", "B3", "B4", "B8", "VV", "VH", "angle")
    assert SCENE_BANDS[7] == "A00" and SCENE_BANDS[-1] == "A63"
    assert TRAINING_PATCH_BANDS == SCENE_BANDS[4:]


def test_round_trip_exact(tmp_path):
    scene = make_scene(size=(300, 280))
    path = write_scene(scene, tmp_path / "s.tif")
    back = read_scene(path)
    for layer in ("optical", "vv_db", "vh_db", "angle_deg", "embedding"):
        np.testing.assert_array_equal(getattr(back, layer), getattr(scene, layer))
    assert back.crs == scene.crs and back.transform == scene.transform
    assert back.dates == scene.dates and back.provenance == scene.provenance and back.scene_id == "tiny"
    with rasterio.open(path) as src:
        assert src.descriptions == SCENE_BANDS
        assert src.count == 71 and src.dtypes[0] == "float32"
        assert src.profile["tiled"] and src.profile["compress"] == "zstd"
        assert json.loads(src.tags()["LAYERS"]) == scene.layers_present()


def test_missing_layers_are_nan_in_file_and_none_in_memory(tmp_path):
    scene = make_scene(layers=("vv_db", "vh_db"))
    assert scene.optical is None and scene.embedding is None
    path = write_scene(scene, tmp_path / "s.tif")
    with rasterio.open(path) as src:
        assert np.isnan(src.read(1)).all() and np.isnan(src.read(71)).all()
        assert np.isfinite(src.read(5)).all()
    back = read_scene(path)
    assert back.layers_present() == ["vv_db", "vh_db"]
    assert back.optical is None and back.angle_deg is None and back.embedding is None


def test_reads_huiyanearth_training_patch(tmp_path):
    """67 bands VV, VH, angle, A00..A63 without sarviz tags or descriptions."""
    rng = np.random.default_rng(1)
    data = rng.normal(size=(67, 32, 32)).astype("float32")
    path = tmp_path / "patch.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=32,
        height=32,
        count=67,
        dtype="float32",
        crs="EPSG:32650",
        transform=Affine(10, 0, 5e5, 0, -10, 3e6),
    ) as dst:
        dst.write(data)
    scene = read_scene(path)
    np.testing.assert_array_equal(scene.vv_db, data[0])
    np.testing.assert_array_equal(scene.angle_deg, data[2])
    np.testing.assert_array_equal(scene.embedding, data[3:])
    assert scene.optical is None


def test_bad_files(tmp_path):
    (tmp_path / "junk.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(SceneError, match="not a readable GeoTIFF"):
        read_scene(tmp_path / "junk.tif")
    good = write_scene(make_scene(), tmp_path / "good.tif")
    truncated = tmp_path / "trunc.tif"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(SceneError):
        read_scene(truncated)
    path = tmp_path / "three.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=8,
        height=8,
        count=3,
        dtype="float32",
        crs="EPSG:4326",
        transform=Affine(1e-4, 0, 0, 0, -1e-4, 0),
    ) as dst:
        dst.write(np.zeros((3, 8, 8), "float32"))
    with pytest.raises(SceneError, match="3 bands"):
        read_scene(path)


def test_layer_shape_is_checked():
    with pytest.raises(SceneError, match="embedding"):
        Scene(crs="EPSG:4326", transform=Affine(1, 0, 0, 0, -1, 0), width=8, height=8, embedding=np.zeros((63, 8, 8)))


def test_atomic_write_leaves_no_partial_file(tmp_path):
    scene = make_scene()
    scene.vv_db = np.zeros((3, 3), "float32")  # wrong shape: to_bands fails mid-way
    with pytest.raises(ValueError):
        write_scene(scene, tmp_path / "s.tif")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "lat, lon, msg",
    [
        (95, 0, "latitude"),
        ("abc", 0, "numbers"),
        (0, float("nan"), "finite"),
        (None, 1, "numbers"),
        (0, 999, "longitude"),
    ],
)
def test_validate_latlon_errors(lat, lon, msg):
    with pytest.raises(SceneError, match=msg):
        validate_latlon(lat, lon)


def test_validate_latlon_refuses_longitudes_outside_the_range():
    # 373.8 was silently wrapped to 13.8; now refused, naming the wrapped value
    with pytest.raises(SceneError, match=r"longitude 373.8 is outside \[-180, 180\].*13.8"):
        validate_latlon("10", "373.8")
    with pytest.raises(SceneError, match="-170"):
        validate_latlon("10", "190")
    assert validate_latlon(-90, 180) == (-90.0, 180.0)
    from sarviz.scene import wrap_longitude

    assert wrap_longitude(190) == -170.0 and wrap_longitude(373.8) == pytest.approx(13.8)


def test_patch_grid_utm_and_poles():
    crs, transform = patch_grid(38.1058, -0.7589, 512)
    assert crs.to_epsg() == 32630 and transform.a == 10 and transform.e == -10
    assert utm_crs_for(85, 10).to_epsg() == 32661 and utm_crs_for(-85, 10).to_epsg() == 32761
    assert utm_crs_for(-33.9, 18.4).to_epsg() == 32734


def test_reproject_keeps_sar_in_linear_power():
    scene = make_scene(size=(40, 40))
    scene.vv_db[:] = -10.0
    scene.vv_db[:, ::2] = -20.0  # alternate columns at 0.1 and 0.01 linear
    crs, transform = scene.crs, scene.transform @ Affine.scale(2)
    out = scene.reproject(crs, transform, 20, 20)
    inner = out.vv_db[2:-2, 2:-2]
    # bilinear at half resolution samples between a -10 dB and a -20 dB column: the mean of
    # 0.1 and 0.01 linear is -12.6 dB; averaging dB would give -15 dB
    np.testing.assert_allclose(inner, 10 * np.log10(0.055), atol=0.05)


def test_file_is_cloud_optimised_and_band_interleaved(tmp_path):
    """Tiled, IFD before the pixel data (the COG layout), one band a plane."""
    path = write_scene(make_scene(size=(300, 300)), tmp_path / "s.tif")
    with rasterio.open(path) as src:
        assert src.profile["tiled"] and src.profile["interleave"] == "band"
        ifd = int(src.get_tag_item("IFD_OFFSET", "TIFF", bidx=1))
        first_block = min(int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=b)) for b in range(1, 72))
        assert ifd < first_block


def test_read_only_some_layers(tmp_path):
    scene = make_scene()
    path = write_scene(scene, tmp_path / "s.tif")
    part = read_scene(path, layers=("vv_db", "vh_db"))
    assert part.layers_present() == ["vv_db", "vh_db"]
    np.testing.assert_array_equal(part.vh_db, scene.vh_db)
