"""SAR images in and out of migration: one reader for content/style files, one class for the output.

Inputs (content and style references): a GeoTIFF (first band, or the band named VV/HH; dB
when the band is named for a polarisation or tagged ``units=dB``, else linear amplitude) or
an 8-bit/16-bit grey image (PNG, JPEG, TIFF without georeference; pixel value = amplitude).
Every image is put on seed 001's scale, amplitude / (μ + 3σ) clipped to [0, 1] (the
normalisation :mod:`sarviz.amplitude` owns), and the
threshold μ + 3σ is kept so dB can be restored. A colour image (channels differ) or a flat
image is refused: it is not a SAR amplitude.

Output: the one generated-image artifact (:class:`sarviz.formats.generated_image.GeneratedImage`,
via :class:`~sarviz.generators.base.GenerationResult`): VV in dB on the content's own
amplitude scale (its μ + 3σ restored), the content's CRS/transform when it had one, and the
provenance (losses per iteration, weights, layers, style SHA-256s, dtype).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.amplitude import AmplitudeError
from sarviz.amplitude import normalise_amplitude as _seed001_normalise
from sarviz.errors import GenerationError
from sarviz.hashing import file_sha256  # noqa: F401 - re-exported (the one hashing helper)

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
POLARISATION_BANDS = ("VV", "HH", "VH", "HV")


@dataclass
class SarAmplitude:
    """A single-channel SAR image as normalised amplitude (seed 001's A/(μ+3σ), clipped to [0, 1])."""

    amplitude: np.ndarray  # (H, W) float32 in [0, 1]
    threshold: float  # μ + 3σ of the linear amplitude it was divided by
    path: Path | None = None
    crs: Any = None
    transform: Any = None
    sha256: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.amplitude.shape)  # type: ignore[return-value]

    def db(self) -> np.ndarray:
        """dB of the amplitude times its threshold (20·log10), NaN where it is 0."""
        with np.errstate(divide="ignore"):
            return np.where(self.amplitude > 0, 20.0 * np.log10(self.amplitude * self.threshold), np.nan)


def normalise_amplitude(amplitude: np.ndarray, what: str = "image") -> tuple[np.ndarray, float]:
    """A / (μ + 3σ) clipped to [0, 1] (:func:`sarviz.amplitude.normalise_amplitude`) and the threshold;
    missing pixels → 0; refuses negative, flat or non-finite images in one line."""
    amp = np.asarray(amplitude, dtype=np.float64)
    finite = np.isfinite(amp)
    if not finite.any():
        raise GenerationError(f"{what}: no finite pixel")
    if amp[finite].min() < 0:
        raise GenerationError(
            f"{what}: negative amplitude; a SAR amplitude image is ≥ 0 (or give dB in a band named VV/VH/HH/HV)"
        )
    if float(np.nanstd(amp)) == 0.0:
        raise GenerationError(f"{what}: the image is flat (one value); it is not a SAR amplitude image")
    try:
        unit, stats = _seed001_normalise(amp, unit="amplitude")
    except AmplitudeError as exc:
        raise GenerationError(f"{what}: {exc}") from None
    return np.nan_to_num(unit, nan=0.0).astype(np.float32), float(stats.threshold)


def read_sar_image(path: str | os.PathLike, what: str = "image") -> SarAmplitude:
    """Read a content or style image (see module doc) as normalised amplitude."""
    path = Path(path)
    if not path.is_file():
        raise GenerationError(f"{what} {path.name}: no such file")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise GenerationError(f"{what} {path.name}: not an image file ({', '.join(IMAGE_SUFFIXES)})")
    crs = transform = None
    if path.suffix.lower() in (".tif", ".tiff"):
        import rasterio

        try:
            with rasterio.open(path) as src:
                names = [(d or "").upper() for d in src.descriptions]
                band = next((names.index(p) + 1 for p in POLARISATION_BANDS if p in names), 1)
                data = src.read(band, out_dtype="float64")
                if src.nodata is not None and np.isfinite(src.nodata):
                    data[data == src.nodata] = np.nan
                is_db = names[band - 1] in POLARISATION_BANDS or src.tags(band).get("units", "").lower() == "db"
                if src.crs is not None:
                    crs, transform = src.crs, src.transform
                if src.count >= 3 and not is_db:
                    _check_grey(src.read([1, 2, 3], out_dtype="float64"), what, path)
        except rasterio.errors.RasterioIOError as exc:
            raise GenerationError(f"{what} {path.name}: unreadable GeoTIFF ({exc})") from None
        amplitude = np.power(10.0, data / 20.0) if is_db else data
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                arr = np.asarray(img, dtype=np.float64)
        except (UnidentifiedImageError, OSError) as exc:
            raise GenerationError(f"{what} {path.name}: unreadable image ({exc})") from None
        if arr.ndim == 3:
            _check_grey(np.moveaxis(arr[..., :3], -1, 0), what, path)
            arr = arr[..., 0]
        amplitude = arr
    if amplitude.ndim != 2:
        raise GenerationError(f"{what} {path.name}: expected a single-channel image")
    norm, threshold = normalise_amplitude(amplitude, f"{what} {path.name}")
    return SarAmplitude(norm, threshold, path, crs, transform, file_sha256(path))


def _check_grey(channels: np.ndarray, what: str, path: Path) -> None:
    if channels.shape[0] >= 3 and not (np.allclose(channels[0], channels[1]) and np.allclose(channels[0], channels[2])):
        raise GenerationError(
            f"{what} {path.name}: a colour image, not a single-channel SAR amplitude "
            "(give a grey PNG or a GeoTIFF band)"
        )


def list_images(folder_or_files: list[str | os.PathLike] | str | os.PathLike, what: str) -> list[Path]:
    """Image files from a folder (sorted, non-recursive) or a list of files; empty → error."""
    items = [folder_or_files] if isinstance(folder_or_files, (str, os.PathLike)) else list(folder_or_files)
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths += sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():
            paths.append(p)
        else:
            raise GenerationError(f"{what}: {p.name} does not exist")
    if not paths:
        raise GenerationError(f"{what}: no image files ({', '.join(IMAGE_SUFFIXES)}) found")
    return paths
