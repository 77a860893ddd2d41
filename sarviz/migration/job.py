"""Migration as a background job (the Sensor page): a thread, its progress, cancel, result.

CPU defaults for interactive use (ours, stated on the page): images centre-cropped to at
most 256² (a crop keeps pixel statistics; resampling would change speckle and spectrum),
20 DDIM timesteps instead of the AD code's 200, L_sp/L_f every 2nd iteration.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from affine import Affine

from sarviz.errors import GenerationCancelled, GenerationError, SarvizError
from sarviz.migration.images import SarAmplitude
from sarviz.migration.settings import MigrationSettings

CPU_SETTINGS = MigrationSettings(steps=20, decode_every=2)
CPU_SIZE = 256
#: SD 1.5's size factor (VAE ×8, U-Net ×8): a crop's sides are multiples of it
SD15_MULTIPLE = 64


def centre_crop(image: SarAmplitude, size: int, multiple: int = SD15_MULTIPLE) -> SarAmplitude:
    """The centred ``size``×``size`` crop (sides rounded down to ``multiple``), georeference shifted to match."""
    h, w = image.shape
    side = min(size, h, w) // multiple * multiple
    if side < multiple:
        raise GenerationError(f"image of {h}×{w} px is smaller than {multiple} px; the base cannot take it")
    r0, c0 = (h - side) // 2, (w - side) // 2
    transform = image.transform @ Affine.translation(c0, r0) if image.transform is not None else None
    return replace(image, amplitude=image.amplitude[r0 : r0 + side, c0 : c0 + side], transform=transform)


@dataclass
class MigrationJob:
    """One migration running in a thread (through the migrator's run sequence); read ``state`` from any thread.

    ``result`` is the migrator's :class:`~sarviz.generators.base.GenerationResult` (VV dB on the
    content's scale); :attr:`amplitude` and :attr:`losses` are what the page shows.
    """

    base: str
    content: SarAmplitude
    styles: list[SarAmplitude]
    settings: MigrationSettings = field(default_factory=lambda: replace(CPU_SETTINGS))
    size: int = CPU_SIZE
    seed: int = 0
    device: str | None = None
    dtype: str | None = None
    multiple: int = SD15_MULTIPLE
    state: dict[str, Any] = field(
        default_factory=lambda: {"status": "queued", "step": 0, "total": 0, "message": "waiting", "error": None}
    )
    cancel: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    thread: threading.Thread | None = None

    def start(self) -> MigrationJob:
        self.thread = threading.Thread(target=self._run, name="sarviz-migration", daemon=True)
        self.thread.start()
        return self

    def _progress(self, step: int, total: int, message: str) -> None:
        self.state.update(status="running", step=step, total=total, message=message)

    def _run(self) -> None:
        from sarviz.generators.base import TransformRequest
        from sarviz.migration.migrate import AttentionDistillationMigrator, migration_card, source_from_content

        t0 = time.perf_counter()
        try:
            self.state.update(status="loading", message="loading the U-Net base")
            self.content = centre_crop(self.content, self.size, self.multiple)
            self.styles = [centre_crop(s, self.size, self.multiple) for s in self.styles]
            migrator = AttentionDistillationMigrator(migration_card(self.base))
            request = TransformRequest(
                seed=self.seed,
                device=self.device,
                dtype=self.dtype,
                options={**asdict(self.settings), "references": self.styles},
            )
            self.result = migrator.transform(source_from_content(self.content), request, self._progress, self.cancel)
            self.state.update(status="done", message=f"done in {time.perf_counter() - t0:.0f} s")
        except GenerationCancelled:
            self.state.update(status="cancelled", message="cancelled")
        except (SarvizError, OSError) as exc:
            self.state.update(status="failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def wait(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    @property
    def done(self) -> bool:
        return self.state["status"] in ("done", "failed", "cancelled")

    @property
    def run_provenance(self) -> dict[str, Any]:
        """The VV migration's own record (losses, layers, settings) inside the result's provenance."""
        return self.result.provenance["migration"]["VV"]

    @property
    def amplitude(self) -> np.ndarray:
        """The migrated image on seed 001's A/(μ+3σ) scale (as the content is shown)."""
        from sarviz.migration.migrate import content_from_db

        return content_from_db(self.result.vv_db, "migrated").amplitude

    @property
    def losses(self) -> list[dict[str, float]]:
        return self.run_provenance["losses"]


def amplitude_png(amplitude: np.ndarray) -> bytes:
    """8-bit grey PNG of a normalised amplitude image (for display and download)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.clip(amplitude, 0, 1) * 255).round().astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
