"""The measured dtype choice: decisions from injected timings, the per-machine cache, overrides.

Timings are injected (the hardware is not): a forced "bf16 is slower" measurement must choose
float32 and vice versa, whatever CPU runs the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from sarviz.generators import dtype_choice, runtime
from sarviz.generators.base import GenerationError, GenerationResult, ImageTransformer, TransformRequest
from sarviz.generators.dtype_choice import (
    Measurement,
    OptionMeasurement,
    decide,
    decide_options,
    measured_choice,
)
from sarviz.generators.run import run_generation

#: the real measurement (the autouse fixture below replaces it in the module for every other test)
REAL_MEASURE_OPTIONS = dtype_choice.measure_options


@pytest.fixture(autouse=True)
def no_real_option_measurement(monkeypatch):
    """The speed options are timed on the real block only where a test injects nothing: never here."""

    def fake(device, dtype):
        return [
            OptionMeasurement("baseline", 1.0),
            OptionMeasurement("attention=classic", 2.0),
            OptionMeasurement("channels_last=on", 1.0),
        ]

    monkeypatch.setattr(dtype_choice, "measure_options", fake)


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
    ms = [
        Measurement("float32", 3.0),
        Measurement("bfloat16", 1.1, drift=0.01),
        Measurement("float16", 1.0, drift=0.03),
    ]
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
    # step times two generations of full-size SD 1.5 filed: eager, and compiled with a cold kernel cache;
    # a small model's eager steps are a record of their own, not an "eager" time for the full-size one
    full = "unet320-640-1280-1280+controlnet@512px"
    dtype_choice.record_steps("cpu", "bfloat16", [9.0, 6.0, 6.0], compiled=False, path=cache, workload=full)
    dtype_choice.record_steps(
        "cpu", "bfloat16", [169.0, 4.0, 4.0], compiled=True, compile_paid=True, path=cache, workload=full
    )
    dtype_choice.record_steps(
        "cpu", "bfloat16", [0.5, 0.01, 0.01], compiled=False, path=cache, workload="unet32-64@64px"
    )
    # SAR→SAR renders run float32 whatever the chosen dtype: their records are listed too
    dtype_choice.record_steps("cpu", "float32", [30.0, 20.0, 20.0], compiled=False, path=cache, workload=full)
    env = {"SARVIZ_DTYPE_CACHE": str(cache), "SARVIZ_DTYPE_MEASURE": "1", "PATH": "/usr/bin:/bin"}
    import os

    env.update(
        {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HOME", "SARVIZ_HOME", "OMP_NUM_THREADS")}
    )  # same threads: same cache key
    out = subprocess.run(
        [sys.executable, "-m", "sarviz.cli", "doctor", "--device", "cpu"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "diffusion dtype bfloat16 (cached)" in out.stdout and "2.00× faster" in out.stdout
    assert "500.0 ms per UNet block" in out.stdout
    assert f"image of {full}): compiled 1.50× eager; 25 steps save 50 s vs a 165 s cold compile: not kept" in out.stdout
    assert "eager 6.00 s/step, compiled 4.00 s/step, compile 165 s cold" in out.stdout
    assert "image of unet32-64@64px): not measured on this machine" in out.stdout
    assert f"torch.compile for float32 (one 25-step image of {full})" in out.stdout
    assert "eager 20.00 s/step, compiled 0.00 s/step" in out.stdout


def test_speed_plan_defaults_and_switches(monkeypatch, tmp_path):
    monkeypatch.delenv("SARVIZ_COMPILE", raising=False)
    monkeypatch.delenv("SARVIZ_CHANNELS_LAST", raising=False)
    monkeypatch.delenv("SARVIZ_DTYPE_MEASURE", raising=False)
    monkeypatch.setenv("SARVIZ_DTYPE_CACHE", str(tmp_path / "dtype-choice.json"))
    assert runtime.speed_plan("cpu")["compile"] is False and runtime.speed_plan("cpu")["channels_last"] is False
    # auto (the default) with nothing measured on this machine: no compile, and it says why
    plan = runtime.speed_plan("cpu", "bfloat16")
    assert plan["compile"] is False and "not measured" in plan["compile_why"]
    assert runtime.speed_plan("cuda:0")["channels_last"] is True
    monkeypatch.setenv("SARVIZ_COMPILE", "on")
    monkeypatch.setenv("SARVIZ_CHANNELS_LAST", "1")
    plan = runtime.speed_plan("cpu")
    assert (plan["attention"], plan["channels_last"], plan["compile"]) == ("sdpa", True, True)
    assert plan["compile_why"] == "SARVIZ_COMPILE=on"
    assert runtime.speed_plan("mps")["compile"] is False  # inductor does not target MPS
    monkeypatch.setenv("SARVIZ_COMPILE", "auto")
    monkeypatch.setenv("SARVIZ_DTYPE_MEASURE", "0")  # measurements switched off: none used either
    assert "SARVIZ_DTYPE_MEASURE=0" in runtime.speed_plan("cpu", "bfloat16")["compile_why"]


def test_apply_speed_plan_wraps_the_denoisers(monkeypatch, tmp_path):
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        cross_attention_dim=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        norm_num_groups=4,
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=2,
    )
    vae = AutoencoderKL(block_out_channels=(8,), norm_num_groups=4, latent_channels=4)

    class Pipe:  # the attributes a diffusers pipeline has
        pass

    pipe = Pipe()
    pipe.unet, pipe.vae, pipe.controlnet = unet, vae, None
    applied = runtime.apply_speed_plan(pipe, "cpu", {"channels_last": True, "compile": True})
    # the denoisers only (the VAE decodes once per image), with inductor freezing on the CPU
    assert applied == {
        "channels_last": True,
        "compile": ["unet"],
        "attention": "sdpa",
        "compile_cache": "cold",
        "freezing": True,
    }
    assert isinstance(pipe.unet, torch._dynamo.eval_frame.OptimizedModule)
    assert not isinstance(pipe.vae.decoder, torch._dynamo.eval_frame.OptimizedModule)
    assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    # channels-last reaches the VAE too (all convolutions): its decode is faster for it
    assert vae.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    import os

    assert os.environ["TORCHINDUCTOR_CACHE_DIR"].endswith("inductor-cache")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")


def test_the_cpu_compile_freezes_the_weights_of_each_model_apart(monkeypatch, tmp_path):
    """Freezing for real: the compiled graph holds the weights as constants (a later change to the
    eager weights does not reach it: what folding and pre-packing need), each model its own (a second
    model of the same class is not served the first one's graph) — and the process's inductor config
    is left as it was. torch.compile's `options={"freezing": True}` alone did none of this. A frozen
    graph keeps its model alive until the model cache lets it go (forget_compiled)."""
    import gc
    import weakref

    import torch
    import torch._inductor.config as inductor_config

    if not torch.backends.mkldnn.is_available():
        pytest.skip("freezing pre-packs convolutions for oneDNN; this torch has no oneDNN")
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))

    class Denoiser(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(8, 16, 3, padding=1)
            self.proj = torch.nn.Linear(16, 8)

        def forward(self, x):  # noqa: ANN001, ANN202
            return self.proj(self.conv(x).mean((2, 3)))

    def rel(a, b) -> float:  # noqa: ANN001
        return float((a - b).norm() / b.norm())

    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(Denoiser().eval())
    x = torch.randn(2, 8, 8, 8)
    try:
        with torch.no_grad():
            compiled = [runtime.compile_denoiser(m, "cpu") for m in models]
            for model, fast in zip(models, compiled):
                assert rel(fast(x), model(x)) < 1e-5  # each its own weights
            assert inductor_config.freezing is False
            before = compiled[0](x)
            models[0].conv.weight.mul_(2.0)  # the eager model changes; the frozen graph keeps its constants
            assert rel(compiled[0](x), before) < 1e-6 and rel(models[0](x), before) > 0.1
        # the model cache lets a compiled model go: its weights leave memory with it
        cache = runtime.ModelCache(per_device=1)
        weight = weakref.ref(models[1].conv.weight)  # the model the cache will hold
        cache.get(("first", "cpu", "float32"), compiled.pop)  # the cache holds the last compiled model …
        del compiled, models, fast, model  # … and nothing else does
        cache.get(("second", "cpu", "float32"), lambda: object())
        gc.collect()
        assert weight() is None
    finally:
        runtime.forget_compiled()


# -- speed options: measured on the block in the chosen dtype, injected here ----------
def options(base: float, classic: float, cl: float, classic_drift: float = 0.001):
    calls = []

    def measure_opts(device, dtype):
        calls.append((device, dtype))
        return [
            OptionMeasurement("baseline", base),
            OptionMeasurement("attention=classic", classic, drift=classic_drift),
            OptionMeasurement("channels_last=on", cl),
        ]

    return measure_opts, calls


def test_decide_options_keeps_only_clear_wins_within_the_drift_limit():
    # SDPA 4.7× faster than classic (the full-size profile here), channels_last 10 % faster
    opts, reason = decide_options(
        [
            OptionMeasurement("baseline", 1.0),
            OptionMeasurement("attention=classic", 4.7),
            OptionMeasurement("channels_last=on", 0.9),
        ]
    )
    assert opts == {"attention": "sdpa", "channels_last": True} and "channels_last=on 1.11× kept" in reason
    # a median gain won in a minority of the interleaved rounds is the load moving, not the option
    # (here one slow baseline round makes the median gain)
    opts, reason = decide_options(
        [
            OptionMeasurement("baseline", 1.0, runs=[0.85, 1.0, 1.6], probe="encoder"),
            OptionMeasurement("channels_last=on", 0.9, runs=[0.9, 1.05, 0.9], probe="encoder"),
        ]
    )
    assert opts["channels_last"] is False and "minority of rounds" in reason
    # won in 2 of 3 rounds (one round's jump in load against it): kept
    opts, _ = decide_options(
        [
            OptionMeasurement("baseline", 1.9, runs=[0.96, 1.9, 2.16], probe="encoder"),
            OptionMeasurement("channels_last=on", 1.55, runs=[1.01, 1.55, 1.56], probe="encoder"),
        ]
    )
    assert opts["channels_last"] is True
    # each option is judged against its own probe's baseline, not another probe's
    opts, reason = decide_options(
        [
            OptionMeasurement("baseline", 0.3, runs=[0.3], probe="block"),
            OptionMeasurement("baseline", 2.0, runs=[2.0], probe="encoder"),
            OptionMeasurement("channels_last=on", 1.5, runs=[1.5], probe="encoder"),
        ]
    )
    assert opts["channels_last"] is True and "1.33× kept" in reason
    opts, reason = decide_options([OptionMeasurement("channels_last=on", 1.5, runs=[1.5], probe="encoder")])
    assert opts["channels_last"] is False and "baseline could not be timed" in reason
    # a 3 % gain is inside the timing noise of a shared machine: not kept
    opts, _ = decide_options([OptionMeasurement("baseline", 1.0), OptionMeasurement("channels_last=on", 0.97)])
    assert opts["channels_last"] is False
    # faster but drifting beyond 2 %: not kept
    opts, reason = decide_options(
        [OptionMeasurement("baseline", 1.0), OptionMeasurement("attention=classic", 0.5, drift=0.03)]
    )
    assert opts["attention"] == "sdpa" and "drift" in reason
    opts, _ = decide_options([OptionMeasurement("baseline", 1.0), OptionMeasurement("attention=classic", 0.8)])
    assert opts["attention"] == "classic"
    # an option that fails to run, or a baseline that could not be timed: defaults
    opts, reason = decide_options(
        [
            OptionMeasurement("baseline", 1.0),
            OptionMeasurement("channels_last=on", float("inf"), error="RuntimeError: x"),
        ]
    )
    assert opts == dtype_choice.DEFAULT_OPTIONS and "unavailable" in reason
    assert decide_options([OptionMeasurement("baseline", float("inf"), error="x")])[0] == dtype_choice.DEFAULT_OPTIONS


def test_options_are_measured_in_the_chosen_dtype_and_cached(tmp_path):
    cache = tmp_path / "dtype-choice.json"
    measure_opts, calls = options(1.0, 3.0, 0.8)
    first = measured_choice("cpu", path=cache, measure=timings(9.59, 5.69)[0], measure_opts=measure_opts)
    assert first.dtype == "bfloat16" and calls == [("cpu", "bfloat16")]
    assert first.speed_options == {"attention": "sdpa", "channels_last": True}
    again = measured_choice("cpu", path=cache, measure=timings(9.59, 5.69)[0], measure_opts=measure_opts)
    assert again.method == "cached" and again.speed_options == first.speed_options and len(calls) == 1
    assert again.option_measurements[2].seconds == 0.8

    def broken(device, dtype):
        raise RuntimeError("no diffusers")

    fallback = measured_choice("cpu", path=cache, refresh=True, measure=timings(1.0, 2.0)[0], measure_opts=broken)
    assert fallback.dtype == "float32" and fallback.speed_options == dtype_choice.DEFAULT_OPTIONS


def test_speed_plan_uses_the_options_measured_for_that_dtype_only(monkeypatch, tmp_path):
    for name in ("SARVIZ_CHANNELS_LAST", "SARVIZ_ATTENTION", "SARVIZ_COMPILE", "SARVIZ_DTYPE_MEASURE"):
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "dtype-choice.json"
    monkeypatch.setenv("SARVIZ_DTYPE_CACHE", str(cache))
    monkeypatch.setattr(runtime, "_DECISIONS", {})
    measured_choice("cpu", path=cache, measure=timings(9.59, 5.69)[0], measure_opts=options(1.0, 0.8, 0.9)[0])
    plan = runtime.speed_plan("cpu", "bfloat16")  # read from the cache, not measured again
    assert (plan["attention"], plan["channels_last"], plan["compile"]) == ("classic", True, False)
    assert plan["why"].startswith("measured for bfloat16")
    other = runtime.speed_plan("cpu", "float32")  # a --dtype the options were not measured for
    assert (other["attention"], other["channels_last"]) == ("sdpa", False) and other["why"].startswith("defaults")
    monkeypatch.setenv("SARVIZ_ATTENTION", "sdpa")
    monkeypatch.setenv("SARVIZ_CHANNELS_LAST", "off")
    plan = runtime.speed_plan("cpu", "bfloat16")
    assert (plan["attention"], plan["channels_last"]) == ("sdpa", False) and "overridden" in plan["why"]
    injected = runtime.speed_plan("cpu", measured={"attention": "classic"})
    assert injected["attention"] == "sdpa"  # the user's switch still wins over a measurement


def test_apply_speed_plan_sets_the_measured_attention_backend():
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        cross_attention_dim=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        norm_num_groups=4,
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=2,
    )

    class Pipe:
        pass

    pipe = Pipe()
    pipe.unet, pipe.controlnet, pipe.vae = unet, None, None
    assert all(isinstance(p, AttnProcessor2_0) for p in unet.attn_processors.values())
    applied = runtime.apply_speed_plan(
        pipe, "cpu", {"attention": "classic", "channels_last": False, "compile": False, "why": "measured (injected)"}
    )
    assert applied["attention"] == "classic" and applied["why"] == "measured (injected)"
    assert all(isinstance(p, AttnProcessor) for p in unet.attn_processors.values())


# -- torch.compile: judged on the step times real generations record (injected here) -----------
def test_decide_compile_weighs_the_measured_saving_against_the_compile_cost():
    from sarviz.generators.dtype_choice import CompileTimings, decide_compile

    # nothing measured, or only one side: never compile (a cold compile is minutes)
    assert decide_compile(CompileTimings(), 1000, cache_warm=True)[0] is False
    assert decide_compile(CompileTimings(eager_step_s=6.0), 1000, cache_warm=False)[0] is False
    # this machine's numbers: 6.0 s eager, 4.15 s compiled, 165 s cold compile
    t = CompileTimings(eager_step_s=6.0, compiled_step_s=4.15, compile_cold_s=165.0)
    on, why = decide_compile(t, 25, cache_warm=False)
    assert on is False and "25 steps save 46 s vs a 165 s cold compile: not kept" in why
    assert decide_compile(t, 100, cache_warm=False)[0] is True  # 185 s saved > 165 s
    # a warm kernel cache whose warm cost was never measured counts as cold
    assert decide_compile(t, 25, cache_warm=True)[0] is False
    t.compile_warm_s = 30.0
    on, why = decide_compile(t, 25, cache_warm=True)
    assert on is True and "30 s warm compile: kept" in why
    # a compiled model that is not clearly faster is not worth it at any job size
    slow = CompileTimings(eager_step_s=6.0, compiled_step_s=5.9, compile_cold_s=1.0, compile_warm_s=1.0)
    assert decide_compile(slow, 10_000, cache_warm=True)[0] is False


def test_generations_record_step_times_that_drive_the_compile_choice(monkeypatch, tmp_path):
    from sarviz.generators.dtype_choice import compile_timings, kernel_cache_warm

    for name in ("SARVIZ_COMPILE", "SARVIZ_DTYPE_MEASURE", "SARVIZ_CHANNELS_LAST", "SARVIZ_ATTENTION"):
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "dtype-choice.json"
    kernels = tmp_path / "inductor-cache"
    monkeypatch.setenv("SARVIZ_DTYPE_CACHE", str(cache))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(kernels))
    # an eager run: the first step (text encoder, set-up) is not a steady step
    runtime.record_step_times("cpu", "bfloat16", [9.0, 6.1, 5.9, 6.0], compiled=False, compile_paid=False)
    assert compile_timings("cpu", "bfloat16").eager_step_s == 6.0
    assert compile_timings("cpu", "float32").eager_step_s == 0.0  # per dtype
    # a first compiled run with an empty kernel cache: first − steady is the cold compile cost
    runtime.record_step_times("cpu", "bfloat16", [169.2, 4.2, 4.15, 4.1], compiled=True, compile_paid=True)
    t = compile_timings("cpu", "bfloat16")
    assert (t.compiled_step_s, round(t.compile_cold_s, 2), t.compile_warm_s) == (4.15, 165.05, 0.0)
    assert not kernel_cache_warm(t, str(kernels))  # the folder was never filled
    plan = runtime.speed_plan("cpu", "bfloat16", steps=25)
    assert plan["compile"] is False and plan["compile_cache"] == "cold"
    assert runtime.speed_plan("cpu", "bfloat16", steps=200)["compile"] is True  # a batch job pays back
    # the kernels are on disk now: a later process finds the cache warm, and measures the warm cost
    kernels.mkdir()
    (kernels / "fxgraph").mkdir()
    assert runtime.speed_plan("cpu", "bfloat16", steps=25)["compile_cache"] == "warm"
    runtime.record_step_times("cpu", "bfloat16", [34.15, 4.15, 4.15], True, True, cache_warm=True)
    assert round(compile_timings("cpu", "bfloat16").compile_warm_s, 2) == 30.0
    plan = runtime.speed_plan("cpu", "bfloat16", steps=25)
    assert plan["compile"] is True and "warm compile: kept" in plan["compile_why"]
    # compiled on the CPU means channels-last (NCHW compiled was no faster than eager), unless switched off
    assert plan["channels_last"] is True and "channels_last with compile" in plan["why"]
    monkeypatch.setenv("SARVIZ_CHANNELS_LAST", "off")
    assert runtime.speed_plan("cpu", "bfloat16", steps=25)["channels_last"] is False
    monkeypatch.delenv("SARVIZ_CHANNELS_LAST")
    assert runtime.speed_plan("cpu", "bfloat16", steps=5)["channels_last"] is False  # not compiled: as measured
    # records are per workload (model and image size): another size has measured nothing yet, and its
    # own record leaves the others alone
    small = "unet320-640-1280-1280+controlnet@256px"
    plan = runtime.speed_plan("cpu", "bfloat16", steps=200, workload=small)
    assert plan["compile"] is False and "not measured" in plan["compile_why"] and plan["workload"] == small
    runtime.record_step_times("cpu", "bfloat16", [2.0, 1.0, 1.0], False, False, workload=small)
    assert compile_timings("cpu", "bfloat16", workload=small).eager_step_s == 1.0
    assert compile_timings("cpu", "bfloat16").eager_step_s == 6.0
    # the switches still win; a single-step run teaches nothing
    monkeypatch.setenv("SARVIZ_COMPILE", "off")
    assert runtime.speed_plan("cpu", "bfloat16", steps=25)["compile"] is False
    before = cache.read_text()
    runtime.record_step_times("cpu", "bfloat16", [3.0], compiled=False, compile_paid=False)
    assert cache.read_text() == before
    # the dtype decisions in the same file are untouched by the compile records
    assert json.loads(before)["entries"] == {}


def test_the_kernel_cache_lives_in_the_sarviz_home_unless_the_user_moved_it(monkeypatch, tmp_path):
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    assert runtime.inductor_cache_dir() == str(tmp_path / "inductor-cache")
    # torch writes its /tmp default into the variable the first time anything asks for its cache folder
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    assert runtime.inductor_cache_dir() == str(tmp_path / "inductor-cache")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert runtime.inductor_cache_dir() == str(tmp_path / "mine")


class _PlannedSteps:
    """What a loaded diffusion model hands ``run_generation``: its speed plan in ``info["speed"]``."""

    def __init__(self) -> None:
        self.info: dict = {}
        self.lock = threading.Lock()


class _StepTimesTransformer(ImageTransformer):
    """Test-only: a transformer whose "denoising" steps sleep a given time and whose speed plan is set
    per request, as the SAR→SAR renderer's is (``compile_paid`` said by the generator), or left to
    ``run_generation`` (``plan_at_load``: the geo and prompt pipelines' way)."""

    kind = "step-times (test)"

    def __init__(self, plan_at_load: bool = False) -> None:
        super().__init__(card=None)
        self.loaded = _PlannedSteps()
        if plan_at_load:
            self.loaded.info["speed"] = {"compile": True, "workload": "w@512px", "compile_cache": "cold"}

    @property
    def model_id(self) -> str:
        return "step-times-test"

    def load(self, device, dtype, progress=None):
        return self.loaded

    def transform(self, source, request, progress=None, cancel=None):
        opts = request.options

        def work(ctx):
            if "speed" in opts:
                ctx.loaded.info["speed"] = dict(opts["speed"])
            if opts.get("fail_first"):
                raise GenerationError("the prompt is too long (test)")  # before any step: nothing compiled
            for k, seconds in enumerate(opts["steps"]):
                time.sleep(seconds)
                ctx.step(k + 1)
            return None

        def finish(raw, record):
            return [source]

        return run_generation(self, request, total=len(opts["steps"]), work=work, finish=finish, dtype="float32")[0]


def test_run_generation_files_the_compile_cost_once_per_compile(monkeypatch, tmp_path):
    from sarviz.generators.dtype_choice import compile_timings

    monkeypatch.setenv("SARVIZ_DTYPE_MEASURE", "1")
    monkeypatch.setenv("SARVIZ_DTYPE_CACHE", str(tmp_path / "dtype-choice.json"))
    source = GenerationResult(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32), None, None, {})

    def run(gen, steps, **opts):
        gen.transform(source, TransformRequest(seed=0, device="cpu", options={"steps": steps, **opts}))

    # a plan made at load: the first run that finishes a step pays the compile (first − steady), later ones not
    # (sleeps stand for the steps; bounds are loose so a busy machine's late wake-ups do not matter)
    at_load = _StepTimesTransformer(plan_at_load=True)
    run(at_load, [1.0, 0.01, 0.01])
    cold = compile_timings("cpu", "float32", workload="w@512px").compile_cold_s
    assert cold > 0.5 and compile_timings("cpu", "float32", workload="w@512px").compiled_step_s < 0.5
    run(at_load, [1.0, 0.01, 0.01])  # already compiled: a slow first step is not a compile
    assert compile_timings("cpu", "float32", workload="w@512px").compile_cold_s == cold
    # a run that fails before finishing a step has not compiled: the next run still pays (and files) it
    fresh = _StepTimesTransformer(plan_at_load=True)
    with pytest.raises(GenerationError):
        run(fresh, [0.01], fail_first=True)
    assert not fresh.loaded.info.get("compiled")
    run(fresh, [0.01, 0.01, 0.01])
    assert fresh.loaded.info.get("compiled") is True
    assert compile_timings("cpu", "float32", workload="w@512px").compile_cold_s < cold  # filed: this run paid
    # a plan made per request says itself whether this run paid: a new tile size is a new compile
    renderer = _StepTimesTransformer()
    speed = {"compile": True, "workload": "tile@256px", "compile_cache": "cold", "compile_paid": True}
    run(renderer, [1.0, 0.01, 0.01], speed=speed)
    cold = compile_timings("cpu", "float32", workload="tile@256px").compile_cold_s
    assert cold > 0.5
    run(renderer, [1.0, 0.01, 0.01], speed={**speed, "compile_paid": False})
    assert compile_timings("cpu", "float32", workload="tile@256px").compile_cold_s == cold
    run(renderer, [0.01, 0.01, 0.01], speed={**speed, "workload": "tile@512px"})
    assert compile_timings("cpu", "float32", workload="tile@512px").compiled_step_s < 0.5


def test_the_option_probes_run_and_measure_each_option_against_its_own_baseline():
    """The real measurement, at a test's size: every option timed on its probe, interleaved with that
    probe's baseline, drift against it (timings on this machine are not asserted)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        got = REAL_MEASURE_OPTIONS("cpu", "float32", repeats=2, small=True)
    finally:
        torch.set_num_threads(before)
    by = {(m.probe, m.option): m for m in got}
    assert set(by) == {
        ("block", "baseline"),
        ("block", "attention=classic"),
        ("encoder", "baseline"),
        ("encoder", "channels_last=on"),
    }
    for m in got:
        assert not m.error and len(m.runs) == 2 and m.seconds > 0
    assert by[("block", "baseline")].drift == 0.0 and by[("encoder", "baseline")].drift == 0.0
    # the same float32 math in another layout or attention kernel: close, not bit-equal
    assert 0 <= by[("encoder", "channels_last=on")].drift < 1e-3
    assert 0 <= by[("block", "attention=classic")].drift < 1e-3
    opts, reason = decide_options(got)
    assert set(opts) == {"attention", "channels_last"} and "attention=classic" in reason
