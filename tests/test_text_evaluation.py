"""Seed-001 evaluation protocol: pooled amplitude KL, GLCM on homogeneous patches, SAR-CLIP rank."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from sarviz.evaluation import clip as clip_mod
from sarviz.evaluation.captioned import DatasetError, open_captioned, read_db
from sarviz.evaluation.text import (
    ALL,
    evaluate_sets,
    glcm_of_set,
    homogeneous_patches,
    pooled_amplitude_histogram,
    pooled_kl,
    summarise_label,
)

from _text_fixtures import (
    LABEL_DB,
    one_torch_thread,  # noqa: F401  (fixture)
    speckle_db,
    write_captioned,
    write_tiny_clip,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def captioned(tmp_path_factory):
    return write_captioned(tmp_path_factory.mktemp("cap") / "captioned", n_per_label=6)


def _real(captioned, label):
    data = open_captioned(captioned, "test")
    return [data.read_db(i)["VV"] for i in data.by_label()[label]]


def _smooth(db, k):
    """A known distortion: k×k box filter of the intensity (less speckle, narrower histogram)."""
    if k == 1:
        return db
    return (10 * np.log10(uniform_filter(10 ** (db.astype(np.float64) / 10), size=k))).astype(np.float32)


def test_reads_the_captioned_layout_back_to_db(captioned):
    data = open_captioned(captioned, "test")
    assert data.labels() == sorted(LABEL_DB) and len(data.items) == 18 and data.token == "<SAR>"
    db = data.read_db(data.items[0])["VV"]
    lo, hi = data.calibration.range("VV")
    assert db.dtype == np.float32 and lo <= db.min() and db.max() <= hi
    step = (hi - lo) / 255  # the 8-bit quantisation step in dB
    rng = np.random.default_rng(0)
    orig = np.clip(speckle_db(rng, 64, -10, 0.2), lo, hi)
    from PIL import Image

    Image.fromarray((data.calibration.to_unit(orig, "VV") * 255).round().astype(np.uint8)).save(captioned / "x.png")
    back = read_db(captioned / "x.png", data.calibration, "L")["VV"]
    assert np.abs(back - orig).max() <= step / 2 + 1e-4
    with pytest.raises(DatasetError, match="caption_info.json"):
        open_captioned(captioned / "test")


def test_kl_is_zero_for_the_real_set_and_grows_with_distortion(captioned):
    real = _real(captioned, "trees")
    hist = pooled_amplitude_histogram(real)
    assert hist.n_images == 6 and 0 < hist.saturated_fraction < 0.05
    assert pooled_kl(hist, pooled_amplitude_histogram(real)) == 0.0
    kls = [pooled_kl(hist, pooled_amplitude_histogram([_smooth(a, k) for a in real])) for k in (1, 2, 3, 5)]
    assert kls[0] == 0.0
    assert all(b > a for a, b in zip(kls, kls[1:])), kls
    # two real sets of the same class are close; a different class is far
    other = _real(captioned, "water")
    assert pooled_kl(hist, pooled_amplitude_histogram(other)) > 0


def test_glcm_on_homogeneous_patches(captioned):
    real = _real(captioned, "trees")
    corners = homogeneous_patches(real[0])  # seed 001's one patch rule: 64 px, sliding kernel of 32 px
    assert len(corners) >= 1 and (corners % 32 == 0).all()
    feats, n = glcm_of_set(real)
    again, _ = glcm_of_set(real)
    assert n >= 6 and set(feats) == {"contrast", "homogeneity", "correlation", "entropy"}
    np.testing.assert_array_equal(feats["contrast"], again["contrast"])
    smooth, _ = glcm_of_set([_smooth(a, 5) for a in real])
    assert smooth["contrast"].mean() < feats["contrast"].mean()
    assert smooth["homogeneity"].mean() > feats["homogeneity"].mean()


def test_summaries_per_label_and_pooled(captioned):
    real = {k: _real(captioned, k) for k in LABEL_DB}
    same = evaluate_sets(real, real)
    assert [s.label for s in same] == list(real) + [ALL]
    assert all(s.kl == 0.0 for s in same)
    distorted = evaluate_sets(real, {k: [_smooth(a, 3) for a in v] for k, v in real.items()})
    assert all(s.kl > 0.01 for s in distorted)
    row = distorted[0].row()
    assert {"label", "kl", "saturated_real", "glcm_contrast_real", "glcm_contrast_generated"} <= set(row)
    assert summarise_label("x", real["built"], real["built"]).to_dict()["hist_real"]


def test_caption_rank_is_one_for_identical_embeddings():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 16))
    ranks = clip_mod.caption_ranks(emb, emb)
    assert len(ranks) == 40 and (ranks == 1).all()  # every image ranked in a batch of 16
    summary = clip_mod.rank_summary(ranks)
    assert summary == {"rank_mean": 1.0, "rank_median": 1.0, "rank_variance": 0.0, "ranked_pairs": 40}
    assert clip_mod.mean_cosine(emb, emb) == pytest.approx(1.0)
    # captions paired with the wrong images: ranks spread over 1..16 (mean ≈ 8.5 for random pairs)
    wrong = clip_mod.caption_ranks(emb, np.roll(emb, 1, axis=0))
    assert wrong.min() >= 1 and wrong.max() <= 16 and wrong.mean() > 3
    assert len(clip_mod.caption_ranks(emb[:15], emb[:15])) == 0  # fewer than 16 pairs: no rank


def test_tiny_clip_with_identical_image_and_text_embeddings_ranks_one(tmp_path, captioned):
    """A tiny CLIPModel scores; where image and caption embeddings coincide the rank is 1."""
    clip = clip_mod.load_sarclip(write_tiny_clip(tmp_path / "clip"))
    data = open_captioned(captioned, "test")
    texts = [i.text for i in data.items[:16]]
    txt = clip.embed_texts(texts)
    assert txt.shape == (16, 16)
    assert (clip_mod.caption_ranks(txt, txt) == 1).all()
    scores = clip.scores([clip_mod.sar_rgb(data.read_db(i), data.calibration) for i in data.items[:16]], texts)["all"]
    assert 1 <= scores["rank_mean"] <= 16 and scores["ranked_pairs"] == 16 and -1 <= scores["cosine_mean"] <= 1
    with pytest.raises(clip_mod.ClipMissing):
        clip_mod.load_sarclip(None)


def test_seed001_known_answer_through_evaluate_text():
    """The seed-001 toy case through evaluate-text's protocol call (what evaluate_text_model runs on the
    images it read and generated): 0.0049, the same as Inspect and `sarviz evaluate`."""
    from sarviz.metrics.protocols import seed001_glcm_of_set, seed001_patches

    from _seed001_toy import KNOWN_KL, toy_sets

    real, generated = toy_sets()
    (summary,) = evaluate_sets({"toy": real}, {"toy": generated})
    assert summary.kl == pytest.approx(KNOWN_KL, abs=5e-5)
    # the same patch rule and the same normalisation as the protocol module (no second copy)
    assert summary.patches_real == sum(len(seed001_patches(db)) for db in real)
    np.testing.assert_array_equal(summary.glcm_generated["entropy"], seed001_glcm_of_set(generated)["mean"]["entropy"])
    norm = summary.to_dict()["normalisation"]["real"]
    assert norm["n_images"] == 4 and 0 < norm["clipped_fraction_max"] < 0.05 and "μ_A + 3·σ_A" in norm["formula"]
