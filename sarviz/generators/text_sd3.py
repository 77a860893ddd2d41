"""Text-to-SAR from an SD3 / SD3.5 run of ``sarviz train text`` (seed 003 stage 1).

A run whose metadata (:mod:`sarviz.formats.text_run`) says ``base_kind: sd3`` holds a PEFT
LoRA on the MM-DiT (``transformer_lora/``) and no learned token. :class:`SD3TextGenerator`
is the prompt generator for it — a :class:`~sarviz.generators.text.TextGenerator` (so a
:class:`~sarviz.generators.base.PromptGenerator` running through
:func:`~sarviz.generators.run.run_generation`: queue slot, cached load, lock, progress and
cancel per denoising step, the common provenance) that loads differently: the base's
``StableDiffusion3Pipeline`` (the base checked with the one
:func:`~sarviz.generators.base_model.base_kind`, ``supported=("sd3",)``; without T5 when the
base has no ``text_encoder_3``: ``text_encoder_3=None, tokenizer_3=None``, diffusers
zero-fills it) with the LoRA merged, and samples with flow matching
(:class:`~sarviz.generators.sampling.SamplerSettings`: ``flow-match-euler``, 28 steps,
guidance 7 — diffusers' SD3 defaults; ``shift`` None → the base scheduler's own, 3.0 for
SD3; a request may set ``shift`` or pick ``flow-match-heun``, not a DDPM-family scheduler).
Prompts get the run's caption frame (``SAR image, …, <band>-band, …``) when they lack it.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

from sarviz.errors import SarvizError
from sarviz.formats import text_run
from sarviz.generators import runtime
from sarviz.generators.base import GenerationError, GenerationRequest, GenerationResult, ProgressCallback
from sarviz.generators.base_model import base_kind
from sarviz.generators.sampling import FLOW_MATCHING
from sarviz.generators.text import LoadedTextPipeline, TextGenerator
from sarviz.registry import register_kind

KIND = "text-to-sar-sd3"
LORA_DIR = text_run.TRANSFORMER_LORA_DIR  # former name
#: diffusers' StableDiffusion3Pipeline defaults (seed 003 gives no sampler settings); shift None → the base's
SD3_SAMPLER: dict[str, Any] = {
    "negative_prompt": "optical image, colour, cloud, blurry, cartoon, painting",
    "scheduler": "flow-match-euler",
    "steps": 28,
    "guidance": 7.0,
    "shift": None,
}


def sd3_caption(text: str, imaging: dict[str, Any]) -> str:
    """``SAR image, <caption>, <band>-band, <spacing> m pixel spacing, <pol> polarisation``."""
    parts = ["SAR image", " ".join(text.replace("<SAR>", "").split())]
    if imaging.get("band"):
        parts.append(f"{imaging['band']}-band")
    if imaging.get("pixel_spacing_m"):
        parts.append(f"{imaging['pixel_spacing_m']:g} m pixel spacing")
    if imaging.get("polarisation"):
        parts.append(f"{imaging['polarisation']} polarisation")
    if imaging.get("incidence_deg") and "incidence" not in text:
        parts.append(f"incidence angle {float(imaging['incidence_deg']):.0f}°")
    return ", ".join(p for p in parts if p)


def run_is_sd3(run: str | Path) -> bool:
    """Whether ``run`` is a text run on an SD3 base (its metadata's ``base_kind``)."""
    try:
        return text_run.read_meta(run).get("base_kind") == "sd3"
    except SarvizError:
        return False


class SD3TextGenerator(TextGenerator):
    """The prompt generator of an SD3 run (same requests and results as :class:`TextGenerator`)."""

    kind = "text-to-SAR (SD3)"

    default_sampler = SD3_SAMPLER

    def __init__(self, card) -> None:
        super().__init__(card)
        if self.sampler_defaults.family != FLOW_MATCHING:
            raise GenerationError(
                f"model card {card.path}: an SD3 model samples with flow matching "
                f"(flow-match-euler or flow-match-heun), not {self.sampler_defaults.scheduler!r}"
            )
        self._used_shift: float | None = None

    def load(self, device: str, dtype: str, progress: ProgressCallback | None = None) -> LoadedTextPipeline:
        key = (("sd3", self.card.id, self.paths.run, self.paths.base), device, dtype)
        return runtime.MODELS.get(key, lambda: self._load(device, dtype))

    def _load(self, device: str, dtype: str) -> LoadedTextPipeline:
        import torch
        from diffusers import StableDiffusion3Pipeline

        from sarviz.generators.diffusion import apply_unet_lora

        self.check_ready()
        meta = self.metadata()
        base = self.paths.resolved_base(meta)
        base_kind(base, supported=("sd3",))  # the one rule; an SD 1.5/SDXL base is refused in one line
        extra = {} if (Path(base) / "text_encoder_3").is_dir() else {"text_encoder_3": None, "tokenizer_3": None}
        try:
            pipe = StableDiffusion3Pipeline.from_pretrained(base, dtype=torch.float32, **extra)
        except (OSError, ValueError) as exc:
            raise GenerationError(
                f"cannot load the SD3 base pipeline from {base} ({str(exc).splitlines()[0]})"
            ) from None
        run = Path(self.paths.run)
        pipe.transformer, lora_info = apply_unet_lora(pipe.transformer, run / text_run.denoiser_dir(meta), merge=True)
        pipe.transformer.to(device=device, dtype=runtime.torch_dtype(dtype)).eval().requires_grad_(False)
        for name in ("text_encoder", "text_encoder_2", "text_encoder_3", "vae"):
            module = getattr(pipe, name, None)
            if module is not None:
                module.to(device=device, dtype=torch.float32).eval().requires_grad_(False)
        pipe.set_progress_bar_config(disable=True)
        info = {
            "base": base,
            "base_kind": "sd3",
            "unet": "transformer LoRA",
            "vae": "base",
            "transformer_lora": lora_info,
            "t5": not extra,
            "weights_sha256": {k: runtime.file_sha256(p) for k, p in self.paths.files_to_hash().items()},
        }
        return LoadedTextPipeline(
            pipe=pipe,
            kind="sd3",
            token="",
            device=device,
            dtype=dtype,
            scheduler_config=dict(pipe.scheduler.config),
            info=info,
        )

    def generate(
        self,
        request: GenerationRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[GenerationResult]:
        if not isinstance(request, GenerationRequest):
            return super().generate(request, progress, cancel)  # refused there in one line
        typed = request.prompt
        self.check_ready()
        framed = dataclasses.replace(request, prompt=self.frame_prompt(typed or ""))
        results = super().generate(framed, progress, cancel)
        for r in results:
            r.provenance["prompt_as_typed"] = typed
            if r.provenance.get("shift") is None and self._used_shift is not None:
                # shift None → the base scheduler's own: record the value it sampled with
                r.provenance.update(shift=self._used_shift, shift_source="base scheduler config")
        return results

    def _denoise(self, ctx, prompt, settings, seed, k):
        image = super()._denoise(ctx, prompt, settings, seed, k)
        self._used_shift = getattr(ctx.loaded.pipe.scheduler.config, "shift", None)  # under the model's lock
        return image

    def frame_prompt(self, prompt: str) -> str:
        """The training captions' frame around a bare prompt ("B-52" → "SAR image, B-52, C-band, …")."""
        text = " ".join(prompt.split())
        if not text or text.lower().startswith("sar image"):
            return text
        return sd3_caption(text, self.metadata().get("imaging") or {})


register_kind(KIND, SD3TextGenerator)
