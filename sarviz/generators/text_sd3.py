"""Text-to-SAR from an SD3 / SD3.5 run of ``sarviz train text`` (seed 003 stage 1).

A run whose ``sarviz_text_model.json`` says ``base_kind: sd3`` holds a PEFT LoRA on the
MM-DiT (``transformer_lora/``) and no learned token. :class:`SD3TextGenerator` is the text
generator for it: the base's ``StableDiffusion3Pipeline`` (without T5 when the base has no
``text_encoder_3``: ``text_encoder_3=None, tokenizer_3=None``, diffusers zero-fills it), the
LoRA merged, the base's flow-matching Euler sampler (with its SD3 shift), and results as the
SD 1.5/SDXL text generator writes them (:class:`sarviz.generators.text.TextResult`).
Prompts get the run's caption frame (``SAR image, …, <band>-band, …``) when they lack it.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.errors import GenerationError, WeightsMissing
from sarviz.generators import runtime
from sarviz.generators.base import GenerationRequest, ProgressCallback
from sarviz.generators.text import LoadedTextPipeline, TextGenerator, TextModelPaths

LORA_DIR = "transformer_lora"
#: diffusers' StableDiffusion3Pipeline defaults (seed 003 gives no sampler settings)
SD3_SAMPLER = {"scheduler": "flow-match-euler (the base's, with its shift)", "steps": 28, "guidance": 7.0}


def run_is_sd3(run: str | Path) -> bool:
    try:
        return json.loads((Path(run) / "sarviz_text_model.json").read_text()).get("base_kind") == "sd3"
    except (OSError, ValueError):
        return False


class SD3ModelPaths(TextModelPaths):
    def problems(self) -> list[str]:
        run = Path(self.run)
        if not run.is_dir():
            return [f"run folder {run} does not exist"]
        try:
            meta = self.meta()
        except GenerationError as exc:
            return [str(exc)]
        out = []
        if not (run / LORA_DIR / "adapter_model.safetensors").is_file():
            out.append(f"{run / LORA_DIR}/adapter_model.safetensors is missing")
        base = Path(self.resolved_base(meta))
        if not (base / "model_index.json").is_file():
            out.append(f"base model folder {base} (with model_index.json) is missing")
        return out

    def files_to_hash(self) -> dict[str, Path]:
        p = Path(self.run) / LORA_DIR / "adapter_model.safetensors"
        return {"transformer_lora": p} if p.is_file() else {}


class SD3TextGenerator(TextGenerator):
    """The text generator of an SD3 run (same requests and results as :class:`TextGenerator`)."""

    kind = "text-to-SAR (SD3)"

    def __init__(self, card) -> None:
        super().__init__(card)
        self.paths = SD3ModelPaths(run=self.paths.run, base=self.paths.base)
        if not card.get("sampler"):
            self.sampler.update(steps=SD3_SAMPLER["steps"], guidance=SD3_SAMPLER["guidance"])

    def settings(self, request: GenerationRequest) -> dict[str, Any]:
        s = super().settings(request)
        s["scheduler"] = SD3_SAMPLER["scheduler"]
        return s

    def load(self, device: str, dtype: str, progress: ProgressCallback | None = None) -> LoadedTextPipeline:
        key = (("sd3", self.paths.run, self.paths.base), device, dtype)
        return runtime.MODELS.get(key, lambda: self._load(device, dtype))

    def _load(self, device: str, dtype: str) -> LoadedTextPipeline:
        import torch
        from diffusers import StableDiffusion3Pipeline

        from sarviz.generators.diffusion import apply_unet_lora

        problems = self.paths.problems()
        if problems:
            raise WeightsMissing("; ".join(problems))
        meta = self.metadata()
        base = self.paths.resolved_base(meta)
        extra = {} if (Path(base) / "text_encoder_3").is_dir() else {"text_encoder_3": None, "tokenizer_3": None}
        try:
            pipe = StableDiffusion3Pipeline.from_pretrained(base, dtype=torch.float32, **extra)
        except (OSError, ValueError) as exc:
            raise GenerationError(f"cannot load the SD3 base pipeline from {base} ({str(exc).splitlines()[0]})") from None
        pipe.transformer, lora_info = apply_unet_lora(pipe.transformer, Path(self.paths.run) / LORA_DIR, merge=True)
        tdtype = runtime.torch_dtype(dtype)
        pipe.transformer.to(device=device, dtype=tdtype).eval().requires_grad_(False)
        for name in ("text_encoder", "text_encoder_2", "text_encoder_3", "vae"):
            module = getattr(pipe, name, None)
            if module is not None:
                module.to(device=device, dtype=torch.float32).eval().requires_grad_(False)
        pipe.set_progress_bar_config(disable=True)
        info = {"base": base, "base_kind": "sd3", "unet": "transformer LoRA", "vae": "base",
                "transformer_lora": lora_info, "t5": not extra,
                "weights_sha256": {k: runtime.file_sha256(p) for k, p in self.paths.files_to_hash().items()}}
        return LoadedTextPipeline(pipe=pipe, kind="sd3", token="", device=device, dtype=dtype,
                                  scheduler_config=dict(pipe.scheduler.config), info=info)

    def generate_text(self, request: GenerationRequest, progress: ProgressCallback | None = None,
                      cancel: threading.Event | None = None):
        request.prompt = self.frame_prompt(request.prompt or "")
        results = super().generate_text(request, progress, cancel)
        for r in results:
            r.provenance["sampler"] = SD3_SAMPLER["scheduler"]
        return results

    def frame_prompt(self, prompt: str) -> str:
        """The training captions' frame around a bare prompt ("B-52" → "SAR image, B-52, C-band, …")."""
        from sarviz.training.text_sd3 import sd3_caption

        text = " ".join(prompt.split())
        if not text or text.lower().startswith("sar image"):
            return text
        return sd3_caption(text, self.metadata().get("imaging") or {})

    def _denoise(self, loaded: LoadedTextPipeline, prompt: str, settings: dict[str, Any], seed: int, k: int,
                 timer: runtime.StepTimer, total: int, progress: ProgressCallback | None,
                 cancel: threading.Event | None) -> np.ndarray:
        import torch

        steps = settings["steps"]

        def on_step(_pipe, i, _t, kwargs):
            runtime.check_cancel(cancel)
            done = k * steps + i + 1
            runtime.report(progress, done, total, timer.message(done))
            return kwargs

        generator = torch.Generator("cpu").manual_seed(seed)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = loaded.pipe(prompt=prompt, negative_prompt=settings["negative_prompt"] or None,
                              width=settings["width"], height=settings["height"], num_inference_steps=steps,
                              guidance_scale=settings["guidance"], generator=generator, output_type="np",
                              callback_on_step_end=on_step, return_dict=True)
        del t0
        return np.asarray(out.images[0], dtype=np.float32)
