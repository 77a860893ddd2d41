"""Typed sampler settings: which diffusers scheduler, how many steps, what guidance (and shift).

Two scheduler families, because the model decides which it can use:

* **DDPM family** (noise-prediction models: SD 1.5, SDXL, the ControlNet geo model): DDIM,
  DDPM, DPM-Solver++ (2M and SDE, with or without Karras sigmas), Euler, Euler ancestral,
  UniPC.
* **flow matching** (rectified-flow models: SD3): ``FlowMatchEulerDiscreteScheduler`` and
  its Heun variant, with SD3's time ``shift`` (3.0 for SD3; larger shifts spend more steps
  at high noise). ``shift`` means nothing to a DDPM-family scheduler and is refused there.

A card's ``sampler`` section gives the defaults (:meth:`SamplerSettings.from_card`); a
request's explicit fields override them (:meth:`SamplerSettings.with_request`);
:func:`check_sampler` refuses settings no pipeline should run, in one line each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from sarviz.errors import GenerationError

DDPM = "ddpm"
FLOW_MATCHING = "flow-matching"


@dataclass(frozen=True)
class SchedulerSpec:
    """One scheduler sarviz offers: the diffusers class, its extra config and its family."""

    class_name: str
    extra: Mapping[str, Any]
    family: str


#: name → scheduler (the names are what cards, requests, the CLI and provenance use)
SCHEDULERS: dict[str, SchedulerSpec] = {
    "dpmsolver++-sde-karras": SchedulerSpec(
        "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}, DDPM
    ),
    "dpmsolver++-sde": SchedulerSpec("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}, DDPM),
    "dpmsolver++-2m-karras": SchedulerSpec(
        "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True}, DDPM
    ),
    "dpmsolver++-2m": SchedulerSpec("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}, DDPM),
    "ddim": SchedulerSpec("DDIMScheduler", {}, DDPM),
    "ddpm": SchedulerSpec("DDPMScheduler", {}, DDPM),
    "euler": SchedulerSpec("EulerDiscreteScheduler", {}, DDPM),
    "euler-ancestral": SchedulerSpec("EulerAncestralDiscreteScheduler", {}, DDPM),
    "unipc": SchedulerSpec("UniPCMultistepScheduler", {}, DDPM),
    "flow-match-euler": SchedulerSpec("FlowMatchEulerDiscreteScheduler", {}, FLOW_MATCHING),
    "flow-match-heun": SchedulerSpec("FlowMatchHeunDiscreteScheduler", {}, FLOW_MATCHING),
}
MAX_STEPS = 1000
MAX_GUIDANCE = 30.0
MAX_SHIFT = 20.0


@dataclass(frozen=True)
class SamplerSettings:
    """The sampler one run uses. Build with :meth:`from_card` then :meth:`with_request`."""

    scheduler: str
    steps: int
    guidance: float
    #: flow-matching time shift (SD3: 3.0); None → the model's own scheduler config
    shift: float | None = None

    @property
    def family(self) -> str:
        spec = SCHEDULERS.get(self.scheduler)
        return spec.family if spec else ""

    @classmethod
    def from_card(
        cls, section: Mapping[str, Any] | None, fallback: Mapping[str, Any], where: str = "model card"
    ) -> SamplerSettings:
        """A card's ``sampler`` section over ``fallback`` (the kind's defaults), checked."""
        merged = {**fallback, **(section or {})}
        try:
            settings = cls(
                scheduler=str(merged["scheduler"]),
                steps=int(merged["steps"]),
                guidance=float(merged["guidance"]),
                shift=None if merged.get("shift") is None else float(merged["shift"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise GenerationError(f"{where}: the sampler needs scheduler, steps and guidance ({exc})") from None
        try:
            check_sampler(settings)
        except GenerationError as exc:
            raise GenerationError(f"{where}: {exc}") from None
        return settings

    def with_request(self, request: Any) -> SamplerSettings:
        """These defaults with the request's explicit ``scheduler``/``steps``/``guidance``/``shift``, checked.

        A request may not switch family (a flow-matching model cannot sample with DDIM).
        """

        def pick(name: str, cast: Callable[[Any], Any]) -> Any:
            value = getattr(request, name, None)
            if value is None:
                return getattr(self, name)
            try:
                return cast(value)
            except (TypeError, ValueError):
                raise GenerationError(f"{name} must be a number, got {value!r}") from None

        out = replace(
            self,
            scheduler=getattr(request, "scheduler", None) or self.scheduler,
            steps=pick("steps", int),
            guidance=pick("guidance", float),
            shift=pick("shift", float),
        )
        check_sampler(out, family=self.family)
        return out

    def make_scheduler(self, config: Mapping[str, Any]) -> Any:
        """The diffusers scheduler, from the model's scheduler config (and ``shift`` when set)."""
        return make_scheduler(self.scheduler, config, shift=self.shift)

    def provenance(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scheduler": self.scheduler, "steps": self.steps, "guidance": self.guidance}
        if self.shift is not None:
            out["shift"] = self.shift
        return out


def check_sampler(settings: SamplerSettings | Mapping[str, Any], family: str | None = None) -> None:
    """Refuse sampler settings no pipeline should run (scheduler, steps, guidance, shift), in one line each.

    ``family``: the model's scheduler family (its card's default scheduler); a scheduler of
    the other family is refused.
    """
    get = settings.get if isinstance(settings, Mapping) else (lambda k, d=None: getattr(settings, k, d))
    name, steps, guidance, shift = get("scheduler"), get("steps"), get("guidance"), get("shift")
    if name not in SCHEDULERS:
        raise GenerationError(f"unknown scheduler {name!r}; use one of {', '.join(SCHEDULERS)}")
    spec = SCHEDULERS[name]
    if family and spec.family != family:
        usable = [n for n, s in SCHEDULERS.items() if s.family == family]
        raise GenerationError(
            f"scheduler {name!r} is a {spec.family} scheduler but this model is sampled with "
            f"{family} schedulers; use one of {', '.join(usable)}"
        )
    if steps is None or guidance is None:
        raise GenerationError("the sampler settings need steps and guidance")
    if not 1 <= steps <= MAX_STEPS:
        raise GenerationError(f"steps must be between 1 and {MAX_STEPS}, got {steps}")
    if not (math.isfinite(guidance) and 0.0 <= guidance <= MAX_GUIDANCE):
        raise GenerationError(f"guidance must be between 0 and {MAX_GUIDANCE:g}, got {guidance}")
    if shift is not None:
        if spec.family != FLOW_MATCHING:
            raise GenerationError(f"shift applies to flow-matching schedulers only, not to {name!r}")
        if not (math.isfinite(shift) and 0.0 < shift <= MAX_SHIFT):
            raise GenerationError(f"shift must be above 0 and at most {MAX_SHIFT:g}, got {shift}")


def make_scheduler(name: str, config: Mapping[str, Any], shift: float | None = None) -> Any:
    """A diffusers scheduler by sarviz name, from a model's scheduler config."""
    import diffusers

    try:
        spec = SCHEDULERS[name]
    except KeyError:
        raise GenerationError(f"unknown scheduler {name!r}; use one of {', '.join(SCHEDULERS)}") from None
    extra = dict(spec.extra)
    if shift is not None:
        extra["shift"] = shift
    return getattr(diffusers, spec.class_name).from_config(dict(config), **extra)
