"""A text-to-SAR run (``sarviz train text``; seed 001): a fine-tuned Stable Diffusion model.

::

    RUN/sarviz_text_model.json          format, base, base_kind, token, unet (full|lora), calibration,
                                        polarisation (VV | VV+VH), image_mode (L | RGB), resolution, step
    RUN/unet/                           full UNet (UNet2DConditionModel.save_pretrained), or
    RUN/unet_lora/                      a PEFT LoRA on the base UNet
    RUN/text_encoder_lora/              PEFT LoRA on text_encoder
    RUN/text_encoder_2_lora/            (SDXL) PEFT LoRA on text_encoder_2
    RUN/learned_embeds.safetensors      the learned token (diffusers textual-inversion format)
    RUN/vae/                            (optional) the refined VAE decoder
    RUN/checkpoint-N/                   the same parts + accelerate_state/ (sarviz.formats.training_run)

The denoiser's folder and the number of text encoders depend on the base kind
(:data:`DENOISER_DIR`, :data:`TEXT_ENCODERS`): SD 1.5 and SDXL have a UNet and one or two
CLIP encoders; SD3 / SD3.5 (seed 003 stage 1, ``sarviz.training.text_sd3``) has an MM-DiT
(``transformer/`` or ``transformer_lora/``), up to three encoders (``text_encoder_3_lora/``)
and no learned token (:data:`EMBED_KEYS` has no entry for it, so no
``learned_embeds.safetensors``). ``unet`` in the metadata names the denoiser's mode
(``full``/``lora``) for every kind.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sarviz.atomic import write_json
from sarviz.errors import GenerationError, WeightsMissing
from sarviz.formats.base import Artifact, register_artifact
from sarviz.formats.model_card import CARD_FILE  # noqa: F401 - an in-memory card for a run claims this path

FORMAT = "sarviz-text-sar/1"
MODEL_FILE = "sarviz_text_model.json"
EMBEDS_FILE = "learned_embeds.safetensors"
VAE_DIR = "vae"
#: the diffusers / PEFT weight files inside a component folder
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
#: a diffusers base folder is recognised by this file (its ``_class_name`` names the pipeline)
BASE_INDEX = "model_index.json"
BASE_KINDS = ("sd15", "sdxl", "sd3")
#: base kind → denoiser folder stem (full: ``<stem>/``, LoRA: ``<stem>_lora/``)
DENOISER_DIR = {"sd15": "unet", "sdxl": "unet", "sd3": "transformer"}
#: base kind → number of text encoders carrying a LoRA
TEXT_ENCODERS = {"sd15": 1, "sdxl": 2, "sd3": 3}
#: base kind → keys of the learned token in learned_embeds.safetensors (None: the token itself);
#: a kind not listed (sd3) trains no token and has no such file
EMBED_KEYS: dict[str, tuple[str, ...] | None] = {"sd15": None, "sdxl": ("clip_l", "clip_g")}
UNET_DIR = "unet"
UNET_LORA_DIR = "unet_lora"
TRANSFORMER_LORA_DIR = "transformer_lora"


def learns_token(meta: dict[str, Any]) -> bool:
    """Whether a run of this base kind carries a learned token (``learned_embeds.safetensors``)."""
    return str(meta.get("base_kind", "sd15")) in EMBED_KEYS


def te_lora_dir(i: int) -> str:
    """Folder of the LoRA on text encoder ``i`` (0-based): text_encoder_lora, text_encoder_2_lora, ..."""
    return "text_encoder_lora" if i == 0 else f"text_encoder_{i + 1}_lora"


def denoiser_dir(meta: dict[str, Any]) -> str:
    stem = DENOISER_DIR.get(str(meta.get("base_kind", "sd15")), UNET_DIR)
    return stem if meta.get("unet") == "full" else f"{stem}_lora"


def read_meta(run: str | os.PathLike[str]) -> dict[str, Any]:
    """``sarviz_text_model.json`` of a run, checked (one-line WeightsMissing / GenerationError)."""
    path = Path(run) / MODEL_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsMissing(
            f"{path} is missing: {run} is not a text-to-SAR run (`sarviz train text` writes it)"
        ) from None
    except (OSError, ValueError) as exc:
        raise GenerationError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise GenerationError(f"{path}: format {found!r}, expected {FORMAT!r}")
    if meta.get("unet", "lora") not in ("full", "lora"):
        raise GenerationError(f"{path}: unet must be 'full' or 'lora', got {meta.get('unet')!r}")
    if meta.get("polarisation", "VV") not in ("VV", "VV+VH"):
        raise GenerationError(f"{path}: polarisation must be 'VV' or 'VV+VH', got {meta.get('polarisation')!r}")
    if meta.get("base_kind", "sd15") not in BASE_KINDS:
        raise GenerationError(
            f"{path}: base_kind must be one of {', '.join(BASE_KINDS)}, got {meta.get('base_kind')!r}"
        )
    return meta


@register_artifact
@dataclass
class TextRun(Artifact):
    """A text-to-SAR run folder (or one of its checkpoints): metadata plus component folders.

    ``save(folder, unet=..., text_encoders=[...], embeds=..., vae=...)`` writes each part with
    its library's ``save_pretrained`` (safetensors) and ``sarviz_text_model.json`` last;
    ``load(folder)`` reads and checks the metadata and that the parts it names are there.
    """

    artifact: ClassVar[str] = "text-run"
    what: ClassVar[str] = "text-to-SAR run"
    FORMAT: ClassVar[str] = FORMAT
    FILES: ClassVar[tuple[str, ...]] = (
        MODEL_FILE,
        EMBEDS_FILE,
        UNET_DIR,
        UNET_LORA_DIR,
        TRANSFORMER_LORA_DIR,
        VAE_DIR,
        te_lora_dir(0),
        te_lora_dir(1),
        te_lora_dir(2),
    )

    folder: Path
    meta: dict[str, Any]

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> "TextRun":
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise WeightsMissing(f"run folder {folder} does not exist")
        run = cls(folder, read_meta(folder))
        missing = run.missing_parts()
        if missing:
            raise WeightsMissing(f"{folder}: {missing[0]}")
        return run

    def save(
        self,
        folder: str | os.PathLike[str] | None = None,
        *,
        unet: Any = None,
        text_encoders: list[Any] | tuple[()] = (),
        embeds: dict[str, Any] | None = None,
        vae: Any = None,
    ) -> Path:
        folder = Path(folder) if folder is not None else self.folder
        folder.mkdir(parents=True, exist_ok=True)
        if unet is not None:
            unet.save_pretrained(str(folder / denoiser_dir(self.meta)), safe_serialization=True)
        for i, enc in enumerate(text_encoders):
            # the token row is in learned_embeds; PEFT must not copy the whole resized table
            enc.save_pretrained(str(folder / te_lora_dir(i)), save_embedding_layers=False)
        if embeds is not None:
            from safetensors.torch import save_file

            save_file(embeds, str(folder / EMBEDS_FILE))
        if vae is not None:
            vae.save_pretrained(str(folder / VAE_DIR), safe_serialization=True)
        write_json(folder / MODEL_FILE, {**self.meta, "format": FORMAT})
        return folder

    def missing_parts(self) -> list[str]:
        out = []
        denoiser = self.folder / denoiser_dir(self.meta)
        if not denoiser.is_dir():
            out.append(f"{denoiser} is missing")
        if learns_token(self.meta) and not (self.folder / EMBEDS_FILE).is_file():
            out.append(f"{self.folder / EMBEDS_FILE} is missing")
        return out

    def weight_files(self) -> dict[str, Path]:
        """The weight files present, by component (what provenance hashes)."""
        run = self.folder
        candidates = {
            UNET_DIR: run / UNET_DIR / DIFFUSERS_WEIGHTS,
            UNET_LORA_DIR: run / UNET_LORA_DIR / ADAPTER_WEIGHTS,
            TRANSFORMER_LORA_DIR: run / TRANSFORMER_LORA_DIR / ADAPTER_WEIGHTS,
        }
        for i in range(max(TEXT_ENCODERS.values())):
            candidates[te_lora_dir(i)] = run / te_lora_dir(i) / ADAPTER_WEIGHTS
        candidates["learned_embeds"] = run / EMBEDS_FILE
        candidates[VAE_DIR] = run / VAE_DIR / DIFFUSERS_WEIGHTS
        return {k: p for k, p in candidates.items() if p.is_file()}

    @staticmethod
    def adapter_file(component_dir: str | os.PathLike[str]) -> Path:
        return Path(component_dir) / ADAPTER_WEIGHTS
