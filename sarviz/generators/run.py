"""The one run sequence every generator plugs into.

::

    device + dtype choice → readiness → queue slot (waiting is cancellable)
      → load (the generator's cached model) → lock → work(ctx): denoising or optimisation
        steps, each through ctx.step (progress + cancel) → release
      → finish(raw, record): dB conversion and the generator's own provenance
      → the provenance every result carries (model, seed, time, device, dtype, dtype_choice,
        speed_options, seconds)

A generator supplies three pieces — cheap checks before calling :func:`run_generation`, a
``work`` function that runs inside the lock, and a ``finish`` function that turns its raw
output into :class:`~sarviz.generators.base.GenerationResult` s — and gets queueing, model
caching, progress messages, cancellation and the common provenance from here. Generators
that do not run on a torch device (``uses_device = False``: the numpy emulator) skip the
queue and the dtype choice but go through the same steps otherwise.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import numpy as np

from sarviz.generators import runtime
from sarviz.generators.base import GenerationError, GenerationResult, ProgressCallback

if TYPE_CHECKING:
    from sarviz.generators.base import Generator

T = TypeVar("T")

#: provenance keys every result of every generator carries (the contract test checks them)
REQUIRED_PROVENANCE = (
    "model_id",
    "model_kind",
    "interface",
    "seed",
    "timestamp",
    "device",
    "dtype",
    "dtype_choice",
    "speed_options",
    "seconds",
)
#: what a generator that does not choose a dtype (the numpy emulator) records
FIXED_FLOAT32 = "float32 (fixed: computed with numpy, no dtype choice)"


def check_seed(seed: Any, room: int = 0) -> int:
    """The request's seed as an int in [0, 2^63 − room) (``room``: seeds a batch adds to it)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**63 - room:
        raise GenerationError(f"seed must be a whole number in [0, 2^63), got {seed!r}")
    return int(seed)


@dataclass
class RunRecord:
    """What the run sequence decided and measured; every result's provenance includes it."""

    device: str
    dtype: str
    dtype_choice: str
    speed_options: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def provenance(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "dtype": self.dtype,
            "dtype_choice": self.dtype_choice,
            "speed_options": self.speed_options,
            "seconds": round(self.seconds, 2),
        }


class RunContext:
    """What ``work`` gets: the device, dtype and loaded model, and one step reporter.

    ``total`` is the number of steps the whole run reports (all images of a prompt batch);
    :meth:`step` checks for cancellation and reports "step k/n, about s left".
    """

    def __init__(
        self,
        device: str,
        dtype: str,
        loaded: Any,
        total: int,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> None:
        self.device, self.dtype, self.loaded, self.total = device, dtype, loaded, total
        self.progress, self.cancel = progress, cancel
        self.timer = runtime.StepTimer(total)
        #: perf_counter at each finished step (the compile choice learns s/step from them)
        self.step_ends: list[float] = []

    def check_cancel(self) -> None:
        runtime.check_cancel(self.cancel)

    def report(self, done: int, message: str) -> None:
        runtime.report(self.progress, done, self.total, message)

    def step(self, done: int, message: str | None = None) -> None:
        """One unit of work finished (``done`` of ``total``): cancel point + progress report."""
        self.step_ends.append(time.perf_counter())
        self.check_cancel()
        self.report(done, message or self.timer.message(done))

    def step_seconds(self) -> list[float]:
        """Seconds of each finished step, the first counted from the start of the work."""
        ends = [self.timer.started, *self.step_ends]
        return [b - a for a, b in zip(ends, ends[1:])]

    def diffusers_callback(self, offset: int = 0) -> Callable[..., dict[str, Any]]:
        """A ``callback_on_step_end`` for diffusers pipelines: step ``offset + i + 1`` per denoising step."""

        def on_step(_pipe: Any, i: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            self.step(offset + i + 1)
            return kwargs

        return on_step


def run_generation(
    generator: Generator,
    request: Any,
    *,
    total: int,
    work: Callable[[RunContext], T],
    finish: Callable[[T, RunRecord], list[GenerationResult]],
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    dtype: str | None = None,
) -> list[GenerationResult]:
    """Run ``work`` the shared way and return ``finish``'s results with the common provenance.

    ``dtype``: the dtype asked for (the request's, or a preset's); None/"auto" → measured.
    Checks the generator's readiness after the device/dtype choice and before waiting in the
    queue, so a missing weights file is reported at once.
    """
    if generator.uses_device:
        device = runtime.choose_device(getattr(request, "device", None))
        if dtype in (None, "auto") and not runtime.dtype_decided(device):
            runtime.report(
                progress, 0, total, "choosing the fastest safe dtype for this machine (measured once, then cached)"
            )
        decision = runtime.dtype_decision(device, dtype)  # measured once per machine
        record = RunRecord(device=device, dtype=decision.dtype, dtype_choice=decision.summary())
    else:
        record = RunRecord(device="cpu", dtype="float32", dtype_choice=FIXED_FLOAT32)
    generator.check_ready()
    runtime.check_cancel(cancel)

    def waiting(pos: int) -> None:
        runtime.report(progress, 0, total, f"waiting for the {record.device} ({pos} ahead in the queue)")

    slot = (
        runtime.QUEUE.slot(record.device, cancel=cancel, on_wait=waiting)
        if generator.uses_device
        else contextlib.nullcontext()
    )
    with slot:
        runtime.check_cancel(cancel)
        loaded = generator.load(
            record.device,
            record.dtype,
            progress=lambda i, n, m: runtime.report(progress, 0, total, f"loading model: {m}"),
        )
        info = getattr(loaded, "info", None)
        info = info if info is not None else {}
        lock = getattr(loaded, "lock", None) or contextlib.nullcontext()
        with lock:  # a pipeline object is not re-entrant (scheduler state)
            # a plan decided at load (geo, prompt pipelines) has no "compile_paid"; a generator that
            # decides per request (the SAR→SAR renderer: per tile size) says itself whether it paid
            load_plan = dict(info.get("speed") or {})
            compiled_before = bool(info.get("compiled"))
            if load_plan.get("compile") and not compiled_before and "compile_paid" not in load_plan:
                runtime.report(
                    progress,
                    0,
                    total,
                    "compiling the model (first image only; the compiled kernels are cached for later runs)",
                )
            ctx = RunContext(record.device, record.dtype, loaded, total, progress, cancel)
            t0 = time.perf_counter()
            try:
                raw = work(ctx)
            finally:
                if load_plan.get("compile") and ctx.step_ends:
                    info["compiled"] = True  # a step ran: the compile is paid, even if the run then failed
            record.seconds = time.perf_counter() - t0
            ctx.check_cancel()  # cancelled during the last unit of work: no result
            record.speed_options = dict(info.get("speed") or {})
            if record.speed_options:  # diffusion: their s/step (and compile cost) teach the compile choice
                compiled = bool(record.speed_options.get("compile"))
                paid = record.speed_options.get("compile_paid", compiled and not compiled_before)
                runtime.record_step_times(
                    record.device,
                    record.dtype,
                    ctx.step_seconds(),
                    compiled,
                    bool(paid),
                    cache_warm=record.speed_options.get("compile_cache") == "warm",
                    workload=str(record.speed_options.get("workload", "")),
                )
    results = finish(raw, record)
    common = {
        "model_id": generator.model_id,
        "model_kind": generator.kind,
        "interface": generator.interface,
        "seed": getattr(request, "seed", None),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **record.provenance(),
    }
    for result in results:
        # the generator's own fields win (a batch's per-image seed and time, a model_kind it names itself)
        result.provenance = {**common, **result.provenance}
    runtime.report(progress, total, total, "done")
    return results
