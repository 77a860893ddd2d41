"""The on-disk artifacts of SAR→SAR rendering, one class each (core-artifacts may move them to ``sarviz/formats/``).

* :class:`SarGeoTiff` — reads any SAR GeoTIFF (σ⁰ dB bands named VV/VH/HH/HV, or a
  one-band ``VV.tif``-style file) and refuses what is not SAR, in one line;
* :class:`PairsDataset` — the 🤗 imagefolder of training pairs (``sarviz dataset pairs``);
* :class:`Sar2SarRun` — the ControlNet run folder meta (``sarviz train sar2sar``);
* :class:`RenderOutput` — the rendered COG (``sarviz render``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

from sarviz.atomic import atomic_path

POLS = ("VV", "VH", "HH", "HV")
#: plausible σ⁰ range in dB; a band outside it is not calibrated SAR in dB
DB_RANGE = (-80.0, 45.0)


class Sar2SarError(ValueError):
    """A one-line user error of the SAR→SAR tools."""


@dataclass
class SarGeoTiff:
    bands: dict[str, np.ndarray]  # polarisation → σ⁰ dB (float32, NaN = missing)
    crs: CRS
    transform: Affine
    path: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return next(iter(self.bands.values())).shape

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        h, w = self.shape
        (x0, y0), (x1, y1) = self.transform @ (0, 0), self.transform @ (w, h)
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    @classmethod
    def read(cls, path: str | os.PathLike, window=None) -> SarGeoTiff:
        path = Path(path)
        try:
            src = rasterio.open(path)
        except rasterio.errors.RasterioIOError:
            raise Sar2SarError(f"{path.name}: not a readable GeoTIFF") from None
        with src:
            if src.crs is None or src.transform == Affine.identity():
                raise Sar2SarError(f"{path.name}: has no georeference (CRS and transform); a render must keep it")
            names = [(d or "").upper() for d in src.descriptions]
            picked = {p: names.index(p) + 1 for p in POLS if p in names}
            if not picked and src.count == 1 and path.stem.upper() in POLS:
                picked = {path.stem.upper(): 1}
            if not picked:
                raise Sar2SarError(f"{path.name}: not a SAR GeoTIFF (no band named VV, VH, HH or HV; band names "
                                   f"{[d or '' for d in src.descriptions][:6]})")
            if any(np.dtype(src.dtypes[i - 1]).kind != "f" for i in picked.values()):
                raise Sar2SarError(f"{path.name}: SAR bands must be float σ⁰ in dB")
            bands = {p: src.read(i, window=window, out_dtype="float32") for p, i in picked.items()}
            transform = src.window_transform(window) if window is not None else src.transform
            crs, tags = src.crs, src.tags()
        for p, a in bands.items():
            if src.nodata is not None and not np.isnan(src.nodata):
                a[a == src.nodata] = np.nan
            finite = a[np.isfinite(a)]
            if finite.size < 16:
                raise Sar2SarError(f"{path.name}: band {p} has fewer than 16 valid pixels")
            lo, hi = np.percentile(finite, [1, 99])
            if lo < DB_RANGE[0] or hi > DB_RANGE[1]:
                raise Sar2SarError(f"{path.name}: band {p} spans {lo:.3g}..{hi:.3g}, not σ⁰ in dB "
                                   f"(expected within {DB_RANGE[0]:g}..{DB_RANGE[1]:g} dB)")
        return cls(bands, crs, transform, str(path), tags)


# -- pairs dataset ---------------------------------------------------------------------------------------
PAIRS_FORMAT = "sarviz-sar2sar-pairs/1"
PAIRS_FILE = "pairs.json"


@dataclass
class PairsDataset:
    """``OUT/pairs.json`` + ``OUT/{train,val,test}/`` 🤗 imagefolders: ``metadata.jsonl`` rows
    ``{file_name: image/ID.png, conditioning_image: conditioning/ID.png, text, pol, ...}``; PNGs are the
    8-bit A/(μ+3σ) amplitude of the target (finer) and of the condition (up-sampled coarser)."""

    folder: Path
    info: dict[str, Any]

    @classmethod
    def open(cls, folder: str | os.PathLike) -> PairsDataset:
        folder = Path(folder)
        try:
            info = json.loads((folder / PAIRS_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            raise Sar2SarError(f"{folder}: not a pairs dataset (no readable {PAIRS_FILE}; build one with "
                               "`sarviz dataset pairs`)") from None
        if info.get("format") != PAIRS_FORMAT:
            raise Sar2SarError(f"{folder}/{PAIRS_FILE}: format {info.get('format')!r}, expected {PAIRS_FORMAT}")
        return cls(folder, info)

    def rows(self, split: str) -> list[dict[str, Any]]:
        path = self.folder / split / "metadata.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    @staticmethod
    def write_png(path: Path, unit: np.ndarray) -> None:
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".png.part") as tmp:
            Image.fromarray((np.clip(unit, 0, 1) * 255).round().astype(np.uint8), mode="L").save(tmp, format="PNG")

    @staticmethod
    def write_split(folder: Path, split: str, rows: list[dict[str, Any]]) -> None:
        path = folder / split / "metadata.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".part") as tmp:
            Path(tmp).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))

    @staticmethod
    def write_info(folder: Path, info: dict[str, Any]) -> None:
        with atomic_path(folder / PAIRS_FILE, suffix=".part") as tmp:
            Path(tmp).write_text(json.dumps({"format": PAIRS_FORMAT, **info}, indent=2, sort_keys=True, default=str))


# -- run ---------------------------------------------------------------------------------------------------
RUN_FORMAT = "sarviz-sar2sar/1"
RUN_FILE = "sarviz_sar2sar_model.json"


@dataclass
class Sar2SarRun:
    """A ``sarviz train sar2sar`` model folder: ``controlnet/`` (diffusers ControlNetModel) + this meta."""

    folder: Path
    meta: dict[str, Any]

    @classmethod
    def open(cls, run: str | os.PathLike, checkpoint: int | None = None) -> Sar2SarRun:
        folder = Path(run)
        if checkpoint is not None:
            folder = folder / f"checkpoint-{int(checkpoint)}"
        try:
            meta = json.loads((folder / RUN_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            raise Sar2SarError(f"{folder}: not a sar2sar model (no readable {RUN_FILE}; train one with "
                               "`sarviz train sar2sar`)") from None
        if meta.get("format") != RUN_FORMAT:
            raise Sar2SarError(f"{folder}/{RUN_FILE}: format {meta.get('format')!r}, expected {RUN_FORMAT}")
        if not (folder / "controlnet" / "config.json").is_file():
            raise Sar2SarError(f"{folder}: the controlnet/ folder is missing (incomplete run)")
        return cls(folder, meta)

    @staticmethod
    def write_meta(folder: Path, meta: dict[str, Any]) -> None:
        with atomic_path(folder / RUN_FILE, suffix=".part") as tmp:
            Path(tmp).write_text(json.dumps({"format": RUN_FORMAT, **meta}, indent=2, sort_keys=True, default=str))

    def weights_sha256(self) -> str:
        from sarviz.generators.runtime import file_sha256

        files = sorted((self.folder / "controlnet").glob("*.safetensors"))
        return file_sha256(files[0]) if files else ""


# -- render output -----------------------------------------------------------------------------------------
@dataclass
class RenderOutput:
    """The rendered image: a COG, one float32 σ⁰ dB band per polarisation (+ ``clipped`` mask band
    with ``tail="mask"``), the input's CRS, bounds kept, pixel size / F, provenance JSON in tags."""

    bands: dict[str, np.ndarray]
    crs: CRS
    transform: Affine
    provenance: dict[str, Any]
    masks: dict[str, np.ndarray] = field(default_factory=dict)

    def write(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        names = list(self.bands) + [f"{p}_clipped" for p in self.masks]
        data = [self.bands[p].astype(np.float32) for p in self.bands] + [m.astype(np.float32) for m in self.masks.values()]
        h, w = data[0].shape
        with atomic_path(path, suffix=".tif.part") as tmp:
            with rasterio.open(tmp, "w", driver="COG", width=w, height=h, count=len(data), dtype="float32",
                               crs=self.crs, transform=self.transform, nodata=np.nan, compress="DEFLATE",
                               predictor=3, blocksize=256) as dst:
                dst.write(np.stack(data))
                dst.descriptions = tuple(names)
                dst.update_tags(PROVENANCE=json.dumps(self.provenance, sort_keys=True, default=str), units="dB")
        return path

    @classmethod
    def read(cls, path: str | os.PathLike) -> RenderOutput:
        with rasterio.open(path) as src:
            names = list(src.descriptions)
            arrays = src.read(out_dtype="float32")
            prov = json.loads(src.tags().get("PROVENANCE", "{}"))
            bands = {n: a for n, a in zip(names, arrays) if n and not n.endswith("_clipped")}
            masks = {n[:-8]: a > 0.5 for n, a in zip(names, arrays) if n and n.endswith("_clipped")}
            return cls(bands, src.crs, src.transform, prov, masks)
