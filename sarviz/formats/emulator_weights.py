"""Emulator weights: one safetensors file, tensors plus the model's JSON description in its header.

::

    NAME.safetensors
      tensors   weight (features × 2), intercept (2), feature_mean (features), float64
      header    {"sarviz": JSON}: format, feature_map, ridge_lambda, targets, units,
                embedding_bands, reference_angle_deg, cos_power[, cos_power_vh], fit metadata

The model's meaning (feature maps, the angle law) is :class:`sarviz.emulator.radiometric.RadiometricModel`;
this class only reads and writes the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sarviz.atomic import atomic_path
from sarviz.errors import EmulatorError
from sarviz.formats.base import Artifact, register_artifact

FORMAT = "sarviz-emulator-radiometric/1"
SUFFIX = ".safetensors"
HEADER_KEY = "sarviz"
TENSORS = ("weight", "intercept", "feature_mean")


@register_artifact
@dataclass
class EmulatorWeights(Artifact):
    """The tensors and description of one fitted emulator."""

    artifact: ClassVar[str] = "emulator-weights"
    what: ClassVar[str] = "emulator weights file"
    FORMAT: ClassVar[str] = FORMAT
    FILES: ClassVar[tuple[str, ...]] = ()  # the file is named by the user (``--out NAME.safetensors``)

    tensors: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def check_path(path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        if path.suffix != SUFFIX:
            raise EmulatorError(f"{path}: the emulator weights file must end in {SUFFIX}")
        return path

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``path`` atomically (an existing file survives any failure)."""
        from safetensors.numpy import save_file

        path = self.check_path(path)
        missing = set(TENSORS) - set(self.tensors)
        if missing:
            raise EmulatorError(f"{path}: cannot save emulator weights without tensors {sorted(missing)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, "format": FORMAT}
        with atomic_path(path) as tmp:
            save_file(
                {k: np.ascontiguousarray(v) for k, v in self.tensors.items()},
                str(tmp),
                metadata={HEADER_KEY: json.dumps(meta, sort_keys=True, default=str)},
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "EmulatorWeights":
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise EmulatorError(f"emulator weights {path} not found")
        try:
            with safe_open(str(path), framework="numpy") as f:
                header = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise EmulatorError(f"{path}: not a readable safetensors file ({exc})") from None
        try:
            meta = json.loads(header[HEADER_KEY])
        except (KeyError, ValueError):
            raise EmulatorError(f"{path}: safetensors file without sarviz emulator metadata") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise EmulatorError(f"{path}: format {found!r}, expected {FORMAT!r}")
        missing = set(TENSORS) - set(tensors)
        if missing:
            raise EmulatorError(f"{path}: missing tensors {sorted(missing)}")
        return cls(tensors, meta)
