"""The measured dtype choice: decisions from injected timings, the per-machine cache, overrides.

Timings are injected (the hardware is not): a forced "bf16 is slower" measurement must choose
float32 and vice versa, whatever CPU runs the test.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sarviz.generators import dtype_choice, runtime
from sarviz.generators.base import GenerationError
from sarviz.generators.dtype_choice import Measurement, decide, measured_choice


def timings(fp32: float, bf16: float, drift: float = 0.004):
    calls = []

    def measure(device):
        calls.append(device)
        return [Measurement("float32", fp32, [fp32]), Measurement("bfloat16", bf16, [bf16], drift)]

    return measure, calls


def test_decide_picks_the_fastest_dtype_within_the_drift_limit():
    assert decide([Measurement("float32", 9.59), Measurement("bfloat16", 5.69, drift=0.0125)])[0] == "bfloat16"
    dtype, reason = decide([Measurement("float32", 1.0), Measurement("bfloat16", 2.5, drift=0.004)])
    assert dtype == "float32" and "slower" in reason
    dtype, reason = decide([Measurement("float32", 1.0), Measurement("bfloat16", 0.5, drift=0.05)])
    assert dtype == "float32" and "drift" in reason
    dtype, reason = decide([Measurement("float32", 1.0), Measurement("bfloat16", 0.95, drift=0.001)])
    assert dtype == "float32" and "only 1.05×" in reason  # not worth its drift
    # CUDA: fp16 fastest but bf16 within limits → the fastest acceptable one
    ms = [Measurement("float32", 3.0), Measurement("bfloat16", 1.1, drift=0.01), Measurement("float16", 1.0, drift=0.03)]
    assert decide(ms)[0] == "bfloat16"
    ms = [Measurement("float32", 3.0), Measurement("bfloat16", float("inf"), error="RuntimeError: no")]
    assert decide(ms)[0] == "float32"


@pytest.mark.parametrize("fp32,bf16,want", [(9.59, 5.69, "bfloat16"), (0.6, 1.4, "float32")])
def test_measured_choice_is_cached_per_machine(tmp_path, fp32, bf16, want):
    cache = tmp_path / "dtype-choice.json"
    measure, calls = timings(fp32, bf16)
    first = measured_choice("cpu", path=cache, measure=measure)
    assert (first.dtype, first.method) == (want, "measured") and calls == ["cpu"]
    stored = json.loads(cache.read_text())
    (entry,) = stored["entries"].values()
    assert entry["dtype"] == want and entry["machine"]["torch"] and entry["measurements"][1]["seconds"] == bf16
    again = measured_choice("cpu", path=cache, measure=measure)
    assert (again.dtype, again.method) == (want, "cached") and calls == ["cpu"]  # not measured twice
    fresh = measured_choice("cpu", path=cache, measure=measure, refresh=True)
    assert fresh.method == "measured" and calls == ["cpu", "cpu"]


def test_corrupt_cache_is_ignored_and_rebuilt(tmp_path):
    cache = tmp_path / "dtype-choice.json"
    cache.write_text("{not json")
    measure, calls = timings(1.0, 3.0)
    decision = measured_choice("cpu", path=cache, measure=measure)
    assert decision.dtype == "float32" and calls == ["cpu"]
    assert json.loads(cache.read_text())["version"] == dtype_choice.CACHE_VERSION
    cache.write_text(json.dumps({"version": dtype_choice.CACHE_VERSION, "entries": {"x": "garbage"}}))
    assert measured_choice("cpu", path=cache, measure=measure).method == "measured"


def test_failed_measurement_falls_back_to_the_rule(tmp_path):
    def broken(device):
        raise RuntimeError("oneDNN primitive creation failed")

    decision = measured_choice("cpu", path=tmp_path / "c.json", measure=broken, rule=lambda d: "float32")
    assert decision.method == "rule" and decision.dtype == "float32" and "could not measure" in decision.reason
    assert not (tmp_path / "c.json").exists()  # a fallback is not cached: next run measures again


def test_user_dtype_always_wins(monkeypatch):
    monkeypatch.setenv("SARVIZ_DTYPE_MEASURE", "1")
    monkeypatch.setattr(runtime, "_DECISIONS", {"cpu": dtype_choice.DtypeDecision("cpu", "bfloat16", "measured", "x")})
    assert runtime.choose_dtype("cpu") == "bfloat16"
    assert runtime.dtype_decision("cpu", "fp32").method == "user"
    assert runtime.choose_dtype("cpu", "fp32") == "float32"
    with pytest.raises(GenerationError, match="float16 is not supported"):
        runtime.choose_dtype("cpu", "float16")


def test_measurement_switch_uses_the_rule(monkeypatch):
    monkeypatch.setenv("SARVIZ_DTYPE_MEASURE", "0")
    decision = runtime.dtype_decision("cpu")
    assert decision.method == "rule" and decision.dtype == runtime.rule_of_thumb_dtype("cpu")


def test_doctor_prints_the_cached_decision(tmp_path):
    cache = tmp_path / "dtype-choice.json"
    measured_choice("cpu", path=cache, measure=timings(1.0, 0.5)[0])
    env = {"SARVIZ_DTYPE_CACHE": str(cache), "SARVIZ_DTYPE_MEASURE": "1", "PATH": "/usr/bin:/bin"}
    import os

    env.update({k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HOME", "SARVIZ_HOME")})
    out = subprocess.run([sys.executable, "-m", "sarviz.cli", "doctor", "--device", "cpu"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "diffusion dtype bfloat16 (cached)" in out.stdout and "2.00× faster" in out.stdout
    assert "500.0 ms per UNet block" in out.stdout


def test_speed_plan_defaults_and_switches(monkeypatch):
    monkeypatch.delenv("SARVIZ_COMPILE", raising=False)
    monkeypatch.delenv("SARVIZ_CHANNELS_LAST", raising=False)
    assert runtime.speed_plan("cpu")["compile"] is False and runtime.speed_plan("cpu")["channels_last"] is False
    assert runtime.speed_plan("cuda:0")["channels_last"] is True
    monkeypatch.setenv("SARVIZ_COMPILE", "on")
    monkeypatch.setenv("SARVIZ_CHANNELS_LAST", "1")
    assert runtime.speed_plan("cpu") | {"why": ""} == {"channels_last": True, "compile": True, "why": ""}
    assert runtime.speed_plan("mps")["compile"] is False  # inductor does not target MPS


def test_apply_speed_plan_wraps_the_denoisers(monkeypatch, tmp_path):
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, cross_attention_dim=8,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), norm_num_groups=4,
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=2)
    vae = AutoencoderKL(block_out_channels=(8,), norm_num_groups=4, latent_channels=4)

    class Pipe:  # the attributes a diffusers pipeline has
        pass

    pipe = Pipe()
    pipe.unet, pipe.vae, pipe.controlnet = unet, vae, None
    applied = runtime.apply_speed_plan(pipe, "cpu", {"channels_last": True, "compile": True})
    assert applied == {"channels_last": True, "compile": ["unet", "vae.decoder"]}
    assert isinstance(pipe.unet, torch._dynamo.eval_frame.OptimizedModule)
    assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    import os

    assert os.environ["TORCHINDUCTOR_CACHE_DIR"].endswith("inductor-cache")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
