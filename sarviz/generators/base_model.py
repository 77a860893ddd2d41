"""Which Stable Diffusion family a diffusers base folder is — the one ``base_kind``.

The text trainer (``sarviz train text``), the text generator and the seed-003 SD3 work all
ask this of a base folder before loading it; they used to answer it two ways (the trainer
also recognised SDXL by its second text encoder, the generator only by the pipeline's class
name, and both took an SD3 pipeline for SD 1.5). The answer comes from the folder's
``model_index.json`` (diffusers' ``save_pretrained`` layout), read without importing torch
or diffusers:

* ``"sd3"``  — ``StableDiffusion3*`` pipelines, or a ``text_encoder_3`` / ``transformer``
  component (MM-DiT, flow matching);
* ``"sdxl"`` — a ``StableDiffusionXL*`` pipeline, or a ``text_encoder_2`` component with a UNet
  (SDXL's second, OpenCLIP text encoder);
* ``"sd15"`` — any other ``StableDiffusion*`` pipeline with a UNet (SD 1.x and 2.x share
  ``StableDiffusionPipeline``).

Anything else (Kandinsky, PixArt, a folder with no UNet) is refused with a one-line error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sarviz.errors import GenerationError, WeightsMissing

KINDS = ("sd15", "sdxl", "sd3")
MODEL_INDEX = "model_index.json"


def base_kind(base: str | os.PathLike, supported: tuple[str, ...] = ("sd15", "sdxl")) -> str:
    """ "sd15", "sdxl" or "sd3" from ``base``/model_index.json; refused unless in ``supported``.

    Raises :class:`WeightsMissing` when the file is missing or unreadable and
    :class:`GenerationError` when the pipeline is not a supported Stable Diffusion.
    """
    index = Path(base) / MODEL_INDEX
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsMissing(f"base model {base}: {MODEL_INDEX} is missing or unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise GenerationError(f"base model {base}: {MODEL_INDEX} is not a diffusers pipeline index")
    name = str(data.get("_class_name", ""))
    kind = None
    if name.startswith("StableDiffusion3") or "text_encoder_3" in data or "transformer" in data:
        kind = "sd3" if name.startswith("StableDiffusion") or "text_encoder_3" in data else None
    elif "unet" in data or not any(k for k in data if not k.startswith("_")):
        # (an index listing no component at all is judged by its class name alone)
        if name.startswith("StableDiffusionXL") or "text_encoder_2" in data:
            kind = "sdxl"
        elif name.startswith("StableDiffusion"):
            kind = "sd15"
    if kind is None:
        raise GenerationError(
            f"base model {base}: {name or 'an unnamed'} pipeline is not Stable Diffusion ({', '.join(KINDS)})"
        )
    if kind not in supported:
        raise GenerationError(f"base model {base} is {kind}; this needs {' or '.join(supported)}")
    return kind
