"""The diffusion generator on tiny random checkpoints written in the published layout."""

from __future__ import annotations

import hashlib
import json
import shutil
import textwrap
import threading
import time

import numpy as np
import pytest
import rasterio
import torch

from sarviz.cli import main as cli_main  # noqa: E402
from sarviz.generators import runtime  # noqa: E402
from sarviz.generators.base import (  # noqa: E402
    GenerationCancelled,
    GenerationError,
    GenerationRequest,
    GenerationResult,
    WeightsMissing,
)
from sarviz.generators.condition import ConditionError  # noqa: E402
from sarviz.generators.diffusion import DiffusionGenerator, apply_unet_lora, load_controlnet, load_weights_file  # noqa: E402
from sarviz.registry import REPO_MODELS_DIR, ModelRegistry  # noqa: E402

from _diffusion_fixtures import IMAGE_SIZE, tiny_scene, write_card

FP32 = GenerationRequest(seed=7, dtype="float32", device="cpu")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Tiny models on a shared 2-core machine: one thread is 10-20x faster than two
    # (no OpenMP barrier waits against other processes). Restored afterwards.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ckpt(tiny_ckpt):
    return tiny_ckpt


@pytest.fixture(scope="session")
def cards(ckpt, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cards")
    write_card(folder, ckpt)
    write_card(folder, ckpt, model_id="tiny-64ch", preprocessing={"bands": ["embedding"]})
    write_card(
        folder,
        ckpt,
        model_id="tiny-absent",
        weights={"controlnet": str(ckpt.root / "nowhere")},
        how_to_get="ask the authors",
    )
    return folder


@pytest.fixture()
def registry(cards, monkeypatch):
    monkeypatch.setenv("SARVIZ_MODELS", str(cards))
    return ModelRegistry()


# -- loader -------------------------------------------------------------------------------------
def test_controlnet_takes_its_channel_count_from_the_weights(ckpt):
    assert json.loads((ckpt.controlnet / "config.json").read_text())["conditioning_channels"] == 3
    written = load_weights_file(ckpt.controlnet / "diffusion_pytorch_model.safetensors")
    assert all(k.startswith("module.") for k in written)
    model, info = load_controlnet(ckpt.controlnet)
    assert info["conditioning_channels"] == 65 and info["config_conditioning_channels"] == 3
    assert model.controlnet_cond_embedding.conv_in.in_channels == 65
    state = model.state_dict()
    for key, tensor in written.items():
        assert torch.equal(state[key[len("module.") :]], tensor)


def test_lora_tensors_load_exactly_and_change_the_unet(ckpt):
    from diffusers import UNet2DConditionModel
    from peft import get_peft_model_state_dict

    def fresh():
        return UNet2DConditionModel.from_pretrained(ckpt.base, subfolder="unet").eval()

    peft_unet, info = apply_unet_lora(fresh(), ckpt.lora, merge=False)
    loaded = get_peft_model_state_dict(peft_unet)
    written = {k[len("base_model.model.") :]: v for k, v in ckpt.lora_tensors.items()}
    assert info["lora_tensors"] == len(written) > 0
    assert set(loaded) == {f"base_model.model.{k}" for k in written} or set(loaded) == set(written)
    for key, tensor in loaded.items():
        assert torch.equal(tensor, written[key.removeprefix("base_model.model.")])

    torch.manual_seed(0)
    x, t, text = torch.randn(1, 4, 32, 32), torch.tensor([500]), torch.randn(1, 77, 32)
    with torch.no_grad():
        plain = fresh()(x, t, text).sample
        unmerged = peft_unet(x, t, text).sample
        merged = apply_unet_lora(fresh(), ckpt.lora, merge=True)[0](x, t, text).sample
    assert (unmerged - plain).abs().max() > 1e-3  # the LoRA does something
    torch.testing.assert_close(merged, unmerged, atol=1e-4, rtol=1e-4)  # merging does not change it


def test_corrupt_safetensors_and_pickle_opt_in(ckpt, tmp_path):
    bad = tmp_path / "cn"
    shutil.copytree(ckpt.controlnet, bad)
    blob = bad / "diffusion_pytorch_model.safetensors"
    blob.write_bytes(blob.read_bytes()[:1000])  # a truncated download
    with pytest.raises(GenerationError, match="not a valid safetensors file.*download it again"):
        load_controlnet(bad)
    blob.unlink()
    torch.save(
        load_weights_file(ckpt.controlnet / "diffusion_pytorch_model.safetensors"), bad / "diffusion_pytorch_model.bin"
    )
    with pytest.raises(GenerationError, match="pickle file.*explicit opt-in"):
        load_controlnet(bad)
    model, info = load_controlnet(bad, allow_pickle=True)
    assert info["conditioning_channels"] == 65 and info["weights_file"].endswith(".bin")


# -- generation ---------------------------------------------------------------------------------
def test_generation_is_seeded_georeferenced_and_provenanced(registry, ckpt, tmp_path):
    gen = registry.generator("tiny-sar")
    assert isinstance(gen, DiffusionGenerator) and gen.readiness().ready
    scene = tiny_scene()
    steps: list[tuple[int, int, str]] = []
    a = gen.generate(scene, FP32, progress=lambda i, n, m: steps.append((i, n, m)))
    b = gen.generate(scene, FP32)
    c = gen.generate(scene, GenerationRequest(seed=8, dtype="float32", device="cpu"))
    assert a.vv_db.shape == scene.shape and a.vh_db.shape == scene.shape
    np.testing.assert_array_equal(a.vv_db, b.vv_db)
    np.testing.assert_array_equal(a.vh_db, b.vh_db)
    assert np.abs(a.vv_db - c.vv_db).max() > 1e-3
    assert -25.0 <= a.vv_db.min() and a.vv_db.max() <= 0.0 + 1e-4  # the card's dB range
    assert -32.0 <= a.vh_db.min() and a.vh_db.max() <= -5.0 + 1e-4
    assert [s[0] for s in steps if s[2].startswith("step")] == [1, 2]
    assert "about" in [s for s in steps if s[2].startswith("step")][-1][2]

    prov = a.provenance
    cn_file = ckpt.controlnet / "diffusion_pytorch_model.safetensors"
    assert prov["weights_sha256"]["controlnet"] == hashlib.sha256(cn_file.read_bytes()).hexdigest()
    assert (
        prov["weights_sha256"]["unet_lora"]
        == hashlib.sha256((ckpt.lora / "adapter_model.safetensors").read_bytes()).hexdigest()
    )
    for key, value in {
        "model_id": "tiny-sar",
        "seed": 7,
        "scheduler": "dpmsolver++-sde-karras",
        "steps": 2,
        "guidance": 2.5,
        "controlnet_scale": 1.1,
        "angle_source": "user",
        "angle_deg": 37.5,
        "device": "cpu",
        "dtype": "float32",
        "controlnet_conditioning_channels": 65,
    }.items():
        assert prov[key] == value, key
    assert "timestamp" in prov and "condition_source" in prov

    out = a.to_geotiff(tmp_path / "synthetic.tif")
    with rasterio.open(out) as src:
        assert src.crs == scene.crs and src.transform == scene.transform
        assert src.descriptions == ("VV", "VH") and src.dtypes == ("float32", "float32")
        assert json.loads(src.tags()["PROVENANCE"])["weights_sha256"] == prov["weights_sha256"]
    back = GenerationResult.from_geotiff(out)
    np.testing.assert_array_equal(back.vv_db, a.vv_db)
    assert a.png_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bfloat16_path_runs_and_is_recorded(registry):
    gen = registry.generator("tiny-sar")
    result = gen.generate(tiny_scene(angle=True), GenerationRequest(seed=7, dtype="bfloat16", device="cpu"))
    assert np.isfinite(result.vv_db).all() and result.provenance["dtype"] == "bfloat16"
    assert result.provenance["angle_source"] == "scene"


def test_a_generation_files_its_step_times_under_its_workload(registry, monkeypatch, tmp_path):
    # the compile choice learns from real generations, per model and image size (a tiny model's
    # steps must never pass for full-size SD 1.5's)
    from sarviz.generators import dtype_choice

    monkeypatch.setenv("SARVIZ_DTYPE_MEASURE", "1")
    monkeypatch.setenv("SARVIZ_DTYPE_CACHE", str(tmp_path / "dtype-choice.json"))
    monkeypatch.delenv("SARVIZ_COMPILE", raising=False)
    gen = registry.generator("tiny-sar")
    result = gen.generate(tiny_scene(), GenerationRequest(seed=1, dtype="float32", device="cpu", steps=4))
    workload = result.provenance["speed_options"]["workload"]
    assert workload.startswith("unet") and workload.endswith(f"+controlnet@{gen.spec.size}px")
    assert "320-640" not in workload  # the tiny UNet's own widths
    records = dtype_choice.compile_records("cpu", "float32")
    assert list(records) == [workload]
    assert records[workload].eager_step_s > 0 and records[workload].compiled_step_s == 0


def test_model_stays_cached_per_device_and_dtype(registry):
    gen = registry.generator("tiny-sar")
    gen.generate(tiny_scene(), FP32)
    key = (gen.cache_key(), "cpu", "float32")
    first = runtime.MODELS.get(key, lambda: pytest.fail("reloaded a cached model"))
    gen.generate(tiny_scene(seed=2), FP32)
    assert runtime.MODELS.get(key, lambda: pytest.fail("reloaded a cached model")) is first


def test_wrong_channel_count_missing_embedding_missing_weights(registry, ckpt):
    with pytest.raises(GenerationError, match="takes 65 condition channels but the card's preprocessing makes 64"):
        registry.generator("tiny-64ch").generate(tiny_scene(), FP32)
    with pytest.raises(ConditionError, match="no AlphaEarth embedding"):
        registry.generator("tiny-sar").generate(tiny_scene(embedding=False), FP32)
    absent = registry.generator("tiny-absent")
    problem = absent.readiness().details
    assert "tiny-absent" in problem and str(ckpt.root / "nowhere") in problem and "ask the authors" in problem
    with pytest.raises(WeightsMissing, match="weights are missing"):
        absent.generate(tiny_scene(), FP32)
    with pytest.raises(GenerationError, match="unknown model id 'nope'"):
        registry.generator("nope")
    with pytest.raises(GenerationError, match="steps must be"):
        registry.generator("tiny-sar").generate(tiny_scene(), GenerationRequest(steps=0, dtype="float32"))


# -- runtime ------------------------------------------------------------------------------------
def test_queue_runs_one_generation_per_device_in_order():
    queue = runtime.GenerationQueue()
    running, peak, order, lock = [0], [0], [], threading.Lock()

    def job(n):
        with queue.slot("cpu"):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
                order.append(n)
            time.sleep(0.05)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=job, args=(n,)) for n in range(4)]
    with queue.slot("cpu"):  # hold the slot: the jobs queue up in the order they start
        for n, t in enumerate(threads):
            t.start()
            while queue.busy("cpu") < n + 2:  # this one is in the queue (not a fixed pause)
                time.sleep(0.005)
    for t in threads:
        t.join()
    assert peak[0] == 1 and order == [0, 1, 2, 3]

    cancel, positions = threading.Event(), []
    with queue.slot("cpu"):

        def waiter():
            with pytest.raises(GenerationCancelled, match="waiting in the queue"):
                with queue.slot("cpu", cancel=cancel, on_wait=positions.append, poll_s=0.01):
                    pass

        t = threading.Thread(target=waiter)
        t.start()
        while not positions:  # it is waiting in the queue and was told its place
            time.sleep(0.005)
        cancel.set()
        t.join()
    assert positions and positions[0] == 1 and queue.busy("cpu") == 0


def test_device_and_dtype_choice():
    cap = runtime.cpu_capability()
    native_bf16 = cap["mkldnn_bf16"] and (cap["amx_tile"] or cap["avx512_bf16"])
    assert runtime.choose_dtype("cpu") == ("bfloat16" if native_bf16 else "float32")  # measuring off in tests
    assert runtime.choose_dtype("cpu", "fp32") == "float32"
    with pytest.raises(GenerationError, match="float16 is not supported .* CPU"):
        runtime.choose_dtype("cpu", "float16")
    with pytest.raises(GenerationError, match="unknown dtype"):
        runtime.choose_dtype("cpu", "int8")
    with pytest.raises(GenerationError, match="unknown device"):
        runtime.choose_device("tpu")
    assert runtime.choose_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(GenerationError, match="not available on this machine"):
            runtime.choose_device("cuda")


# -- CLI ----------------------------------------------------------------------------------------
@pytest.fixture()
def scene_dir(tmp_path):
    from sarviz.store import SceneStore

    store = SceneStore(tmp_path / "scenes", create=True)
    scene = tiny_scene(height=32, width=32)
    store.add(scene)
    return store.folder, scene.center_latlon


def test_cli_generate_with_a_card_and_with_a_checkpoint(registry, ckpt, scene_dir, tmp_path, capsys):
    folder, (lat, lon) = scene_dir
    out = tmp_path / "out" / "syn.tif"
    code = cli_main(
        [
            "generate",
            "--lat",
            str(lat),
            "--lon",
            str(lon),
            "--scenes",
            str(folder),
            "--model",
            "tiny-sar",
            "--seed",
            "3",
            "--dtype",
            "float32",
            "--angle",
            "33",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    prov = json.loads(captured.out)
    assert prov["seed"] == 3 and prov["angle_deg"] == 33.0 and prov["model_id"] == "tiny-sar"
    assert "step 2/2" in captured.err
    with rasterio.open(out) as src:
        assert src.descriptions == ("VV", "VH") and src.width == 32

    out2 = tmp_path / "ckpt.tif"
    code = cli_main(
        [
            "generate",
            "--lat",
            str(lat),
            "--lon",
            str(lon),
            "--scenes",
            str(folder),
            "--controlnet",
            str(ckpt.controlnet),
            "--base",
            str(ckpt.base),
            "--steps",
            "2",
            "--seed",
            "3",
            "--image-size",
            "64",
            "--dtype",
            "float32",
            "--angle",
            "33",
            "--out",
            str(out2),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    prov2 = json.loads(captured.out)
    assert prov2["weights_sha256"] == prov["weights_sha256"]
    # same weights, seed, settings → same image, whether named by a card or by folders
    assert prov2["image_size"] == prov["image_size"] == IMAGE_SIZE
    with rasterio.open(out) as a, rasterio.open(out2) as b:
        assert b.crs == a.crs and b.transform == a.transform
        np.testing.assert_array_equal(a.read(), b.read())


def test_cli_errors_are_one_line(registry, scene_dir, tmp_path, capsys):
    folder, (lat, lon) = scene_dir
    base = ["generate", "--lat", str(lat), "--lon", str(lon), "--scenes", str(folder), "--out", str(tmp_path / "x.tif")]
    assert cli_main(base + ["--model", "nope"]) == 2
    assert "unknown model id 'nope'" in capsys.readouterr().err
    assert cli_main(base + ["--model", "tiny-absent"]) == 2
    err = capsys.readouterr().err
    assert "weights are missing" in err and "Traceback" not in err
    assert cli_main(base + ["--controlnet", str(tmp_path)]) == 2
    assert "--controlnet needs --base" in capsys.readouterr().err
    assert (
        cli_main(
            [
                "generate",
                "--lat",
                "95",
                "--lon",
                "0",
                "--scenes",
                str(folder),
                "--model",
                "tiny-sar",
                "--out",
                str(tmp_path / "y.tif"),
            ]
        )
        == 2
    )
    assert "latitude" in capsys.readouterr().err


def test_cli_models_lists_readiness(registry, capsys):
    assert cli_main(["models", "--json"]) == 0
    rows = {r["id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["tiny-sar"]["ready"] is True
    assert rows["tiny-absent"]["ready"] is False and "ask the authors" in rows["tiny-absent"]["problem"]
    assert "huiyanearth-sar" in rows


def test_cli_generate_with_the_emulator_card(scene_dir, tmp_path, capsys):
    folder, (lat, lon) = scene_dir
    out = tmp_path / "emu.tif"
    code = cli_main(
        [
            "generate",
            "--lat",
            str(lat),
            "--lon",
            str(lon),
            "--scenes",
            str(folder),
            "--model",
            "emulator",
            "--seed",
            "1",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["model_id"] == "emulator"
    assert GenerationResult.from_geotiff(out).vv_db.shape == (32, 32)


# -- UI -----------------------------------------------------------------------------------------
APP = textwrap.dedent("""
    import streamlit as st
    from _diffusion_fixtures import tiny_scene
    from sarviz.ui.generate import render_generate_panel

    result = render_generate_panel(tiny_scene(embedding={embedding!r}), key="gen")
    st.session_state["returned"] = None if result is None else result.provenance["model_id"]
""")


def _app(embedding: bool = True):
    from streamlit.testing.v1 import AppTest

    return AppTest.from_string(APP.format(embedding=embedding), default_timeout=120)


def test_ui_panel_generates_and_keeps_the_result(registry):
    at = _app().run()
    assert not at.exception
    model = at.selectbox(key="gen_model")
    assert model.value in ("tiny-sar", "tiny-64ch")  # a ready diffusion model is the default
    assert "Tiny random tiny-absent — weights missing" in model.options
    model.set_value("tiny-sar").run()
    assert at.session_state["returned"] is None
    at.number_input(key="gen_seed").set_value(5)
    at.number_input(key="gen_angle").set_value(40.0)
    at.selectbox(key="gen_dtype").set_value("float32")
    at.button(key="FormSubmitter:gen_form-Generate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["returned"] == "tiny-sar"
    prov = at.session_state["gen_result"][1].provenance
    assert prov["seed"] == 5 and prov["angle_deg"] == 40.0 and prov["dtype"] == "float32"
    at.run()  # a rerun keeps the result
    assert at.session_state["returned"] == "tiny-sar"
    assert any("Provenance" in e.label for e in at.expander)

    at.selectbox(key="gen_model").set_value("tiny-absent").run()
    assert any("weights are missing" in w.value for w in at.warning)


def test_ui_reference_settings_button_fills_the_form_and_the_result_records_the_preset(registry):
    at = _app().run()
    at.selectbox(key="gen_model").set_value("tiny-sar").run()
    assert at.number_input(key="gen_steps").value == 2  # the card's fast default
    at.button(key="gen_preset_reference").click().run()
    assert not at.exception
    assert at.number_input(key="gen_steps").value == 50 and at.selectbox(key="gen_dtype").value == "float32"
    assert at.number_input(key="gen_guidance").value == 2.5 and at.number_input(key="gen_cn_scale").value == 1.1
    assert any("reference" in c.value for c in at.caption)
    assert not any("Session State" in w.value for w in at.warning)  # no value/state clash
    at.number_input(key="gen_steps").set_value(2)  # keep the test fast: the result says "custom"
    at.button(key="FormSubmitter:gen_form-Generate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    prov = at.session_state["gen_result"][1].provenance
    assert prov["settings_preset"] == "custom" and prov["settings_preset_changed"] == ["steps"]
    assert prov["dtype"] == "float32"
    at.button(key="gen_preset_fast").click().run()
    assert at.number_input(key="gen_steps").value == 2 and at.selectbox(key="gen_dtype").value == "auto"
    assert not at.exception and not any("Session State" in w.value for w in at.warning)


def test_ui_panel_shows_errors_instead_of_raising(registry):
    at = _app(embedding=False).run()
    assert any("no AlphaEarth embedding" in w.value for w in at.warning)
    # the panel refuses before the click: Generate is disabled, with the reason beside it
    assert at.button(key="FormSubmitter:gen_form-Generate").disabled
    assert not at.exception
    assert at.session_state["returned"] is None


def test_missing_embedding_pixels_stay_missing_in_the_output(registry):
    """Where the embedding is NaN the model saw a filled-in condition: the output says so (NaN)."""
    gen = registry.generator("tiny-sar")
    scene = tiny_scene()
    scene.embedding[:, :5, :7] = np.nan
    result = gen.generate(scene, FP32)
    assert np.isnan(result.vv_db[:5, :7]).all() and np.isnan(result.vh_db[:5, :7]).all()
    assert np.isfinite(result.vv_db[5:, :]).all() and np.isfinite(result.vv_db[:, 7:]).all()
    assert any("set missing" in n for n in result.provenance["notes"])


def test_off_scale_scene_is_flagged(registry):
    """The tiny card makes 64 px images; a 24×40 px scene is stretched, and provenance says so."""
    result = registry.generator("tiny-sar").generate(tiny_scene(), FP32)
    assert any(n.startswith("scale:") for n in result.provenance["notes"])


# -- calibration and the reference preset ---------------------------------------------------------
def test_output_mapping_uses_the_checkpoints_calibration_over_the_cards(ckpt, tmp_path, monkeypatch):
    """sarviz_train.json beside a checkpoint (the training run's metadata) overrides the card's calibration; the
    decoded image is mapped through it, the provenance and the exports carry it."""
    from sarviz.calibration import Calibration

    trained = tmp_path / "run" / "checkpoint-1"
    shutil.copytree(ckpt.controlnet, trained)
    own = Calibration(ranges={"VV": (-20.0, -5.0), "VH": (-30.0, -10.0)}, note="test run")
    (trained / "sarviz_train.json").write_text(
        json.dumps(
            {
                "format": "sarviz-geo-run/1",
                "step": 1,
                "calibration": own.to_dict(),
                "preprocessing": {"size": IMAGE_SIZE},
                "base": str(ckpt.base),
                "recipe": {},
            }
        )
    )
    cards = tmp_path / "cards"
    card_cal = {"db_range": {"VV": [-25.0, 0.0], "VH": [-32.0, -5.0]}, "shared": False, "note": "card"}
    write_card(cards, ckpt, model_id="tiny-card-cal", calibration=card_cal)
    write_card(cards, ckpt, model_id="tiny-trained", calibration=card_cal, weights={"controlnet": str(trained)})
    monkeypatch.setenv("SARVIZ_MODELS", str(cards))
    registry = ModelRegistry()
    scene = tiny_scene(height=IMAGE_SIZE, width=IMAGE_SIZE)  # the model's size: no resampling
    a = registry.generator("tiny-card-cal").generate(scene, FP32)
    b = registry.generator("tiny-trained").generate(scene, FP32)
    assert a.provenance["calibration_source"] == "model card"
    assert b.provenance["calibration_source"] == "checkpoint sarviz_train.json"
    assert b.provenance["calibration"]["db_range"] == {"VV": [-20.0, -5.0], "VH": [-30.0, -10.0]}
    assert b.calibration == Calibration.from_dict(own.to_dict())
    # same weights and seed: the same decoded image through two linear maps
    np.testing.assert_allclose((a.vv_db + 25.0) / 25.0, (b.vv_db + 20.0) / 15.0, atol=1e-4)
    np.testing.assert_allclose((a.vh_db + 32.0) / 27.0, (b.vh_db + 30.0) / 20.0, atol=1e-4)
    assert b.vv_db.min() >= -20.0 and b.vv_db.max() <= -5.0 + 1e-4
    # exports use the result's calibration: the PNG stretch maps -20…-5 dB to 0…255
    from io import BytesIO

    from PIL import Image

    png = np.asarray(Image.open(BytesIO(b.png_bytes())))
    expected = np.round(np.clip((b.vv_db + 20.0) / 15.0, 0, 1) * 255)
    assert np.abs(png[..., 0].astype(int) - expected).max() <= 1
    out = b.to_geotiff(tmp_path / "b.tif")
    with rasterio.open(out) as src:
        assert json.loads(src.tags(1)["calibration_db_range"]) == [-20.0, -5.0]
        assert json.loads(src.tags()["CALIBRATION"])["db_range"]["VH"] == [-30.0, -10.0]
    assert GenerationResult.from_geotiff(out).calibration == b.calibration


def test_bundled_card_states_the_reference_calibration_ambiguity():
    card = json.loads((REPO_MODELS_DIR / "huiyanearth-sar.json").read_text())
    assert "db_range" not in card["output"]  # one calibration: in the calibration section only
    cal = card["calibration"]
    assert cal["shared"] is False and "sar_min" in cal["note"] and "undefined" in cal["reference_ambiguity"]
    text = (REPO_MODELS_DIR / "huiyanearth-sar.md").read_text()
    assert "sar_min" in text and "one range" in text.lower()
    import sarviz.generators.diffusion as diffusion

    assert "db_range" not in diffusion.REFERENCE_OUTPUT


def test_reference_settings_preset_and_provenance(registry):
    gen = registry.generator("tiny-sar")
    fast = gen.settings(GenerationRequest())
    assert fast.preset == "fast" and fast.sampler.steps == 2 and fast.dtype is None
    ref = gen.settings(GenerationRequest(preset="reference"))
    assert ref.preset == "reference" and ref.sampler.steps == 50 and ref.dtype == "float32"
    assert (ref.sampler.scheduler, ref.sampler.guidance, ref.controlnet_scale) == ("dpmsolver++-sde-karras", 2.5, 1.1)
    custom = gen.settings(GenerationRequest(preset="reference", steps=3))
    assert custom.preset == "custom" and custom.preset_changed == ("steps",)
    with pytest.raises(GenerationError, match="preset"):
        gen.settings(GenerationRequest(preset="slow"))
    scene = tiny_scene()
    result = gen.generate(scene, GenerationRequest(seed=1, device="cpu", preset="reference", steps=2))
    assert result.provenance["settings_preset"] == "custom" and result.provenance["dtype"] == "float32"
    assert result.provenance["settings_preset_changed"] == ["steps"]
    result = gen.generate(scene, GenerationRequest(seed=1, device="cpu", dtype="float32"))
    assert result.provenance["settings_preset"] == "fast" and "settings_preset_changed" not in result.provenance


def test_cli_reference_settings(registry, scene_dir, tmp_path, capsys):
    folder, (lat, lon) = scene_dir
    base = [
        "generate",
        "--lat",
        str(lat),
        "--lon",
        str(lon),
        "--scenes",
        str(folder),
        "--model",
        "tiny-sar",
        "--out",
        str(tmp_path / "ref.tif"),
        "--reference-settings",
    ]
    assert cli_main(base + ["--steps", "2"]) == 0, capsys.readouterr().err
    prov = json.loads(capsys.readouterr().out)
    assert prov["dtype"] == "float32" and prov["steps"] == 2
    assert prov["settings_preset"] == "custom" and prov["settings_preset_changed"] == ["steps"]
    assert prov["calibration"]["db_range"]["VH"] == [-32.0, -5.0] and prov["calibration_source"] == "default"
