"""Captions for text-to-SAR and the captioned 🤗 imagefolder (``sarviz dataset caption``).

The ONERA recipe (seed 001) fine-tunes on image–caption pairs whose captions describe
what is known about the patch, led by a learned token. Ours are template-based and
deterministic (same patch, same caption), built only from metadata — never from the SAR
pixels:

    "<SAR> Sentinel-1 SAR image, VV polarisation, mostly cropland with some built-up area,
     near Murcia, Spain, summer, descending pass, incidence angle 38°"

* land cover: Dynamic World class fractions (see :mod:`sarviz.datasets.landcover`);
* place: the nearest GeoNames town (:mod:`sarviz.datasets.places`, offline);
* season: meteorological seasons, flipped in the southern hemisphere; within the tropics
  (|lat| < 23.44°) the month is given instead (wet/dry seasons vary too much to name);
  a multi-date composite has no season;
* orbit pass and incidence angle when the source gave them (an *assumed* angle is not
  captioned).

Deviation from seed 001: the paper captioned patches with a vision-language model
(CogVLM2) run on co-registered optical images and took its evaluation classes from a
keyword dictionary over those captions; here captions are deterministic templates over
known metadata and the class is the Dynamic World class (docs/datasets.md).

Layout: :mod:`sarviz.formats.captioned` (``OUT/captioned/``, a 🤗 imagefolder of 8-bit PNGs).
"""

from __future__ import annotations

import datetime as _dt
import os
from typing import Any, Callable

import numpy as np

from sarviz.atomic import atomic_dir
from sarviz.constants import CAPTION_SPLIT_FOLDERS as SPLIT_FOLDERS  # noqa: F401 - re-exported
from sarviz.constants import SPLITS
from sarviz.errors import DatasetError
from sarviz.formats.captioned import (
    CAPTIONED_DIR,  # noqa: F401 - re-exported
    CaptionedDataset,
)
from sarviz.formats.captioned import FORMAT as CAPTION_FORMAT
from sarviz.formats.patch_dataset import json_cell, open_dataset
from sarviz.scene import read_scene

MAX_MISSING = 0.01  # patches with more missing pixels are left out of the captioned set
CLASS_PHRASES = {
    "water": "water",
    "trees": "forest",
    "grass": "grassland",
    "flooded_vegetation": "flooded vegetation",
    "crops": "cropland",
    "shrub_and_scrub": "shrubland",
    "built": "built-up area",
    "bare": "bare ground",
    "snow_and_ice": "snow and ice",
}
TROPIC_LAT = 23.44
_SEASONS_NORTH = {
    12: "winter",
    1: "winter",
    2: "winter",
    3: "spring",
    4: "spring",
    5: "spring",
    6: "summer",
    7: "summer",
    8: "summer",
    9: "autumn",
    10: "autumn",
    11: "autumn",
}
_FLIP = {"winter": "summer", "summer": "winter", "spring": "autumn", "autumn": "spring"}


def landcover_phrase(fractions: dict[str, float] | None) -> str:
    """ "mostly cropland with some built-up area" from class fractions ("" when unknown)."""
    if not fractions:
        return ""
    ranked = sorted(((float(v), k) for k, v in fractions.items() if k in CLASS_PHRASES), key=lambda t: (-t[0], t[1]))
    if not ranked:
        return ""
    (s1, c1), rest = ranked[0], ranked[1:]
    name = CLASS_PHRASES[c1]
    second = rest[0] if rest else (0.0, "")
    if s1 >= 0.9:
        return f"almost entirely {name}"
    if s1 >= 0.6:
        if second[0] >= 0.25:
            return f"mostly {name} and {CLASS_PHRASES[second[1]]}"
        if second[0] >= 0.08:
            return f"mostly {name} with some {CLASS_PHRASES[second[1]]}"
        return f"mostly {name}"
    parts = [CLASS_PHRASES[c] for s, c in ranked[:3] if s >= 0.15] or [name]
    if len(parts) == 1:
        return f"mainly {parts[0]}"
    return "a mix of " + ", ".join(parts[:-1]) + f" and {parts[-1]}"


def season_phrase(date: str, lat: float, composite: bool = False) -> str:
    if composite or not date:
        return ""
    try:
        d = _dt.date.fromisoformat(str(date)[:10])
    except ValueError:
        return ""
    if abs(lat) < TROPIC_LAT:
        return f"acquired in {d.strftime('%B')}"
    season = _SEASONS_NORTH[d.month]
    return _FLIP[season] if lat < 0 else season


def caption_for(row: dict[str, str], token: str = "<SAR>", polarisation: str = "VV", place: str | None = None) -> str:
    """The caption of one manifest row (deterministic)."""
    lat, lon = float(row["lat"]), float(row["lon"])
    if place is None:
        from sarviz.datasets.places import nearest_place

        place = nearest_place(lat, lon).phrase()
    prov = json_cell(row.get("provenance", "")) or {}
    parts = [
        f"{token} Sentinel-1 SAR image",
        "VV polarisation" if polarisation == "VV" else "VV and VH polarisations",
        landcover_phrase(json_cell(row.get("landcover_fractions", ""))),
        place,
        season_phrase(row.get("date", ""), lat, composite=prov.get("s1_mode") == "composite"),
    ]
    if row.get("orbit") in ("ascending", "descending"):
        parts.append(f"{row['orbit']} pass")
    if row.get("angle_mean") and str(prov.get("angle", "scene")) == "scene":
        parts.append(f"incidence angle {float(row['angle_mean']):.0f}°")
    return ", ".join(p for p in parts if p)


def to_image(vv: np.ndarray, vh: np.ndarray | None, calibration, polarisation: str) -> tuple[np.ndarray, str]:
    """8-bit image through the calibration: "L" = VV, "RGB" = VV, VH, VV; NaN → 0."""

    def u8(db: np.ndarray, pol: str) -> np.ndarray:
        unit = calibration.to_unit(db, pol)
        return np.where(np.isfinite(unit), np.rint(unit * 255.0), 0).astype(np.uint8)

    if polarisation == "VV":
        return u8(vv, "VV"), "L"
    if vh is None:
        raise DatasetError("a VV+VH image needs the VH layer; this patch has none")
    r = u8(vv, "VV")
    return np.stack([r, u8(vh, "VH"), r], axis=-1), "RGB"


def write_captioned(
    root: str | os.PathLike,
    token: str = "<SAR>",
    polarisation: str = "VV",
    progress: Callable[[int, int, str], None] | None = None,
) -> str:
    """Write ``root/captioned`` (replacing an earlier one only when the new one is complete)."""
    from PIL import Image

    if polarisation not in ("VV", "VV+VH"):
        raise DatasetError(f"--polarisation must be VV or VV+VH, got {polarisation!r}")
    token = str(token).strip()
    if not token or any(c.isspace() for c in token):
        raise DatasetError(f"the token must be one word without spaces, got {token!r}")
    ds = open_dataset(root)
    calibration = ds.calibration
    final = ds.root / CAPTIONED_DIR
    counts = {s: 0 for s in SPLITS}
    left_out = 0
    image_mode = "L" if polarisation == "VV" else "RGB"
    # built beside captioned/ and swapped in when complete: an earlier one survives any failure
    with atomic_dir(final) as staging:
        total = len(ds.rows)
        lines: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        for n, row in enumerate(sorted(ds.rows, key=lambda r: r["id"]), 1):
            patch = read_scene(ds.patch_path(row), layers=("vv_db", "vh_db"))
            vv = patch.vv_db if patch.vv_db is not None else np.full(patch.shape, np.nan, np.float32)
            vh = patch.vh_db if patch.vh_db is not None else np.full(patch.shape, np.nan, np.float32)
            used = ~np.isfinite(vv) if polarisation == "VV" else ~(np.isfinite(vv) & np.isfinite(vh))
            if used.mean() > MAX_MISSING:
                left_out += 1
                continue
            pixels, mode = to_image(vv, vh, calibration, polarisation)
            folder = CaptionedDataset.image_dir(staging, row["split"])
            folder.mkdir(exist_ok=True)
            file_name = f"{row['id']}.png"
            Image.fromarray(pixels, mode=mode).save(folder / file_name)
            entry = {
                "file_name": file_name,
                "text": caption_for(row, token, polarisation),
                "id": row["id"],
                "label": row.get("landcover", ""),
                "lat": float(row["lat"]),
                "lon": float(row["lon"]),
            }
            lines[row["split"]].append(entry)
            counts[row["split"]] += 1
            if progress and (n % 50 == 0 or n == total):
                progress(n, total, f"captioned {sum(counts.values())} patches")
        if not sum(counts.values()):
            raise DatasetError(
                f"{ds.root}: no patch could be captioned (all have more than "
                f"{MAX_MISSING:.0%} missing pixels, or the manifest is empty)"
            )
        CaptionedDataset(
            staging,
            {
                "format": CAPTION_FORMAT,
                "token": token,
                "polarisation": polarisation,
                "calibration": calibration.to_dict(),
                "image_mode": image_mode,
                "counts": counts,
                "left_out_missing": left_out,
                "source_dataset": "..",
                "template": "sarviz.datasets.captions v1",
            },
            {SPLIT_FOLDERS[split]: entries for split, entries in lines.items() if entries},
        ).save()
    return (
        f"{final}: train {counts['train']}, validation {counts['val']}, test {counts['test']} captioned "
        f"({image_mode}, token {token}); {left_out} left out (> {MAX_MISSING:.0%} missing pixels)"
    )
