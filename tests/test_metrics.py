"""Known-answer tests of the SAR fidelity metrics, the report contract and ``sarviz metrics``."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from affine import Affine

from sarviz.cli import main
from sarviz.metrics import sar
from sarviz.metrics.report import MetricError, compare, compare_files, compare_results, read_sar_file
from sarviz.scene import Scene

from _metrics_fixtures import GRID, SEN1FLOODS11_S1, bigearthnet_pair_tif, need, result_from, speckled_scene_db


def _db_for_level(level: int, pol: str = "VV", levels: int = sar.GLCM_LEVELS) -> float:
    """The dB value in the middle of GLCM grey level ``level`` (1-based) of the fixed mapping."""
    lo, hi = sar.UNIT_DB_RANGES[pol]
    return lo + (level - 0.5) / levels * (hi - lo)


# -- identical images --------------------------------------------------------------------------
def test_identical_images_give_perfect_scores():
    vv, vh = speckled_scene_db()
    report = compare(vv, vh, vv.copy(), vh.copy())
    d = report.to_dict()
    for pol in ("VV", "VH"):
        assert d["kl"][pol] == pytest.approx(0.0, abs=1e-12)
        assert d["ssim"][pol] == pytest.approx(1.0, abs=1e-6)
        assert d["fsim"][pol] == pytest.approx(1.0, abs=1e-5)
        assert d["mean_std_similarity"][pol] == {"mean": 0.0, "std": 0.0}
        assert d["enl"][pol]["real"] == d["enl"][pol]["generated"]
    glcm_rows = report.table(per_angle=True).query("metric.str.startswith('GLCM')")
    assert len(glcm_rows) == 2 * 4 * 3 * 4
    assert (glcm_rows["generated − real"] == 0).all()


def test_identical_images_with_missing_pixels():
    vv, vh = speckled_scene_db()
    vv[10:20, 30:50] = np.nan
    vh[10:20, 30:50] = np.nan
    assert sar.ssim(vv, vv.copy(), "VV") == pytest.approx(1.0, abs=1e-6)
    assert sar.kl_divergence(vh, vh.copy()).kl == pytest.approx(0.0, abs=1e-12)


def test_different_images_score_worse_than_identical():
    vv, vh = speckled_scene_db(seed=0)
    vv2, vh2 = speckled_scene_db(seed=1, looks=1.0, offset_db=2.0)
    d = compare(vv, vh, vv2, vh2).to_dict()
    for pol in ("VV", "VH"):
        assert d["kl"][pol] > 0.01
        assert d["ssim"][pol] < 0.9
        assert d["fsim"][pol] < 0.99
    # same speckle statistics, +2 dB: on the calibration ranges (VV 25 dB, VH 27 dB wide) the mean moves by 2/span
    vv3, vh3 = speckled_scene_db(seed=1, offset_db=2.0)
    d = compare(vv, vh, vv3, vh3).to_dict()
    for pol in ("VV", "VH"):
        span = np.diff(sar.UNIT_DB_RANGES[pol])[0]
        assert d["mean_std_similarity"][pol]["mean"] == pytest.approx(2.0 / span, rel=0.1)
        assert d["mean_std_similarity"][pol]["std"] < 0.2 / span


# -- KL after seed 001 ------------------------------------------------------------------------
def test_kl_ignores_a_global_gain_but_not_a_shape_change():
    """The μ+3σ normalisation is per image: a calibration offset cancels (Mean/Std catches it)."""
    vv, _ = speckled_scene_db(looks=4.0)
    assert sar.kl_divergence(vv, vv + 3.0).kl == pytest.approx(0.0, abs=1e-3)
    noisier, _ = speckled_scene_db(looks=1.0, seed=5)
    assert sar.kl_divergence(vv, noisier).kl > 0.05


def test_kl_saturated_fraction_worked_by_hand():
    # amplitude 1 on 99 % of the pixels, 100 on 1 %: μ = 1.99, σ = √(0.99 + 100 − 1.99²) = 9.850,
    # μ + 3σ = 31.54 → exactly the bright 1 % is saturated (clipped to 1 and excluded).
    amp = np.ones((100, 100))
    amp.flat[::100] = 100.0
    db = 20 * np.log10(amp)
    values, threshold = sar.normalised_amplitude(db)
    assert threshold == pytest.approx(1.99 + 3 * math.sqrt(0.99 + 100 - 1.99**2), rel=1e-9)
    p, saturated, edges = sar.amplitude_histogram(db)
    assert saturated == pytest.approx(0.01)
    assert p.sum() == pytest.approx(1.0)
    assert p[np.searchsorted(edges, 1 / threshold) - 1] == pytest.approx(1.0)  # all the rest in one bin


# -- ENL -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("looks", [1.0, 4.0, 10.0])
def test_enl_recovers_known_looks_on_fields_with_edges(looks):
    rng = np.random.default_rng(int(looks * 10))
    rows, cols = np.mgrid[:256, :256]
    mean_intensity = 0.02 + 0.2 * ((cols // 48 + rows // 80) % 3) / 2 + 0.3 * (np.hypot(cols - 160, rows - 90) < 40)
    intensity = mean_intensity * rng.gamma(looks, 1 / looks, size=mean_intensity.shape)
    result = sar.enl(10 * np.log10(intensity))
    assert result.enl == pytest.approx(looks, rel=0.05)
    assert result.n_windows >= sar.ENL_MIN_WINDOWS


def test_homogeneous_windows_avoid_edges():
    rows, cols = np.mgrid[:128, :128]
    db = np.where(cols < 64, -20.0, 0.0) + 10 * np.log10(np.random.default_rng(1).gamma(4, 0.25, (128, 128)))
    corners = sar.homogeneous_windows(db, window=16)
    # the window columns 48–63 and 64–79 straddle the field edge at column 64
    assert not np.isin(corners[:, 1], [48, 64]).any()


def _emulator_speckle_db(looks: float, seed: int, shape=(512, 512)) -> np.ndarray:
    """Sentinel-1-like speckle (gamma marginal, lag-1 correlation 0.64 / 0.62) in dB, mean 0 dB."""
    from sarviz.emulator.speckle import SpeckleModel

    return 10 * np.log10(SpeckleModel(enl=looks).sample(shape, np.random.default_rng(seed))[0])


@pytest.mark.parametrize("looks", [1.0, 4.4, 10.0])
def test_enl_recovers_known_looks_of_spatially_correlated_speckle(looks):
    """Correlated speckle: the flattest windows are also the low-variance ones; selection must not favour them."""
    result = sar.enl(_emulator_speckle_db(looks, seed=int(looks * 10)))
    assert result.enl == pytest.approx(looks, rel=0.05)
    # pure speckle is homogeneous everywhere: nearly every window is used
    assert result.n_windows >= 0.9 * (512 // sar.ENL_WINDOW) ** 2


def test_enl_of_a_scene_with_edges_and_stripes_is_that_of_its_homogeneous_speckle():
    """Two halves 12 dB apart plus a band of 3 dB stripes (8 px wide) over correlated 4.4-look speckle."""
    rows, cols = np.mgrid[:512, :512]
    stripes = (rows >= 320) & ((cols // 8) % 2 == 1)
    mean_db = np.where(cols < 256, -18.0, -6.0) + np.where(stripes, 3.0, 0.0)
    db = mean_db + _emulator_speckle_db(4.4, seed=100)
    result = sar.enl(db)
    assert result.enl == pytest.approx(4.4, rel=0.05)
    # no window straddles the 12 dB edge (columns 240–255 | 256–271); a 3 dB step is weaker
    # against 4.4-look speckle, so a few stripe windows pass, but few enough not to matter
    assert not np.isin(result.windows[:, 1], [240, 256]).any()
    in_stripes = result.windows[:, 0] >= 320
    assert in_stripes.sum() < 0.25 * 12 * 32  # of the 12 × 32 windows in the striped band
    assert (~in_stripes).sum() > 0.85 * 20 * 30  # of the 20 × 30 plain windows off the edge
    # for contrast: the same speckle without selection is depressed by the edge and the stripes
    intensity = 10 ** (db / 10)
    blocks = intensity.reshape(32, 16, 32, 16).swapaxes(1, 2).reshape(1024, -1)
    assert 1 / np.mean(blocks.var(axis=1, ddof=1) / blocks.mean(axis=1) ** 2) < 0.9 * 4.4  # ≈ 3.7


# -- GLCM ------------------------------------------------------------------------------------------
def test_glcm_checkerboard_worked_by_hand():
    a, b = 3, 7
    board = np.where((np.add.outer(np.arange(32), np.arange(32)) % 2) == 0, a, b).astype(np.uint8)
    f = sar.glcm_features_from_levels(board, levels=8)
    # d=1 along rows/columns every pair is (a, b): contrast (a−b)² = 16, correlation −1, entropy ln 2
    for j in (0, 2):  # 0°, 90°
        assert f["contrast"][0, j] == pytest.approx((a - b) ** 2)
        assert f["correlation"][0, j] == pytest.approx(-1.0)
        assert f["homogeneity"][0, j] == pytest.approx(1 / (1 + (a - b) ** 2))
        assert f["entropy"][0, j] == pytest.approx(math.log(2))
    # diagonal neighbours (45°, 135°; and d=2, 4 at every angle: even offsets) are equal: contrast 0, correlation 1
    for i, j in [(0, 1), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1), (2, 2), (2, 3)]:
        assert f["contrast"][i, j] == pytest.approx(0.0)
        assert f["correlation"][i, j] == pytest.approx(1.0)
        assert f["homogeneity"][i, j] == pytest.approx(1.0)


def test_glcm_stripes_worked_by_hand_through_the_db_mapping():
    # vertical stripes two pixels wide, levels 5 and 9, as dB values in the middle of those levels
    width = 64
    pattern = np.where((np.arange(width) // 2) % 2 == 0, _db_for_level(5), _db_for_level(9))
    db = np.tile(pattern, (40, 1)).astype(np.float32)
    assert set(np.unique(sar.quantise(db, "VV"))) == {5, 9}
    f = sar.glcm_features(db, "VV")
    # 0°, d=1: of the 63 horizontal pairs of a row, the 31 at odd positions cross a stripe edge
    assert f["contrast"][0, 0] == pytest.approx(31 / 63 * 16)
    # 90°: along a stripe — always equal
    assert f["contrast"][:, 2] == pytest.approx([0.0, 0.0, 0.0])
    assert f["correlation"][:, 2] == pytest.approx([1.0, 1.0, 1.0])
    # 0°, d=2: every pair crosses (stripe period 4): contrast 16, correlation −1
    assert f["contrast"][1, 0] == pytest.approx(16.0)
    assert f["correlation"][1, 0] == pytest.approx(-1.0)
    # 0°, d=4: one period apart — equal
    assert f["contrast"][2, 0] == pytest.approx(0.0)


def test_glcm_ignores_pairs_with_missing_pixels():
    board = np.where((np.add.outer(np.arange(32), np.arange(32)) % 2) == 0, 3, 7).astype(np.uint8)
    holed = board.copy()
    holed[:8, :8] = 0  # missing
    a, b = sar.glcm_features_from_levels(board, 8), sar.glcm_features_from_levels(holed, 8)
    for feat in sar.GLCM_FEATURES:
        # no pair touching the hole counts; only the mix of equal-colour pairs shifts (entropy, 1e-6)
        np.testing.assert_allclose(a[feat], b[feat], rtol=1e-5)


# -- clear errors ---------------------------------------------------------------------------------
def test_constant_image_is_refused_clearly():
    vv, vh = speckled_scene_db()
    with pytest.raises(MetricError, match="constant"):
        compare(vv, vh, np.full_like(vv, -12.0), vh)


def test_all_nan_image_is_refused_clearly():
    vv, vh = speckled_scene_db()
    with pytest.raises(MetricError, match="missing"):
        compare(vv, vh, vv, np.full_like(vh, np.nan))


def test_mismatched_sizes_and_grids_are_refused_clearly():
    vv, vh = speckled_scene_db((96, 96))
    with pytest.raises(MetricError, match="differ in size"):
        compare(vv, vh, vv[:64, :64], vh[:64, :64])
    real = Scene(crs="EPSG:32633", transform=GRID, width=96, height=96, vv_db=vv, vh_db=vh)
    shifted = result_from(vv, vh, transform=GRID @ Affine.translation(3, 0))
    with pytest.raises(MetricError, match="different grids"):
        compare_results(real, shifted)
    other_crs = result_from(vv, vh, crs="EPSG:32632")
    with pytest.raises(MetricError, match="different grids"):
        compare_results(real, other_crs)


def test_too_small_and_wrong_dimension_inputs():
    with pytest.raises(MetricError, match="too small"):
        sar.check_image(np.random.default_rng(0).normal(size=(8, 8)))
    with pytest.raises(MetricError, match="2-D"):
        sar.check_image(np.zeros((2, 40, 40)))


# -- the report ----------------------------------------------------------------------------------
def test_report_json_contract_and_table():
    vv, vh = speckled_scene_db(seed=0)
    gv, gh = speckled_scene_db(seed=3, offset_db=1.0)
    real = Scene(crs="EPSG:32633", transform=GRID, width=96, height=96, vv_db=vv, vh_db=vh)
    report = compare_results(real, result_from(gv, gh))
    d = json.loads(report.to_json())
    for key in ("kl", "mean_std_similarity", "ssim", "fsim", "enl", "glcm"):
        assert set(d[key]) == {"VV", "VH"}, key
    assert set(d["enl"]["VH"]) == {"real", "generated"}
    assert set(d["glcm"]["VV"]) == set(sar.GLCM_FEATURES)
    assert set(d["glcm"]["VV"]["entropy"]) == {"1", "2", "4"}
    assert set(d["glcm"]["VV"]["entropy"]["2"]) == {"0", "45", "90", "135"}
    leaf = d["glcm"]["VH"]["contrast"]["4"]["135"]
    assert leaf["real"] == pytest.approx(sar.glcm_features(vh, "VH")["contrast"][2, 3])
    assert leaf["generated"] == pytest.approx(sar.glcm_features(gh, "VH")["contrast"][2, 3])
    assert d["real_available"] is True and d["grid"]["crs"] == "EPSG:32633"

    table = report.table()
    row = table[(table.metric == "ENL (intensity)") & (table.polarisation == "VV")].iloc[0]
    assert row["generated − real"] == pytest.approx(row["generated"] - row["real"])
    assert row["real"] == pytest.approx(d["enl"]["VV"]["real"])
    csv = pd.read_csv(io.StringIO(report.csv()))
    assert len(csv) == len(report.table(per_angle=True))
    assert list(csv.columns) == list(table.columns)


def test_generated_only_report():
    gv, gh = speckled_scene_db()
    report = compare_results(None, result_from(gv, gh))
    d = json.loads(report.to_json())
    assert d["real_available"] is False
    for key in ("kl", "ssim", "fsim", "mean_std_similarity"):
        assert d[key] == {"VV": None, "VH": None}
    assert d["enl"]["VV"]["real"] is None and d["enl"]["VV"]["generated"] > 1
    assert report.table()["generated"].notna().any()
    # a scene without S1 layers is the same as no real image
    no_s1 = Scene(crs="EPSG:32633", transform=GRID, width=96, height=96)
    assert compare_results(no_s1, result_from(gv, gh)).real_available is False


# -- real Sentinel-1 and the CLI ----------------------------------------------------------------------
def test_real_sentinel1_against_a_speckled_copy(tmp_path):
    real = read_sar_file(need(SEN1FLOODS11_S1), "Sen1Floods11")
    crop = (slice(0, 192), slice(0, 192))
    rng = np.random.default_rng(0)
    vv, vh = real.vv_db[crop], real.vh_db[crop]
    # one more look of speckle on top of the real image: same scene, rougher texture
    gv = vv + 10 * np.log10(rng.gamma(1.0, 1.0, vv.shape))
    gh = vh + 10 * np.log10(rng.gamma(1.0, 1.0, vh.shape))
    report = compare(vv, vh, gv, gh)
    for pol in ("VV", "VH"):
        m = report[pol]
        assert m.enl_generated.enl < m.enl_real.enl  # extra speckle lowers ENL
        assert 0.0 < m.ssim < 1.0 and 0.0 < m.fsim < 1.0 and m.kl.kl > 0.0
        contrast = m.glcm_generated["contrast"] - m.glcm_real["contrast"]
        assert (contrast > 0).all()  # rougher texture → more GLCM contrast at every distance and angle


def test_cli_json_contract(capsys):
    path = str(need(SEN1FLOODS11_S1))
    assert main(["metrics", path, path, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kl"] == {"VV": 0.0, "VH": 0.0}
    assert d["ssim"]["VV"] == pytest.approx(1.0)
    assert d["enl"]["VV"]["real"] == d["enl"]["VV"]["generated"] > 0


def test_cli_table_and_csv(tmp_path, capsys):
    path = str(need(SEN1FLOODS11_S1))
    out_csv = tmp_path / "m.csv"
    assert main(["metrics", path, path, "--out", str(out_csv)]) == 0
    text = capsys.readouterr().out
    assert "KL(real ‖ generated)" in text and "GLCM entropy" in text
    assert len(pd.read_csv(out_csv)) == len(compare_files(path, path).table(per_angle=True))


def test_cli_refuses_different_grids_and_unnamed_bands(tmp_path, capsys):
    floods = str(need(SEN1FLOODS11_S1))
    ben = str(bigearthnet_pair_tif(tmp_path))
    assert main(["metrics", floods, ben]) == 2
    err = capsys.readouterr().err
    assert "different grids" in err and "Traceback" not in err
    single_band = next(need(SEN1FLOODS11_S1).parent.parent.glob("bigearthnet/BigEarthNet-S1-Example/*/*_VV.tif"))
    assert main(["metrics", ben, str(single_band)]) == 2
    assert "bands named VV and VH" in capsys.readouterr().err
    assert main(["metrics", ben, str(tmp_path / "nope.tif")]) == 2
    assert "does not exist" in capsys.readouterr().err


# -- the shared fast path gives the numbers of the single-metric functions ---------------------------
def _piq_fsim_reference(real_db: np.ndarray, gen_db: np.ndarray, pol: str) -> float:
    """FSIM as documented, straight from piq: one pair, each image's missing pixels → its own mean."""
    import piq
    import torch

    both = np.isfinite(real_db) & np.isfinite(gen_db)
    tensors = []
    for db in (gen_db, real_db):
        unit = sar.db_to_unit(np.where(both, db, np.nan), pol)
        filled = np.where(np.isfinite(unit), unit, float(np.nanmean(unit))).astype(np.float32)
        tensors.append(torch.from_numpy(filled)[None, None])
    with torch.no_grad():
        return float(piq.fsim(*tensors, data_range=1.0, chromatic=False))


def test_compare_matches_the_single_metric_functions_with_and_without_gaps():
    vv, vh = speckled_scene_db(shape=(80, 72), seed=3)
    gv, gh = speckled_scene_db(shape=(80, 72), seed=4, looks=2.0, offset_db=1.5)
    gh[5:15, 20:40] = np.nan  # a gap in one image only: the pair metrics use the shared ground
    vv[60:70, 0:10] = np.nan
    report = compare(vv, vh, gv, gh)
    for pol, real, gen in (("VV", vv, gv), ("VH", vh, gh)):
        m = report[pol]
        kl = sar.kl_divergence(real, gen)
        assert m.kl.kl == pytest.approx(kl.kl, rel=1e-12)
        np.testing.assert_array_equal(m.kl.p_real, kl.p_real)
        assert (m.mean_diff, m.std_diff) == pytest.approx(sar.mean_std_similarity(real, gen, pol), rel=1e-12)
        both = np.isfinite(real) & np.isfinite(gen)
        u_r, u_g = sar.db_to_unit(real[both], pol).astype(np.float64), sar.db_to_unit(gen[both], pol).astype(np.float64)
        assert m.mean_diff == pytest.approx(abs(u_g.mean() - u_r.mean()), rel=1e-12)
        assert m.ssim == pytest.approx(sar.ssim(real, gen, pol), rel=1e-12)
        # FSIM of both polarisations is one batched piq call in compare(); each pair alone agrees
        assert m.fsim == pytest.approx(sar.fsim(real, gen, pol), rel=1e-6)
        assert m.fsim == pytest.approx(_piq_fsim_reference(real, gen, pol), rel=1e-6)
        assert m.enl_real.enl == pytest.approx(sar.enl(real).enl, rel=1e-12)
        np.testing.assert_array_equal(m.enl_generated.windows, sar.enl(gen).windows)
        for feat, values in sar.glcm_features(gen, pol).items():
            np.testing.assert_allclose(m.glcm_generated[feat], values, rtol=1e-12)
        for feat, values in sar.glcm_features(real, pol).items():
            np.testing.assert_allclose(m.glcm_real[feat], values, rtol=1e-12)


def test_compare_reports_progress_for_every_metric_and_restores_torch_threads():
    import torch

    vv, vh = speckled_scene_db(shape=(64, 64))
    seen: list[tuple[int, int, str]] = []
    threads = torch.get_num_threads()
    compare(vv, vh, vv + 0.5, vh - 0.5, progress=lambda step, total, msg: seen.append((step, total, msg)))
    assert [s for s, _, _ in seen] == list(range(1, 13)) and {t for _, t, _ in seen} == {12}
    for pol in ("VV", "VH"):
        for metric in ("KL divergence", "Mean/Std similarity", "SSIM", "FSIM", "ENL", "GLCM"):
            assert f"{pol}: {metric}" in {msg for _, _, msg in seen}
    assert torch.get_num_threads() == threads


def test_linear_power_or_dn_files_are_refused_as_not_db(tmp_path):
    import rasterio
    from affine import Affine

    from sarviz.metrics.report import MetricError, read_sar_file

    rng = np.random.default_rng(0)
    for name, data, msg in (
        ("linear", rng.gamma(4.4, 0.1 / 4.4, (2, 64, 64)), "linear power"),
        ("dn", rng.uniform(50, 400, (2, 64, 64)), "does not look like backscatter in dB"),
    ):
        path = tmp_path / f"{name}.tif"
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=64,
            height=64,
            count=2,
            dtype="float32",
            crs="EPSG:32633",
            transform=Affine(10, 0, 4e5, 0, -10, 5e6),
        ) as dst:
            dst.write(data.astype("float32"))
            dst.descriptions = ("VV", "VH")
        with pytest.raises(MetricError, match=msg):
            read_sar_file(path, name)
    db = tmp_path / "db.tif"
    with rasterio.open(
        db,
        "w",
        driver="GTiff",
        width=64,
        height=64,
        count=2,
        dtype="float32",
        crs="EPSG:32633",
        transform=Affine(10, 0, 4e5, 0, -10, 5e6),
    ) as dst:
        dst.write(10 * np.log10(rng.gamma(4.4, 0.1 / 4.4, (2, 64, 64))).astype("float32"))
        dst.descriptions = ("VV", "VH")
    assert read_sar_file(db, "db").vv_db.shape == (64, 64)


def _report_arrays_equal(a, b) -> None:
    """Every number of two reports, including the arrays the JSON does not carry."""
    assert a.to_dict() == b.to_dict()
    for pol in ("VV", "VH"):
        ma, mb = a[pol], b[pol]
        assert (ma.kl is None) == (mb.kl is None)
        if ma.kl is not None:
            np.testing.assert_array_equal(ma.kl.p_real, mb.kl.p_real)
            np.testing.assert_array_equal(ma.kl.q_generated, mb.kl.q_generated)
        np.testing.assert_array_equal(ma.enl_generated.windows, mb.enl_generated.windows)
        for feat in sar.GLCM_FEATURES:
            np.testing.assert_array_equal(ma.glcm_generated[feat], mb.glcm_generated[feat])


def test_inspect_all_gives_the_numbers_and_figures_of_the_sequential_path():
    from sarviz.viz import panels
    from sarviz.viz.inspect import PANELS, inspect_all

    vv, vh = speckled_scene_db(shape=(80, 72), seed=3)
    gv, gh = speckled_scene_db(shape=(80, 72), seed=4, looks=2.0, offset_db=1.5)
    gh[5:15, 20:40] = np.nan
    emb = np.random.default_rng(5).normal(size=(16, 80, 72)).astype(np.float32)
    for real_vv, real_vh, embedding in ((vv, vh, emb), (None, None, None)):
        sequential = compare(real_vv, real_vh, gv, gh)
        report, figures = inspect_all(real_vv, real_vh, gv, gh, embedding=embedding)
        _report_arrays_equal(report, sequential)
        assert report.real_available == (real_vv is not None)
        assert set(figures) == set(PANELS)
        assert figures["histograms"] == panels.histogram_png(sequential)
        assert figures["glcm"] == panels.glcm_png(sequential)
        assert figures["embedding"] == panels.embedding_png(embedding)


def test_inspect_all_refuses_bad_input_like_compare_and_reports_progress_from_the_caller_thread():
    import threading

    import torch

    from sarviz.viz.inspect import inspect_all

    vv, vh = speckled_scene_db(shape=(64, 64))
    with pytest.raises(MetricError, match="differ in size"):
        inspect_all(vv, vh, vv[:48], vh[:48])
    with pytest.raises(MetricError, match="constant"):
        inspect_all(vv, vh, vv, np.full_like(vh, -12.0))
    with pytest.raises(MetricError, match="both VV and VH"):
        inspect_all(vv, None, vv, vh)
    seen: list[tuple[int, int, str, str]] = []
    threads = torch.get_num_threads()
    inspect_all(
        vv, vh, vv + 0.5, vh - 0.5, progress=lambda i, n, msg: seen.append((i, n, msg, threading.current_thread().name))
    )
    total = seen[0][1]
    assert [s for s, *_ in seen] == list(range(1, total + 1)) and {n for _, n, _, _ in seen} == {total}
    assert {name for *_, name in seen} == {threading.current_thread().name}
    messages = {msg for _, _, msg, _ in seen}
    assert {"FSIM", "histogram panel", "GLCM panel", "embedding panel", "VH: SSIM"} <= messages
    assert torch.get_num_threads() == threads


def test_inspect_results_checks_grids_like_compare_results():
    from sarviz.viz.inspect import inspect_results

    vv, vh = speckled_scene_db(shape=(64, 64))
    real = result_from(vv, vh)
    generated = result_from(vv + 1.0, vh - 1.0)
    report, figures = inspect_results(real, generated)
    assert report.to_dict() == compare_results(real, generated).to_dict()
    assert figures["histograms"][:8] == b"\x89PNG\r\n\x1a\n"
    shifted = result_from(vv, vh, transform=GRID @ Affine.translation(3, 0))
    with pytest.raises(MetricError, match="different grids"):
        inspect_results(real, shifted)
