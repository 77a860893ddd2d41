"""The proxy embedding: real AlphaEarth vectors chosen by optical land cover, marked as a proxy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from conftest import make_scene
from sarviz.cli import main
from sarviz.embedding_proxy import (
    DW_CLASSES,
    ProxyUnavailable,
    _load_points,
    add_proxy_embedding,
    is_proxy,
    land_cover_probabilities,
)
from sarviz.importers import import_scenes
from sarviz.scene import read_scene, write_scene
from sarviz.store import SceneStore


@pytest.fixture(scope="module")
def points_dir(samples_dir):
    return samples_dir / "alphaearth_s1_points"


def test_sample_import_gives_marked_proxy_made_of_real_vectors(sample_scenes, points_dir):
    emb_table = _load_points(str(points_dir.resolve()))[0]
    scene = read_scene(sample_scenes / "sen1floods11_Spain_7370579.tif")
    assert scene.embedding is not None and is_proxy(scene)
    assert scene.provenance["embedding_source"].startswith("proxy")
    assert "not AlphaEarth for this place" in scene.provenance["embedding_source"]
    with rasterio.open(sample_scenes / "sen1floods11_Spain_7370579.tif") as src:
        assert src.tags()["EMBEDDING_SOURCE"].startswith("proxy")
    # every pixel is a unit-length AlphaEarth-like vector, at or near one of the real vectors of the table
    pixels = scene.embedding.reshape(64, -1).T[::997]
    np.testing.assert_allclose(np.linalg.norm(pixels, axis=1), 1.0, atol=5e-3)  # real vectors are 8-bit quantised
    cos = (pixels @ (emb_table / np.linalg.norm(emb_table, axis=1, keepdims=True)).T).max(axis=1)
    assert np.median(cos) > 0.95
    # object cores keep their real vector exactly (blending happens only near boundaries)
    flat = scene.embedding.reshape(64, -1).T[::37]
    exact = np.abs(flat[:, None, :] - emb_table[None, :, :]).max(axis=-1).min(axis=1) < 1e-6
    assert exact.mean() > 0.02  # objects are ~12 px wide, so cores (≥ 6 px from an edge) are few
    # and the field is not one vector: it follows the optical land cover
    assert scene.provenance["embedding_proxy"]["distinct_vectors"] >= 10
    assert len({tuple(p) for p in pixels}) >= 5
    # one region's vectors: the one nearest in latitude (Murcia, 38° N → coastal California)
    assert scene.provenance["embedding_proxy"]["region"] == "california_coast"


def test_proxy_never_reads_sentinel1(points_dir):
    """The proxy depends on the optical layer only: changing S1 changes nothing."""
    a = make_scene(size=(48, 48), seed=3, layers=("optical", "vv_db", "vh_db"), scene_id="same")
    b = make_scene(size=(48, 48), seed=4, layers=("optical", "vv_db", "vh_db"), scene_id="same")
    b.optical = a.optical.copy()
    assert not np.allclose(a.vv_db, b.vv_db)
    pa, pb = add_proxy_embedding(a, points_dir), add_proxy_embedding(b, points_dir)
    np.testing.assert_array_equal(pa.embedding, pb.embedding)
    # no optical: no proxy (it is never made from SAR)
    with pytest.raises(ProxyUnavailable, match="optical"):
        add_proxy_embedding(make_scene(size=(16, 16), layers=("vv_db", "vh_db")), points_dir)


def test_real_embedding_is_never_replaced(points_dir):
    scene = make_scene(size=(32, 32), scene_id="real")
    assert add_proxy_embedding(scene, points_dir) is scene
    assert add_proxy_embedding(scene, points_dir, force=True) is scene  # force only remakes proxies


def test_land_cover_from_spectra_folds_into_dynamic_world():
    # water (dark, green > NIR), dense forest (NIR ≫ red), bright bare soil
    optical = np.array(
        [[[0.04, 0.03, 0.12]], [[0.05, 0.05, 0.16]], [[0.03, 0.02, 0.24]], [[0.01, 0.40, 0.30]]], np.float32
    )
    probs = land_cover_probabilities(optical)
    assert [DW_CLASSES[i] for i in probs[:, 0].argmax(axis=0)] == ["water", "trees", "bare"]
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, rtol=1e-5)


def test_generated_result_carries_the_proxy_label(sample_scenes, tmp_path):
    from sarviz.generators.base import GenerationRequest
    from sarviz.registry import ModelRegistry

    scene = read_scene(sample_scenes / "bigearthnet_S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48.tif")
    result = ModelRegistry().generator("emulator").generate(scene, GenerationRequest(seed=1))
    assert result.provenance["embedding_source"].startswith("proxy")
    path = result.to_geotiff(tmp_path / "out.tif")
    with rasterio.open(path) as src:
        assert src.tags()["EMBEDDING_SOURCE"].startswith("proxy")
        assert json.loads(src.tags()["PROVENANCE"])["embedding_source"].startswith("proxy")


def test_import_flag_and_upgrade_in_place(samples_dir, points_dir, tmp_path, capsys):
    out = tmp_path / "scenes"
    src = samples_dir / "bigearthnet"
    assert main(["import", str(src), "--out", str(out), "--no-proxy-embedding"]) == 0
    assert all("embedding" not in e.layers for e in SceneStore(out))
    # `sarviz scenes add-proxy-embedding DIR` upgrades the folder in place
    assert main(["scenes", "add-proxy-embedding", str(out), "--points", str(points_dir)]) == 0
    text = capsys.readouterr().out
    assert "6 with a PROXY embedding" in text
    assert all("embedding" in e.layers for e in SceneStore(out))
    assert main(["scenes", str(out)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert all("proxy" in line for line in listing[1:-1])
    # columns stay aligned with long ids: the embedding column starts at one offset in every row
    starts = {line.index(" proxy") for line in listing[1:-1]}
    assert len(starts) == 1 and listing[0].index(" embedding") in starts
    # a re-run of the import (without the flag) upgrades older imports the same way
    out2 = tmp_path / "scenes2"
    report = import_scenes(src, out2, proxy_embedding=False)
    assert not report.proxied
    report = import_scenes(src, out2, points_dir=points_dir)
    assert len(report.proxied) == 6 and not report.skipped


def test_scene_file_with_proxy_roundtrips(tmp_path, points_dir):
    scene = add_proxy_embedding(make_scene(size=(40, 40), layers=("optical", "vv_db", "vh_db")), points_dir)
    back = read_scene(write_scene(scene, tmp_path / "s.tif"))
    np.testing.assert_array_equal(back.embedding, scene.embedding)
    assert is_proxy(back) and back.provenance["embedding_proxy"]["points_count"] == 2160


def test_readme_generate_example_runs_on_the_imported_samples(
    sample_scenes, samples_dir, tmp_path, monkeypatch, capsys
):
    """README: `sarviz generate --lat 38.1 --lon -0.76 --model emulator --seed 1 --out out.tif`, then metrics."""
    monkeypatch.setenv("SARVIZ_SCENES", str(sample_scenes))
    monkeypatch.chdir(tmp_path)
    assert (
        main(["generate", "--lat", "38.1", "--lon", "-0.76", "--model", "emulator", "--seed", "1", "--out", "out.tif"])
        == 0
    )
    prov = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert prov["scene_id"] == "sen1floods11_Spain_7370579" and prov["embedding_source"].startswith("proxy")
    real = samples_dir / "sen1floods11" / "Spain_7370579_S1Hand.tif"
    assert main(["metrics", str(real), "out.tif", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kl"]["VV"] > 0 and 0 < report["ssim"]["VV"] < 1


def _step_sizes(field: np.ndarray) -> np.ndarray:
    """Euclidean change of the vector between horizontally neighbouring pixels."""
    return np.sqrt(((field[:, :, 1:] - field[:, :, :-1]) ** 2).sum(axis=0))


def test_proxy_field_has_no_superpixel_steps(points_dir):
    """Blending: across an object boundary the vector turns over several pixels; no step remains."""
    from sarviz.embedding_proxy import BLEND_SIGMA_PX, blend_field

    # two real, very different vectors meet at a straight boundary: the raw field steps there
    table = _load_points(str(points_dir.resolve()))[0]
    a, b = table[0], table[np.argmin(table @ table[0])]
    raw = np.empty((64, 24, 40), np.float32)
    raw[:, :, :20], raw[:, :, 20:] = a[:, None, None], b[:, None, None]
    valid = np.ones((24, 40), bool)
    smooth = blend_field(raw, valid)
    jump = np.linalg.norm(a - b)
    assert _step_sizes(raw).max() == pytest.approx(jump, rel=1e-5)
    assert _step_sizes(smooth).max() < 0.35 * jump  # the turn is spread over ≥ 3 px
    np.testing.assert_allclose(np.linalg.norm(smooth, axis=0), 1.0, atol=5e-3)  # unit length (8-bit real vectors)
    core = int(2 * BLEND_SIGMA_PX) + 1
    np.testing.assert_array_equal(smooth[:, :, : 20 - core], raw[:, :, : 20 - core])  # cores keep the real vector
    # a proxy of a real scene: no neighbour step is as large as the steps of the unblended field
    scene = make_scene(size=(64, 64), seed=5, layers=("optical",), scene_id="steps")
    scene.optical[:, :, 32:] = np.array([0.03, 0.05, 0.02, 0.40], np.float32)[:, None, None]  # forest | rest
    proxy = add_proxy_embedding(scene, points_dir).embedding
    assert _step_sizes(proxy).max() < 0.5 * jump


def test_proxy_is_the_same_without_sentinel1_and_labelled(points_dir):
    from dataclasses import replace as dc_replace

    from sarviz.embedding_proxy import embedding_label, result_note

    scene = make_scene(size=(48, 48), seed=7, layers=("optical", "vv_db", "vh_db"), scene_id="blind")
    blind = dc_replace(scene, vv_db=None, vh_db=None)
    a, b = add_proxy_embedding(scene, points_dir), add_proxy_embedding(blind, points_dir)
    np.testing.assert_array_equal(a.embedding, b.embedding)
    assert a.provenance["embedding_proxy"] == b.provenance["embedding_proxy"]
    assert embedding_label(a).startswith("PROXY embedding") and "PROXY" in result_note(a.provenance)
    record = a.provenance["embedding_proxy"]
    assert record["version"] == "3" and "incidence_angle" in record and "land_cover_confidence" in record
    assert record["incidence_angle"].startswith("unknown")  # make_scene without an angle layer


def test_proxy_picks_brighter_vv_points_for_textured_built_up(points_dir):
    """Within the built class, a more textured object gets a point with a higher own VV."""
    from sarviz.embedding_proxy import _quantiles

    tex = np.array([0.1, 0.5, 0.3, 0.9])
    cls = np.array([6, 6, 6, 6])
    np.testing.assert_allclose(_quantiles(tex, cls), [0.0, 2 / 3, 1 / 3, 1.0])
    # one object alone in its class sits at the median rank
    assert _quantiles(np.array([0.4, 0.2]), np.array([1, 6]))[0] == 0.5


def test_level_offsets_are_leave_one_dataset_out(tmp_path):
    """A bundled sample's proxy never uses offsets fitted on its own dataset's Sentinel-1."""
    from sarviz.embedding_proxy import level_offsets

    for dataset in ("sen1floods11", "bigearthnet", "ssl4eo"):
        (vv, vh), source = level_offsets(dataset)
        assert source.startswith(f"without:{dataset}") and dataset not in source.split("(", 1)[1]
        assert -6.0 < vv < 6.0 and -6.0 < vh < 6.0
    assert level_offsets("elsewhere")[1].startswith("all")
    assert level_offsets(None, path=tmp_path / "missing.json") == ((0.0, 0.0), "none (no level file)")
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({"proxy_version": "2", "offsets": {"all": {"VV": 3.0, "VH": 3.0}}}))
    assert level_offsets(None, path=stale)[0] == (0.0, 0.0)  # fitted for another recipe: not used
    # the offsets move the choice: a positive VV offset picks points with a higher own VV
    from sarviz.embedding_proxy import _shift_ranks

    values = np.array([-14.0, -12.0, -10.0, -8.0])
    q = np.array([0.0, 0.5])
    shifted = _shift_ranks(q, np.array([4, 4]), values, np.array([4, 4, 4, 4]), 2.0)
    assert (shifted > q).all() and shifted.max() <= 1.0
    np.testing.assert_array_equal(_shift_ranks(q, np.array([4, 4]), values, np.array([4, 4, 4, 4]), 0.0), q)


def test_imported_sample_proxy_records_its_offsets(sample_scenes):
    scene = read_scene(sample_scenes / "bigearthnet_S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48.tif")
    record = scene.provenance["embedding_proxy"]
    assert record["level_offsets_from"].startswith("without:bigearthnet")
    assert record["incidence_angle"].startswith("unknown")
