"""A SAR-CLIP folder (``sarviz train sarclip``): a transformers CLIPModel + CLIPProcessor and our info.

::

    SARCLIP/config.json           CLIPModel config (CLIPModel.save_pretrained)
    SARCLIP/model.safetensors     weights
    SARCLIP/preprocessor_config.json, tokenizer files   (CLIPProcessor.save_pretrained)
    SARCLIP/sarclip_info.json     format, base, data, recipe, losses, token, polarisation,
                                  image_mode, calibration, created, sarviz   (optional: any
                                  CLIP folder loads; without it nothing is known of its training)

The whole folder is written beside the target and swapped in when complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sarviz.atomic import atomic_dir
from sarviz.errors import ClipMissing
from sarviz.formats.base import Artifact, register_artifact

FORMAT = "sarviz-sarclip/1"
INFO_FILE = "sarclip_info.json"
CONFIG_FILE = "config.json"


@register_artifact
@dataclass
class SarClipFolder(Artifact):
    """A CLIP model folder with (optionally) sarviz's training info.

    ``save(folder, model=..., processor=...)`` writes everything into a temporary folder and
    swaps it in; ``load(folder)`` checks it is a CLIP folder and reads the info (the model
    itself is loaded by :func:`sarviz.evaluation.clip.load_sarclip`, which uses :meth:`check`).
    """

    artifact: ClassVar[str] = "sarclip"
    what: ClassVar[str] = "SAR-CLIP model folder"
    FORMAT: ClassVar[str] = FORMAT
    FILES: ClassVar[tuple[str, ...]] = (CONFIG_FILE, INFO_FILE)

    folder: Path
    info: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def check(folder: str | os.PathLike[str] | None) -> Path:
        """The folder, if it is a CLIP model folder; one-line :class:`ClipMissing` otherwise."""
        if not folder:
            raise ClipMissing("no SAR-CLIP model given (--sarclip DIR); train one with `sarviz train sarclip`")
        folder = Path(folder).expanduser()
        if not (folder / CONFIG_FILE).is_file():
            raise ClipMissing(f"{folder} has no {CONFIG_FILE}: not a CLIP model folder")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> "SarClipFolder":
        folder = cls.check(folder)
        info: dict[str, Any] = {}
        if (folder / INFO_FILE).is_file():
            try:
                info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ClipMissing(f"{folder / INFO_FILE} is not readable JSON ({exc})") from None
            if not isinstance(info, dict) or info.get("format") not in (None, FORMAT):
                raise ClipMissing(f"{folder / INFO_FILE}: not a {FORMAT} description")
        return cls(folder, info)

    def save(self, folder: str | os.PathLike[str] | None = None, *, model: Any = None, processor: Any = None) -> Path:
        folder = Path(folder) if folder is not None else self.folder
        with atomic_dir(folder) as tmp:
            if model is not None:
                model.save_pretrained(str(tmp), safe_serialization=True)
            if processor is not None:
                processor.save_pretrained(str(tmp))
            (tmp / INFO_FILE).write_text(
                json.dumps({**self.info, "format": FORMAT}, indent=2, default=str), encoding="utf-8"
            )
        return folder

    @staticmethod
    def is_clip_folder(folder: str | os.PathLike[str]) -> bool:
        return (Path(folder) / CONFIG_FILE).is_file()
