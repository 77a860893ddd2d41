"""`sarviz train geo` on a tiny SD 1.5 and a fake FORMATS-A dataset, on the CPU, with real files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from _waits import patience
from sarviz.cli import main as cli_main  # noqa: E402
from sarviz.training import runs  # noqa: E402
from sarviz.training.common import TrainError  # noqa: E402
from sarviz.training.geo import GeoTrainConfig, GeoTrainer, train_geo  # noqa: E402

from _diffusion_fixtures import TINY_CHANNELS, tiny_scene
from _train_fixtures import one_torch_thread, write_patch_dataset, write_tiny_sd15  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
RES = 32  # tiny: 32 px images, 16 px latents


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("geo")
    # base: learning is measured (test_tiny_geo_model_overfits: loss ÷ 3 in 30 steps needs the (32, 64)
    # size); fast_base: diffusers' (4, 8) dummy for every other test (resuming, killing, launching, bad
    # input), which compare runs or check messages but not how well a model learns
    return {
        "data": write_patch_dataset(root / "ds"),
        "base": write_tiny_sd15(root / "base"),
        "fast_base": write_tiny_sd15(root / "fast_base", channels=TINY_CHANNELS),
        "root": root,
    }


def _config(env, out, **kw) -> GeoTrainConfig:
    args = dict(
        data=env["data"],
        base=env["base"],
        out=out,
        resolution=RES,
        batch_size=2,
        max_steps=4,
        checkpoint_every=2,
        validate_every=0,
        validation_count=0,
        lr=1e-3,
        gradient_checkpointing=False,
    )
    args.update(kw)
    return GeoTrainConfig(**args)


def _eval_loss(trainer: GeoTrainer) -> float:
    """The loss on every train patch at fixed noise/timesteps (no augmentation, eval mode)."""
    from sarviz.training.data import collate, geo_training_dataset

    ds = geo_training_dataset(trainer.info, "train", RES, trainer.spec, trainer.calibration, augment=False)
    batch = collate([ds[i] for i in range(len(ds))])
    trainer.controlnet.eval()
    trainer.unet.eval()
    values = []
    with torch.no_grad():
        for seed in range(4):
            torch.manual_seed(1000 + seed)
            values.append(float(trainer.micro_loss(batch)))
    trainer.controlnet.train()
    trainer.unet.train()
    return float(np.mean(values))


@pytest.fixture(scope="module")
def trained(env):
    """One run that overfits the 6 training patches (validated at the end on one val patch)."""
    out = env["root"] / "run"
    # lr 1e-2 suits a 1 M-parameter model (the recipe's 2e-5 is for SD 1.5)
    trainer = GeoTrainer(
        _config(
            env, out, max_steps=30, checkpoint_every=15, lr=1e-2, validation_count=1, validation_steps=2, log_every=15
        )
    )
    trainer.setup()
    before = _eval_loss(trainer)
    last = trainer.train()
    after = _eval_loss(trainer)
    return {"out": out, "last": last, "before": before, "after": after}


def test_tiny_geo_model_overfits(trained):
    assert trained["after"] < trained["before"] / 3, (trained["before"], trained["after"])
    log = runs.loss_table(trained["out"])
    assert [r["step"] for r in log] == list(range(1, 31))
    assert all(np.isfinite(r["loss"]) for r in log)


def test_checkpoint_layout_is_formats_b(trained, env):
    ckpt = trained["last"]
    assert ckpt.name == "checkpoint-30"
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["conditioning_channels"] == 65
    lora = json.loads((ckpt / "unet_lora" / "adapter_config.json").read_text())
    assert lora["r"] == 32 and lora["lora_alpha"] == 16
    assert set(lora["target_modules"]) == {"to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"}
    assert (ckpt / "unet_lora" / "adapter_model.safetensors").is_file()
    meta = json.loads((ckpt / "sarviz_train.json").read_text())
    assert meta["format"] == "sarviz-geo-run/1" and meta["step"] == 30
    from sarviz.calibration import Calibration
    from sarviz.generators.condition import ConditionSpec

    assert Calibration.from_dict(meta["calibration"]).to_dict() == meta["calibration"]
    assert ConditionSpec.from_dict(meta["preprocessing"]).size == RES
    assert meta["recipe"]["offset_noise"] == 0.2 and meta["recipe"]["snr_gamma"] == 5.0
    assert {p.name for p in (ckpt / "accelerate_state").iterdir()} >= {"optimizer.bin", "scheduler.bin"}
    assert not list(trained["out"].glob(".tmp-*"))


def test_validation_is_logged_and_listed(trained):
    table = runs.validation_table(trained["out"])
    assert {r["pol"] for r in table} == {"VV", "VH"} and {r["step"] for r in table} == {30}
    assert all(-1 <= r["ssim"] <= 1 and r["kl"] >= 0 for r in table)
    images = runs.validation_images(trained["out"])
    assert list(images) == [30] and len(images[30]) == 1
    from PIL import Image

    with Image.open(images[30][0]) as im:
        assert im.size == (4 * 32, 32)  # real VV | generated VV | real VH | generated VH
    listed = runs.list_runs(trained["out"].parent)
    run = next(r for r in listed if r.path == trained["out"])
    assert run.kind == "geo" and run.status == "finished" and run.checkpoints == [15, 30]
    assert list((trained["out"] / "logs").rglob("events.out.tfevents.*"))


def test_checkpoint_loads_in_the_generator_and_makes_an_image(trained, env, tmp_path, capsys, monkeypatch):
    from sarviz.store import SceneStore

    store = SceneStore(tmp_path / "scenes", create=True)
    scene = tiny_scene(height=32, width=32)
    store.add(scene)
    lat, lon = scene.center_latlon
    out = tmp_path / "syn.tif"
    code = cli_main(
        [
            "generate",
            "--lat",
            str(lat),
            "--lon",
            str(lon),
            "--scenes",
            str(store.folder),
            "--controlnet",
            str(trained["last"]),
            "--base",
            str(env["base"]),
            "--steps",
            "2",
            "--image-size",
            str(RES),
            "--dtype",
            "float32",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    prov = json.loads(captured.out)
    assert prov["controlnet_conditioning_channels"] == 65 and prov["lora"] is True
    with rasterio.open(out) as src:
        vv, names = src.read(1), src.descriptions
    assert names == ("VV", "VH") and np.isfinite(vv).all() and vv.std() > 0

    # registered as a model card: its own preprocessing (32 px) and calibration, no --image-size
    cards = tmp_path / "cards"
    cards.mkdir()
    card = runs.geo_model_card(trained["last"], model_id="my-geo")
    (cards / "my-geo.json").write_text(json.dumps(card))
    monkeypatch.setenv("SARVIZ_MODELS", str(cards))
    code = cli_main(
        [
            "generate",
            "--lat",
            str(lat),
            "--lon",
            str(lon),
            "--scenes",
            str(store.folder),
            "--model",
            "my-geo",
            "--steps",
            "2",
            "--dtype",
            "float32",
            "--out",
            str(tmp_path / "card.tif"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    prov2 = json.loads(captured.out)
    assert prov2["model_id"] == "my-geo" and prov2["image_size"] == RES
    assert prov2["weights_sha256"] == prov["weights_sha256"]


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {f"cn.{k}": v for k, v in load_file(str(ckpt / "diffusion_pytorch_model.safetensors")).items()}
    out.update({f"lora.{k}": v for k, v in load_file(str(ckpt / "unet_lora" / "adapter_model.safetensors")).items()})
    return out


def test_models_add_registers_the_run_in_sarviz_home(trained, tmp_path, monkeypatch, capsys):
    """`sarviz models add RUN [--checkpoint N]`: the run appears where the app's pickers look."""
    from sarviz.registry import ModelRegistry

    home = tmp_path / "home"
    monkeypatch.setenv("SARVIZ_HOME", str(home))
    ckpt = trained["last"]
    model_id = f"{ckpt.parent.name}-{ckpt.name}"
    assert cli_main(["models", "add", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert f"registered {model_id}" in out and str(home / "models") in out
    assert ModelRegistry().card(model_id).path == home / "models" / f"{model_id}.json"
    assert cli_main(["models", "--json"]) == 0
    listed = {m["id"]: m for m in map(json.loads, capsys.readouterr().out.splitlines())}
    assert listed[model_id]["ready"] is True, listed[model_id]["problem"]
    assert cli_main(["models", "add", str(ckpt)]) == 2  # the same id again: refused, not overwritten
    assert "exists" in capsys.readouterr().err
    assert cli_main(["models", "add", str(tmp_path)]) == 2
    assert "not a sarviz geo checkpoint" in capsys.readouterr().err


def test_resume_equals_an_uninterrupted_run(env, tmp_path):
    # gradient checkpointing and grad accumulation on: the recipe's path
    kw = dict(
        max_steps=4, checkpoint_every=2, grad_accum=2, batch_size=1, gradient_checkpointing=True, base=env["fast_base"]
    )
    train_geo(_config(env, tmp_path / "straight", **kw))
    train_geo(_config(env, tmp_path / "split", stop_after_steps=2, **kw))
    assert runs.read_run(tmp_path / "split").status == "stopped"
    train_geo(_config(env, tmp_path / "split", resume_from="latest", **kw))
    a, b = _weights(tmp_path / "straight" / "checkpoint-4"), _weights(tmp_path / "split" / "checkpoint-4")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k  # bit-exact on the CPU
    assert runs.read_run(tmp_path / "split").status == "finished"
    log = runs.loss_table(tmp_path / "split")
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in runs.loss_table(tmp_path / "straight")], abs=0)


# -- bad input: one clear line each ---------------------------------------------------------------------
def test_not_a_dataset(env, tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    code = cli_main(
        [
            "train",
            "geo",
            "--data",
            str(tmp_path / "junk"),
            "--base",
            str(env["fast_base"]),
            "--out",
            str(tmp_path / "r"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "not a sarviz training dataset" in err


def test_base_without_unet(env, tmp_path, capsys):
    bad = tmp_path / "base"
    shutil.copytree(env["fast_base"], bad)
    shutil.rmtree(bad / "unet")
    code = cli_main(["train", "geo", "--data", str(env["data"]), "--base", str(bad), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "no unet folder" in err


def test_resolution_not_divisible_by_8(env, tmp_path, capsys):
    code = cli_main(
        [
            "train",
            "geo",
            "--data",
            str(env["data"]),
            "--base",
            str(env["fast_base"]),
            "--out",
            str(tmp_path / "r"),
            "--resolution",
            "100",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "multiple of 8" in err


def test_out_of_memory_on_the_first_step(env, tmp_path):
    trainer = GeoTrainer(_config(env, tmp_path / "oom", base=env["fast_base"]))
    trainer.setup()

    def exhausted(*_args, **_kwargs):
        # what the CUDA caching allocator raises when the first forward does not fit
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    trainer.accelerator.unwrap_model(trainer.controlnet).register_forward_pre_hook(exhausted)
    with pytest.raises(TrainError) as info:
        trainer.train()
    msg = str(info.value)
    assert "out of memory on the first training step" in msg and "--batch-size" in msg and "\n" not in msg
    assert runs.read_run(tmp_path / "oom").status == "failed"
    assert not list((tmp_path / "oom").glob("checkpoint-*"))


@pytest.mark.slow  # ~20 s (47 s before the (4, 8) base): a killed and a resumed run, busy 2-core machine
def test_interrupted_run_keeps_the_last_good_checkpoint(env, tmp_path):
    """A real kill -9 while training: every checkpoint-N left is complete; resume continues."""
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "sarviz.training.geo",
        "--data",
        str(env["data"]),
        "--base",
        str(env["fast_base"]),
        "--out",
        str(out),
        "--resolution",
        str(RES),
        "--batch-size",
        "2",
        "--max-steps",
        "200",
        "--checkpoint-every",
        "1",
        "--validate-every",
        "0",
        "--no-gradient-checkpointing",
    ]
    envvars = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=envvars, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        budget = patience(120)
        deadline = time.monotonic() + budget
        while not (out / "checkpoint-2").is_dir():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, f"no checkpoint within {budget:.0f} s"
            time.sleep(0.05)
        time.sleep(0.3)  # somewhere in the middle of the next steps / checkpoint writes
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    found = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert found and found[0] == 1
    for n in found:  # complete, or not there at all
        ckpt = out / f"checkpoint-{n}"
        meta = json.loads((ckpt / "sarviz_train.json").read_text())
        assert meta["step"] == n
        assert (ckpt / "diffusion_pytorch_model.safetensors").is_file()
        assert (ckpt / "unet_lora" / "adapter_model.safetensors").is_file()
        assert (ckpt / "accelerate_state" / "optimizer.bin").is_file()
    last = found[-1]
    train_geo(
        _config(
            env, out, resume_from="latest", max_steps=200, stop_after_steps=1, checkpoint_every=1, base=env["fast_base"]
        )
    )
    assert (out / f"checkpoint-{last + 1}").is_dir() and not list(out.glob(".tmp-*"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # ~32 s: accelerate launch, two processes on a busy 2-core machine
def test_two_processes_under_accelerate_launch(env, tmp_path):
    """DDP on the CPU (gloo): per-process data shards, one checkpoint written by the main process."""
    launcher = Path(sys.executable).with_name("accelerate")
    if not launcher.is_file():
        pytest.skip("the accelerate launcher is not installed beside this Python")
    out = tmp_path / "ddp"
    # accelerate 1.15's `launch --cpu --num_processes 2` starts ONE process unless mpirun is
    # installed; `--multi_gpu` with ACCELERATE_USE_CPU=true runs torch.distributed (gloo) on CPUs
    cmd = [
        str(launcher),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "sarviz.training.geo",
        "--data",
        str(env["data"]),
        "--base",
        str(env["fast_base"]),
        "--out",
        str(out),
        "--resolution",
        str(RES),
        "--batch-size",
        "1",
        "--max-steps",
        "2",
        "--checkpoint-every",
        "2",
        "--validate-every",
        "0",
        "--validation-count",
        "0",
        "--no-gradient-checkpointing",
    ]
    envvars = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    proc = subprocess.run(cmd, env=envvars, capture_output=True, text=True, timeout=patience(300))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = runs.read_run(out)
    assert run.status == "finished" and run.meta["num_processes"] == 2 and run.checkpoints == [2]
    meta = json.loads((out / "checkpoint-2" / "sarviz_train.json").read_text())
    assert meta["recipe"]["num_processes"] == 2
    # the main process alone wrote the checkpoint: one RNG file, no leftovers
    assert [p.name for p in (out / "checkpoint-2" / "accelerate_state").glob("random_states_*")] == [
        "random_states_0.pkl"
    ]
    assert not list(out.glob(".tmp-*"))
    assert [r["step"] for r in runs.loss_table(out)] == [1, 2]


def test_training_runs_page_shows_the_run(trained, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SARVIZ_RUNS", str(trained["out"].parent))
    at = AppTest.from_file(str(ROOT / "pages" / "5_Training_runs.py"), default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key="training-run").value == "run"
    overview = at.dataframe[0].value
    assert list(overview["status"]) == ["finished"] and list(overview["step"]) == [30]
    assert any("step 30, loss" in c.value for c in at.caption)
    summary = at.dataframe[1].value
    assert set(summary["pol"]) == {"VV", "VH"} and list(summary["patches"]) == [1, 1]
    assert at.select_slider(key="training-val-step").value == 30  # the step whose PNG strips are shown
