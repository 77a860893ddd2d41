"""Migration as a background job (the Sensor page): a thread, its progress, cancel, result.

CPU defaults for interactive use (ours, stated on the page): images centre-cropped to at
most 256² (a crop keeps pixel statistics; resampling would change speckle and spectrum),
20 DDIM timesteps instead of the AD code's 200, L_sp/L_f every 2nd iteration.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from affine import Affine

from sarviz.errors import GenerationCancelled, GenerationError
from sarviz.migration.images import SarAmplitude
from sarviz.migration.migrate import FeatureExtractor, MigrationOutcome, MigrationSettings, migrate_image

CPU_SETTINGS = MigrationSettings(steps=20, decode_every=2)
CPU_SIZE = 256


def centre_crop(image: SarAmplitude, size: int, multiple: int) -> SarAmplitude:
    """The centred ``size``×``size`` crop (sides rounded down to ``multiple``), georeference shifted to match."""
    h, w = image.shape
    side = min(size, h, w) // multiple * multiple
    if side < multiple:
        raise GenerationError(f"image of {h}×{w} px is smaller than {multiple} px; the base cannot take it")
    r0, c0 = (h - side) // 2, (w - side) // 2
    transform = image.transform @ Affine.translation(c0, r0) if image.transform is not None else None
    return replace(image, amplitude=image.amplitude[r0:r0 + side, c0:c0 + side], transform=transform)


@dataclass
class MigrationJob:
    """One migration running in a thread; read ``state`` from any thread."""

    base: str
    content: SarAmplitude
    styles: list[SarAmplitude]
    settings: MigrationSettings = field(default_factory=lambda: replace(CPU_SETTINGS))
    size: int = CPU_SIZE
    seed: int = 0
    device: str | None = None
    dtype: str | None = None
    state: dict[str, Any] = field(default_factory=lambda: {"status": "queued", "step": 0, "total": 0,
                                                           "message": "waiting", "error": None})
    cancel: threading.Event = field(default_factory=threading.Event)
    result: MigrationOutcome | None = None
    thread: threading.Thread | None = None

    def start(self) -> MigrationJob:
        self.thread = threading.Thread(target=self._run, name="sarviz-migration", daemon=True)
        self.thread.start()
        return self

    def _progress(self, step: int, total: int, message: str) -> None:
        self.state.update(step=step, total=total, message=message)

    def _run(self) -> None:
        from sarviz.generators import runtime

        t0 = time.perf_counter()
        try:
            self.state.update(status="loading", message="loading the U-Net base")
            extractor = FeatureExtractor(self.base, self.settings.layers, self.device, self.dtype)
            content = centre_crop(self.content, self.size, extractor.multiple)
            styles = [centre_crop(s, self.size, extractor.multiple) for s in self.styles]
            self.content = content
            self.styles = styles
            with runtime.QUEUE.slot(extractor.device, cancel=self.cancel):
                self.state.update(status="running")
                self.result = migrate_image(content, styles, extractor, self.settings, self.seed, self._progress,
                                            self.cancel)
            self.state.update(status="done", message=f"done in {time.perf_counter() - t0:.0f} s")
        except GenerationCancelled:
            self.state.update(status="cancelled", message="cancelled")
        except (GenerationError, ValueError, OSError) as exc:
            self.state.update(status="failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def wait(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    @property
    def done(self) -> bool:
        return self.state["status"] in ("done", "failed", "cancelled")


def amplitude_png(amplitude: np.ndarray) -> bytes:
    """8-bit grey PNG of a normalised amplitude image (for display and download)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.clip(amplitude, 0, 1) * 255).round().astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
