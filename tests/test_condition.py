"""The condition builder: reference preprocessing, user angle, refusals, spec as data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sarviz.generators.base import DEFAULT_ANGLE_DEG, GenerationError  # noqa: E402
from sarviz.generators.condition import ConditionError, ConditionSpec, build_condition, check_angle  # noqa: E402

from _diffusion_fixtures import tiny_scene

REPO = Path(__file__).resolve().parents[1]


def test_shape_and_size_parameter_for_a_non_square_scene():
    scene = tiny_scene(height=24, width=40)
    cond = build_condition(scene, ConditionSpec(size=32))
    assert cond.array.shape == (65, 32, 32)
    assert cond.array.dtype == np.float32
    assert build_condition(scene, size=16).array.shape == (65, 16, 16)


def test_user_angle_is_broadcast_normalised_and_recorded():
    scene = tiny_scene(angle=False)
    cond = build_condition(scene, ConditionSpec(size=32), angle_deg=41.0)
    # (41 - 35) / 15 = 0.4 everywhere: a constant survives any resize unchanged
    np.testing.assert_allclose(cond.array[0], 0.4, atol=1e-6)
    prov = cond.provenance()
    assert prov["angle_source"] == "user" and prov["angle_deg"] == 41.0
    assert "user-set angle" in prov["condition_source"]
    default = build_condition(scene, ConditionSpec(size=32))
    assert default.angle_deg == DEFAULT_ANGLE_DEG
    np.testing.assert_allclose(default.array[0], (DEFAULT_ANGLE_DEG - 35.0) / 15.0, atol=1e-6)


def test_angle_is_clipped_to_plus_minus_one():
    scene = tiny_scene()
    assert np.allclose(build_condition(scene, ConditionSpec(size=16), angle_deg=65.0).array[0], 1.0)
    assert np.allclose(build_condition(scene, ConditionSpec(size=16), angle_deg=12.0).array[0], -1.0)


def test_scene_angle_layer_wins_over_the_user_angle():
    scene = tiny_scene(angle=True)
    spec = ConditionSpec(size=scene.width, pre_scale=None, resize_mode="nearest")
    scene_sq = tiny_scene(height=40, width=40, angle=True)
    cond = build_condition(scene_sq, spec, angle_deg=20.0)
    assert cond.angle_source == "scene"
    expected = np.clip((scene_sq.angle_deg - 35.0) / 15.0, -1, 1)
    np.testing.assert_allclose(cond.array[0], expected, atol=1e-6)
    assert cond.angle_deg == pytest.approx(float(scene_sq.angle_deg.mean()))
    assert build_condition(scene, ConditionSpec(size=16)).angle_source == "scene"


def test_embedding_is_z_scored_over_the_whole_block_and_clipped():
    scene = tiny_scene(height=40, width=40)
    rng = np.random.default_rng(5)
    # heavy tails so that clipping at ±3 matters
    scene.embedding = (rng.standard_t(2, size=(64, 40, 40)) * 0.1 + 0.05).astype(np.float32)
    spec = ConditionSpec(size=40, pre_scale=None, resize_mode="nearest")
    cond = build_condition(scene, spec)
    expected = np.clip(stats.zscore(scene.embedding, axis=None), -3, 3)
    np.testing.assert_allclose(cond.array[1:], expected, atol=1e-5)
    assert np.abs(cond.array[1:]).max() == pytest.approx(3.0)


def test_half_scale_bilinear_step_removes_pixel_scale_detail():
    scene = tiny_scene(height=32, width=32)
    checker = (np.indices((32, 32)).sum(0) % 2).astype(np.float32)
    scene.embedding = np.stack([checker + 0.01 * i for i in range(64)]).astype(np.float32)
    with_pre = build_condition(scene, ConditionSpec(size=32))
    without = build_condition(scene, ConditionSpec(size=32, pre_scale=None, resize_mode="nearest"))
    # a 1-px checkerboard averages out in the ×0.5 bilinear step; without it, it survives
    assert with_pre.array[1].std() < 0.2 * without.array[1].std()


def test_missing_embedding_is_refused_with_a_reason():
    scene = tiny_scene(embedding=False)
    with pytest.raises(ConditionError, match="no AlphaEarth embedding.*emulator"):
        build_condition(scene)
    assert issubclass(ConditionError, GenerationError)


def test_partly_missing_embedding_is_filled_and_noted_mostly_missing_is_refused():
    scene = tiny_scene(height=20, width=20)
    scene.embedding[:, :4, :] = np.nan
    cond = build_condition(scene, ConditionSpec(size=16))
    assert np.isfinite(cond.array).all()
    assert cond.embedding_nan_fraction == pytest.approx(0.2)
    assert cond.notes and "missing" in cond.notes[0]
    scene.embedding[:, :15, :] = np.nan
    with pytest.raises(ConditionError, match="75% of the embedding is missing"):
        build_condition(scene, ConditionSpec(size=16))


@pytest.mark.parametrize("bad", ["steep", float("nan"), 95.0, None])
def test_bad_user_angles_are_rejected(bad):
    with pytest.raises(ConditionError, match="angle"):
        check_angle(bad)


def test_spec_is_data_round_trip_and_validation():
    spec = ConditionSpec.from_dict({"bands": ["embedding"], "size": 64, "embedding_norm": "zscore_band"})
    assert spec.channels == 64 and not spec.needs_angle
    assert ConditionSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(ConditionError, match="unknown preprocessing keys"):
        ConditionSpec.from_dict({"sise": 512})
    with pytest.raises(ConditionError, match="multiple of 8"):
        ConditionSpec(size=100)
    with pytest.raises(ConditionError, match="resize mode"):
        ConditionSpec(resize_mode="lanczos")
    with pytest.raises(ConditionError, match="band"):
        ConditionSpec(bands=("angle", "A64"))
    cond = build_condition(tiny_scene(), spec)
    assert cond.array.shape == (64, 64, 64) and cond.angle_source == "unused"


def test_reference_card_declares_the_reference_preprocessing():
    card = json.loads((REPO / "models" / "huiyanearth-sar.json").read_text())
    spec = ConditionSpec.from_dict(card["preprocessing"])
    assert spec == ConditionSpec()  # the defaults are the reference (../shared/README.md)
    assert spec.channels == 65 and spec.size == 512


def _reference_condition(raw: np.ndarray) -> np.ndarray:
    """HuiYanEarth-SAR ``inference_sar_gray.py`` ``load_and_preprocess_condition`` on a
    (65, H, W) [angle, A00..A63] array, transcribed (NaN → 0 first, as the reference does)."""
    import torch
    import torch.nn.functional as F

    cond = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    cond[0] = np.clip((cond[0] - 35.0) / 15.0, -1.0, 1.0)
    emb = cond[1:]
    mean, std = np.mean(emb), np.std(emb)
    emb = np.zeros_like(emb) if std < 1e-4 else (emb - mean) / std
    cond[1:] = np.clip(emb, -3.0, 3.0)
    t = torch.from_numpy(cond).unsqueeze(0).float()
    down = F.interpolate(t, scale_factor=0.5, mode="bilinear", align_corners=False)
    return F.interpolate(down, size=(512, 512), mode="bicubic", align_corners=False)[0].numpy()


def _scene_263(nan_mask=None):
    from affine import Affine

    from sarviz.scene import Scene

    rng = np.random.default_rng(3)
    # pixel-scale detail (resampling grids matter) around a non-zero block mean (as real embeddings have)
    emb = (0.5 + rng.normal(size=(64, 263, 263))).astype(np.float32)
    angle = np.tile(np.linspace(30.5, 45.5, 263, dtype=np.float32), (263, 1))
    if nan_mask is not None:
        emb[:, nan_mask] = np.nan
        angle[nan_mask] = np.nan
    return Scene(
        crs="EPSG:32630",
        transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4200000.0),
        width=263,
        height=263,
        embedding=emb,
        angle_deg=angle,
        scene_id="odd-263",
        provenance={"source": "test"},
    )


def test_odd_size_patch_matches_the_reference_condition():
    """263² patch: the reference resizes with scale_factor=0.5, not size=131 (different grid)."""
    import torch
    import torch.nn.functional as F

    scene = _scene_263()
    raw = np.concatenate([scene.angle_deg[None], scene.embedding])
    reference = _reference_condition(raw)
    ours = build_condition(scene, ConditionSpec()).array
    assert ours.shape == reference.shape == (65, 512, 512)
    np.testing.assert_allclose(ours, reference, atol=2e-4)
    # what size=floor(h/2) gives instead — the old behaviour, measurably different
    t = torch.from_numpy(_reference_condition_inputs(raw))[None]
    old = F.interpolate(
        F.interpolate(t, size=(131, 131), mode="bilinear", align_corners=False),
        size=(512, 512),
        mode="bicubic",
        align_corners=False,
    )[0].numpy()
    assert np.abs(old - reference).max() > 0.5


def _reference_condition_inputs(raw: np.ndarray) -> np.ndarray:
    cond = raw.astype(np.float32).copy()
    cond[0] = np.clip((cond[0] - 35.0) / 15.0, -1.0, 1.0)
    emb = cond[1:]
    cond[1:] = np.clip((emb - emb.mean()) / emb.std(), -3.0, 3.0)
    return cond


def test_missing_embedding_differs_from_the_reference_only_where_documented():
    """NaN handling is ours (z-score over valid values, fill with the block mean), not the
    reference's NaN → 0 before normalising: away from the gap the two agree closely, at the gap
    ours is the block mean (0) where the reference has its biased (0 − mean)/std."""
    mask = np.zeros((263, 263), bool)
    mask[100:140, 100:140] = True  # a 40² hole (2.3 %)
    scene = _scene_263(mask)
    raw = np.concatenate([scene.angle_deg[None], scene.embedding])
    reference = _reference_condition(raw)
    ours = build_condition(scene, ConditionSpec())
    assert any("missing" in n for n in ours.notes)
    far = np.ones((512, 512), bool)
    far[150:320, 150:320] = False  # away from the (resampled) hole
    # values of 0 at the gap shift the reference's block mean/std only slightly for a 2 % hole
    assert np.abs(ours.array[1:, far] - reference[1:, far]).max() < 0.05
    centre = ours.array[1:, 230:240, 230:240]
    np.testing.assert_allclose(centre, 0.0, atol=1e-5)  # block mean after the z-score
    # the reference's NaN → 0 is z = (0 − 0.5)/1 ≈ −0.5 there: a fake "embedding" value
    assert reference[1:, 230:240, 230:240].mean() < -0.3
    # a missing angle: ours the layer's mean (38°), the reference 0° → clipped to −1 (20°)
    assert np.allclose(reference[0, 230:240, 230:240], -1.0, atol=1e-3)
    assert ours.array[0, 230:240, 230:240] == pytest.approx((38.0 - 35.0) / 15.0, abs=0.02)
