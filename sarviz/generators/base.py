"""The generator interfaces: three kinds of generator on one base, one result type.

* :class:`MapGenerator` — a :class:`~sarviz.scene.Scene` (it reads the layers it needs,
  usually the AlphaEarth embedding and incidence angle) + a :class:`GenerationRequest` →
  one georeferenced :class:`GenerationResult` on the scene's grid (the emulator, the
  ControlNet geo generator).
* :class:`PromptGenerator` — a request (prompt, seed, count) → a list of results without
  georeference (the text-to-SAR generator, seed 001).
* :class:`ImageTransformer` — a georeferenced result (a raster already in dB) + a
  :class:`TransformRequest` → a georeferenced result on the same grid; its inner loop may be
  denoising (SAR→SAR rendering, seed 002) or an optimisation (attention-distillation
  migration, seed 003).

All are built from a model card (:mod:`sarviz.registry`), say whether they can run here with
:meth:`Generator.readiness`, and run through one sequence (:mod:`sarviz.generators.run`:
queue slot → cached load → lock → progress/cancel per step → dB → provenance). Sampler
settings are typed (:mod:`sarviz.generators.sampling`). ``docs/architecture.md`` ("Generators")
says where a new generator goes and how it joins the contract test.
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

from sarviz.atomic import atomic_path
from sarviz.calibration import Calibration
from sarviz.constants import DEFAULT_ANGLE_DEG  # noqa: F401 - re-exported (generators import it from here)
from sarviz.errors import GenerationCancelled, GenerationError, WeightsMissing  # noqa: F401 - re-exported
from sarviz.formats.generated_image import GeneratedImage
from sarviz.scene import Scene

#: progress(step, total, message) — called after each unit of work (denoising step, ...)
ProgressCallback = Callable[[int, int, str], None]


@dataclass
class GenerationRequest:
    """What the user asked a map or prompt generator for. ``None`` means: the model card's default."""

    seed: int = 0
    steps: int | None = None
    guidance: float | None = None
    controlnet_scale: float | None = None
    angle_deg: float | None = None  # used only where the scene has no angle layer
    prompt: str | None = None
    negative_prompt: str | None = None
    device: str | None = None  # "cpu", "cuda", "mps"; None → best available
    dtype: str | None = None  # "float32", "bfloat16", "float16"; None → best for device
    scheduler: str | None = None  # a name from sarviz.generators.sampling.SCHEDULERS
    #: "fast" (None: the card's defaults, e.g. 25 steps in the device's best dtype) or
    #: "reference" (the published inference: 50 steps, float32); explicit fields still win
    preset: str | None = None
    #: flow-matching schedulers only (SD3's time shift); None → the card's / model's value
    shift: float | None = None


@dataclass
class TransformRequest:
    """What the user asked an :class:`ImageTransformer` for. ``None`` means: the model card's default.

    ``strength`` is how far the source is moved (img2img: the fraction of the noise schedule
    run; an optimisation: its own reading, said in its provenance). ``options`` holds
    transformer-specific knobs (e.g. a target sensor profile, attention-distillation layer
    weights); each transformer documents and checks its own.
    """

    seed: int = 0
    steps: int | None = None
    strength: float | None = None
    guidance: float | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    device: str | None = None
    dtype: str | None = None
    scheduler: str | None = None
    shift: float | None = None
    preset: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Readiness:
    """Whether a generator can run on this machine, and if not, what is wrong and what to do.

    ``problem`` is one short line (the UI's model list, ``sarviz models``); ``action`` says
    what to do about it; ``details`` has everything (missing files with their paths, the
    card's "how to get" text) for ``sarviz models --details`` and an expander. ``missing``
    (optional) lists what is missing, one item each, for the error a run raises.
    """

    ready: bool
    problem: str | None = None
    action: str | None = None
    details: str | None = None
    missing: tuple[str, ...] = ()

    @classmethod
    def ok(cls) -> "Readiness":
        return cls(True)

    @property
    def message(self) -> str | None:
        """The long form (details, else problem), None when ready."""
        return None if self.ready else (self.details or self.problem)

    def error(self) -> WeightsMissing:
        """The one-line error a run raises when the generator is not ready (details as a note)."""
        problem = f"{self.problem} ({'; '.join(self.missing)})" if self.missing else self.problem
        err = WeightsMissing("; ".join(x for x in (problem, self.action) if x))
        err.details = self.details or self.problem
        if self.details:
            err.add_note(self.details)  # shown with the traceback under SARVIZ_DEBUG=1
        return err


@dataclass
class GenerationResult:
    """A synthetic Sentinel-1 image in dB, with its provenance — the one result every generator returns.

    Map generators and image transformers give VV and VH on a scene's grid (``crs`` and
    ``transform`` set); a prompt generator gives VV (and VH when its model makes both)
    without georeference (``crs`` and ``transform`` None).
    """

    vv_db: np.ndarray
    vh_db: np.ndarray | None = None
    crs: CRS | None = None
    transform: Affine | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vv_db = np.asarray(self.vv_db, dtype=np.float32)
        if self.vv_db.ndim != 2:
            raise GenerationError(f"VV must be a 2-D grid, got {self.vv_db.shape}")
        if self.vh_db is not None:
            self.vh_db = np.asarray(self.vh_db, dtype=np.float32)
            if self.vv_db.shape != self.vh_db.shape:
                raise GenerationError(f"VV {self.vv_db.shape} and VH {self.vh_db.shape} must be two equal 2-D grids")
        if (self.crs is None) != (self.transform is None):
            raise GenerationError("a result is georeferenced with both a CRS and a transform, or with neither")
        if self.crs is not None:
            self.crs = CRS.from_user_input(self.crs)

    @property
    def height(self) -> int:
        return int(self.vv_db.shape[0])

    @property
    def width(self) -> int:
        return int(self.vv_db.shape[1])

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None

    @property
    def bands(self) -> dict[str, np.ndarray]:
        """The polarisations present: {"VV": …} or {"VV": …, "VH": …}."""
        return {"VV": self.vv_db} if self.vh_db is None else {"VV": self.vv_db, "VH": self.vh_db}

    @property
    def calibration(self) -> Calibration:
        """The calibration the result was made with (provenance ``calibration``), else the default."""
        return calibration_of(self.provenance)

    def geotiff_bytes(self) -> bytes:
        """GeoTIFF: bands "VV", "VH" (float32 dB), the scene's CRS/transform, provenance in tags."""
        return self._image().to_bytes()

    def to_geotiff(self, path: str | os.PathLike[str]) -> Path:
        """Write the GeoTIFF (:class:`sarviz.formats.generated_image.GeneratedImage`), checked complete."""
        return self._image().save(path)

    def _image(self) -> GeneratedImage:
        return GeneratedImage(self.vv_db, self.vh_db, self.crs, self.transform, self.provenance)

    def png_bytes(
        self, vv_range: tuple[float, float] | None = None, vh_range: tuple[float, float] | None = None
    ) -> bytes:
        """8-bit PNG in the model output convention: R = VV, G = VH, B = VV (grey VV without VH;
        + alpha 0 = missing).

        The dB ranges default to the result's calibration (:meth:`calibration`: the model's
        own, recorded in the provenance), so a grey level means the dB the model meant.
        """
        from PIL import Image

        calibration = self.calibration
        vv_lo, vv_hi = vv_range or calibration.range("VV")

        def scale(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
            out: np.ndarray = (
                (np.clip((np.nan_to_num(a, nan=lo) - lo) / (hi - lo), 0, 1) * 255).round().astype(np.uint8)
            )
            return out

        vv = scale(self.vv_db, vv_lo, vv_hi)
        missing = ~np.isfinite(self.vv_db)
        if self.vh_db is None:
            planes = [vv]
        else:
            vh = scale(self.vh_db, *tuple(vh_range or calibration.range("VH")))
            planes = [vv, vh, vv]
            missing |= ~np.isfinite(self.vh_db)
        if missing.any():
            # Missing pixels are transparent, not black: whoever reads the PNG (a study pool, a
            # viewer) can tell "no data" from "dark", as the GeoTIFF's NaN does.
            if len(planes) == 1:
                planes = [vv, vv, vv]
            planes.append(np.where(missing, 0, 255).astype(np.uint8))
        buf = io.BytesIO()
        Image.fromarray(planes[0] if len(planes) == 1 else np.dstack(planes)).save(buf, format="PNG")
        return buf.getvalue()

    def write(self, tif: str | os.PathLike[str], png: bool = True) -> list[Path]:
        """The GeoTIFF at ``tif`` and (``png``) a PNG beside it with the same stem."""
        out = [self.to_geotiff(tif)]
        if png:
            p = Path(tif).with_suffix(".png")
            with atomic_path(p, suffix=".png.part") as tmp:
                Path(tmp).write_bytes(self.png_bytes())
            out.append(p)
        return out

    @classmethod
    def from_geotiff(cls, path: str | os.PathLike[str]) -> "GenerationResult":
        image = GeneratedImage.load(path)
        return cls(image.vv_db, image.vh_db, image.crs, image.transform, image.provenance)


def calibration_of(provenance: dict[str, Any] | None) -> Calibration:
    """The calibration a result's provenance records (default when absent; a malformed one is an error)."""
    from sarviz.calibration import calibration_from_provenance

    try:
        return calibration_from_provenance(provenance)[0]
    except ValueError as exc:
        raise GenerationError(f"the result's provenance has a malformed calibration: {exc}") from None


def base_provenance(model_id: str, scene: Scene, request: GenerationRequest, **extra: Any) -> dict[str, Any]:
    """The provenance fields every map generator records about its scene (the run sequence adds the rest)."""
    return {
        "model_id": model_id,
        "scene_id": scene.scene_id,
        "scene_source": scene.provenance.get("source"),
        # a result made from a proxy embedding must say so wherever it goes (UI, GeoTIFF tags)
        "embedding_source": (scene.provenance.get("embedding_source") or "AlphaEarth")
        if scene.embedding is not None
        else None,
        "seed": request.seed,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


class Generator(ABC):
    """A synthetic-SAR generator built from a model card: the base of the three kinds.

    Subclass :class:`MapGenerator`, :class:`PromptGenerator` or :class:`ImageTransformer`,
    not this. Every kind runs through :func:`sarviz.generators.run.run_generation`.
    """

    #: short human label, shown in the UI ("emulator", "diffusion")
    kind: str = ""
    #: which of the three interfaces ("map", "prompt", "transform"); set by the kind classes
    interface: str = ""
    #: True: runs hold a device slot in the process-wide queue and load a (cached) torch model;
    #: False: a light CPU generator (the numpy emulator) that never waits behind a diffusion run
    uses_device: bool = True

    def __init__(self, card: "Any") -> None:
        self.card = card

    @property
    def model_id(self) -> str:
        return str(self.card.id)

    def describe(self) -> str:
        return f"{self.card.name} ({self.kind})"

    def readiness(self) -> Readiness:
        """Whether this generator can run here (its weights are present); cheap, no loading."""
        return Readiness.ok()

    def check_ready(self) -> None:
        """Raise :class:`WeightsMissing` (one line; details in ``.details``) unless ready."""
        state = self.readiness()
        if not state.ready:
            raise state.error()

    def load(self, device: str, dtype: str, progress: ProgressCallback | None = None) -> Any:
        """The loaded model for ``device``/``dtype`` (cached by the generator), or None when there is nothing to load.

        The run sequence holds ``loaded.lock`` (when it has one) while the model works.
        """
        return None


class MapGenerator(Generator):
    """Scene + request → a georeferenced result on the scene's grid."""

    interface = "map"

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


class PromptGenerator(Generator):
    """Request (prompt, seed) → results without georeference, one per image asked for."""

    interface = "prompt"

    @abstractmethod
    def generate(
        self,
        request: GenerationRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[GenerationResult]:
        """Make the images ``request`` asks for (seeds ``seed``, ``seed + 1``, …), each with provenance."""

    def generate_text(
        self,
        request: GenerationRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[GenerationResult]:
        """The former name of :meth:`generate` (kept for callers of this session's branches)."""
        return self.generate(request, progress, cancel)


class ImageTransformer(Generator):
    """A georeferenced raster (a result in dB) + request → a georeferenced result on the same grid.

    Its inner loop may be denoising (SAR→SAR rendering) or an optimisation
    (attention-distillation migration); either reports each step through ``progress`` and
    checks ``cancel``, via the shared run sequence.
    """

    interface = "transform"

    @abstractmethod
    def transform(
        self,
        source: GenerationResult,
        request: TransformRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Make the transformed image on ``source``'s grid (refuse a source without georeference)."""
