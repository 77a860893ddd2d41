"""CPU SAR emulator: radiometric model files, speckle statistics, the Generator, the CLI."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors import safe_open

from sarviz import cli
from sarviz.emulator.radiometric import EmulatorError, RadiometricModel, file_sha256, load_points
from sarviz.emulator.speckle import SpeckleModel, gamma_ks, lag1_corr, measure_enl
from sarviz.emulator.validation import leave_one_region_out
from sarviz.generators.base import GenerationCancelled, GenerationError, GenerationRequest, GenerationResult
from sarviz.registry import REPO_MODELS_DIR, ModelRegistry
from sarviz.scene import EMBEDDING_BANDS, Scene, SceneError, patch_grid

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
POINTS = SHARED / "samples" / "alphaearth_s1_points"


# -- fixtures: small data in the real formats -------------------------------------------------
def _unit_embeddings(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 64))
    return v / np.linalg.norm(v, axis=1, keepdims=True)  # AlphaEarth embeddings are unit vectors


@pytest.fixture(scope="module")
def points_dir(tmp_path_factory) -> Path:
    """Three regions of points in the Earth Engine export format, with a known σ⁰ relation."""
    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("points")
    w_lin = rng.normal(0, 12, (64, 2))
    w_sq = rng.normal(0, 20, (64, 2))
    for r, region in enumerate(("north", "middle", "south")):
        emb = _unit_embeddings(rng, 240)
        db = np.array([-12.0, -19.0]) + emb @ w_lin + (emb**2) @ w_sq - w_sq.sum(0) / 64
        db += rng.normal(0, 0.3, db.shape)
        frame = pd.DataFrame(emb, columns=list(EMBEDDING_BANDS))
        frame["S1_VV"], frame["S1_VH"] = db[:, 0], db[:, 1]
        frame["region"] = region
        frame["dw_label"] = rng.integers(0, 9, len(frame))
        frame.to_csv(folder / f"alphaearth_s1_dw_samples_{region}_2024.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def fitted(points_dir, tmp_path_factory) -> Path:
    table = load_points(points_dir)
    model = RadiometricModel.fit(table.embedding, table.target_db, "poly2", 0.01, training_points=len(table))
    return model.save(tmp_path_factory.mktemp("weights") / "emu.safetensors")


@pytest.fixture(scope="module")
def registry(fitted) -> ModelRegistry:
    folder = fitted.parent
    card = json.loads((REPO_MODELS_DIR / "emulator.json").read_text())
    card.update(id="emulator-test", weights=fitted.name)
    (folder / "emulator-test.json").write_text(json.dumps(card))
    return ModelRegistry([folder])


def _scene(size: int = 48, seed: int = 0, angle: bool = False) -> Scene:
    crs, transform = patch_grid(41.9, -95.4, size_px=size, res_m=10.0)
    rng = np.random.default_rng(seed)
    emb = _unit_embeddings(rng, size * size).T.reshape(64, size, size).astype(np.float32)
    ang = np.tile(np.linspace(30.0, 45.0, size, dtype=np.float32), (size, 1)) if angle else None
    return Scene(
        crs=crs,
        transform=transform,
        width=size,
        height=size,
        embedding=emb,
        angle_deg=ang,
        scene_id="test-patch",
        provenance={"source": "test"},
    )


# -- radiometric model -----------------------------------------------------------------------------
def test_fit_save_load_round_trip(points_dir, fitted):
    table = load_points(points_dir)
    loaded = RadiometricModel.load(fitted)
    refit = RadiometricModel.fit(table.embedding, table.target_db, "poly2", 0.01)
    np.testing.assert_allclose(loaded.predict_db(table.embedding), refit.predict_db(table.embedding), atol=1e-9)
    assert loaded.feature_map == "poly2" and loaded.ridge_lambda == 0.01
    assert loaded.metadata["training_points"] == len(table)
    # a plain safetensors file: tensors + JSON header, readable without sarviz
    with safe_open(str(fitted), framework="numpy") as f:
        assert set(f.keys()) == {"weight", "intercept", "feature_mean"}
        assert json.loads(f.metadata()["sarviz"])["format"].startswith("sarviz-emulator")
    # the fit learns the relation: in-sample error is close to the injected 0.3 dB noise (MAE 0.24)
    err = np.abs(loaded.predict_db(table.embedding) - table.target_db).mean(0)
    assert (err < 0.5).all(), err


def test_image_prediction_matches_point_prediction(fitted):
    model = RadiometricModel.load(fitted)
    scene = _scene(16)
    vv, vh = model.predict_image_db(scene.embedding, 37.5)
    points = scene.embedding.reshape(64, -1).T
    np.testing.assert_allclose(np.stack([vv.ravel(), vh.ravel()], 1), model.predict_db(points), atol=1e-3)


def test_load_refuses_non_model_files(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(EmulatorError, match="not a readable safetensors"):
        RadiometricModel.load(junk)
    with pytest.raises(EmulatorError, match="not found"):
        RadiometricModel.load(tmp_path / "missing.safetensors")


def test_angle_law_brightens_at_steep_incidence(fitted):
    model = RadiometricModel.load(fitted)
    emb = _unit_embeddings(np.random.default_rng(1), 5)
    steep, shallow = model.predict_db(emb, 30.0), model.predict_db(emb, 45.0)
    expected = 20.0 * np.log10(np.cos(np.radians(30.0)) / np.cos(np.radians(45.0)))
    np.testing.assert_allclose(steep - shallow, expected, atol=1e-9)
    with pytest.raises(EmulatorError, match="outside 10–65°"):
        model.predict_db(emb, 85.0)


def test_wrong_embedding_width_is_refused(fitted):
    model = RadiometricModel.load(fitted)
    with pytest.raises(EmulatorError, match="64 values"):
        model.predict_db(np.zeros((3, 63)))
    with pytest.raises(EmulatorError, match="64 bands"):
        model.predict_image_db(np.zeros((32, 4, 4), np.float32), 37.5)


def test_load_points_reports_missing_columns(tmp_path):
    pd.DataFrame({"A00": [0.1], "S1_VV": [-10.0], "S1_VH": [-17.0], "region": ["x"]}).to_csv(tmp_path / "p.csv")
    with pytest.raises(EmulatorError, match="missing 63"):
        load_points(tmp_path)
    with pytest.raises(EmulatorError, match="does not exist"):
        load_points(tmp_path / "nowhere")


# -- speckle -----------------------------------------------------------------------------------
def test_speckle_statistics_match_sentinel1_targets():
    model = SpeckleModel()
    s = model.sample((256, 256), np.random.default_rng(3))
    assert s.shape == (2, 256, 256) and s.dtype == np.float32
    for channel in s:
        assert abs(channel.mean() - 1.0) < 0.03
        assert abs(measure_enl(channel) / model.enl - 1.0) < 0.1
    assert abs(lag1_corr(s[0], axis=1) - model.lag1_corr_x) < 0.04
    assert abs(lag1_corr(s[0], axis=0) - model.lag1_corr_y) < 0.04
    assert abs(np.corrcoef(s[0].ravel(), s[1].ravel())[0, 1] - model.pol_corr) < 0.04
    # gamma marginal: KS distance small on a decimated (nearly independent) subsample
    d, _ = gamma_ks(s[0][::4, ::4], model.enl)
    assert d < 0.03


def test_speckle_settings_are_validated():
    with pytest.raises(EmulatorError, match="ENL"):
        SpeckleModel(enl=0.0)
    with pytest.raises(EmulatorError, match="correlation"):
        SpeckleModel(pol_corr=1.2)
    with pytest.raises(EmulatorError, match="unknown speckle settings"):
        SpeckleModel.from_card({"looks": 4})


# -- the Generator -------------------------------------------------------------------------------
def test_generator_output_grid_and_provenance(registry, fitted, tmp_path):
    gen = registry.generator("emulator-test")
    assert gen.kind == "emulator" and "emulator" in gen.describe()
    scene = _scene()
    steps = []
    result = gen.generate(scene, GenerationRequest(seed=5), progress=lambda i, n, m: steps.append(i))
    assert result.vv_db.shape == result.vh_db.shape == scene.shape
    assert result.crs == scene.crs and result.transform == scene.transform
    assert steps == sorted(steps) and steps[-1] == 3
    prov = result.provenance
    assert prov["generator"] == "emulator" and prov["model_id"] == "emulator-test"
    assert prov["weights_sha256"] == file_sha256(fitted)
    assert prov["seed"] == 5 and prov["enl"] == pytest.approx(4.4)
    assert prov["angle_source"] == "default" and prov["angle_deg"] == 37.5
    # VH below VV on average, values in a Sentinel-1-like dB range
    assert np.isfinite(result.vv_db).all() and result.vh_db.mean() < result.vv_db.mean()
    back = GenerationResult.from_geotiff(result.to_geotiff(tmp_path / "emu.tif"))
    assert back.crs == scene.crs and back.transform == scene.transform
    np.testing.assert_array_equal(back.vv_db, result.vv_db)
    assert back.provenance["weights_sha256"] == prov["weights_sha256"]


def test_generator_is_deterministic_per_seed(registry):
    gen = registry.generator("emulator-test")
    scene = _scene(32)
    a = gen.generate(scene, GenerationRequest(seed=11))
    b = gen.generate(scene, GenerationRequest(seed=11))
    c = gen.generate(scene, GenerationRequest(seed=12))
    np.testing.assert_array_equal(a.vv_db, b.vv_db)
    np.testing.assert_array_equal(a.vh_db, b.vh_db)
    assert not np.array_equal(a.vv_db, c.vv_db)


def test_nan_embedding_pixels_stay_nan(registry):
    gen = registry.generator("emulator-test")
    scene = _scene(32)
    scene.embedding[:, 3:7, 10:20] = np.nan
    scene.embedding[5, 20, 20] = np.nan  # one band missing is a missing pixel too
    result = gen.generate(scene, GenerationRequest(seed=0))
    hole = np.zeros(scene.shape, bool)
    hole[3:7, 10:20] = True
    hole[20, 20] = True
    for band in (result.vv_db, result.vh_db):
        assert np.isnan(band[hole]).all()
        assert np.isfinite(band[~hole]).all()
    assert result.provenance["nan_pixels"] == int(hole.sum())


def test_wrong_band_count_is_refused(registry):
    crs, transform = patch_grid(41.9, -95.4, size_px=8)
    with pytest.raises(SceneError, match="expected \\(64, 8, 8\\)"):
        Scene(crs=crs, transform=transform, width=8, height=8, embedding=np.zeros((32, 8, 8), np.float32))
    scene = _scene(8)
    scene.embedding = scene.embedding[:63]  # a scene changed after construction
    with pytest.raises(GenerationError, match="64 bands"):
        registry.generator("emulator-test").generate(scene, GenerationRequest())


def test_missing_embedding_is_explained(registry):
    crs, transform = patch_grid(41.9, -95.4, size_px=8)
    bare = Scene(crs=crs, transform=transform, width=8, height=8, vv_db=np.full((8, 8), -10, np.float32))
    with pytest.raises(GenerationError, match="no AlphaEarth embedding"):
        registry.generator("emulator-test").generate(bare, GenerationRequest())


def test_angle_source_scene_then_request(registry):
    gen = registry.generator("emulator-test")
    with_angle = _scene(32, angle=True)
    with_angle.angle_deg[0, 0] = np.nan
    res = gen.generate(with_angle, GenerationRequest(seed=1, angle_deg=40.0))
    assert res.provenance["angle_source"] == "scene"
    assert res.provenance["angle_fallback_pixels"] == 1 and res.provenance["angle_fallback_source"] == "request"
    vv_mean, _, _ = gen.mean_sigma0_db(with_angle, GenerationRequest())
    # the near-range (30°) column is brighter than far range (45°) by the cos² law, per pixel
    flat_vv, _, _ = gen.mean_sigma0_db(_scene(32), GenerationRequest(angle_deg=37.5))
    np.testing.assert_allclose(
        (vv_mean - flat_vv)[1:, 0], 20 * np.log10(np.cos(np.radians(30)) / np.cos(np.radians(37.5))), atol=1e-3
    )
    res = gen.generate(_scene(16), GenerationRequest(angle_deg=33.0))
    assert res.provenance["angle_source"] == "request" and res.provenance["angle_deg"] == 33.0
    with pytest.raises(GenerationError, match="outside"):
        gen.generate(_scene(16), GenerationRequest(angle_deg=89.0))


def test_cancel_stops_generation(registry):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(GenerationCancelled):
        registry.generator("emulator-test").generate(_scene(8), GenerationRequest(), cancel=cancel)


def test_shipped_card_loads_through_the_registry():
    gen = ModelRegistry([REPO_MODELS_DIR]).generator("emulator")
    assert gen.kind == "emulator"
    assert gen.model.feature_map in ("linear", "poly2")
    res = gen.generate(_scene(16), GenerationRequest(seed=0))
    # σ⁰ of a land scene: VV roughly −30…+5 dB after speckle
    assert -35 < float(np.nanmedian(res.vv_db)) < 5


# -- CLI ---------------------------------------------------------------------------------------------
def test_cli_fit_and_validate(points_dir, tmp_path, capsys):
    out = tmp_path / "fit.safetensors"
    assert cli.main(["emulator", "fit", "--points", str(points_dir), "--out", str(out), "--no-mlp"]) == 0
    printed = capsys.readouterr().out
    assert "held-out region" in printed and "shipped:" in printed
    model = RadiometricModel.load(out)
    assert set(model.metadata["loro"]) == {"linear", "poly2"}
    assert model.metadata["training_points"] == 720
    assert (
        cli.main(
            [
                "emulator",
                "validate",
                "--points",
                str(points_dir),
                "--methods",
                "linear",
                "--json-out",
                str(tmp_path / "v.json"),
            ]
        )
        == 0
    )
    folds = json.loads((tmp_path / "v.json").read_text())["linear"]
    assert {f["region"] for f in folds} == {"north", "middle", "south"}
    capsys.readouterr()
    assert cli.main(["emulator", "validate", "--points", str(points_dir), "--methods", "linear", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((tmp_path / "v.json").read_text())  # --json: stdout
    assert cli.main(["emulator", "validate", "--points", str(points_dir), "--methods", "forest"]) == 2
    assert "choose from" in capsys.readouterr().err


def test_cli_emulate_points(tmp_path, capsys):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(_unit_embeddings(rng, 4), columns=list(EMBEDDING_BANDS))
    frame.insert(0, "name", ["a", "b", "c", "d"])
    frame["angle"] = [30.0, 45.0, None, 37.5]
    frame.loc[1, "A10"] = None
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    frame.to_csv(src, index=False)
    assert cli.main(["emulate-points", "--points", str(src), "--out", str(dst)]) == 0
    out = pd.read_csv(dst)
    assert list(out.columns) == list(frame.columns) + ["pred_VV_db", "pred_VH_db", "angle_source"]
    assert out["name"].tolist() == ["a", "b", "c", "d"]
    # the blank angle of row 3 is not passed off as a measured one
    assert out["angle_source"].tolist() == ["input", "input", "default_37.5deg", "input"]
    assert "row 3" in capsys.readouterr().err
    assert np.isnan(out.loc[1, "pred_VV_db"]) and out.drop(index=1)["pred_VV_db"].notna().all()
    model = ModelRegistry([REPO_MODELS_DIR]).generator("emulator").model
    emb = frame[list(EMBEDDING_BANDS)].to_numpy()
    np.testing.assert_allclose(out.loc[0, "pred_VV_db"], model.predict_db(emb[:1], 30.0)[0, 0], atol=1e-6)
    np.testing.assert_allclose(out.loc[2, "pred_VH_db"], model.predict_db(emb[2:3])[0, 1], atol=1e-6)
    frame.drop(columns=["A05"]).to_csv(src, index=False)
    assert cli.main(["emulate-points", "--points", str(src), "--out", str(dst)]) == 2
    assert "A05" in capsys.readouterr().err


def _points_csv(path: Path, n: int = 20, seed: int = 4, scale: float = 1.0, angles=None) -> Path:
    frame = pd.DataFrame(_unit_embeddings(np.random.default_rng(seed), n) * scale, columns=list(EMBEDDING_BANDS))
    if angles is not None:
        frame["angle"] = angles
    frame.to_csv(path, index=False)
    return path


def test_cli_emulate_points_refuses_bad_angles_naming_the_row(tmp_path, capsys):
    dst = tmp_path / "out.csv"
    angles = [35.0] * 20
    angles[6] = 80.0  # data row 7, line 8 of the file
    src = _points_csv(tmp_path / "in.csv", angles=angles)
    assert cli.main(["emulate-points", "--points", str(src), "--out", str(dst)]) == 2
    err = capsys.readouterr().err
    assert "row 7 (line 8)" in err and "80" in err and "10–65°" in err
    assert not dst.exists()
    angles[6], angles[11] = 35.0, "steep"
    _points_csv(src, angles=angles)
    assert cli.main(["emulate-points", "--points", str(src), "--out", str(dst)]) == 2
    assert "row 12 (line 13)" in capsys.readouterr().err
    # a NaN cell written as text "NaN" takes the reference angle, and says so
    angles[11] = "NaN"
    _points_csv(src, angles=angles)
    assert cli.main(["emulate-points", "--points", str(src), "--out", str(dst)]) == 0
    out = pd.read_csv(dst)
    assert out.loc[11, "angle_source"] == "default_37.5deg" and (out.drop(index=11)["angle_source"] == "input").all()
    model = ModelRegistry([REPO_MODELS_DIR]).generator("emulator").model
    emb = out[list(EMBEDDING_BANDS)].to_numpy()
    np.testing.assert_allclose(out.loc[11, "pred_VV_db"], model.predict_db(emb[11:12], 37.5)[0, 0], atol=1e-6)


def test_cli_emulate_points_writes_atomically(tmp_path, monkeypatch, capsys):
    src = _points_csv(tmp_path / "in.csv")
    dst = tmp_path / "out.csv"
    dst.write_text("previous results\n")

    def failing_to_csv(self, *args, **kwargs):  # the disk fills up half-way through writing
        handle = args[0] if args else kwargs.get("path_or_buf")
        handle.write("A00,A01\n0.1,")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", failing_to_csv)
    assert cli.main(["emulate-points", "--points", str(src), "--out", str(dst)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert dst.read_text() == "previous results\n"  # the old output is untouched, not half-overwritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]  # no temp file left behind
    monkeypatch.undo()
    assert cli.main(["emulate-points", "--points", str(src), "--out", str(dst)]) == 0
    assert len(pd.read_csv(dst)) == 20


def test_cli_emulate_points_warns_about_non_unit_embeddings(tmp_path, capsys):
    dst = tmp_path / "out.csv"
    src = _points_csv(tmp_path / "unit.csv")
    assert cli.main(["emulate-points", "--points", str(src), "--out", str(dst)]) == 0
    assert "unit" not in capsys.readouterr().err
    src = _points_csv(tmp_path / "scaled.csv", scale=127.0)  # e.g. int8-quantised values
    assert cli.main(["emulate-points", "--points", str(src), "--out", str(dst)]) == 0
    err = capsys.readouterr().err
    assert "20 of 20 embeddings" in err and "not unit-length" in err and "median norm 127" in err


# -- real points (../shared) -----------------------------------------------------------------------
def test_loro_on_real_points_runs_per_region():
    if not POINTS.is_dir():
        pytest.skip(f"real AlphaEarth/Sentinel-1 points not found at {POINTS} (../shared is absent)")
    table = load_points(POINTS)
    folds = leave_one_region_out(table, "poly2")
    assert [f.region for f in folds] == sorted(set(table.region.tolist()))
    for fold in folds:
        assert fold.n == 720 and np.isfinite(fold.r2).all()
        assert (fold.mae < 4.0).all()  # dB; the weakest region (amazon VH) is ~3.5 dB
    by_region = {f.region: f for f in folds}
    assert by_region["iowa_ag"].r2[0] > 0.6 and by_region["california_coast"].r2[1] > 0.75


def test_vh_has_its_own_angle_law_from_the_card(fitted, tmp_path):
    """VV follows cos² (Lambert), VH cos¹ (volume scattering) — the shipped card's laws."""
    import json as _json

    from sarviz.generators.emulator import EmulatorGenerator
    from sarviz.registry import REPO_MODELS_DIR, ModelCard

    card_data = _json.loads((REPO_MODELS_DIR / "emulator.json").read_text())
    assert card_data["angle"]["cos_power"] == 2.0 and card_data["angle"]["cos_power_vh"] == 1.0
    card_data["weights"] = str(fitted)
    card = ModelCard(id="emulator-test", name="t", kind="emulator", path=tmp_path / "card.json", data=card_data)
    gen = EmulatorGenerator(card)
    assert gen.model.cos_powers == {"VV": 2.0, "VH": 1.0}
    steep = gen.mean_sigma0_db(_scene(16), GenerationRequest(angle_deg=30.0))
    shallow = gen.mean_sigma0_db(_scene(16), GenerationRequest(angle_deg=46.0))
    ratio = np.log10(np.cos(np.radians(30.0)) / np.cos(np.radians(46.0)))
    np.testing.assert_allclose(steep[0] - shallow[0], 20.0 * ratio, atol=1e-4)  # VV: −1.9 dB across the swath
    np.testing.assert_allclose(steep[1] - shallow[1], 10.0 * ratio, atol=1e-4)  # VH: half of it
    result = gen.generate(_scene(16), GenerationRequest(seed=0, angle_deg=40.0))
    assert result.provenance["cos_power"] == 2.0 and result.provenance["cos_power_vh"] == 1.0
    assert result.provenance["calibration"]["db_range"]["VV"] == [-25.0, 0.0]
    # a stored model without a VH law keeps one law for both (the old behaviour)
    model = RadiometricModel.load(fitted)
    assert model.cos_powers == {"VV": 2.0, "VH": 2.0}
    model.cos_power_vh = 1.0
    model.save(tmp_path / "vh.safetensors")
    assert RadiometricModel.load(tmp_path / "vh.safetensors").cos_powers == {"VV": 2.0, "VH": 1.0}
