"""One calibration, composite flags, robust ENL, exact GLCM lags,
SSIM variants and the seed-001 protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sarviz.calibration import DEFAULT_CALIBRATION, Calibration
from sarviz.metrics import protocols, sar
from sarviz.metrics.provenance import calibration_of, real_s1_acquisition
from sarviz.metrics.report import compare, compare_results
from sarviz.scene import Scene
from sarviz.viz import images, panels

from _metrics_fixtures import GRID, result_from, speckled_scene_db

WIDE = {"db_range": {"VV": [-30.0, 5.0], "VH": [-35.0, -5.0]}, "shared": False}


# -- one calibration ---------------------------------------------------------------------------------
def test_metrics_and_display_use_the_models_calibration_and_the_report_records_it():
    vv, vh = speckled_scene_db(seed=0)
    gv, gh = speckled_scene_db(seed=1, offset_db=2.0)
    real = Scene(crs="EPSG:32633", transform=GRID, width=96, height=96, vv_db=vv, vh_db=vh)

    default = compare_results(real, result_from(gv, gh))
    assert default.calibration is DEFAULT_CALIBRATION and default.calibration_source == "default"
    model = compare_results(real, result_from(gv, gh, calibration=WIDE))
    cal = Calibration.from_dict(WIDE)
    assert model.calibration == cal and model.calibration_source == "model"
    d = json.loads(model.to_json())
    assert d["calibration"]["db_range"] == WIDE["db_range"] and d["calibration"]["source"] == "model"
    assert d["settings"]["unit_db_ranges"] == WIDE["db_range"]

    # Mean/Std similarity by hand on the model's mapping: (dB − lo) / (hi − lo)
    lo, hi = WIDE["db_range"]["VV"]
    unit = lambda a: np.clip((a.astype(np.float64) - lo) / (hi - lo), 0, 1)  # noqa: E731
    assert model["VV"].mean_diff == pytest.approx(abs(unit(gv).mean() - unit(vv).mean()), abs=1e-6)
    assert model["VV"].mean_diff != pytest.approx(default["VV"].mean_diff, abs=1e-4)  # the range matters
    # GLCM levels come from the same mapping
    np.testing.assert_allclose(
        model["VH"].glcm_generated["contrast"], sar.glcm_features(gh, "VH", calibration=cal)["contrast"]
    )
    # the display stretch is the calibration: no second copy of a range
    assert images.display_range("VV") == DEFAULT_CALIBRATION.range("VV")
    assert images.display_range("VH", cal) == (-35.0, -5.0)
    assert images.DB_RANGES["VV"] == DEFAULT_CALIBRATION.range("VV")
    grey = images.render_sar(np.full((4, 4), -30.0, np.float32), None, "VV", cal)
    assert (grey == 0).all()  # the bottom of the model's range is black
    # the legacy db_range field of older results is read too; a given calibration wins
    assert calibration_of({"db_range": WIDE["db_range"]})[1] == "model (legacy db_range)"
    given = compare_results(real, result_from(gv, gh, calibration=WIDE), calibration=DEFAULT_CALIBRATION)
    assert given.calibration is DEFAULT_CALIBRATION and given.calibration_source == "given"


def test_a_malformed_calibration_in_provenance_is_refused_clearly():
    gv, gh = speckled_scene_db()
    with pytest.raises(ValueError, match="calibration range for VV"):
        compare_results(None, result_from(gv, gh, calibration={"db_range": {"VV": [0, -25], "VH": [-32, -5]}}))


# -- composite flags ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "prov, mode, n",
    [
        ({"s1_mode": "composite", "s1_composite": {"kind": "median", "n": 6}}, "composite", 6),
        ({"s1_mode": "single", "s1_composite": {"kind": "nearest", "n": 1}}, "single", 1),
        (
            {
                "s1_mode": "composite",
                "s1_composite": {
                    "kind": "median",
                    "n": None,
                    "dates": ["2024-05-01", "2024-06-30"],
                    "dates_are": "first and last",
                },
            },
            "composite",
            None,
        ),
        ({"s1_mode": "single", "s1_date": "2024-05-01", "orbit": "DESCENDING"}, "single", None),
        ({"s1_composite": "median"}, "composite", None),
        ({"s1_composite": {"kind": "median", "n": 1}}, "single", 1),
        ({"layers": {"vv_db": {"detail": {"composite": "median", "items": ["a", "b", "c"]}}}}, "composite", 3),
        ({"layers": {"vv_db": {"detail": {"composite": "nearest", "items": ["a"]}}}}, "single", 1),
        ({"source": "file"}, "unknown", None),
        (None, "unknown", None),
    ],
)
def test_real_s1_acquisition_is_read_defensively(prov, mode, n):
    got = real_s1_acquisition(prov)
    assert got["mode"] == mode and got["n"] == n


def test_speckle_sensitive_metrics_are_flagged_when_the_real_image_is_a_composite():
    vv, vh = speckled_scene_db(seed=0)
    gv, gh = speckled_scene_db(seed=1)
    prov = {"s1_mode": "composite", "s1_composite": {"kind": "median", "n": 6}}
    real = Scene(crs="EPSG:32633", transform=GRID, width=96, height=96, vv_db=vv, vh_db=vh, provenance=prov)
    report = compare_results(real, result_from(gv, gh))
    d = json.loads(report.to_json())
    assert d["flags"]["real_s1"]["mode"] == "composite"
    assert d["flags"]["flagged_metrics"] == ["kl", "enl", "glcm", "ssim"]
    assert "median of 6" in d["flags"]["note"]
    table = report.table()
    flagged = table[table.caveat != ""]
    assert set(flagged.metric.str.split().str[0]) == {"KL(real", "SSIM", "ENL", "GLCM"}
    assert (table[table.metric == "FSIM"].caveat == "").all()
    assert "temporal composite (median of 6)" in panels.histogram_panel(report)._suptitle.get_text()

    single = compare(vv, vh, gv, gh, real_provenance={"s1_mode": "single"})
    assert single.flags()["flagged_metrics"] == [] and single.composite_note is None
    assert (single.table().caveat == "").all()
    unknown = compare(vv, vh, gv, gh)
    assert unknown.real_s1["mode"] == "unknown" and unknown.flags()["flagged_metrics"] == []


# -- ENL -----------------------------------------------------------------------------------------------
def _fields_speckle(looks: float, seed: int, size: int = 256) -> tuple[np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    sigma0 = 10 ** (np.array([-14.0, -9.0, -5.0, -11.0])[(rows // 96 + (cols // 128) * 3) % 4] / 10)
    return sigma0 * rng.gamma(looks, 1.0 / looks, (size, size)), rng


@pytest.mark.parametrize("looks", [1.0, 4.4])
def test_enl_is_robust_to_point_and_line_targets(looks):
    intensity, rng = _fields_speckle(looks, seed=int(looks * 10))
    points = intensity.copy()
    points[rng.random(points.shape) < 0.001] *= 10.0  # 0.1 % point scatterers, +10 dB
    lines = intensity.copy()
    lines[32::64, :] *= 10.0  # 1-px lines every 64 px, +10 dB
    lines[:, 32::64] *= 10.0
    for name, img in (("points", points), ("lines", lines)):
        result = sar.enl(10 * np.log10(img))
        assert result.enl == pytest.approx(looks, rel=0.06), name
        assert result.rejected_targets > 0, name
        if name == "lines":  # no chosen window holds a line pixel
            rows = result.windows[:, 0, None] + np.arange(result.window_px)
            cols = result.windows[:, 1, None] + np.arange(result.window_px)
            on_line = np.arange(32, 256, 64)
            assert not (np.isin(rows, on_line).any(axis=1) | np.isin(cols, on_line).any(axis=1)).any()
    # the previous selection (edge test only) was blind to them
    saved = sar.ENL_TARGET_ROUNDS
    try:
        sar.ENL_TARGET_ROUNDS = 0
        assert sar.enl(10 * np.log10(points)).enl < 0.93 * looks
    finally:
        sar.ENL_TARGET_ROUNDS = saved


def test_enl_of_clean_speckle_keeps_nearly_every_window():
    intensity, _ = _fields_speckle(4.4, seed=3)
    result = sar.enl(10 * np.log10(intensity))
    assert result.enl == pytest.approx(4.4, rel=0.04)
    assert result.rejected_targets <= 0.03 * result.n_windows


# -- GLCM lags ---------------------------------------------------------------------------------------
def _brute_glcm(img: np.ndarray, lag: tuple[int, int], levels: int) -> np.ndarray:
    dr, dc = lag
    h, w = img.shape
    r0, r1, c0, c1 = max(0, -dr), h - max(0, dr), max(0, -dc), w - max(0, dc)
    a, b = img[r0:r1, c0:c1].ravel(), img[r0 + dr : r1 + dr, c0 + dc : c1 + dc].ravel()
    counts = np.zeros((levels + 1, levels + 1))
    np.add.at(counts, (a, b), 1)
    counts = (counts + counts.T)[1:, 1:]
    return counts / counts.sum()


def test_glcm_uses_the_exact_lag_vector_of_every_distance_and_angle():
    rng = np.random.default_rng(4)
    img = rng.integers(0, 9, (48, 40)).astype(np.uint8)  # level 0 = missing
    feats = sar.glcm_features_from_levels(img, 8)
    k = np.arange(8)[:, None] - np.arange(8)[None, :]
    lags = set()
    for i, d in enumerate(sar.GLCM_DISTANCES):
        for j, a in enumerate(sar.GLCM_ANGLES_DEG):
            lag = sar.glcm_lag_vector(d, a)
            lags.add(lag)
            assert max(abs(lag[0]), abs(lag[1])) == d
            glcm = _brute_glcm(img, lag, 8)
            assert feats["contrast"][i, j] == pytest.approx((glcm * k**2).sum(), rel=1e-12), (d, a)
            assert feats["homogeneity"][i, j] == pytest.approx((glcm / (1 + k**2)).sum(), rel=1e-12)
    assert len(lags) == len(sar.GLCM_DISTANCES) * len(sar.GLCM_ANGLES_DEG)  # every lag is distinct
    assert sar.glcm_lag_vector(1, 45) == (-1, 1) and sar.glcm_lag_vector(2, 135) == (-2, -2)


# -- SSIM variants -----------------------------------------------------------------------------------
def test_ssim_variants_match_piq_and_are_named_in_the_report():
    import piq
    import torch

    rng = np.random.default_rng(5)
    base = np.repeat(np.repeat(rng.uniform(-20, -5, (64, 64)), 8, 0), 8, 1)
    real = (base + 10 * np.log10(rng.gamma(4.4, 1 / 4.4, base.shape))).astype(np.float32)
    gen = (base + 10 * np.log10(rng.gamma(4.4, 1 / 4.4, base.shape))).astype(np.float32)
    pair = sar.prepare_pair(real, gen, "VV")
    t = lambda u: torch.from_numpy(u)[None, None]  # noqa: E731
    assert sar.ssim_prepared(pair, "downsampled") == pytest.approx(
        piq.ssim(t(pair.gen_unit), t(pair.real_unit), data_range=1.0).item(), abs=1e-4
    )
    assert sar.ssim_prepared(pair) == pytest.approx(
        piq.ssim(t(pair.gen_unit), t(pair.real_unit), data_range=1.0, downsample=False).item(), abs=1e-4
    )
    assert sar.ssim_downsample_factor(512, 512) == 2
    with pytest.raises(sar.MetricError, match="unknown SSIM variant"):
        sar.ssim_prepared(pair, "fast")

    vv, vh = speckled_scene_db(seed=0)
    report = compare(vv, vh, vv, vh)
    d = json.loads(report.to_json())
    assert d["ssim_downsampled"]["VV"] == pytest.approx(1.0)  # 96² is not downsampled: same as full
    assert "full resolution" in d["protocols"]["ssim"] and "piq" in d["protocols"]["ssim_downsampled"]
    assert "our reading of seed 000" in d["protocols"]["mean_std_similarity"]
    table = report.table()
    assert set(table[table.metric == "SSIM"].protocol) == {
        "full resolution (scikit-image)",
        "downsampled ÷round(min(H,W)/256) (Wang ref. / piq default)",
    }
    assert (
        table[table.metric.str.startswith(("Mean similarity", "Std similarity"))].protocol
        == "our reading of seed 000 (no formula in the paper)"
    ).all()


# -- seed-001 protocol --------------------------------------------------------------------------------
def test_seed001_kl_pools_every_image_of_a_category():
    rng = np.random.default_rng(6)
    imgs = [(-10 + 10 * np.log10(rng.gamma(L, 1 / L, (64, 64)))).astype(np.float32) for L in (1, 1, 4, 4)]
    res = protocols.seed001_kl_by_category(
        [("field", imgs[0]), ("field", imgs[1]), ("city", imgs[2])], [("field", imgs[2]), ("city", imgs[3])]
    )
    assert set(res) == {"city", "field"} and res["field"].n_real == 2 and res["field"].n_generated == 1
    # by hand: each image normalised by its own μ+3σ, then the histograms pooled
    edges = np.linspace(0, 1, sar.KL_BINS + 1)
    vals = np.concatenate([sar.normalised_amplitude(imgs[i])[0] for i in (0, 1)])
    p = np.histogram(vals[vals < 1], edges)[0].astype(float)
    q_vals = sar.normalised_amplitude(imgs[2])[0]
    q = np.histogram(q_vals[q_vals < 1], edges)[0].astype(float)
    p_s, q_s = p / p.sum() + sar.KL_EPSILON, q / q.sum() + sar.KL_EPSILON
    p_s, q_s = p_s / p_s.sum(), q_s / q_s.sum()
    assert res["field"].kl == pytest.approx(float(np.sum(p_s * np.log(p_s / q_s))), rel=1e-9)
    assert res["field"].saturated_real == pytest.approx((vals >= 1).mean())
    assert "pooled over all images of a scene category" in res["field"].to_dict()["protocol"]
    # one image per side: the per-pair KL of the report
    assert protocols.seed001_kl_by_category([("x", imgs[0])], [("x", imgs[2])])["x"].kl == pytest.approx(
        sar.kl_divergence(imgs[0], imgs[2]).kl, rel=1e-9
    )
    with pytest.raises(sar.MetricError, match="only real or only generated"):
        protocols.seed001_kl_by_category([("forest", imgs[0])], [("city", imgs[1])])


def test_seed001_glcm_on_amplitude_in_homogeneous_patches():
    rng = np.random.default_rng(7)
    db = np.where(np.arange(192)[None, :] < 96, -16.0, -4.0) + 10 * np.log10(rng.gamma(4.4, 1 / 4.4, (192, 192)))
    res = protocols.seed001_glcm(db.astype(np.float32))
    assert len(res.patches) >= 2
    for r, c in res.patches:  # no patch straddles the 12 dB boundary at column 96
        assert c + 64 <= 96 or c >= 96
    unit = protocols.normalised_amplitude_image(db)
    r, c = res.patches[0]
    first = sar.glcm_features_unit(unit[r : r + 64, c : c + 64])
    np.testing.assert_allclose(res.per_patch[0]["entropy"], first["entropy"])
    np.testing.assert_allclose(res.features["contrast"], np.mean([p["contrast"] for p in res.per_patch], axis=0))
    by_cat = protocols.seed001_glcm_by_category([("field", db)], [("field", db)])
    assert by_cat["field"]["real"]["n_patches"] == len(res.patches)
    np.testing.assert_allclose(by_cat["field"]["generated"]["mean"]["contrast"], res.features["contrast"])
    table = protocols.seed001_pair_table(db, db, "VV")
    assert table.protocol.str.startswith("seed 001").all() and table.comparison.iloc[0] == pytest.approx(0.0)
    with pytest.raises(sar.MetricError, match="smaller than seed 001"):
        protocols.seed001_patches(np.zeros((40, 80)))


def test_seed001_known_answer_through_inspect():
    """The seed-001 toy case through the function the Inspect page calls: 0.0049 (per-image μ+3σ, then
    pooled); the old `evaluate` way (raw dB of all images pooled, one μ+3σ) gives 3.50."""
    from _seed001_toy import KNOWN_KL, OLD_POOLED_RAW_KL, toy_sets

    real, generated = toy_sets()
    table = protocols.seed001_table(real, generated, "VV")
    assert table.comparison.iloc[0] == pytest.approx(KNOWN_KL, abs=5e-5)
    assert table.metric.iloc[1].startswith("saturated fraction") and 0 < table.real.iloc[1] < 0.05
    by_category = protocols.seed001_kl_by_category([("c", r) for r in real], [("c", g) for g in generated])
    assert by_category["c"].kl == pytest.approx(KNOWN_KL, abs=5e-5)
    pooled_raw = sar.kl_divergence(np.concatenate(real).reshape(-1, 64), np.concatenate(generated).reshape(-1, 64)).kl
    assert pooled_raw == pytest.approx(OLD_POOLED_RAW_KL, abs=0.01)  # what the guard is against


# -- the Inspect UI ----------------------------------------------------------------------------------
def _inspect_app(composite: bool) -> None:
    from sarviz.scene import Scene
    from sarviz.ui.inspection import render_inspection

    from _metrics_fixtures import GRID, result_from, speckled_scene_db

    vv, vh = speckled_scene_db((64, 64), seed=0)
    gv, gh = speckled_scene_db((64, 64), seed=4, looks=2.0)
    prov = {"s1_mode": "composite", "s1_composite": {"kind": "median", "n": 6}} if composite else {"s1_mode": "single"}
    scene = Scene(
        crs="EPSG:32633", transform=GRID, width=64, height=64, vv_db=vv, vh_db=vh, provenance=prov, scene_id="t"
    )
    render_inspection(scene, result_from(gv, gh), key="p")


@pytest.mark.parametrize("composite", [True, False])
def test_inspect_ui_flags_composites_and_offers_the_seed001_protocol(composite):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_inspect_app, args=(composite,))
    at.run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    warnings = " ".join(w.value for w in at.warning)
    assert ("median of 6 acquisitions" in warnings) is composite
    tables = [at.dataframe[0].value, at.dataframe[1].value]  # pair metrics, per-image statistics
    flagged = any("caveat" in t.columns and bool((t.caveat.fillna("") != "").any()) for t in tables)
    assert flagged is composite  # the caveat column appears only where it says something
    assert "our reading of seed 000" in " ".join(c.value for c in at.caption)
    if not composite:
        return
    at.toggle(key="p-seed001").set_value(True).run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    seed001 = at.dataframe[2].value
    assert seed001.protocol.str.startswith("seed 001").all() and set(seed001.polarisation) == {"VV", "VH"}
