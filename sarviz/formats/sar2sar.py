"""The on-disk artifacts of SAR→SAR rendering (seed 002), one class each.

* :class:`SarGeoTiff` (``sar-geotiff``) — reads any SAR GeoTIFF (σ⁰ dB bands named
  VV/VH/HH/HV, or a one-band ``VV.tif``-style file) and refuses what is not SAR, in one line;
  writes the same layout back (``save``) so it round-trips;
* :class:`PairsDataset` (``sar2sar-pairs``) — the 🤗 imagefolder of training pairs
  (``sarviz dataset pairs``): ``pairs.json`` + ``{train,val,test}/metadata.jsonl`` with
  ``image/ID.png`` and ``conditioning/ID.png``;
* :class:`Sar2SarRun` (``sar2sar-run``) — the model folder of ``sarviz train sar2sar``: a diffusers
  ControlNet in ``controlnet/`` (the published layout of :mod:`sarviz.formats.controlnet`:
  ``config.json`` + ``diffusion_pytorch_model.safetensors``) and ``sarviz_sar2sar_model.json``;
  checkpoints are ``checkpoint-N/`` folders of the same layout
  (:func:`sarviz.formats.training_run.checkpoint_dir`), the run log is the shared
  :class:`~sarviz.formats.training_run.TrainingRun`'s;
* :class:`RenderOutput` (``render-output``) — the rendered COG (``sarviz render``): one band per
  polarisation, ``<POL>_seed_spread_db`` and ``<POL>_clipped`` bands, provenance in tags.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from sarviz.atomic import atomic_path
from sarviz.errors import DatasetError
from sarviz.formats.base import Artifact, register_artifact
from sarviz.formats.controlnet import CONFIG_FILE, SAFETENSORS_NAME
from sarviz.formats.training_run import checkpoint_dir

if TYPE_CHECKING:
    from affine import Affine
    from rasterio.crs import CRS

POLS = ("VV", "VH", "HH", "HV")
#: plausible σ⁰ range in dB; a band outside it is not calibrated SAR in dB
DB_RANGE = (-80.0, 45.0)


class Sar2SarError(DatasetError):
    """A SAR→SAR input or artifact (input GeoTIFF, pairs dataset and its options, run, render) is missing or not
    what it should be (one line). A ``DatasetError`` (so a ``FormatError``): the readers' family."""


@register_artifact
@dataclass
class SarGeoTiff(Artifact):
    """A SAR image read for rendering or pairing: σ⁰ dB bands by polarisation, CRS and transform."""

    artifact: ClassVar[str] = "sar-geotiff"
    what: ClassVar[str] = "SAR GeoTIFF (σ⁰ dB bands named VV/VH/HH/HV)"

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
    def read(cls, path: str | os.PathLike[str], window: Any = None) -> SarGeoTiff:
        import rasterio
        from affine import Affine

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
                raise Sar2SarError(
                    f"{path.name}: not a SAR GeoTIFF (no band named VV, VH, HH or HV; band names "
                    f"{[d or '' for d in src.descriptions][:6]})"
                )
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
                raise Sar2SarError(
                    f"{path.name}: band {p} spans {lo:.3g}..{hi:.3g}, not σ⁰ in dB "
                    f"(expected within {DB_RANGE[0]:g}..{DB_RANGE[1]:g} dB)"
                )
        return cls(bands, crs, transform, str(path), tags)

    load = read

    def save(self, path: str | os.PathLike[str]) -> Path:
        """A float32 GeoTIFF with one band per polarisation (described VV/VH/…), NaN = missing; atomic."""
        import rasterio

        from sarviz.gdal_messages import gdal_write_errors, route_gdal_messages

        route_gdal_messages()  # a failed write says one line of ours, not libtiff's on stderr

        path = Path(path)
        data = np.stack([np.asarray(a, dtype=np.float32) for a in self.bands.values()])
        with (
            atomic_path(path, suffix=".tif.part") as tmp,
            gdal_write_errors(path),
            rasterio.open(
                tmp,
                "w",
                driver="GTiff",
                width=data.shape[2],
                height=data.shape[1],
                count=len(data),
                dtype="float32",
                crs=self.crs,
                transform=self.transform,
                nodata=np.nan,
            ) as dst,
        ):
            dst.write(data)
            dst.descriptions = tuple(self.bands)
            dst.update_tags(units="dB", **self.tags)
        return path


# -- pairs dataset ---------------------------------------------------------------------------------------
#: /2: ``amplitude_stats`` rows are :meth:`sarviz.amplitude.AmplitudeStats.to_dict` (threshold, n_valid)
PAIRS_FORMAT = "sarviz-sar2sar-pairs/2"
PAIRS_FILE = "pairs.json"
PAIRS_METADATA = "metadata.jsonl"
PAIRS_IMAGE_DIR = "image"
PAIRS_CONDITIONING_DIR = "conditioning"
PAIRS_SPLITS = ("train", "val", "test")


@register_artifact
@dataclass
class PairsDataset(Artifact):
    """``OUT/pairs.json`` + ``OUT/{train,val,test}/`` 🤗 imagefolders: ``metadata.jsonl`` rows
    ``{file_name: image/ID.png, conditioning_image: conditioning/ID.png, text, pol, ...}``; PNGs are the
    8-bit A/(μ+3σ) amplitude of the target (finer) and of the condition (up-sampled coarser)."""

    artifact: ClassVar[str] = "sar2sar-pairs"
    what: ClassVar[str] = "SAR→SAR pairs dataset"
    FORMAT: ClassVar[str | None] = PAIRS_FORMAT
    FILES: ClassVar[tuple[str, ...]] = (PAIRS_FILE, PAIRS_METADATA, PAIRS_IMAGE_DIR, PAIRS_CONDITIONING_DIR)

    folder: Path
    info: dict[str, Any]

    @staticmethod
    def chip_paths(chip_id: str) -> dict[str, str]:
        """The row fields naming a chip's two PNGs, relative to its split folder (imagefolder layout)."""
        return {
            "file_name": f"{PAIRS_IMAGE_DIR}/{chip_id}.png",
            "conditioning_image": f"{PAIRS_CONDITIONING_DIR}/{chip_id}.png",
        }

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> PairsDataset:
        folder = Path(folder)
        try:
            info = json.loads((folder / PAIRS_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            raise Sar2SarError(
                f"{folder}: not a pairs dataset (no readable {PAIRS_FILE}; build one with `sarviz dataset pairs`)"
            ) from None
        if info.get("format") != PAIRS_FORMAT:
            raise Sar2SarError(f"{folder}/{PAIRS_FILE}: format {info.get('format')!r}, expected {PAIRS_FORMAT}")
        return cls(folder, info)

    load = open

    def save(self, folder: str | os.PathLike[str] | None = None) -> Path:
        """Write ``pairs.json`` (the marker of a complete dataset: ``build_pairs`` writes it last, after the splits)."""
        folder = Path(folder or self.folder)
        self.write_info(folder, {k: v for k, v in self.info.items() if k != "format"})
        return folder

    def rows(self, split: str) -> list[dict[str, Any]]:
        path = self.folder / split / PAIRS_METADATA
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
        path = folder / split / PAIRS_METADATA
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
CONTROLNET_DIR = "controlnet"


@register_artifact
@dataclass
class Sar2SarRun(Artifact):
    """A ``sarviz train sar2sar`` model folder: ``controlnet/`` (diffusers ControlNetModel) + this meta."""

    artifact: ClassVar[str] = "sar2sar-run"
    what: ClassVar[str] = "sar2sar model (sarviz train sar2sar)"
    FORMAT: ClassVar[str | None] = RUN_FORMAT
    FILES: ClassVar[tuple[str, ...]] = (RUN_FILE, CONTROLNET_DIR)

    folder: Path
    meta: dict[str, Any]

    @property
    def controlnet_dir(self) -> Path:
        return self.folder / CONTROLNET_DIR

    @staticmethod
    def controlnet_dir_of(folder: str | os.PathLike[str]) -> Path:
        return Path(folder) / CONTROLNET_DIR

    @staticmethod
    def read_step(folder: str | os.PathLike[str]) -> int:
        """The training step a run or checkpoint folder records (resume)."""
        from sarviz.formats.base import read_json_object

        data = read_json_object(Path(folder) / RUN_FILE, "sar2sar checkpoint", RUN_FORMAT, Sar2SarError)
        try:
            return int(data["step"])
        except (KeyError, TypeError, ValueError):
            raise Sar2SarError(f"{Path(folder) / RUN_FILE} records no training step") from None

    @classmethod
    def open(cls, run: str | os.PathLike[str], checkpoint: int | None = None) -> Sar2SarRun:
        folder = Path(run)
        if checkpoint is not None:
            folder = checkpoint_dir(folder, int(checkpoint))
        try:
            meta = json.loads((folder / RUN_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            raise Sar2SarError(
                f"{folder}: not a sar2sar model (no readable {RUN_FILE}; train one with `sarviz train sar2sar`)"
            ) from None
        if meta.get("format") != RUN_FORMAT:
            raise Sar2SarError(f"{folder}/{RUN_FILE}: format {meta.get('format')!r}, expected {RUN_FORMAT}")
        if not (folder / CONTROLNET_DIR / CONFIG_FILE).is_file():
            raise Sar2SarError(f"{folder}: the {CONTROLNET_DIR}/ folder is missing (incomplete run)")
        return cls(folder, meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Sar2SarRun:
        return cls.open(path)

    def save(self, folder: str | os.PathLike[str] | None = None, controlnet: Any = None) -> Path:
        """Write ``controlnet`` (a diffusers ControlNetModel, safetensors) when given, then the meta (last: it marks
        the folder complete)."""
        folder = Path(folder or self.folder)
        if controlnet is not None:
            controlnet.save_pretrained(str(folder / CONTROLNET_DIR), safe_serialization=True)
        self.write_meta(folder, {k: v for k, v in self.meta.items() if k != "format"})
        return folder

    @staticmethod
    def write_meta(folder: Path, meta: dict[str, Any]) -> None:
        with atomic_path(folder / RUN_FILE, suffix=".part") as tmp:
            Path(tmp).write_text(json.dumps({"format": RUN_FORMAT, **meta}, indent=2, sort_keys=True, default=str))

    def weights_sha256(self) -> str:
        from sarviz.hashing import file_sha256

        weights = self.folder / CONTROLNET_DIR / SAFETENSORS_NAME
        return file_sha256(weights) if weights.is_file() else ""


# -- render output -----------------------------------------------------------------------------------------
#: the name a render gets when only its bytes are wanted (the Render page's download)
RENDER_FILE = "render.tif"
CLIPPED_SUFFIX = "_clipped"


@register_artifact
@dataclass
class RenderOutput(Artifact):
    """The rendered image: a COG, one float32 σ⁰ dB band per polarisation (+ ``clipped`` mask band
    with ``tail="mask"``), the input's CRS, bounds kept, pixel size / F, provenance JSON in tags.

    Not a :class:`~sarviz.formats.generated_image.GeneratedImage`: it may hold HH/HV, seed-spread
    and mask bands and is a COG; the renderer also returns the VV/VH view as a ``GenerationResult``."""

    artifact: ClassVar[str] = "render-output"
    what: ClassVar[str] = "SAR→SAR render (COG)"
    FILES: ClassVar[tuple[str, ...]] = (RENDER_FILE,)

    bands: dict[str, np.ndarray]
    crs: CRS
    transform: Affine
    provenance: dict[str, Any]
    masks: dict[str, np.ndarray] = field(default_factory=dict)

    def write(self, path: str | os.PathLike[str]) -> Path:
        import rasterio

        from sarviz.gdal_messages import gdal_write_errors, route_gdal_messages

        route_gdal_messages()  # a failed write says one line of ours, not libtiff's on stderr

        path = Path(path)
        names = list(self.bands) + [f"{p}{CLIPPED_SUFFIX}" for p in self.masks]
        data = [self.bands[p].astype(np.float32) for p in self.bands] + [
            m.astype(np.float32) for m in self.masks.values()
        ]
        h, w = data[0].shape
        with (
            atomic_path(path, suffix=".tif.part") as tmp,
            gdal_write_errors(path),
            rasterio.open(
                tmp,
                "w",
                driver="COG",
                width=w,
                height=h,
                count=len(data),
                dtype="float32",
                crs=self.crs,
                transform=self.transform,
                nodata=np.nan,
                compress="DEFLATE",
                predictor=3,
                blocksize=256,
            ) as dst,
        ):
            dst.write(np.stack(data))
            dst.descriptions = tuple(names)
            dst.update_tags(PROVENANCE=json.dumps(self.provenance, sort_keys=True, default=str), units="dB")
        return path

    save = write

    def to_bytes(self) -> bytes:
        """The COG's bytes (written through a temporary file: the COG driver cannot write to memory)."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            return self.write(Path(tmp) / RENDER_FILE).read_bytes()

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> RenderOutput:
        import rasterio

        try:
            src = rasterio.open(path)
        except rasterio.errors.RasterioIOError:
            raise Sar2SarError(f"{Path(path).name}: not a readable render (GeoTIFF)") from None
        with src:
            names = list(src.descriptions)
            arrays = src.read(out_dtype="float32")
            prov = json.loads(src.tags().get("PROVENANCE", "{}"))
            bands = {n: a for n, a in zip(names, arrays) if n and not n.endswith(CLIPPED_SUFFIX)}
            masks = {
                n[: -len(CLIPPED_SUFFIX)]: a > 0.5 for n, a in zip(names, arrays) if n and n.endswith(CLIPPED_SUFFIX)
            }
            return cls(bands, src.crs, src.transform, prov, masks)

    load = read
