"""Importers on the real samples in ../shared/samples, and the import/scenes CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from conftest import SPAIN_LATLON
from sarviz.cli import main
from sarviz.scene import read_scene
from sarviz.store import SceneStore


def test_all_samples_import(sample_scenes):
    store = SceneStore(sample_scenes)
    ids = sorted(e.scene_id for e in store)
    assert len(ids) == 9
    assert sum(i.startswith("sen1floods11_") for i in ids) == 1
    assert sum(i.startswith("bigearthnet_") for i in ids) == 6
    assert sum(i.startswith("ssl4eo_") for i in ids) == 2
    for e in store:
        assert {"optical", "vv_db", "vh_db"} <= set(e.layers), e.scene_id


def test_sen1floods11_values_match_source(sample_scenes, samples_dir):
    scene = read_scene(sample_scenes / "sen1floods11_Spain_7370579.tif")
    with rasterio.open(samples_dir / "sen1floods11/Spain_7370579_S1Hand.tif") as src:
        vv, vh = src.read([1, 2])
        assert scene.transform == src.transform and scene.crs == src.crs
    np.testing.assert_array_equal(scene.vv_db, vv)
    np.testing.assert_array_equal(scene.vh_db, vh)
    with rasterio.open(samples_dir / "sen1floods11/Spain_7370579_S2Hand.tif") as src:
        b4 = src.read(list(src.descriptions).index("B4") + 1).astype("float32")
    np.testing.assert_allclose(scene.optical[2], b4 / 10000.0, rtol=1e-6)
    assert scene.dates == {"s1": "2019-09-17T00:00:00", "s2": "2019-09-18T00:00:00"}
    assert scene.provenance["orbit_pass"] == "DESCENDING" and scene.provenance["relative_orbit"] == 110
    lat, lon = scene.center_latlon
    assert abs(lat - SPAIN_LATLON[0]) < 1e-3 and abs(lon - SPAIN_LATLON[1]) < 1e-3
    assert scene.angle_deg is None  # the chip has no angle band
    # nor AlphaEarth: the import gives it a proxy embedding, marked as one
    assert scene.embedding is not None and scene.provenance["embedding_source"].startswith("proxy")


def test_bigearthnet_pairs_through_corresponding_s2_patch(sample_scenes, samples_dir):
    name = "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"
    scene = read_scene(sample_scenes / f"bigearthnet_{name}.tif")
    assert scene.provenance["s2_patch"] == "S2A_MSIL2A_20170613T101031_87_48"
    s2 = samples_dir / "bigearthnet/BigEarthNet-S2-Example/S2A_MSIL2A_20170613T101031_87_48"
    with rasterio.open(s2 / "S2A_MSIL2A_20170613T101031_87_48_B08.tif") as src:
        np.testing.assert_allclose(scene.optical[3], src.read(1) / 10000.0, rtol=1e-6)
    assert scene.provenance["labels"][0] == "Non-irrigated arable land"
    assert scene.dates["s1"] == "2017-06-13T16:50:43" and scene.dates["s2"] == "2017-06-13T10:10:31"


def test_ssl4eo_pairs_nearest_s2_date(sample_scenes):
    june = read_scene(
        sample_scenes / "ssl4eo_0000200_S1A_IW_GRDH_1SDV_20200607T010800_20200607T010825_032904_03CFBA_D457.tif"
    )
    sept = read_scene(
        sample_scenes / "ssl4eo_0000200_S1A_IW_GRDH_1SDV_20200903T131212_20200903T131237_034195_03F8F5_AC1C.tif"
    )
    assert june.dates["s2"].startswith("2020-06-04") and sept.dates["s2"].startswith("2020-08-13")
    assert june.provenance["optical_level"].startswith("L2A")  # from the s2a (L2A) folder
    assert june.provenance["orbit_pass"] == "DESCENDING" and sept.provenance["orbit_pass"] == "ASCENDING"
    # S2 (a slightly different grid) was resampled onto the S1 grid
    assert june.optical.shape == (4, 264, 264) and np.isfinite(june.optical[:, 5:-5, 5:-5]).all()


def test_cli_import_and_list(samples_dir, tmp_path, capsys):
    out = tmp_path / "scenes"
    assert main(["import", str(samples_dir / "bigearthnet"), "--out", str(out)]) == 0
    assert "6 scenes written" in capsys.readouterr().out
    assert main(["import", str(samples_dir / "bigearthnet"), "--out", str(out)]) == 0  # again: skips, loses nothing
    assert "6 already present" in capsys.readouterr().out
    assert main(["scenes", str(out), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 6 and all(set(r["layers"]) >= {"optical", "vv_db", "vh_db"} for r in rows)


@pytest.mark.parametrize(
    "args, msg",
    [
        (["import", "/nonexistent/x", "--out", "{tmp}/s"], "does not exist"),
        (["import", "{tmp}", "--out", "{tmp}/s"], "no recognised dataset"),
        (["scenes", "{tmp}/missing"], "does not exist"),
        (["scenes", "{tmp}"], "no scenes"),
    ],
)
def test_cli_errors_are_clear(args, msg, tmp_path, capsys):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err
