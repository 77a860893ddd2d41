"""Where and how models run: device and dtype choice, a generation queue, a model cache.

* **Device**: CUDA when present, else Apple MPS, else the CPU (``auto``).
* **Dtype**: measured on this machine (:mod:`sarviz.generators.dtype_choice`): one UNet
  block is timed in each candidate dtype and the fastest one within 2 % of float32 wins;
  the decision is cached per machine and torch version. The rule of thumb
  (:func:`rule_of_thumb_dtype`) is the fallback: CUDA bf16 (Ampere+) else fp16; MPS fp32;
  CPU bf16 with AMX or AVX512-BF16, else fp32. ``--dtype`` always wins.
* **Queue**: one process-wide FIFO queue with one slot per device, so that concurrent
  Streamlit sessions (or threads) never run two generations on the same device at once;
  a waiting caller sees its position and can cancel while it waits.
* **Cache**: loaded pipelines keyed by (card, device, dtype), at most one per device by
  default, so that the model stays loaded across Streamlit reruns without holding
  several multi-GB models in memory.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterator

from sarviz.generators.base import GenerationCancelled, GenerationError, ProgressCallback

# device and dtype facts live in the leaf module sarviz.generators.device (dtype_choice uses them too)
from sarviz.generators.device import (  # noqa: E402,F401 - re-exported
    DEVICES,
    DTYPES,
    _normalise_dtype,
    available_devices,
    choose_device,
    cpu_capability,
    rule_of_thumb_dtype,
    torch_dtype,
)
from sarviz.hashing import file_sha256  # noqa: F401 - re-exported
from sarviz.settings import env_switch

_DECISIONS: dict[str, Any] = {}
_DECISIONS_LOCK = threading.Lock()


def dtype_decision(device: str, requested: str | None = None):
    """The :class:`~sarviz.generators.dtype_choice.DtypeDecision` for ``device``.

    A request other than ``auto`` wins ("user"). Otherwise CPU and CUDA use the dtype
    measured on this machine (:mod:`sarviz.generators.dtype_choice`, cached in the sarviz
    home folder); ``SARVIZ_DTYPE_MEASURE=0`` or MPS use :func:`rule_of_thumb_dtype`.
    """
    from sarviz.generators.dtype_choice import DtypeDecision, measured_choice

    req = (requested or "auto").strip().lower()
    kind = device.split(":", 1)[0]
    if req != "auto":
        return DtypeDecision(device=kind, dtype=_normalise_dtype(device, req), method="user", reason="--dtype")
    if kind == "mps" or env_switch("SARVIZ_DTYPE_MEASURE", "1") == "off":
        why = "MPS: half precision unreliable" if kind == "mps" else "measuring switched off (SARVIZ_DTYPE_MEASURE=0)"
        return DtypeDecision(device=kind, dtype=rule_of_thumb_dtype(device), method="rule", reason=why)
    with _DECISIONS_LOCK:  # one measurement per device per process, even with concurrent sessions
        if device not in _DECISIONS:
            _DECISIONS[device] = measured_choice(device)
        return _DECISIONS[device]


def dtype_decided(device: str) -> bool:
    """Whether this process has already chosen (measured or read) the dtype for ``device``."""
    with _DECISIONS_LOCK:
        return device in _DECISIONS


def choose_dtype(device: str, requested: str | None = None) -> str:
    """The dtype name for ``device``: the request (checked) or the fastest safe one measured here."""
    return dtype_decision(device, requested).dtype


# -- queue -----------------------------------------------------------------------------------
class GenerationQueue:
    """A FIFO queue with one running slot per device (process-wide, thread-safe)."""

    def __init__(self, slots_per_device: int = 1) -> None:
        self.slots_per_device = slots_per_device
        self._cond = threading.Condition()
        self._waiting: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._running: dict[str, int] = collections.defaultdict(int)

    def position(self, device: str, ticket: object) -> int:
        """1-based position of ``ticket`` among callers waiting for ``device``."""
        with self._cond:
            return list(self._waiting[device]).index(ticket) + 1

    def busy(self, device: str) -> int:
        with self._cond:
            return self._running[device] + len(self._waiting[device])

    @contextlib.contextmanager
    def slot(
        self,
        device: str,
        cancel: threading.Event | None = None,
        on_wait: Callable[[int], None] | None = None,
        poll_s: float = 0.25,
    ) -> Iterator[None]:
        """Hold ``device`` for one generation; waits in FIFO order, cancellable while waiting.

        ``on_wait(position)`` is called while waiting (position 1 = next).
        """
        key = device
        ticket = object()
        with self._cond:
            self._waiting[key].append(ticket)
            try:
                while not (self._waiting[key][0] is ticket and self._running[key] < self.slots_per_device):
                    if cancel is not None and cancel.is_set():
                        raise GenerationCancelled("generation cancelled while waiting in the queue")
                    if on_wait is not None:
                        pos = list(self._waiting[key]).index(ticket) + 1
                        self._cond.release()
                        try:  # never call user code while holding the lock
                            on_wait(pos)
                        finally:
                            self._cond.acquire()
                    self._cond.wait(timeout=poll_s)
            except BaseException:
                self._waiting[key].remove(ticket)
                self._cond.notify_all()
                raise
            self._waiting[key].popleft()
            self._running[key] += 1
        try:
            yield
        finally:
            with self._cond:
                self._running[key] -= 1
                self._cond.notify_all()


#: the process-wide queue every generator uses
QUEUE = GenerationQueue()


# -- model cache -----------------------------------------------------------------------------
class ModelCache:
    """Loaded models keyed by (card key, device, dtype); at most ``per_device`` per device."""

    def __init__(self, per_device: int = 1) -> None:
        self.per_device = per_device
        self._lock = threading.RLock()
        self._items: "collections.OrderedDict[tuple, Any]" = collections.OrderedDict()
        self._loading: dict[tuple, threading.Lock] = {}

    def get(self, key: tuple[Hashable, str, str], load: Callable[[], Any]) -> Any:
        """The cached model for ``key`` (card, device, dtype), loading it once if needed."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one loader per key; other callers for the same key wait for it
            with self._lock:
                if key in self._items:
                    return self._items[key]
                # evict before loading so two big models never sit in memory together
                same_device = [k for k in self._items if k[1] == key[1]]
                evicted = same_device[: max(0, len(same_device) - self.per_device + 1)]
                for old in evicted:
                    del self._items[old]
                if evicted:
                    forget_compiled()
            try:
                model = load()
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            with self._lock:
                self._items[key] = model
            _release_memory(key[1])
            return model

    def keys(self) -> list[tuple]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            forget_compiled()


def forget_compiled() -> None:
    """Drop every compiled graph of this process (``torch._dynamo.reset``): a frozen graph keeps its
    model's weights and their pre-packed copies alive (dynamo's cache holds them) until then, so a
    model that leaves the cache would not leave memory. Models still loaded compile again on their
    next call (from the warm kernel cache)."""
    import sys

    if "torch._dynamo" in sys.modules:  # nothing was compiled in a process that never loaded dynamo
        sys.modules["torch._dynamo"].reset()


def _release_memory(device: str) -> None:
    import gc

    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


#: the process-wide cache of loaded pipelines
MODELS = ModelCache()


# -- weights hashing: one implementation in sarviz.hashing ------------------------------------


# -- progress helpers ------------------------------------------------------------------------
@dataclass
class StepTimer:
    """Turns step callbacks into "step k/n, ETA s" using the mean time of finished steps."""

    total: int
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = time.perf_counter()

    def eta_s(self, step: int) -> float | None:
        if step <= 0:
            return None
        elapsed = time.perf_counter() - self.started
        return elapsed / step * max(0, self.total - step)

    def message(self, step: int) -> str:
        eta = self.eta_s(step)
        return f"step {step}/{self.total}" + ("" if eta is None else f", about {eta:.0f} s left")


def check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise GenerationCancelled("generation cancelled by the user")


def report(progress: ProgressCallback | None, step: int, total: int, message: str) -> None:
    if progress is not None:
        progress(step, total, message)


# -- model readiness (for the UI and `sarviz models`) --------------------------------------------
def card_readiness(card: Any):
    """The :class:`~sarviz.generators.base.Readiness` of a card's generator on this machine.

    A card whose generator cannot even be built (a bad card, an implementation that cannot be
    imported) is not ready, with that error as its problem.
    """
    from sarviz.generators.base import Readiness
    from sarviz.registry import build_generator

    try:
        gen = build_generator(card)
    except GenerationError as exc:
        return Readiness(False, problem=str(exc))
    except ImportError as exc:
        return Readiness(False, problem=f"model {card.id}: its implementation cannot be imported ({exc})")
    return gen.readiness()


def card_problem(card: Any) -> str | None:
    """None when the card's generator can run here, else the full message (:func:`card_readiness`)."""
    return card_readiness(card).message


# -- speed options: compile and memory layout (numbers: benchmarks/RESULTS_cpu_speed.md) ------------
def _switch(name: str, default: str) -> str:
    return env_switch(name, default)


def inductor_cache_dir() -> str:
    """Where inductor keeps compiled kernels between processes: the user's ``TORCHINDUCTOR_CACHE_DIR``,
    else ``inductor-cache`` in the sarviz home.

    torch writes its own default (``/tmp/torchinductor_<user>``) into ``TORCHINDUCTOR_CACHE_DIR``
    the first time anything asks for the cache folder, so that value is not taken for the user's.
    """
    from sarviz.settings import sarviz_home

    value = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if value:
        try:
            from torch._inductor.runtime.cache_dir_utils import default_cache_dir

            torch_default = os.path.abspath(default_cache_dir())
        except ImportError:  # a torch without this helper: trust the variable
            torch_default = ""
        if os.path.abspath(value) != torch_default:
            return value
    return str(sarviz_home() / "inductor-cache")


def workload_name(block_out_channels: Any, image_size: int | tuple[int, int], controlnet: bool) -> str:
    """What one denoising step's cost depends on, as the key of its compile record: the UNet's
    widths, whether a ControlNet runs beside it, and the image size (e.g.
    ``unet320-640-1280-1280+controlnet@512px`` for the published SD 1.5 checkpoints; a
    (width, height) that is not square reads ``@768x512px``)."""
    widths = "-".join(str(int(c)) for c in block_out_channels)
    w, h = (image_size, image_size) if isinstance(image_size, int) else image_size
    size = f"{int(w)}px" if int(w) == int(h) else f"{int(w)}x{int(h)}px"
    return f"unet{widths}{'+controlnet' if controlnet else ''}@{size}"


def speed_plan(
    device: str,
    dtype: str | None = None,
    measured: dict[str, Any] | None = None,
    steps: int = 25,
    workload: str = "",
    compile_mode: str | None = None,
) -> dict[str, Any]:
    """Which speed options a diffusion pipeline on ``device`` in ``dtype`` gets, and why.

    * ``attention`` (``sdpa``: PyTorch's fused scaled-dot-product kernels, diffusers' default;
      ``classic``: baddbmm + softmax + bmm) and ``channels_last``: as measured for this dtype
      on this machine (:func:`sarviz.generators.dtype_choice.known_options`, from
      ``sarviz doctor``'s cached measurement; ``measured`` injects it). Without a measurement:
      SDPA, and channels_last on CUDA only (cuDNN's fast layout in half precision). On the CPU
      channels-last is what the measurement says: on the 2-core AMX Xeon here it made the eager
      bf16 step 1.37× faster (oneDNN's AMX convolutions without layout reorders), while a CPU
      without native bf16 measured it slower in float32 (benchmarks/RESULTS_cpu_speed.md).
      ``SARVIZ_ATTENTION=sdpa|classic`` and ``SARVIZ_CHANNELS_LAST=on|off`` override.
    * ``compile`` (``torch.compile``, inductor; on the CPU with *freezing*: weights folded into
      the graph as constants and pre-packed once for oneDNN/AMX) of the UNet and ControlNet.
      ``SARVIZ_COMPILE=on`` always, ``off`` never; ``auto`` (the default) only when generations
      on this machine measured that a job of ``steps`` denoising steps saves more than the
      compile costs (:func:`sarviz.generators.dtype_choice.decide_compile`): a cold compile is
      minutes (165 s for SD 1.5 + ControlNet here), which one image never pays back, so ``auto``
      never compiles before a user asked once (benchmarks/RESULTS_cpu_speed.md). Compiled
      kernels are cached across runs in the sarviz home folder (``TORCHINDUCTOR_CACHE_DIR``).
      A compiled CPU pipeline is channels-last (unless ``SARVIZ_CHANNELS_LAST=off``): compiled in
      NCHW it was no faster than eager. ``workload`` (:func:`workload_name`) picks the record of
      this model at this image size; ``compile_mode`` (on/off/auto, a caller's explicit choice)
      wins over ``SARVIZ_COMPILE``.
    """
    kind = device.split(":", 1)[0]
    if measured is not None:
        options, source = {"attention": "sdpa", "channels_last": False, **measured}, "measured (injected)"
    elif dtype is not None and kind in ("cpu", "cuda") and env_switch("SARVIZ_DTYPE_MEASURE", "1") != "off":
        from sarviz.generators.dtype_choice import known_options

        options, source = known_options(device, dtype, _DECISIONS.get(device))
        if source.startswith("defaults"):
            options["channels_last"] = kind == "cuda"
    else:
        options, source = {"attention": "sdpa", "channels_last": kind == "cuda"}, "defaults"
    cl = _switch("SARVIZ_CHANNELS_LAST", "auto")
    attention = _switch("SARVIZ_ATTENTION", "auto")
    compile_ = (compile_mode or _switch("SARVIZ_COMPILE", "auto")).lower()
    overrides = [name for name, v in (("SARVIZ_CHANNELS_LAST", cl), ("SARVIZ_ATTENTION", attention)) if v != "auto"]
    plan: dict[str, Any] = {
        "attention": attention if attention in ("sdpa", "classic") else options["attention"],
        "channels_last": cl == "on" or (cl == "auto" and bool(options["channels_last"])),
        "compile": False,
        "why": source + (f"; overridden by {', '.join(overrides)}" if overrides else ""),
    }
    if kind not in ("cpu", "cuda"):  # inductor does not target MPS
        plan["compile_why"] = f"not on {kind} (inductor does not target it)"
        return plan
    cache_dir = inductor_cache_dir()
    warm = False
    if dtype is not None and env_switch("SARVIZ_DTYPE_MEASURE", "1") != "off":
        from sarviz.generators import dtype_choice

        timings = dtype_choice.compile_timings(device, dtype, workload=workload)
        warm = dtype_choice.kernel_cache_warm(timings, cache_dir)
    if compile_ == "on":
        plan["compile"], plan["compile_why"] = True, "SARVIZ_COMPILE=on"
    elif compile_ == "auto" and dtype is not None and env_switch("SARVIZ_DTYPE_MEASURE", "1") != "off":
        plan["compile"], plan["compile_why"] = dtype_choice.decide_compile(timings, steps, warm)
    else:
        plan["compile_why"] = (
            f"SARVIZ_COMPILE={compile_}"
            if compile_ != "auto"
            else ("no dtype" if dtype is None else "SARVIZ_DTYPE_MEASURE=0: no measurements used")
        )
    plan["compile_cache"] = "warm" if warm else "cold"
    if workload:
        plan["workload"] = workload
    if plan["compile"] and kind == "cpu" and cl != "off" and not plan["channels_last"]:
        # compiled with freezing, oneDNN's convolutions want channels-last: through the pipeline NCHW
        # compiled ran at eager speed (6.7 vs 6.5 s/step), channels-last compiled at 3.6 s/step
        # (benchmarks/RESULTS_cpu_speed.md) — so a compiled CPU pipeline is channels-last
        plan["channels_last"] = True
        plan["why"] = f"{plan['why']}; channels_last with compile"
    return plan


def record_step_times(
    device: str,
    dtype: str,
    step_seconds: list[float],
    compiled: bool,
    compile_paid: bool,
    cache_warm: bool = False,
    workload: str = "",
) -> None:
    """File one diffusion run's step times for :func:`speed_plan`'s compile choice (never fails a run).

    ``cache_warm``: the kernel cache's state when the plan was made (``applied["compile_cache"]``),
    i.e. before this run's compile filled it."""
    if device.split(":", 1)[0] not in ("cpu", "cuda") or env_switch("SARVIZ_DTYPE_MEASURE", "1") == "off":
        return
    from sarviz.generators import dtype_choice

    try:
        dtype_choice.record_steps(
            device,
            dtype,
            step_seconds,
            compiled=compiled,
            compile_paid=compile_paid,
            cache_warm=cache_warm,
            cache_dir=inductor_cache_dir(),
            workload=workload,
        )
    except (OSError, ValueError, TypeError, RuntimeError):
        pass  # the record only informs a later choice


def set_attention(modules: Any, attention: str) -> None:
    """Give the diffusers models in ``modules`` (None skipped) the attention backend ``attention``:
    ``sdpa`` (PyTorch's fused kernels, diffusers' default) or ``classic`` (baddbmm + softmax + bmm)."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    for module in modules:
        if module is not None:
            module.set_attn_processor(AttnProcessor() if attention == "classic" else AttnProcessor2_0())


def set_layout(modules: Any, channels_last: bool) -> None:
    """Lay out the weights of ``modules`` (None skipped) channels-last or back to NCHW.

    The VAE goes with the denoisers: all convolutions, at up to 512² — its decode ran 1.5–2.5×
    faster channels-last in bf16 in every interleaved pair on the AMX Xeon here
    (benchmarks/RESULTS_cpu_speed.md)."""
    import torch

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for module in modules:
        if module is not None:
            module.to(memory_format=fmt)


def compile_denoiser(module: Any, device: str) -> Any:
    """``torch.compile`` (inductor) of a UNet or ControlNet, the one way every generator compiles.

    On the CPU with *freezing*: the (inference-only) weights are folded into the graph and
    pre-packed once for oneDNN/AMX — 1.2–1.7× over eager bf16 per step here
    (benchmarks/RESULTS_cpu_speed.md). Kernels go to :func:`inductor_cache_dir`, so later
    processes compile faster. Lazy: the first call pays the compile (and a new input shape pays
    a new one). A frozen graph keeps the weights it was compiled with: compile after the last
    change to them (LoRA merged, dtype and layout set). It holds its own pre-packed copy of them
    beside the eager weights (kept for runs that do not compile), and keeps both alive until
    :func:`forget_compiled`.
    """
    import torch
    import torch._inductor.config as inductor_config

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = inductor_cache_dir()  # torch may have set its /tmp default
    compiled = torch.compile(module)
    if device.split(":", 1)[0] != "cpu":
        return compiled
    # Dynamo decides at *trace* time whether parameters become constants, reading the global
    # `torch._inductor.config.freezing` (torch._dynamo.utils.is_parameter_freezing); the
    # `options={"freezing": True}` of torch.compile only reaches inductor, too late, and leaves the
    # weights as graph inputs — no folding, no oneDNN pre-packing (torch 2.14). Tracing happens in
    # the call, so the call runs with freezing on; it stays off for everything else in the process.
    # (torch keeps config overrides per thread, so two app threads do not undo each other's)
    traced = compiled.forward

    def forward_frozen(*args: Any, **kwargs: Any) -> Any:  # no functools.wraps: it would copy dynamo's unwrap hooks
        with inductor_config.patch(freezing=True):
            return traced(*args, **kwargs)

    compiled.forward = forward_frozen
    return compiled


def apply_speed_plan(pipe: Any, device: str, plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply :func:`speed_plan` to a diffusers pipeline in place; returns what was applied.

    Compilation is lazy: the first denoising step (and first decode) pays for it, which the
    caller announces in its progress message (``applied["compile"]``).
    """

    plan = plan or speed_plan(device)
    applied: dict[str, Any] = {"channels_last": False, "compile": []}
    modules = {name: getattr(pipe, name, None) for name in ("unet", "controlnet")}
    if plan.get("attention", "sdpa") != "sdpa":
        set_attention(modules.values(), plan["attention"])
    applied["attention"] = plan.get("attention", "sdpa")
    if plan.get("why"):
        applied["why"] = plan["why"]
    if plan["channels_last"]:
        set_layout((*modules.values(), getattr(pipe, "vae", None)), channels_last=True)
        applied["channels_last"] = True
    if plan["compile"]:
        # only the denoisers: the VAE decodes once per image, its compile would not pay back
        for name, module in modules.items():
            if module is not None:
                setattr(pipe, name, compile_denoiser(module, device))
                applied["compile"].append(name)
        applied["compile_cache"] = plan.get("compile_cache", "cold")
        applied["freezing"] = device.split(":", 1)[0] == "cpu"
    if plan.get("compile_why"):
        applied["compile_why"] = plan["compile_why"]
    if plan.get("workload"):
        applied["workload"] = plan["workload"]
    return applied
