"""The ControlNet checkpoint (the HuiYanEarth-SAR layout; what ``sarviz train geo`` writes).

::

    <checkpoint>/config.json                          ControlNet config (may say conditioning_channels: 3)
    <checkpoint>/diffusion_pytorch_model.safetensors  65-ch conv_in; keys may carry "module."
    <checkpoint>/unet_lora/adapter_config.json        PEFT LoraConfig (r=32, alpha=16, ...)
    <checkpoint>/unet_lora/adapter_model.safetensors  PeftModel.save_pretrained layout
    <checkpoint>/sarviz_train.json                    written by sarviz's trainer: format, step,
                                                      calibration, preprocessing, base, recipe, ...
    <checkpoint>/accelerate_state/                    training checkpoints only (resume)

Loading rules (the published release must keep loading): the condition channel count comes
from the weights, not ``config.json``; ``module.`` prefixes (DistributedDataParallel) are
stripped; safetensors is the default and a pickle file (``.bin``) loads only with
``allow_pickle`` (even then with ``torch.load(weights_only=True)``); ``sarviz_train.json``
is optional (the published release has none). The writer (the geo trainer) and the reader
(the diffusion generator) both go through :class:`ControlNetCheckpoint`.
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
from sarviz.formats.model_card import CARD_FILE  # noqa: F401 - an in-memory card for a checkpoint claims this path

#: the ``format`` of sarviz_train.json
RUN_FORMAT = "sarviz-geo-run/1"
#: what a trainer writes beside a checkpoint: its calibration and preprocessing
TRAIN_META = "sarviz_train.json"
CONFIG_FILE = "config.json"
SAFETENSORS_NAME = "diffusion_pytorch_model.safetensors"
PICKLE_NAME = "diffusion_pytorch_model.bin"
UNET_LORA_DIR = "unet_lora"
LORA_CONFIG = "adapter_config.json"
LORA_SAFETENSORS = "adapter_model.safetensors"
LORA_PICKLE = "adapter_model.bin"
COND_CONV_KEY = "controlnet_cond_embedding.conv_in.weight"


def load_weights_file(path: Path, allow_pickle: bool = False) -> dict[str, Any]:
    """A state dict from a safetensors file, or (opt-in only) a pickle file."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # SafetensorError, OSError, truncated header, ...
            raise GenerationError(
                f"{path} is not a valid safetensors file ({exc}); the download is probably incomplete or "
                "corrupt — download it again"
            ) from None
    if not allow_pickle:
        raise GenerationError(
            f"{path} is a pickle file, which can run code when loaded; it is loaded only with an explicit "
            'opt-in (card: "allow_pickle": true, CLI: --allow-pickle). Prefer converting it to safetensors.'
        )
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise GenerationError(f"{path} cannot be read as a PyTorch weights file ({exc})") from None
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise GenerationError(f"{path} does not hold a state dict")
    return data


def strip_prefix(state: dict[str, Any], prefix: str = "module.") -> dict[str, Any]:
    """Keys without (repeated) ``prefix`` — DistributedDataParallel saves ``module.<key>``."""
    out = {}
    for k, v in state.items():
        while k.startswith(prefix):
            k = k[len(prefix) :]
        out[k] = v
    return out


def find_weights(folder: Path, safetensors_name: str, pickle_name: str, allow_pickle: bool) -> Path | None:
    st = folder / safetensors_name
    if st.is_file():
        return st
    pk = folder / pickle_name
    if pk.is_file() and allow_pickle:
        return pk
    return None


@dataclass
class CheckpointPaths:
    """Where one diffusion model's weights are."""

    controlnet: str
    base: str
    unet_lora: str | None = None
    vae: str | None = None
    allow_pickle: bool = False

    def problems(self) -> list[str]:
        """What is missing, one line each (empty when everything is present)."""
        out: list[str] = []
        cn = Path(self.controlnet)
        if not cn.is_dir():
            out.append(f"ControlNet folder {cn} does not exist")
        else:
            if not (cn / "config.json").is_file():
                out.append(f"{cn / 'config.json'} is missing")
            if find_weights(cn, SAFETENSORS_NAME, PICKLE_NAME, self.allow_pickle) is None:
                if (cn / PICKLE_NAME).is_file():
                    out.append(f"{cn} has only {PICKLE_NAME} (pickle); allow it explicitly or convert to safetensors")
                else:
                    out.append(f"{cn / SAFETENSORS_NAME} is missing")
        if self.unet_lora and (cn.is_dir() or not Path(self.unet_lora).is_relative_to(cn)):
            lora = Path(self.unet_lora)
            if not (lora / LORA_CONFIG).is_file():
                out.append(f"{lora / LORA_CONFIG} is missing")
            if find_weights(lora, LORA_SAFETENSORS, LORA_PICKLE, self.allow_pickle) is None:
                out.append(f"{lora / LORA_SAFETENSORS} is missing")
        base_files = ["unet/config.json", "text_encoder/config.json", "tokenizer/tokenizer_config.json"]
        if not self.vae:
            base_files.append("vae/config.json")
        out += _component_problems(self.base, base_files, "base Stable Diffusion 1.5")
        if self.vae:
            out += _component_problems(self.vae, ["config.json"], "VAE")
        return out

    def files_to_hash(self) -> dict[str, Path]:
        out = {}
        w = find_weights(Path(self.controlnet), SAFETENSORS_NAME, PICKLE_NAME, self.allow_pickle)
        if w:
            out["controlnet"] = w
        if self.unet_lora:
            w = find_weights(Path(self.unet_lora), LORA_SAFETENSORS, LORA_PICKLE, self.allow_pickle)
            if w:
                out["unet_lora"] = w
        return out


def _component_problems(ref: str, files: list[str], what: str) -> list[str]:
    """One message when some diffusers component files are missing (local folder or cached hub repo)."""
    p = Path(ref)
    if p.exists():
        missing = [f for f in files if not (p / f).is_file()]
        return [f"{what}: {', '.join(str(p / f) for f in missing)} missing"] if missing else []
    if ref.count("/") != 1 or ref.startswith("/"):
        return [f"{what}: folder {ref} does not exist"]
    from huggingface_hub import try_to_load_from_cache

    def cached(filename: str) -> bool:
        try:
            return isinstance(try_to_load_from_cache(ref, filename), str)
        except Exception:  # an invalid repo id
            return False

    missing = [f for f in files if not cached(f)]
    if missing:
        return [
            f"{what}: Hugging Face model {ref} is not in the local cache (missing {', '.join(missing)}); "
            f"on a machine with internet run `hf download {ref}` (or set HF_HOME to a cache that has it), "
            "or point the card at a local folder"
        ]
    return []


def read_train_metadata(controlnet: Path) -> dict[str, Any]:
    """``sarviz_train.json`` beside a checkpoint sarviz trained ({} when there is none)."""
    path = Path(controlnet) / TRAIN_META
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GenerationError(
            f"{path} cannot be read as JSON ({exc}); it records the checkpoint's calibration — "
            "restore it from the training run"
        ) from None
    if not isinstance(data, dict):
        raise GenerationError(f"{path} is not a JSON object")
    return data


@register_artifact
@dataclass
class ControlNetCheckpoint(Artifact):
    """One ControlNet checkpoint folder: ControlNet weights, the UNet LoRA inside it, and
    (for checkpoints sarviz trained) ``sarviz_train.json``.

    ``save(controlnet, unet_lora, meta)`` writes the published layout with the models' own
    ``save_pretrained`` (safetensors) and the metadata last; ``load(folder)`` checks the files
    and reads the metadata (one-line :class:`WeightsMissing` / :class:`GenerationError`).
    """

    artifact: ClassVar[str] = "controlnet-checkpoint"
    what: ClassVar[str] = "ControlNet checkpoint"
    FORMAT: ClassVar[str] = RUN_FORMAT
    FILES: ClassVar[tuple[str, ...]] = (
        CONFIG_FILE,
        SAFETENSORS_NAME,
        PICKLE_NAME,
        UNET_LORA_DIR,
        LORA_CONFIG,
        LORA_SAFETENSORS,
        LORA_PICKLE,
        TRAIN_META,
    )

    folder: Path
    meta: dict[str, Any]
    allow_pickle: bool = False

    @classmethod
    def load(cls, folder: str | os.PathLike[str], allow_pickle: bool = False) -> "ControlNetCheckpoint":
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise WeightsMissing(f"ControlNet folder {folder} does not exist")
        if not (folder / CONFIG_FILE).is_file():
            raise WeightsMissing(f"ControlNet config {folder / CONFIG_FILE} is missing")
        if find_weights(folder, SAFETENSORS_NAME, PICKLE_NAME, allow_pickle) is None:
            if (folder / PICKLE_NAME).is_file():
                load_weights_file(folder / PICKLE_NAME, allow_pickle=False)  # raises the opt-in message
            raise WeightsMissing(f"ControlNet weights {folder / SAFETENSORS_NAME} are missing")
        meta = read_train_metadata(folder)
        if meta and meta.get("format") not in (None, RUN_FORMAT):
            raise GenerationError(f"{folder / TRAIN_META} has format {meta.get('format')!r}, expected {RUN_FORMAT!r}")
        return cls(folder, meta, allow_pickle)

    def save(
        self, folder: str | os.PathLike[str] | None = None, *, controlnet: Any = None, unet_lora: Any = None
    ) -> Path:
        """Write ``controlnet`` / ``unet_lora`` (models with ``save_pretrained``) and ``meta``.

        The metadata goes last: a reader that sees ``sarviz_train.json`` sees a whole checkpoint.
        """
        folder = Path(folder) if folder is not None else self.folder
        folder.mkdir(parents=True, exist_ok=True)
        if controlnet is not None:
            controlnet.save_pretrained(str(folder), safe_serialization=True)
        if unet_lora is not None:
            unet_lora.save_pretrained(str(self.lora_dir(folder)), safe_serialization=True)
        if self.meta:
            write_json(folder / TRAIN_META, {**self.meta, "format": RUN_FORMAT})
        return folder

    @staticmethod
    def lora_dir(folder: str | os.PathLike[str]) -> Path:
        return Path(folder) / UNET_LORA_DIR

    @staticmethod
    def lora_weights_file(folder: str | os.PathLike[str]) -> Path:
        """The UNet LoRA's safetensors file of a checkpoint (what a resumed training run reloads)."""
        return Path(folder) / UNET_LORA_DIR / LORA_SAFETENSORS

    def weights_file(self) -> Path | None:
        return find_weights(self.folder, SAFETENSORS_NAME, PICKLE_NAME, self.allow_pickle)

    def state_dict(self) -> dict[str, Any]:
        """The ControlNet's tensors, ``module.`` prefixes stripped, checked to be a ControlNet."""
        weights = self.weights_file()
        if weights is None:
            raise WeightsMissing(f"ControlNet weights {self.folder / SAFETENSORS_NAME} are missing")
        state = strip_prefix(load_weights_file(weights, self.allow_pickle))
        if COND_CONV_KEY not in state:
            raise GenerationError(f"{weights} is not a ControlNet: it has no {COND_CONV_KEY!r} tensor")
        return state

    def conditioning_channels(self) -> int:
        """The condition channel count, from the weights (the published config.json says 3)."""
        return int(self.state_dict()[COND_CONV_KEY].shape[1])
