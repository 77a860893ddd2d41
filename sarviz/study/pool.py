"""Item pools: turning GeoTIFFs, PNGs and generation results into blind display images.

Double-blind rule: nothing a participant receives may reveal an image's source. So every
image — real chip, other generator, our model — goes through the same path:

1. SAR GeoTIFFs (bands VV/VH in dB, found by band description, or ``*_VV.tif`` /
   ``*_VH.tif`` single-band pairs as in BigEarthNet) are drawn with the study's *fixed* dB
   stretch (the same for every source, so brightness is no cue); PNGs are decoded and
   brought to the same mode (grey = the R channel, which is VV in sarviz's R=VV, G=VH
   convention).
2. The picture is centre-cropped to a square and resampled to the study's display size,
   so pixel dimensions reveal nothing.
3. It is re-encoded from bare pixels as PNG: no text/EXIF/ICC/time chunks, nothing but
   IHDR, IDAT and IEND. Names, tags and provenance stay in the database as hidden labels.

Missing pixels look the same for every source: NaN/±inf in a GeoTIFF (nodata of a real
chip, an embedding hole of a generated image) and transparent pixels of a PNG are all drawn
as the same neutral mid-grey (:data:`MISSING_GREY`), never black for one source and grey for
another.

Resampling is a cue the pipeline cannot remove: a 120 px real chip upscaled to 512 px looks
softer than a 512 px generated image. The pool keeps every item's native size as a hidden
label, and :func:`native_size_warnings` tells the *owner* (pool status on the admin page and
``sarviz study add-images``; never participants) when an item's native size differs from the
other sources' by more than :data:`NATIVE_SIZE_RATIO_WARN`, so the pool can be rebalanced.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sarviz.study.db import StudyError
from sarviz.study.design import StudyDesign
from sarviz.study.models import SOURCES


class PoolError(StudyError):
    """An image cannot be added to a pool."""


class CorruptImage(PoolError):
    """The file is not a readable GeoTIFF or PNG."""


class DuplicateImage(PoolError):
    """The same picture is already in the study's pool."""


IMAGE_SUFFIXES = (".tif", ".tiff", ".png")
LABELS_FILE = "labels.csv"
#: display value of missing pixels for every source (8-bit mid-grey)
MISSING_GREY = 128
#: native sizes differing by more than this factor from the other sources' are flagged
NATIVE_SIZE_RATIO_WARN = 1.5


def _plain_error(exc: BaseException, name: str, temp_path: str | None = None) -> str:
    """A library error as text for a person: object reprs and temporary paths become the file name."""
    import re

    text = str(exc).strip() or type(exc).__name__
    # e.g. "cannot identify image file <_io.BytesIO object at 0x7f…>"
    text = re.sub(r"<[^<>]*? at 0x[0-9a-fA-F]+>", repr(name), text)
    if temp_path:
        text = text.replace(temp_path, name)
    return text


@dataclass
class ItemLabels:
    """The hidden labels of a pooled image (never shown to participants)."""

    source: str
    model_id: str = ""
    scene_class: str = ""
    lat: float | None = None
    lon: float | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.source = (self.source or "").strip().lower()
        if self.source not in SOURCES:
            raise PoolError(
                f"image source must be one of {', '.join(SOURCES)} (real SAR, another generator, "
                f"our model), got {self.source!r}"
            )
        self.model_id = (self.model_id or "").strip()
        self.scene_class = (self.scene_class or "").strip().lower()
        for name in ("lat", "lon"):
            v = getattr(self, name)
            if v in ("", None):
                setattr(self, name, None)
                continue
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise PoolError(f"{name} must be a number, got {v!r}") from None
            if not math.isfinite(v) or (name == "lat" and abs(v) > 90) or (name == "lon" and abs(v) > 180):
                raise PoolError(f"{name} {v} is outside the valid range")
            setattr(self, name, v)


@dataclass
class RenderedImage:
    png: bytes
    width: int
    height: int
    native_size: tuple[int, int]  # (height, width) before resampling — a hidden label
    sha256: str
    location: tuple[float, float] | None = None  # (lat, lon) from the GeoTIFF, if any
    provenance: dict[str, Any] = field(default_factory=dict)


# -- rendering ----------------------------------------------------------------------------
def _stretch(db: np.ndarray, lo: float, hi: float) -> np.ndarray:
    a = np.asarray(db, dtype=np.float32)
    missing = ~np.isfinite(a)
    out = (np.clip((np.where(missing, lo, a) - lo) / (hi - lo), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    out[missing] = MISSING_GREY  # the same neutral value for every source (see the module docstring)
    return out


def sar_to_picture(vv_db: np.ndarray, vh_db: np.ndarray | None, design: StudyDesign) -> Image.Image:
    """VV/VH in dB → 8-bit picture with the study's fixed stretch."""
    vv = _stretch(vv_db, *design.vv_range_db)
    if design.render == "vv_gray":
        return Image.fromarray(vv, mode="L")
    if vh_db is None:
        raise PoolError("this study shows VV and VH as colour (R=VV, G=VH), but the image has no VH band")
    vh = _stretch(vh_db, *design.vh_range_db)
    return Image.fromarray(np.dstack([vv, vh, vv]), mode="RGB")


def finish(picture: Image.Image, design: StudyDesign) -> tuple[bytes, int, int, tuple[int, int]]:
    """Square-crop, resample to the display size and re-encode from bare pixels (no metadata)."""
    native = (picture.height, picture.width)
    side = min(picture.size)
    left, top = (picture.width - side) // 2, (picture.height - side) // 2
    picture = picture.crop((left, top, left + side, top + side))
    px = int(design.display_px)
    if side != px:
        picture = picture.resize((px, px), Image.Resampling.LANCZOS)
    # A new image from the raw array carries no info dict, so PIL writes no text/EXIF/ICC chunks.
    bare = Image.fromarray(np.asarray(picture))
    buf = io.BytesIO()
    bare.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue(), px, px, native


def png_chunks(data: bytes) -> list[str]:
    """Chunk types of a PNG file, in order (used to check that no metadata is present)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    out, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        ctype = data[pos + 4 : pos + 8].decode("latin-1")
        crc = int.from_bytes(data[pos + 8 + length : pos + 12 + length], "big")
        if zlib.crc32(data[pos + 4 : pos + 8 + length]) & 0xFFFFFFFF != crc:
            raise ValueError(f"bad CRC in {ctype}")
        out.append(ctype)
        pos += 12 + length
    return out


def _rendered(picture: Image.Image, design: StudyDesign, location=None, provenance=None) -> RenderedImage:
    png, w, h, native = finish(picture, design)
    return RenderedImage(
        png=png,
        width=w,
        height=h,
        native_size=native,
        sha256=hashlib.sha256(png).hexdigest(),
        location=location,
        provenance=provenance or {},
    )


def render_arrays(vv_db: np.ndarray, vh_db: np.ndarray | None, design: StudyDesign, **kw: Any) -> RenderedImage:
    vv = np.asarray(vv_db, dtype=np.float32)
    if vv.ndim != 2 or min(vv.shape) < 8:
        raise PoolError(f"a SAR image must be a 2-D grid of at least 8×8 pixels, got shape {vv.shape}")
    if not np.isfinite(vv).any():
        raise PoolError("the VV band has no valid pixels")
    return _rendered(sar_to_picture(vv, vh_db, design), design, **kw)


def _read_tiff_bands(path: Path) -> tuple[np.ndarray, np.ndarray | None, Any]:
    import rasterio
    from rasterio.errors import RasterioError

    def band(p: Path, want: str | None) -> tuple[np.ndarray | None, Any, dict]:
        from sarviz.scene import SceneError, check_claimed_size

        with rasterio.open(p) as src:
            try:
                check_claimed_size(src, p, 1)  # before any pixel is read: a header can claim 200000² px
            except SceneError as exc:
                raise CorruptImage(str(exc)) from None
            names = [(d or "").upper() for d in src.descriptions]
            meta = {
                "crs": src.crs,
                "transform": src.transform,
                "width": src.width,
                "height": src.height,
                "tags": src.tags(),
            }
            if want is None:  # single band, named by file
                return src.read(1, out_dtype="float32"), meta, {}
            if want in names:
                return src.read(names.index(want) + 1, out_dtype="float32"), meta, {}
            return None, meta, {"names": names, "count": src.count}

    try:
        stem = path.stem
        single_band = stem.upper().endswith("_VV") and len(_descriptions(path)) == 1
        vv, meta, info = band(path, None if single_band else "VV")  # a single band is always read: never None
        if vv is None:
            raise CorruptImage(
                f"{path.name}: a SAR GeoTIFF needs a band described as 'VV' (and 'VH'), or single-band files "
                f"named *_VV.tif / *_VH.tif; this one has {info['count']} band(s) named {info['names']}"
            )
        if single_band:
            vh_path = path.with_name(stem[:-3] + ("_VH" if stem.endswith("_VV") else "_vh") + path.suffix)
            vh = band(vh_path, None)[0] if vh_path.exists() else None
        else:
            vh, _, _ = band(path, "VH")
        return vv, vh, meta
    except RasterioError as exc:
        raise CorruptImage(f"{path.name}: not a readable GeoTIFF ({_plain_error(exc, path.name, str(path))})") from None


def _descriptions(path: Path) -> tuple:
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as src:
            return src.descriptions
    except RasterioError as exc:
        raise CorruptImage(f"{path.name}: not a readable GeoTIFF ({_plain_error(exc, path.name, str(path))})") from None


def _center_latlon(meta: dict) -> tuple[float, float] | None:
    if meta.get("crs") is None:
        return None
    from pyproj import Transformer

    t, col, row = meta["transform"], meta["width"] / 2, meta["height"] / 2
    x, y = t.c + t.a * col + t.b * row, t.f + t.d * col + t.e * row
    lon, lat = Transformer.from_crs(meta["crs"], "EPSG:4326", always_xy=True).transform(x, y)
    return (round(float(lat), 6), round(float(lon), 6)) if math.isfinite(lat) and math.isfinite(lon) else None


def render_file(path: str | Path, design: StudyDesign) -> RenderedImage:
    """Render a GeoTIFF (VV/VH dB) or PNG file for participants; raises :class:`CorruptImage`."""
    path = Path(path)
    if not path.is_file():
        raise PoolError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        vv, vh, meta = _read_tiff_bands(path)
        finite = vv[np.isfinite(vv)]
        if finite.size == 0:
            raise CorruptImage(f"{path.name}: the VV band has no valid pixels")
        med = float(np.median(finite))
        if not -60.0 <= med <= 30.0:
            raise CorruptImage(
                f"{path.name}: VV values (median {med:.3g}) do not look like backscatter in dB; "
                "convert linear power with 10·log10 first"
            )
        # Linear power (all ≥ 0, median ≪ 1) passes the range test above but would be drawn
        # as flat grey; the metrics' own check tells it apart (one rule for metrics and pools).
        from sarviz.metrics.report import MetricError, check_looks_like_db

        for pol, arr in (("VV", vv), ("VH", vh)):
            try:
                check_looks_like_db(arr, f"{path.name} {pol}")
            except MetricError as exc:
                raise CorruptImage(str(exc)) from None
        prov = {}
        try:
            prov = json.loads(meta["tags"].get("PROVENANCE", "{}"))
        except ValueError:
            prov = {}
        return render_arrays(vv, vh, design, location=_center_latlon(meta), provenance=prov)
    if suffix == ".png":
        return render_png_bytes(path.read_bytes(), design, name=path.name)
    raise PoolError(f"{path.name}: only GeoTIFF (.tif) and PNG images can be pooled")


def render_png_bytes(data: bytes, design: StudyDesign, name: str = "image") -> RenderedImage:
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "PNG":
                raise CorruptImage(f"{name}: expected a PNG image, found {img.format}")
            img.load()
            picture = ImageOps.exif_transpose(img)
    except UnidentifiedImageError:
        raise CorruptImage(f"{name}: not a readable PNG image (the file is damaged or not an image)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptImage(f"{name}: not a readable PNG image ({_plain_error(exc, name)})") from None
    if min(picture.size) < 8:
        raise CorruptImage(f"{name}: the image is only {picture.width}×{picture.height} pixels")
    if picture.mode in ("I;16", "I", "F"):
        arr = np.asarray(picture, dtype=np.float64)
        finite = np.isfinite(arr)
        if not finite.any():
            raise CorruptImage(f"{name}: the image has no valid pixels")
        lo, hi = float(arr[finite].min()), float(arr[finite].max())
        grey = ((np.where(finite, arr, lo) - lo) / (hi - lo or 1) * 255).round().astype(np.uint8)
        grey[~finite] = MISSING_GREY
        picture = Image.fromarray(grey, mode="L")
    if "A" in picture.getbands() or picture.mode == "P" and "transparency" in picture.info:
        # Transparent = missing: composite over the same neutral grey that marks missing SAR pixels.
        rgba = picture.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, (MISSING_GREY, MISSING_GREY, MISSING_GREY, 255))
        picture = Image.alpha_composite(backdrop, rgba).convert("RGB")
    if design.render == "vv_gray":
        picture = picture.convert("RGB").getchannel("R") if picture.mode not in ("L",) else picture
    else:
        picture = picture.convert("RGB")
    return _rendered(picture, design)


def render_bytes(data: bytes, name: str, design: StudyDesign) -> RenderedImage:
    """Render an uploaded file (GeoTIFF or PNG, chosen by content, not by name)."""
    from sarviz.access import safe_upload_name

    name = safe_upload_name(name)  # a browser-sent name: no folders, NUL or control characters
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return render_png_bytes(data, design, name=name)
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / (Path(name).name or "upload.tif")
            if p.suffix.lower() not in (".tif", ".tiff"):
                p = p.with_suffix(".tif")
            p.write_bytes(data)
            try:
                return render_file(p, design)
            except PoolError as exc:  # name the upload, not our temporary copy of it
                raise type(exc)(
                    _plain_error(exc, Path(name).name or "upload", str(p)).replace(
                        p.name + ":", (Path(name).name or "upload") + ":", 1
                    )
                ) from None
    raise CorruptImage(f"{name}: not a GeoTIFF or PNG file (unrecognised content)")


# -- blinding checks (owner only) -----------------------------------------------------------
def native_size_warnings(items: Iterable[tuple[str, int | None]], ratio: float = NATIVE_SIZE_RATIO_WARN) -> list[str]:
    """Warnings for the study owner when sources differ in native size.

    ``items`` are (source, native side in px — the shorter side, which the square crop keeps).
    For every source, items whose native side differs from the median of the *other* sources'
    items by more than ``ratio`` are counted: resampled to the same display size they look
    softer (upscaled) or crisper (downscaled), a cue that can unblind participants.
    """
    by_source: dict[str, list[int]] = {}
    for source, side in items:
        if side:
            by_source.setdefault(source, []).append(int(side))
    warnings = []
    for source, sides in sorted(by_source.items(), key=lambda kv: SOURCES.index(kv[0]) if kv[0] in SOURCES else 99):
        others = [x for s, xs in by_source.items() if s != source for x in xs]
        if not others:
            continue
        ref = float(np.median(others))
        # smaller and larger ones apart: one median over both would name a size none of them has
        smaller = [x for x in sides if x < ref and ref / x > ratio]
        larger = [x for x in sides if x > ref and x / ref > ratio]
        for off in (smaller, larger):
            if not off:
                continue
            typical = int(np.median(off))
            span = f" ({min(off)}–{max(off)} px)" if min(off) != max(off) else ""
            factor = max(typical, ref) / min(typical, ref)
            look = "softer (upscaled more)" if typical < ref else "crisper (downscaled more)"
            warnings.append(
                f"{len(off)} of {len(sides)} {source} image(s) are natively about {typical} px{span}, while the other "
                f"sources' are about {ref:.0f} px ({factor:.1f}× different): resampled to the display size they look "
                f"{look}, which can reveal their source to participants. Pool images of similar native size (crop or "
                "resample them to match) to keep the study blind."
            )
    return warnings


# -- folders ------------------------------------------------------------------------------
@dataclass
class FolderEntry:
    path: Path
    labels: ItemLabels | None
    problem: str = ""


def read_labels_file(folder: Path) -> dict[str, dict[str, str]]:
    """``labels.csv`` in a folder: columns file, source[, model_id, scene_class, lat, lon]."""
    path = folder / LABELS_FILE
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "file" not in reader.fieldnames or "source" not in reader.fieldnames:
            raise PoolError(
                f"{path}: needs a header with at least the columns 'file' and 'source' "
                f"(optional: model_id, scene_class, lat, lon); found {reader.fieldnames}"
            )
        return {row["file"].strip(): row for row in reader if (row.get("file") or "").strip()}


def scan_folder(
    folder: str | Path, defaults: dict[str, Any] | None = None, allowed: Callable[[Path], bool] | None = None
) -> list[FolderEntry]:
    """Images in a folder with their labels (``labels.csv`` first, then ``defaults``).

    ``*_VH.tif`` files that pair with a ``*_VV.tif`` are not separate images. ``allowed`` (the
    app passes its access check, :func:`sarviz.access.leads_inside` on the configured roots)
    decides which files may be read: an image, its ``*_VH`` partner or ``labels.csv`` that
    leads elsewhere (a symbolic link out of the roots) is never opened; the image is reported
    as not imported.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PoolError(f"{folder}: not a folder")
    if allowed is not None and (folder / LABELS_FILE).exists() and not allowed(folder / LABELS_FILE):
        raise PoolError(f"{LABELS_FILE} in {folder.name} leads outside the folders this app may open")
    manifest = read_labels_file(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    names = {p.name for p in files}
    entries: list[FolderEntry] = []
    for p in files:
        stem = p.stem
        if stem.upper().endswith("_VH") and any(n.upper() == (stem[:-3] + "_VV" + p.suffix).upper() for n in names):
            continue
        partner = p.with_name(stem[:-3] + ("_VH" if stem.endswith("_VV") else "_vh") + p.suffix)
        if allowed is not None and not (
            allowed(p) and (not stem.upper().endswith("_VV") or not partner.exists() or allowed(partner))
        ):
            entries.append(FolderEntry(p, None, f"{p.name}: leads outside the folders this app may open; not imported"))
            continue
        row = manifest.get(p.name) or {}
        spec = {**(defaults or {}), **{k: v for k, v in row.items() if k != "file" and v not in (None, "")}}
        if not spec.get("source"):
            entries.append(
                FolderEntry(
                    p,
                    None,
                    f"{p.name}: no source label — add it to {LABELS_FILE} or give a default source (real, other, ours)",
                )
            )
            continue
        try:
            entries.append(
                FolderEntry(
                    p,
                    ItemLabels(
                        source=spec["source"],
                        model_id=spec.get("model_id", ""),
                        scene_class=spec.get("scene_class", ""),
                        lat=spec.get("lat"),
                        lon=spec.get("lon"),
                    ),
                )
            )
        except PoolError as exc:
            entries.append(FolderEntry(p, None, f"{p.name}: {exc}"))
    if not entries:
        raise PoolError(f"{folder}: no GeoTIFF (.tif) or PNG images found")
    return entries
