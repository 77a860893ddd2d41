"""Cards resolve ~/.sarviz against SARVIZ_HOME, generation decodes with the VAE the checkpoint
was trained with, training targets are resampled in power, downstream uses each file's
calibration (; `sarviz models add` is tested on the trained run in test_train_geo.py)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("diffusers")

from _train_fixtures import write_patch_dataset  # noqa: E402


def test_generation_reads_the_training_vae_and_cards_resolve_against_sarviz_home(tmp_path, monkeypatch):
    from sarviz.generators.diffusion import DiffusionGenerator, checkpoint_card
    from sarviz.registry import ModelRegistry

    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path / "home"))
    ckpt = tmp_path / "home" / "weights" / "ckpt"
    ckpt.mkdir(parents=True)
    template = ModelRegistry().card("huiyanearth-sar")
    # the published card points under ~/.sarviz: with SARVIZ_HOME set, that is where it looks
    gen = DiffusionGenerator(template)
    assert gen.paths.controlnet.startswith(str(tmp_path / "home" / "weights" / "huiyanearth-sar"))
    card = checkpoint_card(str(ckpt), "some/base", template=template)
    assert DiffusionGenerator(card).paths.vae is None  # no VAE recorded: the base's
    (ckpt / "sarviz_train.json").write_text(json.dumps({"vae": str(tmp_path / "my-vae")}))
    gen = DiffusionGenerator(card)
    assert gen.paths.vae == str(tmp_path / "my-vae") and gen.vae_source == "checkpoint sarviz_train.json"


def test_geo_training_targets_are_resampled_in_linear_power(tmp_path):
    """A 64 px speckled patch trained at 32 px: the target keeps the patch's mean power (the
    generator resamples in power too); averaging dB would bias it low by ~1 dB for ENL 4."""
    import numpy as np

    from sarviz.calibration import DEFAULT_CALIBRATION
    from sarviz.generators.condition import ConditionSpec
    from sarviz.registry import ModelRegistry
    from sarviz.scene import read_scene
    from sarviz.training.data import geo_training_dataset, open_patch_dataset

    info = open_patch_dataset(write_patch_dataset(tmp_path / "ds", n_train=1, n_val=0, n_test=0, size=64))
    spec = ConditionSpec.from_dict(ModelRegistry().card("huiyanearth-sar").data["preprocessing"])
    item = geo_training_dataset(info, "train", 32, spec, DEFAULT_CALIBRATION, augment=False)[0]
    patch = read_scene(info.folder / info.rows[0]["file"])
    for channel, pol, db in ((0, "VV", patch.vv_db), (1, "VH", patch.vh_db)):
        target_db = DEFAULT_CALIBRATION.from_signed(item["pixel_values"][channel].numpy(), pol)
        lo, hi = DEFAULT_CALIBRATION.range(pol)
        inside = (db > lo + 1) & (db < hi - 1)  # the calibration clips; compare where it does not
        assert inside.mean() > 0.95
        want = 10 * np.log10(np.mean(10 ** (db / 10)))
        assert 10 * np.log10(np.mean(10 ** (target_db / 10))) == pytest.approx(want, abs=0.3)
        assert np.mean(db) < want - 0.8  # what averaging dB would have given: clearly lower


def test_downstream_maps_generated_images_with_the_calibration_in_their_provenance(tmp_path):
    """evaluate-downstream (item 15): a generated file's own calibration, not the default."""
    import numpy as np
    import rasterio
    from affine import Affine

    from sarviz.batch.downstream import _read_generated, _to_image
    from sarviz.calibration import DEFAULT_CALIBRATION

    path = tmp_path / "gen.tif"
    vv = np.full((16, 16), -10.0, np.float32)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=16,
        height=16,
        count=2,
        dtype="float32",
        crs="EPSG:32630",
        transform=Affine(10, 0, 500000, 0, -10, 4200000),
    ) as dst:
        dst.write(np.stack([vv, vv - 10]))
        dst.descriptions = ("VV", "VH")
        dst.update_tags(
            PROVENANCE=json.dumps(
                {
                    "model_id": "m",
                    "calibration": {"db_range": {"VV": [-20.0, 0.0], "VH": [-30.0, -10.0]}, "shared": False},
                }
            )
        )
    gvv, gvh, cal = _read_generated(path)
    assert cal.range("VV") == (-20.0, 0.0)
    img = _to_image(gvv, gvh, 16, cal)
    assert int(img[0, 0, 0]) == 128 and int(img[1, 0, 0]) == 128  # -10 dB is mid-range of [-20, 0], [-30, -10]
    assert int(_to_image(gvv, gvh, 16)[0, 0, 0]) == round(255 * DEFAULT_CALIBRATION.to_unit(np.float32(-10.0), "VV"))
