"""Measured dtype choice: time one representative block per dtype on *this* machine.

A rule of thumb ("bf16 only with AMX") leaves speed on the table: an AMD EPYC with
``avx512_bf16`` but no AMX runs the SD 1.5 UNet 1.68× faster in bf16, and a CPU with
neither runs it 2–3× *slower* (oneDNN emulates bf16 there). So on first use on a machine
sarviz times one block of the model at its real size in each candidate dtype, checks how
far its output drifts from float32, and keeps the fastest dtype that is both clearly faster
(≥ :data:`MIN_SPEEDUP`) and close enough (relative L2 ≤ :data:`MAX_DRIFT`). The decision is
cached per machine and torch version in the sarviz home folder, with the numbers, so later
runs decide instantly; ``sarviz doctor`` prints it; provenance records it; a user's
``--dtype`` always wins (:func:`sarviz.generators.runtime.choose_dtype`).

The block: one ``CrossAttnDownBlock2D`` of the SD 1.5 UNet at 512² (320 channels, 64×64
latents, batch 2 for classifier-free guidance, 77 CLIP tokens): ResNet convolutions, group
norm, self- and cross-attention — the op mix that dominates a denoising step. The
ControlNet's blocks are the same ops. Timings interleave the dtypes (ratios within one
run stay valid on a busy machine) and take medians.

Then the **speed options** are measured in the chosen dtype, each on the piece of the model
where it acts (:data:`OPTION_PROBES`): the attention backend (PyTorch's fused CPU/GPU
``scaled_dot_product_attention``, diffusers' default, against the classic ``baddbmm + softmax +
bmm``) on the same block, the channels-last memory format on the SD 1.5 encoder (a ControlNet,
all four resolutions). An option is kept only when it is at least :data:`MIN_OPTION_GAIN`
faster than its probe's baseline in the median *and* in most interleaved rounds, with an output
within :data:`MAX_DRIFT` of it; each option is judged on its own (combinations are not measured).
The chosen options are cached with the dtype (``DtypeDecision.speed_options``) and applied by :func:`sarviz.generators.runtime.speed_plan`.

``torch.compile`` cannot be judged on one block: its cost is minutes of one-time compilation
of the whole UNet + ControlNet, its gain is per step of the whole model. So it is judged on
**real generations**: every generation records its steady seconds per step (eager or
compiled, per dtype) and a compiled one also its compile cost (first step − steady step), cold
or with inductor's kernel cache warm (:class:`CompileTimings`, :func:`record_steps`, in the
same cache file). :func:`decide_compile` compiles only when the measured saving over the
job's steps exceeds the measured compile cost for the cache's state — so nothing is compiled
until a user asked once (``SARVIZ_COMPILE=on``) and the numbers say it pays back.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

#: the largest relative L2 difference from float32 of the block output we accept
MAX_DRIFT = 0.02
#: a lower precision must be at least this much faster to be worth its drift
MIN_SPEEDUP = 1.10
#: a speed option must make the block at least this much faster to be used (timing noise on a
#: shared machine is a few %; a smaller gain is not worth a code path that differs from the default)
MIN_OPTION_GAIN = 1.05
#: cache format version (bump when the block or the rule changes); 2: speed options measured too;
#: 3: channels-last measured on the SD 1.5 encoder, an option must win most interleaved rounds, compile
#: records are per workload (model size, image size); 4: compiled steps on the CPU are frozen for real
#: (records made before timed a compile without freezing)
CACHE_VERSION = 4
CACHE_NAME = "dtype-choice.json"

#: (dtype, device kind) → candidates to measure, float32 first (the reference)
CANDIDATES = {"cpu": ("float32", "bfloat16"), "cuda": ("float32", "bfloat16", "float16")}

#: the speed options' defaults (what a pipeline gets when nothing was measured)
DEFAULT_OPTIONS: dict[str, Any] = {"attention": "sdpa", "channels_last": False}
#: option variants measured against the baseline (DEFAULT_OPTIONS): name → options changed
OPTION_VARIANTS: dict[str, dict[str, Any]] = {
    "attention=classic": {"attention": "classic"},
    "channels_last=on": {"channels_last": True},
}
#: the model piece that measures each option, where the option acts: the attention backend on the
#: highest-resolution attention block (4,096 tokens: attention dominates it), the memory format on
#: the SD 1.5 encoder (a ControlNet: convolutions at all four resolutions and the conditioning
#: embedding at 512²). On one block, channels-last measured 0.93× while the whole bf16 step ran
#: 1.37× faster with it (2.52 vs 3.44 s, quiet machine; benchmarks/RESULTS_cpu_speed.md).
OPTION_PROBES: dict[str, str] = {"attention=classic": "block", "channels_last=on": "encoder"}


@dataclass
class Measurement:
    dtype: str
    seconds: float  # median forward time of the block
    runs: list[float] = field(default_factory=list)
    drift: float = 0.0  # relative L2 of the output vs float32
    error: str = ""  # the dtype could not run (then seconds = inf)


@dataclass
class OptionMeasurement:
    option: str  # "baseline" or a key of OPTION_VARIANTS
    seconds: float  # median forward time of the probe in the chosen dtype
    runs: list[float] = field(default_factory=list)
    drift: float = 0.0  # relative L2 of the output vs the baseline's (same dtype, same probe)
    error: str = ""
    probe: str = "block"  # the model piece timed (OPTION_PROBES); each has its own baseline


@dataclass
class DtypeDecision:
    device: str
    dtype: str
    method: str  # "measured", "cached", "rule" (measuring impossible), "user"
    reason: str
    measurements: list[Measurement] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    measured_at: str = ""
    #: the speed options measured for ``dtype`` on this machine (empty: not measured → defaults)
    speed_options: dict[str, Any] = field(default_factory=dict)
    options_reason: str = ""
    option_measurements: list[OptionMeasurement] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DtypeDecision":
        meas = [Measurement(**m) for m in data.get("measurements", [])]
        opts = [OptionMeasurement(**m) for m in data.get("option_measurements", [])]
        return cls(
            device=data["device"],
            dtype=data["dtype"],
            method=data["method"],
            reason=data["reason"],
            measurements=meas,
            machine=dict(data.get("machine", {})),
            measured_at=data.get("measured_at", ""),
            speed_options=dict(data.get("speed_options", {})),
            options_reason=data.get("options_reason", ""),
            option_measurements=opts,
        )

    def summary(self) -> str:
        """One line for provenance and the UI, e.g. ``float32 (measured: bfloat16 2.4× slower)``."""
        return f"{self.dtype} ({self.method}: {self.reason})"


# -- machine identity -----------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key(device: str) -> dict[str, Any]:
    """What the decision depends on: CPU/GPU model, ISA features, torch version, threads."""
    import torch

    from sarviz.generators import device as device_facts

    kind = device.split(":", 1)[0]
    key: dict[str, Any] = {
        "torch": torch.__version__,
        "device": kind,
        "platform": platform.machine(),
        "version": CACHE_VERSION,
    }
    if kind == "cuda":
        index = int(device.split(":", 1)[1]) if ":" in device else torch.cuda.current_device()
        key["gpu"] = torch.cuda.get_device_name(index)
        key["capability"] = list(torch.cuda.get_device_capability(index))
    else:
        cap = device_facts.cpu_capability()
        key["cpu"] = _cpu_model()
        key["isa"] = cap["isa"]
        key["features"] = sorted(k for k in ("amx_tile", "amx_fp16", "avx512_bf16", "mkldnn_bf16") if cap.get(k))
        key["threads"] = torch.get_num_threads()
    return key


def known_options(device: str, dtype: str, decision: "DtypeDecision | None" = None) -> tuple[dict[str, Any], str]:
    """The speed options measured for ``dtype`` on ``device`` — from this process's ``decision``
    (the runtime passes its own) or the cache, never measured here — and where they came from;
    defaults when none match."""
    if decision is None:
        try:
            entry = _read_cache(cache_path()).get("entries", {}).get(_key_id(machine_key(device)))
            decision = DtypeDecision.from_dict(entry) if entry else None
        except (KeyError, TypeError, ValueError):
            decision = None
    if decision is not None and decision.dtype == dtype and decision.speed_options:
        return {**DEFAULT_OPTIONS, **decision.speed_options}, f"measured for {dtype} ({decision.options_reason})"
    return dict(DEFAULT_OPTIONS), f"defaults (no measurement for {dtype} on this machine)"


def _key_id(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


# -- the measurement -------------------------------------------------------------------------------
def _block_and_inputs(device: str, seed: int = 0, small: bool = False):
    """SD 1.5's first CrossAttnDownBlock2D (320 channels, 8 heads) at 64×64 latents, batch 2, random
    weights, and its inputs; ``small``: 32 channels at 16×16 (tests)."""
    import torch
    from diffusers.models.unets.unet_2d_blocks import CrossAttnDownBlock2D

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ch, side = (32, 16) if small else (320, 64)
    block = CrossAttnDownBlock2D(
        in_channels=ch,
        out_channels=ch,
        temb_channels=1280,
        num_layers=1,
        transformer_layers_per_block=1,
        num_attention_heads=8,
        cross_attention_dim=768,
        add_downsample=False,
        resnet_groups=8 if small else 32,
    ).eval()
    x = torch.randn(2, ch, side, side, generator=gen)
    temb = torch.randn(2, 1280, generator=gen)
    ctx = torch.randn(2, 77, 768, generator=gen)
    return block.to(device), x.to(device), temb.to(device), ctx.to(device)


def _summarise(
    kind: Any,
    names: tuple[str, ...],
    reference: str,
    runs: dict[str, list[float]],
    outs: dict[str, Any],
    errors: dict[str, str],
) -> list[Any]:
    """One ``kind`` (Measurement or OptionMeasurement) a name: median time, the timed runs and the
    relative L2 drift of its output against ``reference``'s; a name that failed gets inf and its error."""
    ref = outs.get(reference)
    result = []
    for name in names:
        if name in errors:
            result.append(kind(name, float("inf"), [], float("nan"), errors[name]))
            continue
        drift = 0.0 if ref is None or name == reference else float((outs[name] - ref).norm() / ref.norm())
        result.append(kind(name, statistics.median(runs[name]), [round(r, 4) for r in runs[name]], drift))
    return result


def _error_text(exc: BaseException) -> str:
    """One line for a measurement that could not run (kept with the numbers, shown by ``sarviz doctor``)."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"


def _synchronizer(device: str) -> Callable[[], None]:
    """Waits for ``device``'s queued work before a clock is read (CUDA runs asynchronously)."""
    import torch

    def sync() -> None:
        if device.split(":", 1)[0] == "cuda":
            torch.cuda.synchronize(device)

    return sync


def _timed_round(
    name: str,
    rep: int,
    call: Callable[[], Any],
    sync: Callable[[], None],
    runs: dict[str, list[float]],
    outs: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """Time one interleaved round of ``name``: round 0 keeps the output (for the drift) and warms up,
    later rounds add their seconds; a failure is kept as ``name``'s error (it is not timed again)."""
    try:
        sync()
        t0 = time.perf_counter()
        out = call()
        sync()
        elapsed = time.perf_counter() - t0
    except (RuntimeError, TypeError, NotImplementedError) as exc:
        errors[name] = _error_text(exc)
        return
    if rep == 0:
        outs[name] = out.float().cpu()
    else:
        runs[name].append(elapsed)


def measure_block(
    device: str, dtypes: tuple[str, ...] | None = None, repeats: int = 3, clear_ratio: float = 1.5
) -> list[Measurement]:
    """Median forward time and float32 drift of the representative block for each dtype.

    Stops after the first timed round when every candidate is already clearly faster or
    slower than float32 (by ``clear_ratio``), so that first use costs a few seconds, not tens.
    """
    import torch

    from sarviz.generators.device import torch_dtype

    kind = device.split(":", 1)[0]
    dtypes = dtypes or CANDIDATES.get(kind, ("float32",))
    block, x, temb, ctx = _block_and_inputs(device)

    sync = _synchronizer(device)

    runs: dict[str, list[float]] = {d: [] for d in dtypes}
    outs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    with torch.inference_mode():
        for rep in range(repeats + 1):  # round 0 warms up each dtype (oneDNN primitive creation)
            for name in dtypes:
                if name in errors:
                    continue
                dt = torch_dtype(name)
                try:  # before the timer: casting the weights is not a forward pass
                    b, args = block.to(dt), (x.to(dt), temb.to(dt), ctx.to(dt))
                except (RuntimeError, TypeError, NotImplementedError) as exc:  # dtype unsupported here
                    errors[name] = _error_text(exc)
                    continue

                def call(b=b, a=args):
                    return b(a[0], a[1], encoder_hidden_states=a[2])[0]

                _timed_round(name, rep, call, sync, runs, outs, errors)
            if rep == 1 and runs.get("float32"):
                ratios = [runs[d][0] / runs["float32"][0] for d in dtypes if d != "float32" and runs[d]]
                if ratios and all(r >= clear_ratio or r <= 1 / clear_ratio for r in ratios):
                    break
    return _summarise(Measurement, dtypes, "float32", runs, outs, errors)


def decide(
    measurements: list[Measurement], max_drift: float = MAX_DRIFT, min_speedup: float = MIN_SPEEDUP
) -> tuple[str, str]:
    """(dtype, reason) from measurements: the fastest acceptable dtype, float32 otherwise."""
    by = {m.dtype: m for m in measurements}
    base = by.get("float32")
    if base is None or not (base.seconds > 0 and base.seconds != float("inf")):
        return "float32", "float32 could not be timed"
    best, best_t = "float32", base.seconds
    notes = []
    for m in measurements:
        if m.dtype == "float32":
            continue
        if m.error:
            notes.append(f"{m.dtype} unavailable")
            continue
        speedup = base.seconds / m.seconds
        if m.drift > max_drift:
            notes.append(f"{m.dtype} {speedup:.2f}× but drift {m.drift:.1%} > {max_drift:.0%}")
        elif speedup < min_speedup:
            notes.append(f"{m.dtype} {speedup:.2f}× (slower)" if speedup < 1 else f"{m.dtype} only {speedup:.2f}×")
        elif m.seconds < best_t:
            best, best_t = m.dtype, m.seconds
            notes.insert(0, f"{m.dtype} {speedup:.2f}× faster, drift {m.drift:.2%}")
    if best == "float32":
        notes.insert(0, "no lower precision pays off")
    return best, "; ".join(notes)


def _set_block_options(block, options: dict[str, Any]):
    import torch
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    for module in block.modules():
        if hasattr(module, "set_processor") and hasattr(module, "processor"):
            module.set_processor(AttnProcessor() if options.get("attention") == "classic" else AttnProcessor2_0())
    block.to(memory_format=torch.channels_last if options.get("channels_last") else torch.contiguous_format)


#: the encoder probe at a test's size (diffusers' dummy-component sizes): the same code path in seconds
SMALL_ENCODER = {"block_out_channels": (8, 16), "norm_num_groups": 4, "attention_head_dim": 2,
                 "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
                 "conditioning_embedding_out_channels": (4, 8, 8, 16), "cross_attention_dim": 8}  # fmt: skip


def _encoder_and_inputs(device: str, seed: int = 0, small: bool = False):
    """The SD 1.5 encoder as a ControlNet (its down blocks, mid block and a 3-channel conditioning
    embedding at 512²) with random weights, and its inputs at batch 2 — the channels-last probe.
    ``small``: :data:`SMALL_ENCODER` at 64² (tests)."""
    import torch
    from diffusers import ControlNetModel

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    # diffusers' ControlNetModel defaults are SD 1.5's layout; the text width is SD 1.5's CLIP
    config: dict[str, Any] = dict(SMALL_ENCODER) if small else {"cross_attention_dim": 768}
    net = ControlNetModel(**config).eval()
    with torch.no_grad():  # the zero-initialised output convolutions would make every output 0
        for module in (*net.controlnet_down_blocks, net.controlnet_mid_block):
            module.weight.normal_(0.0, 0.02, generator=gen)
    side, width = (8, 8) if small else (64, 768)
    x = torch.randn(2, 4, side, side, generator=gen)
    cond = torch.randn(2, 3, side * 8, side * 8, generator=gen)
    ctx = torch.randn(2, 77, width, generator=gen)
    return net.to(device), x.to(device), cond.to(device), ctx.to(device)


def _probe(device: str, name: str, dt: Any, small: bool = False) -> tuple[Any, Callable[[dict[str, Any]], Any]]:
    """(module, run(options) → output) for one probe of :data:`OPTION_PROBES` in dtype ``dt``."""
    import torch

    if name == "encoder":
        net, x, cond, ctx = _encoder_and_inputs(device, small=small)
        net, x, cond, ctx = net.to(dt), x.to(dt), cond.to(dt), ctx.to(dt)
        t = torch.tensor([500, 500], device=device)

        def run_encoder(options: dict[str, Any]) -> Any:
            fmt = torch.channels_last if options["channels_last"] else torch.contiguous_format
            down, mid = net(
                x.contiguous(memory_format=fmt),
                t,
                encoder_hidden_states=ctx,
                controlnet_cond=cond.contiguous(memory_format=fmt),
                return_dict=False,
            )
            return torch.cat([r.flatten() for r in (*down, mid)])

        return net, run_encoder
    block, x, temb, ctx = _block_and_inputs(device, small=small)
    block, x, temb, ctx = block.to(dt), x.to(dt), temb.to(dt), ctx.to(dt)

    def run_block(options: dict[str, Any]) -> Any:
        xi = x.contiguous(memory_format=torch.channels_last) if options["channels_last"] else x
        return block(xi, temb, encoder_hidden_states=ctx)[0]

    return block, run_block


def measure_options(device: str, dtype: str, repeats: int = 3, small: bool = False) -> list[OptionMeasurement]:
    """Median time and drift (vs the same probe's baseline, same dtype) of each speed option in
    ``dtype``, each on its probe (:data:`OPTION_PROBES`); a probe's variants are interleaved.
    ``small``: both probes at a test's size (the same code path in seconds)."""
    import torch

    from sarviz.generators.device import torch_dtype

    dt = torch_dtype(dtype)
    sync = _synchronizer(device)
    result: list[OptionMeasurement] = []
    for probe in dict.fromkeys(OPTION_PROBES.values()):
        module, forward = _probe(device, probe, dt, small)
        variants = {"baseline": {}, **{k: v for k, v in OPTION_VARIANTS.items() if OPTION_PROBES[k] == probe}}
        runs: dict[str, list[float]] = {v: [] for v in variants}
        outs: dict[str, Any] = {}
        errors: dict[str, str] = {}
        with torch.inference_mode():
            for rep in range(repeats + 1):  # interleaved; round 0 warms up
                for name, changed in variants.items():
                    if name in errors:
                        continue
                    options = {**DEFAULT_OPTIONS, **changed}
                    try:
                        _set_block_options(module, options)  # before the timer: re-laying out weights is not a step
                    except (RuntimeError, TypeError, NotImplementedError) as exc:
                        errors[name] = _error_text(exc)
                        continue
                    _timed_round(name, rep, functools.partial(forward, options), sync, runs, outs, errors)
        for m in _summarise(OptionMeasurement, tuple(variants), "baseline", runs, outs, errors):
            m.probe = probe
            result.append(m)
        del module, forward  # free the probe before the next one is built
    return result


def _wins_most_rounds(baseline_runs: list[float], option_runs: list[float]) -> bool:
    """Whether the option beat the baseline in most interleaved rounds (each round times both back
    to back, so a round compares them under the same load). A median gain won in a minority of
    rounds is the load moving between rounds — one slow round of the baseline makes a median gain
    on 3 rounds (step times on this 2-core machine jump ±50 % now and then, quiet or not:
    benchmarks/RESULTS_cpu_speed.md). Without the rounds (older records), the median decides."""
    pairs = list(zip(baseline_runs, option_runs))
    return not pairs or sum(o < b for b, o in pairs) * 2 > len(pairs)


def decide_options(
    measurements: list[OptionMeasurement], max_drift: float = MAX_DRIFT, min_gain: float = MIN_OPTION_GAIN
) -> tuple[dict[str, Any], str]:
    """(options, reason): each variant kept only when ≥ ``min_gain`` faster (median) within
    ``max_drift`` and faster than the baseline in most interleaved rounds (:func:`_wins_most_rounds`)."""
    options = dict(DEFAULT_OPTIONS)
    by = {m.option: m for m in measurements}
    bases = {m.probe: m for m in measurements if m.option == "baseline"}
    notes = []
    for name, changed in OPTION_VARIANTS.items():
        m = by.get(name)
        if m is None:
            continue
        base = bases.get(m.probe)
        if base is None or base.error or not (0 < base.seconds < float("inf")):
            notes.append(f"{name}: its baseline could not be timed (default kept)")
            continue
        if m.error:
            notes.append(f"{name} unavailable")
            continue
        gain = base.seconds / m.seconds
        if m.drift > max_drift:
            notes.append(f"{name} {gain:.2f}× but drift {m.drift:.1%}")
        elif gain < min_gain:
            notes.append(f"{name} {gain:.2f}× (not kept)")
        elif not _wins_most_rounds(base.runs, m.runs):
            notes.append(f"{name} {gain:.2f}× but faster in a minority of rounds (noise; not kept)")
        else:
            options.update(changed)
            notes.append(f"{name} {gain:.2f}× kept")
    return options, "; ".join(notes) or "defaults"


# -- torch.compile: judged on real generations ---------------------------------------------------------
@dataclass
class CompileTimings:
    """Seconds per denoising step of the full model, eager and compiled, and the compile cost,
    as measured by generations on this machine in one dtype (:func:`record_steps`)."""

    eager_step_s: float = 0.0  # steady s/step without compile (0: never measured)
    compiled_step_s: float = 0.0  # steady s/step compiled
    compile_cold_s: float = 0.0  # first compiled step − steady step, empty kernel cache
    compile_warm_s: float = 0.0  # the same with inductor's kernel cache warm (a later process)
    cache_dir: str = ""  # the kernel cache a compiled run filled (warm for later runs while it exists)
    updated_at: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CompileTimings":
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


def _steady(step_seconds: list[float]) -> float | None:
    """The steady seconds per step: the median after the first (which holds set-up and compile)."""
    later = [s for s in step_seconds[1:] if s > 0]
    return statistics.median(later) if later else None


def _record_name(dtype: str, workload: str) -> str:
    """The key of one compile record: the dtype, and the workload when one is named."""
    return f"{dtype} {workload}" if workload else dtype


def compile_timings(device: str, dtype: str, path: Path | None = None, workload: str = "") -> CompileTimings:
    """What generations measured for ``dtype`` on this machine (zeros where nothing was).

    ``workload`` (:func:`sarviz.generators.runtime.workload_name`: the denoiser's size and the image
    size) keeps the records of different models apart: a step of a small model or a smaller image
    says nothing about whether compiling full-size SD 1.5 at 512² pays back."""
    entry = (
        _read_cache(path or cache_path())
        .get("compile", {})
        .get(_key_id(machine_key(device)), {})
        .get(_record_name(dtype, workload))
    )
    try:
        return CompileTimings.from_dict(entry) if isinstance(entry, dict) else CompileTimings()
    except (TypeError, ValueError):
        return CompileTimings()


def compile_records(device: str, dtype: str, path: Path | None = None) -> dict[str, CompileTimings]:
    """Every workload's compile record for ``dtype`` on this machine (``sarviz doctor`` lists them)."""
    records = _read_cache(path or cache_path()).get("compile", {}).get(_key_id(machine_key(device)), {})
    out = {}
    for name, entry in sorted(records.items()):
        got, _, workload = name.partition(" ")
        if got == dtype and isinstance(entry, dict):
            try:
                out[workload] = CompileTimings.from_dict(entry)
            except (TypeError, ValueError):
                continue
    return out


def kernel_cache_warm(timings: CompileTimings, cache_dir: str) -> bool:
    """Whether a compiled run of this dtype filled ``cache_dir`` and it still holds kernels."""
    folder = Path(cache_dir)
    return bool(timings.compiled_step_s and timings.cache_dir == cache_dir and folder.is_dir()) and any(
        folder.iterdir()
    )


def record_steps(
    device: str,
    dtype: str,
    step_seconds: list[float],
    *,
    compiled: bool,
    compile_paid: bool = False,
    cache_warm: bool = False,
    cache_dir: str = "",
    workload: str = "",
    path: Path | None = None,
) -> CompileTimings | None:
    """Add one generation's step times to the record for ``dtype`` (None: too few steps to tell).

    ``compile_paid``: this run's first step compiled the model (its first run after loading);
    then first − steady is the compile cost, filed as warm or cold by ``cache_warm``.
    """
    steady = _steady(step_seconds)
    if steady is None:
        return None
    path = path or cache_path()
    key_id = _key_id(machine_key(device))
    timings = compile_timings(device, dtype, path, workload)
    if compiled:
        timings.compiled_step_s = steady
        if compile_paid:
            cost = max(0.0, step_seconds[0] - steady)
            if cache_warm:
                timings.compile_warm_s = cost
            else:
                timings.compile_cold_s = cost
            timings.cache_dir = cache_dir
    else:
        timings.eager_step_s = steady
    timings.updated_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    data = _read_cache(path) or {"version": CACHE_VERSION, "entries": {}}
    data.setdefault("compile", {}).setdefault(key_id, {})[_record_name(dtype, workload)] = asdict(timings)
    _write_data(path, data)
    return timings


def decide_compile(
    timings: CompileTimings, steps: int, cache_warm: bool, min_gain: float = MIN_OPTION_GAIN
) -> tuple[bool, str]:
    """(compile?, why) for a job of ``steps`` denoising steps: only when eager and compiled steps
    were both measured here, compiled is ≥ ``min_gain`` faster, and ``steps`` × the saving per
    step exceeds the compile cost measured for the kernel cache's state (a warm cache whose
    warm cost was never measured counts as cold)."""
    eager, compiled = timings.eager_step_s, timings.compiled_step_s
    if not (eager > 0 and compiled > 0):
        return False, "not measured on this machine (SARVIZ_COMPILE=on measures it)"
    gain = eager / compiled
    if gain < min_gain:
        return False, f"compiled {gain:.2f}× eager (not kept)"
    state = "warm" if cache_warm and timings.compile_warm_s > 0 else "cold"
    cost = timings.compile_warm_s if state == "warm" else timings.compile_cold_s
    if cost <= 0:
        return False, f"compiled {gain:.2f}× eager, compile cost not measured"
    saving = steps * (eager - compiled)
    verdict = "kept" if saving > cost else "not kept"
    return saving > cost, (
        f"compiled {gain:.2f}× eager; {steps} steps save {saving:.0f} s vs a {cost:.0f} s {state} compile: {verdict}"
    )


# -- cache -----------------------------------------------------------------------------------------
def cache_path() -> Path:
    from sarviz.settings import HOME, env

    return Path(env("SARVIZ_DTYPE_CACHE") or HOME / CACHE_NAME)


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        if (
            not isinstance(data, dict)
            or data.get("version") != CACHE_VERSION
            or not isinstance(data.get("entries"), dict)
        ):
            return {}
        return data
    except (OSError, ValueError):
        return {}  # absent or corrupt: measured again and rewritten


def _write_cache(path: Path, key_id: str, decision: DtypeDecision) -> None:
    data = _read_cache(path) or {"version": CACHE_VERSION, "entries": {}}
    data["entries"][key_id] = decision.to_dict()
    _write_data(path, data)


def _write_data(path: Path, data: dict[str, Any]) -> None:
    from sarviz.atomic import atomic_path

    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=1))
    except OSError:
        pass  # a read-only home only costs a re-measurement next time


def measured_choice(
    device: str,
    *,
    path: Path | None = None,
    refresh: bool = False,
    measure: Callable[[str], list[Measurement]] | None = None,
    rule: Callable[[str], str] | None = None,
    measure_opts: Callable[[str, str], list[OptionMeasurement]] | None = None,
) -> DtypeDecision:
    """The cached or freshly measured dtype (and speed options) decision for ``device``.

    ``measure`` (default :func:`measure_block`), ``measure_opts`` (default
    :func:`measure_options`) and ``rule`` (the rule of thumb used when measuring is
    impossible) can be injected — tests give timings, not hardware.
    """
    from sarviz.generators import device as device_facts

    path = path or cache_path()
    key = machine_key(device)
    key_id = _key_id(key)
    if not refresh:
        entry = _read_cache(path).get("entries", {}).get(key_id)
        if entry:
            try:
                decision = DtypeDecision.from_dict(entry)
                decision.method = "cached"
                return decision
            except (KeyError, TypeError):
                pass
    measure = measure or measure_block
    rule = rule or device_facts.rule_of_thumb_dtype
    try:
        measurements = measure(device)
        dtype, reason = decide(measurements)
        method = "measured"
    except Exception as exc:  # noqa: BLE001 - any failure to measure falls back to the rule
        measurements, dtype, method = [], rule(device), "rule"
        reason = f"could not measure ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
    decision = DtypeDecision(
        device=device.split(":", 1)[0],
        dtype=dtype,
        method=method,
        reason=reason,
        measurements=measurements,
        machine=key,
        measured_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    if method == "measured":
        try:
            decision.option_measurements = (measure_opts or measure_options)(device, dtype)
            decision.speed_options, decision.options_reason = decide_options(decision.option_measurements)
        except Exception as exc:  # noqa: BLE001 - the options are an optimisation: defaults on any failure
            decision.speed_options = dict(DEFAULT_OPTIONS)
            decision.options_reason = f"could not measure ({type(exc).__name__}): defaults"
    if method == "measured":
        _write_cache(path, key_id, decision)
    return decision
