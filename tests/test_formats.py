"""Every on-disk artifact (sarviz.formats): save → load gives the same thing back; a missing or
corrupt file gives one line naming what is wrong (a SarvizError); a failed save leaves no
half-written file and an existing one unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import make_scene
from sarviz.calibration import DEFAULT_CALIBRATION
from sarviz.errors import (
    ClipMissing,
    DatasetError,
    EmulatorError,
    FormatError,
    GenerationError,
    SarvizError,
    SceneError,
    StudyError,
    WeightsMissing,
)
from sarviz.formats import artifact_classes


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert isinstance(exc.value, SarvizError)
    assert text and "\n" not in text and "Traceback" not in text
    return text


def no_leftovers(folder: Path) -> list[str]:
    """Temporary files an atomic write would leave behind on failure (there must be none)."""
    return [p.name for p in Path(folder).rglob("*") if p.name.endswith(".part") or p.name.startswith(".tmp")]


def test_every_artifact_is_registered_with_its_files():
    classes = artifact_classes()
    assert set(classes) == {
        "scene-file",
        "patch-dataset",
        "captioned-dataset",
        "training-run",
        "controlnet-checkpoint",
        "text-run",
        "sarclip",
        "emulator-weights",
        "model-card",
        "batch-folder",
        "stac-catalog",
        "evaluation-report",
        "study-export",
        "generated-image",
        "sensor-profile",
        "sensor-comparison",
        "sar-geotiff",
        "sar2sar-pairs",
        "sar2sar-run",
        "render-output",
    }
    for name, cls in classes.items():
        assert callable(getattr(cls, "load")) and callable(getattr(cls, "save")), name


# -- scene file ----------------------------------------------------------------------------------
def test_scene_file_round_trip_and_errors(tmp_path):
    from sarviz.formats.scene_file import SceneFile

    scene = make_scene(size=(20, 24))
    path = SceneFile(scene).save(tmp_path / "s.tif")
    back = SceneFile.load(path).scene
    np.testing.assert_allclose(back.vv_db, scene.vv_db, rtol=1e-6)
    np.testing.assert_allclose(back.embedding, scene.embedding, rtol=1e-6)
    assert back.crs == scene.crs and back.transform == scene.transform and back.scene_id == scene.scene_id

    good = path.read_bytes()
    broken = make_scene(size=(20, 24))
    broken.vv_db = np.zeros((3, 3), "float32")  # fails mid-write
    with pytest.raises(Exception):
        SceneFile(broken).save(path)
    assert path.read_bytes() == good and not no_leftovers(tmp_path)

    (tmp_path / "bad.tif").write_bytes(good[: len(good) // 3])
    with pytest.raises(SceneError) as exc:
        SceneFile.load(tmp_path / "bad.tif")
    assert "bad.tif" in one_line(exc)


# -- patch dataset ---------------------------------------------------------------------------------
def _patch_dataset(root: Path):
    from sarviz.formats.patch_dataset import FORMAT, PatchDatasetFolder
    from sarviz.scene import TRAINING_PATCH_BANDS

    rows = [
        {
            "id": f"p{i}",
            "file": f"patches/p{i}.tif",
            "split": s,
            "lon": "1.0",
            "lat": "2.0",
            "date": "2024-06-01",
            "orbit": "",
            "relative_orbit": "",
            "angle_mean": "37.5",
            "landcover": "water",
            "landcover_fractions": "",
            "embedding_source": "alphaearth",
            "source_scene": "x",
            "provenance": "",
            "width": "",
            "height": "",
        }
        for i, s in enumerate(["train", "val", "test", "train"])
    ]
    info = {
        "format": FORMAT,
        "size": 16,
        "bands": list(TRAINING_PATCH_BANDS),
        "calibration": DEFAULT_CALIBRATION.to_dict(),
        "counts": {"train": 2, "val": 1, "test": 1},
    }
    return PatchDatasetFolder(root, info, rows)


def test_patch_dataset_round_trip_and_errors(tmp_path):
    from sarviz.formats.patch_dataset import INFO_FILE, MANIFEST_FILE, PatchDatasetFolder

    ds = _patch_dataset(tmp_path / "ds")
    ds.save()
    back = PatchDatasetFolder.load(tmp_path / "ds")
    assert back.info == json.loads(json.dumps(ds.info)) and back.rows == ds.rows
    assert [r["id"] for r in back.split("train")] == ["p0", "p3"]  # ordered by id
    assert back.folder == back.root and back.meta is back.info  # the training code's names

    (tmp_path / "ds" / INFO_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(DatasetError) as exc:
        PatchDatasetFolder.load(tmp_path / "ds")
    assert INFO_FILE in one_line(exc)
    ds.save()
    (tmp_path / "ds" / MANIFEST_FILE).unlink()
    with pytest.raises(DatasetError) as exc:
        PatchDatasetFolder.load(tmp_path / "ds")
    assert MANIFEST_FILE in one_line(exc)
    with pytest.raises(DatasetError) as exc:
        PatchDatasetFolder.load(tmp_path / "nowhere")
    assert "does not exist" in one_line(exc)


def test_training_code_opens_the_same_class(tmp_path):
    from sarviz.formats.patch_dataset import PatchDatasetFolder
    from sarviz.training.data import PatchDatasetInfo, open_patch_dataset

    _patch_dataset(tmp_path / "ds").save()
    assert PatchDatasetInfo is PatchDatasetFolder
    assert isinstance(open_patch_dataset(tmp_path / "ds"), PatchDatasetFolder)


# -- captioned dataset -------------------------------------------------------------------------------
def test_captioned_dataset_round_trip_and_errors(tmp_path):
    from PIL import Image

    from sarviz.formats.captioned import FORMAT, INFO_FILE, METADATA_FILE, CaptionedDataset, open_captioned

    root = tmp_path / "ds" / "captioned"
    info = {
        "format": FORMAT,
        "token": "<SAR>",
        "polarisation": "VV",
        "image_mode": "L",
        "calibration": DEFAULT_CALIBRATION.to_dict(),
        "counts": {"train": 1, "val": 0, "test": 1},
    }
    entries = {
        "train": [{"file_name": "a.png", "text": "<SAR> water", "id": "a", "label": "water", "lat": 1.0, "lon": 2.0}],
        "test": [{"file_name": "b.png", "text": "<SAR> trees", "id": "b", "label": "trees", "lat": 3.0, "lon": 4.0}],
    }
    CaptionedDataset(root, info, entries).save()
    for split, rows in entries.items():
        Image.fromarray(np.full((8, 8), 128, np.uint8)).save(
            CaptionedDataset.image_dir(root, split) / rows[0]["file_name"]
        )
    back = CaptionedDataset.load(tmp_path / "ds")  # the patch dataset folder holding captioned/
    assert back.root == root and back.info == info and back.entries == entries
    test = open_captioned(root, "test")
    assert [i.label for i in test.items] == ["trees"]
    vv = test.read_db(test.items[0])["VV"]
    lo, hi = DEFAULT_CALIBRATION.range("VV")
    assert np.allclose(vv, lo + 128 / 255 * (hi - lo), atol=1e-4)

    (root / "test" / METADATA_FILE).write_text('{"file_name": "b.png"}\n', encoding="utf-8")  # no text
    with pytest.raises(DatasetError) as exc:
        open_captioned(root, "test")
    assert f"{METADATA_FILE}:1" in one_line(exc)
    (root / "train" / METADATA_FILE).write_text('{"file_name": "../../x.png", "text": "t"}\n', encoding="utf-8")
    with pytest.raises(DatasetError) as exc:
        CaptionedDataset.load(root)
    assert "outside" in one_line(exc)
    (root / INFO_FILE).unlink()
    with pytest.raises(DatasetError) as exc:
        CaptionedDataset.load(root)
    assert INFO_FILE in one_line(exc)


# -- training run -----------------------------------------------------------------------------------
def test_training_run_round_trip_and_errors(tmp_path):
    from sarviz.formats.base import ArtifactMissing
    from sarviz.formats.training_run import RUN_FILE, RunLog, TrainingRun, checkpoint_dir, list_checkpoints

    log = RunLog(tmp_path, kind="geo", config={"max_steps": 4})
    log.write(step=2)
    log.add_loss({"step": 1, "loss": 0.5})
    log.add_loss({"step": 2, "loss": 0.25})
    log.flush_losses()
    run = TrainingRun.load(tmp_path)
    assert run.meta["kind"] == "geo" and run.meta["step"] == 2 and run.meta["config"] == {"max_steps": 4}
    assert [r["loss"] for r in run.read_losses()] == ["0.5", "0.25"]
    TrainingRun(tmp_path / "copy", run.meta).save()
    assert TrainingRun.load(tmp_path / "copy").meta == run.meta
    checkpoint_dir(tmp_path, 7).mkdir()
    assert [n for n, _ in list_checkpoints(tmp_path)] == [7]

    with pytest.raises(ArtifactMissing) as exc:
        TrainingRun.load(tmp_path / "nowhere")
    assert RUN_FILE in one_line(exc)
    (tmp_path / RUN_FILE).write_text("[1, 2]")
    with pytest.raises(FormatError) as exc:
        TrainingRun.load(tmp_path)
    assert "not a JSON object" in one_line(exc)


# -- ControlNet checkpoint ------------------------------------------------------------------------------
def _tiny_controlnet(channels: int = 65):
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(0)
    return ControlNetModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        in_channels=4,
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=8,
        attention_head_dim=2,
        conditioning_embedding_out_channels=(4, 8),
        conditioning_channels=channels,
    )


def test_controlnet_checkpoint_round_trip_and_published_layout(tmp_path):
    import torch
    from safetensors.torch import save_file

    from sarviz.formats.controlnet import (
        COND_CONV_KEY,
        PICKLE_NAME,
        RUN_FORMAT,
        SAFETENSORS_NAME,
        TRAIN_META,
        ControlNetCheckpoint,
    )
    from sarviz.generators.diffusion import load_controlnet

    model = _tiny_controlnet()
    meta = {"step": 3, "calibration": DEFAULT_CALIBRATION.to_dict()}
    ControlNetCheckpoint(tmp_path / "ck", meta).save(controlnet=model)
    back = ControlNetCheckpoint.load(tmp_path / "ck")
    assert back.meta == {**meta, "format": RUN_FORMAT} and back.conditioning_channels() == 65
    state = back.state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(state[k], v), k
    loaded, info = load_controlnet(tmp_path / "ck")  # the generator reads it through the same class
    assert info["conditioning_channels"] == 65

    # the published release: config says 3 channels, "module." keys, no sarviz_train.json
    pub = tmp_path / "published"
    pub.mkdir()
    config = json.loads(model.to_json_string())
    config["conditioning_channels"] = 3
    (pub / "config.json").write_text(json.dumps(config))
    save_file({f"module.{k}": v.contiguous() for k, v in model.state_dict().items()}, str(pub / SAFETENSORS_NAME))
    ck = ControlNetCheckpoint.load(pub)
    assert ck.meta == {} and ck.conditioning_channels() == 65 and COND_CONV_KEY in ck.state_dict()

    # pickle only with allow_pickle
    pk = tmp_path / "pickled"
    pk.mkdir()
    (pk / "config.json").write_text(json.dumps(config))
    torch.save({k: v for k, v in model.state_dict().items()}, pk / PICKLE_NAME)
    with pytest.raises(GenerationError) as exc:
        ControlNetCheckpoint.load(pk)
    assert "pickle" in one_line(exc)
    assert ControlNetCheckpoint.load(pk, allow_pickle=True).conditioning_channels() == 65

    (pub / SAFETENSORS_NAME).write_bytes(b"\x00" * 16)  # truncated download
    with pytest.raises(GenerationError) as exc:
        ControlNetCheckpoint.load(pub).state_dict()
    assert "safetensors" in one_line(exc)
    (tmp_path / "ck" / TRAIN_META).write_text("{oops")
    with pytest.raises(GenerationError) as exc:
        ControlNetCheckpoint.load(tmp_path / "ck")
    assert TRAIN_META in one_line(exc)
    with pytest.raises(WeightsMissing) as exc:
        ControlNetCheckpoint.load(tmp_path / "nowhere")
    one_line(exc)


# -- text run ---------------------------------------------------------------------------------------------
def test_text_run_round_trip_and_errors(tmp_path):
    import torch
    from diffusers import UNet2DConditionModel

    from sarviz.formats.text_run import EMBEDS_FILE, FORMAT, MODEL_FILE, UNET_DIR, TextRun

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=8,
        attention_head_dim=2,
    )
    meta = {
        "base": "/somewhere/sd15",
        "base_kind": "sd15",
        "token": "<SAR>",
        "unet": "full",
        "calibration": DEFAULT_CALIBRATION.to_dict(),
        "polarisation": "VV",
        "image_mode": "L",
        "step": 5,
    }
    embeds = {"<SAR>": torch.arange(8, dtype=torch.float32)}
    TextRun(tmp_path / "run", meta).save(unet=unet, embeds=embeds)
    back = TextRun.load(tmp_path / "run")
    assert back.meta == {**meta, "format": FORMAT}
    assert set(back.weight_files()) == {UNET_DIR, "learned_embeds"}
    again = UNet2DConditionModel.from_pretrained(str(tmp_path / "run" / UNET_DIR))
    for k, v in unet.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k

    (tmp_path / "run" / EMBEDS_FILE).unlink()
    with pytest.raises(WeightsMissing) as exc:
        TextRun.load(tmp_path / "run")
    assert EMBEDS_FILE in one_line(exc)
    (tmp_path / "run" / MODEL_FILE).write_text(json.dumps({**meta, "format": FORMAT, "unet": "half"}))
    with pytest.raises(GenerationError) as exc:
        TextRun.load(tmp_path / "run")
    assert "unet must be" in one_line(exc)


# -- SAR-CLIP folder --------------------------------------------------------------------------------------
def test_sarclip_folder_round_trip_and_errors(tmp_path):
    from transformers import CLIPConfig, CLIPModel

    from sarviz.formats.sarclip import FORMAT, INFO_FILE, SarClipFolder

    config = CLIPConfig(
        text_config={
            "hidden_size": 8,
            "intermediate_size": 16,
            "num_attention_heads": 2,
            "num_hidden_layers": 1,
            "vocab_size": 50,
            "max_position_embeddings": 16,
        },
        vision_config={
            "hidden_size": 8,
            "intermediate_size": 16,
            "num_attention_heads": 2,
            "num_hidden_layers": 1,
            "image_size": 16,
            "patch_size": 8,
        },
        projection_dim=8,
    )
    info = {"base": "clip", "train_losses": [1.0, 0.5], "calibration": DEFAULT_CALIBRATION.to_dict()}
    SarClipFolder(tmp_path / "clip", info).save(model=CLIPModel(config))
    back = SarClipFolder.load(tmp_path / "clip")
    assert back.info == {**info, "format": FORMAT}
    assert CLIPModel.from_pretrained(str(tmp_path / "clip")).config.projection_dim == 8

    old = (tmp_path / "clip" / INFO_FILE).read_bytes()

    class Unsavable:
        def save_pretrained(self, *a, **k):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        SarClipFolder(tmp_path / "clip", {"new": True}).save(model=Unsavable())
    assert (tmp_path / "clip" / INFO_FILE).read_bytes() == old  # the old folder survives
    assert [p.name for p in tmp_path.iterdir()] == ["clip"]

    (tmp_path / "clip" / INFO_FILE).write_text("{")
    with pytest.raises(ClipMissing) as exc:
        SarClipFolder.load(tmp_path / "clip")
    assert INFO_FILE in one_line(exc)
    with pytest.raises(ClipMissing) as exc:
        SarClipFolder.load(tmp_path)
    assert "not a CLIP model folder" in one_line(exc)


# -- emulator weights -------------------------------------------------------------------------------------
def test_emulator_weights_round_trip_and_errors(tmp_path):
    from sarviz.emulator.radiometric import RadiometricModel
    from sarviz.formats.emulator_weights import FORMAT, EmulatorWeights

    rng = np.random.default_rng(0)
    tensors = {
        "weight": rng.normal(size=(64, 2)),
        "intercept": np.array([-10.0, -17.0]),
        "feature_mean": rng.normal(size=64),
    }
    meta = {"feature_map": "linear", "ridge_lambda": 1.0, "reference_angle_deg": 37.5, "cos_power": 2.0}
    path = EmulatorWeights(tensors, meta).save(tmp_path / "em.safetensors")
    back = EmulatorWeights.load(path)
    assert back.meta == {**meta, "format": FORMAT}
    for k, v in tensors.items():
        np.testing.assert_array_equal(back.tensors[k], v)
    model = RadiometricModel.load(path)  # the model reads the same file through the class
    np.testing.assert_array_equal(model.weight, tensors["weight"])

    with pytest.raises(EmulatorError) as exc:
        EmulatorWeights(tensors, meta).save(tmp_path / "em.bin")
    assert ".safetensors" in one_line(exc)
    with pytest.raises(EmulatorError):
        EmulatorWeights({"weight": tensors["weight"]}, meta).save(path)
    assert EmulatorWeights.load(path).tensors.keys() == tensors.keys() and not no_leftovers(tmp_path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(EmulatorError) as exc:
        EmulatorWeights.load(path)
    assert "em.safetensors" in one_line(exc)


# -- model card -------------------------------------------------------------------------------------------
def test_model_card_round_trip_and_errors(tmp_path):
    from sarviz.formats.model_card import ModelCard
    from sarviz.registry import ModelRegistry

    card = ModelCard("m1", "Model one", "emulator", tmp_path / "m1.json", {"weights": "w.safetensors", "units": "dB"})
    card.save()
    back = ModelCard.load(tmp_path / "m1.json")
    assert (back.id, back.name, back.kind) == ("m1", "Model one", "emulator")
    assert back.data == {"id": "m1", "name": "Model one", "kind": "emulator", "weights": "w.safetensors", "units": "dB"}
    (tmp_path / "broken.json").write_text('{"name": "no id"}')
    with pytest.raises(FormatError) as exc:
        ModelCard.load(tmp_path / "broken.json")
    assert "broken.json" in one_line(exc)
    reg = ModelRegistry([tmp_path])  # the registry lists the good card and reports the broken one
    assert reg.ids() == ["m1"] and len(reg.problems) == 1 and "broken.json" in reg.problems[0]


# -- batch folder and STAC catalog --------------------------------------------------------------------------
def test_batch_folder_round_trip_and_errors(tmp_path):
    from sarviz.batch.points import BatchPoint
    from sarviz.errors import BatchError
    from sarviz.formats.batch_folder import FORMAT, POINTS_FILE, SETTINGS_FILE, BatchConfig, BatchFolder

    config = BatchConfig(model="emulator", size=32, seeds=(0, 1))
    points = [BatchPoint("a", 1.0, 2.0, 2024, "water", "r1"), BatchPoint("b", 3.0, 4.0)]
    BatchFolder(tmp_path / "b").save(config, points, {"created": "now"})
    back = BatchFolder.load(tmp_path / "b")
    assert back.config() == config and back.read_settings()["format"] == FORMAT
    assert (tmp_path / "b" / POINTS_FILE).read_text().splitlines()[1:] == ["a,1.0,2.0,2024,water,r1", "b,3.0,4.0,,,"]
    rows = [
        {"id": "b", "lat": 3.0, "lon": 4.0, "status": "done"},
        {"id": "a", "lat": 1.0, "lon": 2.0, "status": "failed"},
    ]
    back.write_manifest(rows)
    assert [r["id"] for r in back.read_manifest()] == ["a", "b"]
    with pytest.raises(BatchError) as exc:
        BatchFolder(tmp_path / "b").save(BatchConfig(model="other"), points, {})
    assert "other settings" in one_line(exc)

    (tmp_path / "b" / SETTINGS_FILE).write_text('{"format": "nope"}')
    with pytest.raises(FormatError) as exc:
        BatchFolder.load(tmp_path / "b")
    assert SETTINGS_FILE in one_line(exc)
    with pytest.raises(FormatError):
        BatchFolder.load(tmp_path / "nowhere")


def test_stac_catalog_round_trip_and_errors(tmp_path):
    from sarviz.formats.stac_catalog import CATALOG_FILE, StacCatalog, build_item, validate_catalog, write_item

    scene = make_scene(size=(8, 8))
    item_dir = tmp_path / "items" / "a"
    item_dir.mkdir(parents=True)
    item = build_item(
        "a",
        item_dir,
        crs=scene.crs,
        transform=scene.transform,
        width=8,
        height=8,
        bbox_wgs84=scene.bounds_wgs84,
        dates=scene.dates,
        assets={},
        properties={"model": "m"},
    )
    write_item(item, item_dir / "a.json")
    StacCatalog(tmp_path).save([item_dir / "a.json"], "t", "d")
    back = StacCatalog.load(tmp_path)
    assert back.item_ids() == ["a"] and validate_catalog(back.path) == 2
    (tmp_path / CATALOG_FILE).write_text("{}")
    with pytest.raises(FormatError) as exc:
        StacCatalog.load(tmp_path)
    assert CATALOG_FILE in one_line(exc)


# -- evaluation report and study export ----------------------------------------------------------------------
def test_evaluation_report_round_trip_and_errors(tmp_path):
    from sarviz.formats.evaluation_report import EVALUATION_JSON, KL_BY_CLASS_PNG, TABLE1_CSV, EvaluationReport

    files = {EVALUATION_JSON: '{"format": "x"}', TABLE1_CSV: "group,n\nall,2\n", KL_BY_CLASS_PNG: b"\x89PNG..."}
    written = EvaluationReport(tmp_path / "r", "batch", files).save()
    assert set(written) == set(files)
    back = EvaluationReport.load(tmp_path / "r")
    assert back.files == files
    (tmp_path / "r" / EVALUATION_JSON).unlink()
    with pytest.raises(FormatError) as exc:
        EvaluationReport.load(tmp_path / "r")
    assert EVALUATION_JSON in one_line(exc)


def test_study_export_round_trip_and_errors(tmp_path):
    from sarviz.formats.study_export import ANSWERS_CSV, StudyExport

    export = StudyExport(tmp_path / "e", "a,b\n1,2\n", "level,n\nL1,3\n", '{"n": 3}', b"\x89PNG fake")
    assert export.save() == ["answers.csv", "summary.csv", "report.json", "fig7.png"]
    back = StudyExport.load(tmp_path / "e")
    assert (back.answers_csv, back.summary_csv, back.report_json, back.figure_png) == (
        export.answers_csv,
        export.summary_csv,
        export.report_json,
        export.figure_png,
    )
    (tmp_path / "e" / ANSWERS_CSV).unlink()
    with pytest.raises(FormatError) as exc:
        StudyExport.load(tmp_path / "e")
    assert ANSWERS_CSV in one_line(exc)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StudyError) as exc:
        export.save(tmp_path / "file" / "sub")
    assert "cannot make the folder" in one_line(exc)


# -- generated image -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("georeferenced", [True, False])
def test_generated_image_round_trip_and_errors(tmp_path, georeferenced):
    from sarviz.formats.generated_image import GeneratedImage

    scene = make_scene(size=(12, 10))
    prov = {"model_id": "m", "seed": 3, "calibration": DEFAULT_CALIBRATION.to_dict()}
    image = GeneratedImage(
        scene.vv_db.astype("float32"),
        scene.vh_db.astype("float32"),
        scene.crs if georeferenced else None,
        scene.transform if georeferenced else None,
        prov,
    )
    path = image.save(tmp_path / "g.tif")
    back = GeneratedImage.load(path)
    np.testing.assert_array_equal(back.vv_db, image.vv_db)
    np.testing.assert_array_equal(back.vh_db, image.vh_db)
    assert back.provenance == prov
    assert (back.crs == scene.crs and back.transform == scene.transform) if georeferenced else back.crs is None

    good = path.read_bytes()
    with pytest.raises(GenerationError):  # a malformed calibration is refused before anything is written
        GeneratedImage(image.vv_db, None, None, None, {"calibration": {"db_range": {"VV": [5, 1]}}}).save(path)
    assert path.read_bytes() == good and not no_leftovers(tmp_path)
    path.write_bytes(good[:200])
    with pytest.raises(GenerationError) as exc:
        GeneratedImage.load(path)
    assert "g.tif" in one_line(exc)


def test_sar2sar_artifacts_round_trip_and_errors(tmp_path):
    from affine import Affine
    from rasterio.crs import CRS

    from sarviz.formats.sar2sar import (
        PAIRS_FILE,
        RUN_FILE,
        PairsDataset,
        RenderOutput,
        Sar2SarError,
        Sar2SarRun,
        SarGeoTiff,
    )

    rng = np.random.default_rng(0)
    db = (10 * np.log10(rng.gamma(4.4, 1 / 4.4, (20, 24))) - 12).astype(np.float32)
    crs, t = CRS.from_epsg(32630), Affine(10.0, 0, 500000.0, 0, -10.0, 4200000.0)
    # SAR GeoTIFF: bands by polarisation, georeference kept; not-SAR and not-georeferenced refused in one line
    img = SarGeoTiff({"VV": db, "VH": db - 7}, crs, t, tags={"source": "test"})
    back = SarGeoTiff.load(img.save(tmp_path / "in.tif"))
    assert list(back.bands) == ["VV", "VH"] and back.crs == crs and back.transform == t
    np.testing.assert_array_equal(back.bands["VH"], db - 7)
    with pytest.raises(Sar2SarError) as exc:
        SarGeoTiff.load(SarGeoTiff({"VV": db + 200}, crs, t).save(tmp_path / "bright.tif"))
    assert "not σ⁰ in dB" in one_line(exc)
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(Sar2SarError) as exc:
        SarGeoTiff.load(tmp_path / "bad.tif")
    assert "bad.tif" in one_line(exc)
    # render output: bands, masks, provenance round-trip; a failed write leaves the old file
    out = RenderOutput({"VV": db, "VV_seed_spread_db": np.abs(db) / 10}, crs, t, {"seed": 3}, {"VV": db > -8})
    path = out.save(tmp_path / "render.tif")
    again = RenderOutput.load(path)
    assert list(again.bands) == ["VV", "VV_seed_spread_db"] and again.provenance == {"seed": 3}
    np.testing.assert_array_equal(again.masks["VV"], db > -8)
    good = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - rasterio refuses a band of another shape
        RenderOutput({"VV": db, "VH": db[:5]}, crs, t, {}).save(path)
    assert path.read_bytes() == good and not no_leftovers(tmp_path)
    # pairs dataset and run: metadata with its format; missing or foreign ones refused in one line
    PairsDataset.write_split(tmp_path / "pairs", "train", [{"id": "a", **PairsDataset.chip_paths("a")}])
    PairsDataset.write_info(tmp_path / "pairs", {"options": {"size": 8}})
    pairs = PairsDataset.load(tmp_path / "pairs")
    assert pairs.rows("train")[0]["conditioning_image"] == "conditioning/a.png" and pairs.rows("val") == []
    (tmp_path / "pairs" / PAIRS_FILE).write_text(json.dumps({"format": "other/1"}))
    with pytest.raises(Sar2SarError) as exc:
        PairsDataset.load(tmp_path / "pairs")
    assert PAIRS_FILE in one_line(exc)
    with pytest.raises(Sar2SarError) as exc:
        Sar2SarRun.load(tmp_path)
    assert "not a sar2sar model" in one_line(exc)
    from diffusers import ControlNetModel

    cn = ControlNetModel(
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        layers_per_block=1,
        cross_attention_dim=8,
        attention_head_dim=2,
        norm_num_groups=4,
        conditioning_embedding_out_channels=(4, 8),
    )
    run = Sar2SarRun(tmp_path / "run", {"step": 2, "base": "b"}).save(controlnet=cn)
    loaded = Sar2SarRun.load(run)
    assert loaded.meta["step"] == 2 and Sar2SarRun.read_step(run) == 2 and len(loaded.weights_sha256()) == 64
    (run / RUN_FILE).write_text("{")
    with pytest.raises(Sar2SarError):
        Sar2SarRun.load(run)


def test_formats_is_core_it_imports_no_higher_layer_and_no_torch():
    import subprocess
    import sys

    code = (
        "import sys, sarviz.formats as f; f.artifact_classes(); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith(("
        "'sarviz.generators', 'sarviz.training', 'sarviz.batch', 'sarviz.datasets', 'sarviz.evaluation', "
        "'sarviz.study', 'sarviz.ui', 'sarviz.commands', 'sarviz.emulator', 'sarviz.metrics'))); print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- sensor profile (seed 003) -----------------------------------------------------------------------
def test_sensor_profile_and_comparison_round_trip_and_errors(tmp_path):
    from sarviz.formats.sensor_profile import COMPARISON_FILE, SensorComparison, SensorProfile

    def profile(name: str, enl: float) -> SensorProfile:
        return SensorProfile(
            name=name,
            n_images=2,
            enl_median=enl,
            enl_per_image=[enl, enl],
            hf_ratio_median=0.4,
            hf_radius=0.25,
            histogram=[0.25, 0.75],
            saturated_fraction=0.02,
            glcm={"contrast": 1.5},
            notes=["a note"],
        )

    ref, other = profile("ref", 4.0), profile("content", 1.0)
    assert SensorProfile.load(ref.save(tmp_path / "ref.json")) == ref
    comparison = SensorComparison(ref, [other], {"content": {"abs_delta_log_enl": 1.386}})
    path = comparison.save(tmp_path)  # a folder: its file name comes from the artifact
    assert path.name == COMPARISON_FILE and SensorComparison.load(tmp_path) == comparison
    (tmp_path / "bad.json").write_text('{"format": "something-else"}')
    with pytest.raises(FormatError, match="bad.json"):
        SensorProfile.load(tmp_path / "bad.json")
    (tmp_path / "short.json").write_text('{"format": "sarviz-sensor-profile/1", "name": "x"}')
    with pytest.raises(FormatError, match="lacks"):
        SensorProfile.load(tmp_path / "short.json")
    with pytest.raises(FormatError, match="missing"):
        SensorComparison.load(tmp_path / "none.json")
