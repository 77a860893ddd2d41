"""Seed 003 stage 2 (attention-distillation migration) on a tiny SD 1.5-style base built from configs."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from _migration_fixtures import speckle_amplitude, write_geotiff, write_png
from _waits import patience
from sarviz.errors import GenerationError
from sarviz.generators.base import GenerationResult
from sarviz.migration import losses as L
from sarviz.migration.attention import choose_layers, self_attention_layers
from sarviz.migration.images import SarAmplitude, normalise_amplitude, read_sar_image
from sarviz.migration.migrate import (
    FeatureExtractor,
    MigrationSettings,
    migrate_image,
    migrated_image,
)

from _text_fixtures import SIZE, one_torch_thread  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def base(tiny_sd15_base):
    return tiny_sd15_base  # read only: the session's tiny SD 1.5 (tests/tiny_models.py)


@pytest.fixture(scope="module")
def extractor(base, one_torch_thread):  # noqa: F811
    return FeatureExtractor(base, "ad-default", device="cpu", dtype="float32")


def _sar(amplitude, name="x"):
    norm, threshold = normalise_amplitude(amplitude)
    return SarAmplitude(norm, threshold)


def test_processor_caches_exactly_the_chosen_layers(extractor):
    all_self = self_attention_layers(extractor.unet)
    assert extractor.layers == [
        n for n in all_self if n.startswith("up_blocks.0.")
    ]  # the tiny U-Net's last decoder block with attention
    latent = extractor.encode(_sar(speckle_amplitude(SIZE, 4, 0)).amplitude[None])
    feats = extractor.features(latent, torch.tensor(500))
    assert feats.layers == extractor.layers
    assert all(q.shape[0] == 1 and q.shape == k.shape for q, k in zip(feats.q, feats.k))
    # caching does not change the U-Net's output (diffusers' own processor elsewhere, same maths here)
    with torch.no_grad():
        cached = extractor.unet(latent, 500, encoder_hidden_states=extractor.null_embeds).sample
        from diffusers.models.attention_processor import AttnProcessor2_0

        processors = extractor.unet.attn_processors
        extractor.unet.set_attn_processor(AttnProcessor2_0())
        plain = extractor.unet(latent, 500, encoder_hidden_states=extractor.null_embeds).sample
        extractor.unet.set_attn_processor(processors)
    torch.testing.assert_close(cached, plain)
    deep = choose_layers(extractor.unet, "shallow-deep")
    assert any(n.startswith("mid_block.") for n in deep) and any(n.startswith("down_blocks.") for n in deep)
    assert choose_layers(extractor.unet, "mid_block.*") == [n for n in all_self if n.startswith("mid_block.")]


def test_ad_loss_zero_for_own_style_and_content_loss_zero_at_init(extractor):
    latent = extractor.encode(_sar(speckle_amplitude(SIZE, 4, 1)).amplitude[None])
    with torch.no_grad():
        feats = extractor.features(latent, torch.tensor(300))
        assert float(L.ad_loss(feats, feats)) == pytest.approx(0.0, abs=1e-6)
        assert float(L.content_loss(feats, feats)) == 0.0
        other = extractor.features(
            extractor.encode(_sar(speckle_amplitude(SIZE, 1, 2)).amplitude[None]), torch.tensor(300)
        )
        assert float(L.ad_loss(feats, other)) > 1e-4


def test_speckle_loss_zero_for_identical_and_positive_for_one_vs_four_looks():
    one = _sar(speckle_amplitude(SIZE, 1, 3, pattern=False)).amplitude
    four = _sar(speckle_amplitude(SIZE, 4, 4, pattern=False)).amplitude
    corners_one = torch.as_tensor(L.homogeneous_patch_corners(one, 16))
    corners_four = torch.as_tensor(L.homogeneous_patch_corners(four, 16))
    a1, a4 = torch.as_tensor(one), torch.as_tensor(four)
    assert float(L.speckle_loss(a1, corners_one, [a1], [corners_one], 16)) == 0.0
    gap = float(L.speckle_loss(a1, corners_one, [a4], [corners_four], 16))
    assert gap > np.log(2.0)  # ENL ~1 vs ~4: log ratio ~1.4


def test_spectrum_loss_responds_to_blur():
    from scipy.ndimage import gaussian_filter

    img = _sar(speckle_amplitude(SIZE, 4, 5)).amplitude
    a = torch.as_tensor(img)
    assert float(L.spectrum_loss(a, [a], 0.25)) == 0.0
    blurred = torch.as_tensor(gaussian_filter(img, 1.5))
    assert float(L.spectrum_loss(blurred, [a], 0.25)) > 0.01
    from sarviz.metrics.sensor_profile import high_frequency_ratio, high_pass_mask

    assert high_frequency_ratio(gaussian_filter(img, 1.5), 0.25) < high_frequency_ratio(img, 0.25)
    np.testing.assert_array_equal(high_pass_mask(SIZE, SIZE, 0.25), L.high_pass_mask(SIZE, SIZE, 0.25).numpy())


def test_a_few_iterations_lower_the_loss_and_a_seed_repeats(extractor):
    content = _sar(speckle_amplitude(SIZE, 8, 6))
    style = _sar(speckle_amplitude(SIZE, 1, 7))
    # style terms only: the loss falls from the content's own start
    style_only = migrate_image(content, [style], extractor, MigrationSettings(steps=1, iters=6, w_cnt=0.0), seed=3)
    assert style_only.losses[-1]["total"] < style_only.losses[0]["total"]
    # with the content term (0 at the start, its L1 subgradient 0, so Adam's first step raises it): falls after that
    settings = MigrationSettings(steps=1, iters=6)
    out = migrate_image(content, [style], extractor, settings, seed=3)
    assert out.losses[0]["L_cnt"] == 0.0 and out.losses[-1]["total"] < out.losses[1]["total"]
    assert {"L_AD", "L_cnt", "L_sp", "L_f"} <= set(out.losses[0])
    assert out.amplitude.shape == (SIZE, SIZE) and 0 <= out.amplitude.min() and out.amplitude.max() <= 1
    again = migrate_image(content, [style], extractor, settings, seed=3)
    np.testing.assert_array_equal(out.amplitude, again.amplitude)
    assert [r["total"] for r in again.losses] == [r["total"] for r in out.losses]


def test_decode_every_and_crop_and_cancel(extractor):
    content, style = _sar(speckle_amplitude(SIZE, 8, 8)), _sar(speckle_amplitude(SIZE, 1, 9))
    out = migrate_image(content, [style], extractor, MigrationSettings(steps=4, decode_every=2, decode_crop=4))
    assert ["L_f" in r for r in out.losses] == [True, False, True, False]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(GenerationError, match="cancelled"):
        migrate_image(content, [style], extractor, MigrationSettings(steps=2), cancel=cancel)


def test_geotiff_keeps_georeference_and_provenance(tmp_path, extractor):
    src = write_geotiff(tmp_path / "content.tif", speckle_amplitude(SIZE, 8, 10))
    style_path = write_png(tmp_path / "style.png", speckle_amplitude(SIZE, 1, 11))
    content, style = read_sar_image(src), read_sar_image(style_path)
    out = migrate_image(content, [style], extractor, MigrationSettings(steps=2))
    written = migrated_image(content, out).to_geotiff(tmp_path / "out.tif")
    back = GenerationResult.from_geotiff(written)  # the one generated-image artifact
    assert back.crs == content.crs and back.transform == content.transform
    # VV dB on the content's scale: amplitude / the content's μ+3σ is the migrated image again
    lit = out.amplitude > 0
    np.testing.assert_allclose(10 ** (back.vv_db[lit] / 20) / content.threshold, out.amplitude[lit], rtol=1e-5)
    assert back.provenance["style_references"][0]["sha256"] == style.sha256
    assert back.provenance["layers"] == extractor.layers and len(back.provenance["losses"]) == 2
    assert back.provenance["settings"]["w_cnt"] == 0.25


def test_bad_inputs_are_one_line(tmp_path, extractor, base):
    content = _sar(speckle_amplitude(SIZE, 8, 12))
    small = _sar(speckle_amplitude(SIZE // 2, 1, 13))
    with pytest.raises(GenerationError, match="style reference .* px but the content"):
        migrate_image(content, [small], extractor, MigrationSettings(steps=1))
    from PIL import Image

    colour = np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    Image.fromarray(colour).save(tmp_path / "photo.png")
    with pytest.raises(GenerationError, match="colour image"):
        read_sar_image(tmp_path / "photo.png")
    Image.fromarray(np.full((SIZE, SIZE), 7, np.uint8)).save(tmp_path / "flat.png")
    with pytest.raises(GenerationError, match="flat"):
        read_sar_image(tmp_path / "flat.png")
    with pytest.raises(GenerationError, match="matches no self-attention layer"):
        choose_layers(extractor.unet, "up_blocks.9.*")
    (tmp_path / "empty").mkdir()
    from sarviz.migration.images import list_images

    with pytest.raises(GenerationError, match="no image files"):
        list_images(tmp_path / "empty", "content")
    from diffusers import UNet2DConditionModel

    no_attn = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        mid_block_type=None,
        cross_attention_dim=32,
    )
    with pytest.raises(GenerationError, match="no self-attention layers"):
        choose_layers(no_attn, "ad-default")


def test_cli_migrate_writes_one_geotiff_per_content(tmp_path, base, capsys, one_torch_thread):  # noqa: F811
    from sarviz.cli import main

    (tmp_path / "content").mkdir()
    (tmp_path / "refs").mkdir()
    write_geotiff(tmp_path / "content" / "a.tif", speckle_amplitude(SIZE, 8, 20))
    write_png(tmp_path / "content" / "b.png", speckle_amplitude(SIZE, 8, 21))
    write_png(tmp_path / "refs" / "r.png", speckle_amplitude(SIZE, 1, 22))
    code = main(
        [
            "migrate",
            "--content",
            str(tmp_path / "content"),
            "--style",
            str(tmp_path / "refs"),
            "--base",
            str(base),
            "--out",
            str(tmp_path / "out"),
            "--steps",
            "2",
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--json",
        ]
    )
    assert code == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [Path(x["out"]).name for x in lines] == ["a.tif", "b.tif"]
    assert all(x["interface"] == "transform" and x["dtype"] == "float32" for x in lines)  # the run sequence's record
    assert GenerationResult.from_geotiff(tmp_path / "out" / "a.tif").crs is not None
    assert GenerationResult.from_geotiff(tmp_path / "out" / "b.tif").crs is None
    (tmp_path / "empty").mkdir()
    assert (
        main(
            [
                "migrate",
                "--content",
                str(tmp_path / "empty"),
                "--style",
                str(tmp_path / "refs"),
                "--base",
                str(base),
                "--out",
                str(tmp_path / "o2"),
            ]
        )
        == 2
    )
    assert "no image files" in capsys.readouterr().err


def test_background_job_crops_runs_and_cancels(base, tmp_path, one_torch_thread):  # noqa: F811
    from sarviz.migration.job import MigrationJob, centre_crop

    content = read_sar_image(write_geotiff(tmp_path / "c.tif", speckle_amplitude(SIZE + 16, 8, 30)))
    cropped = centre_crop(content, SIZE, 16)
    assert cropped.shape == (SIZE, SIZE) and cropped.transform.c == content.transform.c + 8 * 10
    style = _sar(speckle_amplitude(SIZE + 16, 1, 31))
    job = MigrationJob(
        str(base), content, [style], MigrationSettings(steps=2), size=SIZE, device="cpu", dtype="float32"
    ).start()
    job.wait(600)
    assert job.state["status"] == "done" and job.amplitude.shape == (SIZE, SIZE)
    assert job.result.transform == cropped.transform and len(job.losses) == 2
    stopped = MigrationJob(
        str(base), content, [style], MigrationSettings(steps=50), size=SIZE, device="cpu", dtype="float32"
    )
    stopped.cancel.set()
    stopped.start().wait(600)
    assert stopped.state["status"] == "cancelled"
    bad = MigrationJob(str(tmp_path), content, [style], size=SIZE).start()
    bad.wait(patience(60))
    assert bad.state["status"] == "failed" and "model_index.json is missing" in bad.state["error"]


def test_migrator_transform_is_an_image_transformer(base, tmp_path, one_torch_thread):  # noqa: F811
    from affine import Affine

    from sarviz.generators.base import ImageTransformer, TransformRequest
    from sarviz.migration.migrate import AttentionDistillationMigrator, migration_card

    write_png(tmp_path / "ref.png", speckle_amplitude(SIZE, 1, 40))
    vv = 20 * np.log10(speckle_amplitude(SIZE, 8, 41)) - 10
    vh = 20 * np.log10(speckle_amplitude(SIZE, 8, 42)) - 17
    source = GenerationResult(vv, vh, "EPSG:32630", Affine(10, 0, 500000, 0, -10, 4200000), {"model_id": "emulator"})
    migrator = AttentionDistillationMigrator(migration_card(base, [str(tmp_path / "ref.png")]))
    assert isinstance(migrator, ImageTransformer) and migrator.readiness().ready
    request = TransformRequest(seed=1, steps=1, device="cpu", dtype="float32", options={"polarisations": ["VV"]})
    out = migrator.transform(source, request)
    assert out.crs == source.crs and out.transform == source.transform
    assert not np.array_equal(out.vv_db, source.vv_db) and np.array_equal(out.vh_db, source.vh_db)
    assert out.provenance["source_model_id"] == "emulator" and list(out.provenance["migration"]) == ["VV"]
    assert out.provenance["interface"] == "transform" and out.provenance["settings"]["steps"] == 1
    with pytest.raises(GenerationError, match="unknown migration option"):
        migrator.transform(source, TransformRequest(options={"w_typo": 1}))
    missing = AttentionDistillationMigrator(migration_card(tmp_path / "none", [str(tmp_path / "x.png")])).readiness()
    assert not missing.ready and "model_index.json" in missing.details and "x.png" in missing.details
