"""One Generator interface for every way sarviz makes a synthetic SAR image.

A generator takes a :class:`~sarviz.scene.Scene` (it reads the layers it needs, usually
the AlphaEarth embedding and incidence angle) and a :class:`GenerationRequest`, and
returns a :class:`GenerationResult`: VV and VH in dB on the scene's grid, with
provenance. Implementations: the diffusion pipeline (ControlNet + LoRA on SD 1.5) and the
CPU emulator; both are built from a model card (:mod:`sarviz.registry`).
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from sarviz.calibration import Calibration
from sarviz.constants import DEFAULT_ANGLE_DEG  # noqa: F401 - re-exported (generators import it from here)
from sarviz.errors import GenerationCancelled, GenerationError, WeightsMissing  # noqa: F401 - re-exported
from sarviz.formats.generated_image import GeneratedImage
from sarviz.scene import Scene

#: progress(step, total, message) — called after each unit of work (denoising step, ...)
ProgressCallback = Callable[[int, int, str], None]



@dataclass
class GenerationRequest:
    """What the user asked for. ``None`` means: the model card's default."""

    seed: int = 0
    steps: int | None = None
    guidance: float | None = None
    controlnet_scale: float | None = None
    angle_deg: float | None = None  # used only where the scene has no angle layer
    prompt: str | None = None
    negative_prompt: str | None = None
    device: str | None = None  # "cpu", "cuda", "mps"; None → best available
    dtype: str | None = None  # "float32", "bfloat16", "float16"; None → best for device
    scheduler: str | None = None
    #: "fast" (None: the card's defaults, e.g. 25 steps in the device's best dtype) or
    #: "reference" (the published inference: 50 steps, float32); explicit fields still win
    preset: str | None = None


@dataclass
class GenerationResult:
    """A synthetic Sentinel-1 image in dB on a scene's grid, with its provenance."""

    vv_db: np.ndarray
    vh_db: np.ndarray
    crs: CRS
    transform: Affine
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vv_db = np.asarray(self.vv_db, dtype=np.float32)
        self.vh_db = np.asarray(self.vh_db, dtype=np.float32)
        if self.vv_db.shape != self.vh_db.shape or self.vv_db.ndim != 2:
            raise GenerationError(f"VV {self.vv_db.shape} and VH {self.vh_db.shape} must be two equal 2-D grids")
        self.crs = CRS.from_user_input(self.crs)

    @property
    def height(self) -> int:
        return int(self.vv_db.shape[0])

    @property
    def width(self) -> int:
        return int(self.vv_db.shape[1])

    def as_scene(self, like: Scene | None = None) -> Scene:
        """The result as a scene (SAR layers only, or layered onto ``like``'s other layers)."""
        base = dict(crs=self.crs, transform=self.transform, width=self.width, height=self.height)
        if like is not None:
            base.update(optical=like.optical, angle_deg=like.angle_deg, embedding=like.embedding,
                        dates=dict(like.dates))
        return Scene(vv_db=self.vv_db, vh_db=self.vh_db, scene_id=self.provenance.get("scene_id", "generated"),
                     provenance={"source": "generated", **self.provenance}, **base)

    @property
    def calibration(self) -> Calibration:
        """The calibration the result was made with (provenance ``calibration``), else the default."""
        return calibration_of(self.provenance)

    def geotiff_bytes(self) -> bytes:
        """GeoTIFF: bands "VV", "VH" (float32 dB), the scene's CRS/transform, provenance in tags."""
        return self._image().to_bytes()

    def to_geotiff(self, path: str | os.PathLike) -> Path:
        """Write the GeoTIFF (:class:`sarviz.formats.generated_image.GeneratedImage`), checked complete."""
        return self._image().save(path)

    def _image(self) -> GeneratedImage:
        return GeneratedImage(self.vv_db, self.vh_db, self.crs, self.transform, self.provenance)

    def png_bytes(self, vv_range: tuple[float, float] | None = None,
                  vh_range: tuple[float, float] | None = None) -> bytes:
        """8-bit PNG in the model output convention: R = VV, G = VH, B = VV (+ alpha 0 = missing).

        The dB ranges default to the result's calibration (:meth:`calibration`: the model's
        own, recorded in the provenance), so a grey level means the dB the model meant.
        """
        from PIL import Image

        calibration = self.calibration
        vv_range = tuple(vv_range or calibration.range("VV"))
        vh_range = tuple(vh_range or calibration.range("VH"))

        def scale(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
            return (np.clip((np.nan_to_num(a, nan=lo) - lo) / (hi - lo), 0, 1) * 255).round().astype(np.uint8)

        vv, vh = scale(self.vv_db, *vv_range), scale(self.vh_db, *vh_range)
        planes = [vv, vh, vv]
        missing = ~(np.isfinite(self.vv_db) & np.isfinite(self.vh_db))
        if missing.any():
            # Missing pixels are transparent, not black: whoever reads the PNG (a study pool, a
            # viewer) can tell "no data" from "dark", as the GeoTIFF's NaN does.
            planes.append(np.where(missing, 0, 255).astype(np.uint8))
        buf = io.BytesIO()
        Image.fromarray(np.dstack(planes)).save(buf, format="PNG")
        return buf.getvalue()

    @classmethod
    def from_geotiff(cls, path: str | os.PathLike) -> "GenerationResult":
        image = GeneratedImage.load(path)
        if image.vh_db is None or image.crs is None:
            raise GenerationError(f"{path}: needs georeferenced bands named VV and VH")
        return cls(image.vv_db, image.vh_db, image.crs, image.transform, image.provenance)


def calibration_of(provenance: dict[str, Any] | None) -> Calibration:
    """The calibration a result's provenance records (default when absent; a malformed one is an error)."""
    from sarviz.calibration import calibration_from_provenance

    try:
        return calibration_from_provenance(provenance)[0]
    except ValueError as exc:
        raise GenerationError(f"the result's provenance has a malformed calibration: {exc}") from None


def base_provenance(model_id: str, scene: Scene, request: GenerationRequest, **extra: Any) -> dict[str, Any]:
    """The provenance fields every generator records."""
    return {
        "model_id": model_id,
        "scene_id": scene.scene_id,
        "scene_source": scene.provenance.get("source"),
        # a result made from a proxy embedding must say so wherever it goes (UI, GeoTIFF tags)
        "embedding_source": (scene.provenance.get("embedding_source") or "AlphaEarth") if scene.embedding is not None
        else None,
        "seed": request.seed,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


class Generator(ABC):
    """A synthetic-SAR generator built from a model card."""

    #: short human label, shown in the UI ("emulator", "diffusion")
    kind: str = ""

    def __init__(self, card: "Any") -> None:
        self.card = card

    @property
    def model_id(self) -> str:
        return self.card.id

    @abstractmethod
    def generate(
        self,
        scene: Scene,
        request: GenerationRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Make a synthetic VV/VH image on ``scene``'s grid.

        Raise :class:`GenerationError` (with an actionable message) when the scene lacks a
        needed layer; check ``cancel`` between units of work and raise
        :class:`GenerationCancelled` when it is set.
        """

    def describe(self) -> str:
        return f"{self.card.name} ({self.kind})"
