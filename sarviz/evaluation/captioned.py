"""Reading a captioned SAR dataset (FORMATS A ``captioned/``): captions, labels and images in dB.

The images are 8-bit PNGs made with ``calibration.to_unit(dB) * 255``; :func:`read_db`
inverts that with the dataset's own calibration (``caption_info.json``), so every
measurement is on σ⁰ in dB again (quantised to the 8-bit step, ≈ 0.1 dB for a 25 dB range).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.calibration import Calibration

FORMAT = "sarviz-captioned/1"
SPLITS = ("train", "validation", "test")


class DatasetError(ValueError):
    """The captioned dataset cannot be used; the message says why."""


@dataclass
class CaptionedItem:
    file: Path
    text: str
    label: str
    id: str
    lat: float | None = None
    lon: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class CaptionedSet:
    root: Path
    split: str
    token: str
    polarisation: str  # "VV" | "VV+VH"
    image_mode: str  # "L" | "RGB"
    calibration: Calibration
    items: list[CaptionedItem]

    def labels(self) -> list[str]:
        return sorted({i.label for i in self.items if i.label})

    def by_label(self, per_label: int | None = None) -> dict[str, list[CaptionedItem]]:
        """Items grouped by label (unlabelled ones left out), the first ``per_label`` by id."""
        out: dict[str, list[CaptionedItem]] = {}
        for item in sorted(self.items, key=lambda i: i.id):
            if item.label:
                out.setdefault(item.label, []).append(item)
        return {k: v[:per_label] if per_label else v for k, v in sorted(out.items())}

    def read_db(self, item: CaptionedItem) -> dict[str, np.ndarray]:
        return read_db(item.file, self.calibration, self.image_mode, self.polarisation)


def read_db(path: Path, calibration: Calibration, image_mode: str, polarisation: str = "VV") -> dict[str, np.ndarray]:
    """A captioned PNG → {"VV": dB[, "VH": dB]} (FORMATS A: "L" = VV; "RGB" = R VV, G VH, B VV)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("L" if image_mode == "L" else "RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc})") from None
    if arr.ndim == 2:
        return {"VV": calibration.from_unit(arr, "VV")}
    out = {"VV": calibration.from_unit(arr[..., 0], "VV")}
    if polarisation == "VV+VH":
        out["VH"] = calibration.from_unit(arr[..., 1], "VH")
    return out


def open_captioned(root: str | Path, split: str = "test") -> CaptionedSet:
    root = Path(root)
    info_path = root / "caption_info.json"
    try:
        info = json.loads(info_path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{info_path} is missing: {root} is not a captioned dataset "
                           "(`sarviz dataset caption` writes one)") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{info_path} is not readable JSON ({exc})") from None
    if info.get("format") != FORMAT:
        raise DatasetError(f"{info_path}: format {info.get('format')!r}, expected {FORMAT!r}")
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    meta = root / split / "metadata.jsonl"
    if not meta.is_file():
        raise DatasetError(f"{meta} is missing: the dataset has no {split} split")
    items = []
    for n, line in enumerate(meta.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            file = root / split / row["file_name"]
            text = str(row["text"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{meta}:{n}: not a metadata row ({exc})") from None
        if not file.resolve().is_relative_to(root.resolve()):
            raise DatasetError(f"{meta}:{n}: {row['file_name']!r} points outside the dataset")
        items.append(CaptionedItem(file=file, text=text, label=str(row.get("label") or ""),
                                   id=str(row.get("id", Path(row["file_name"]).stem)), lat=row.get("lat"),
                                   lon=row.get("lon")))
    try:
        calibration = Calibration.from_dict(info["calibration"])
    except (KeyError, ValueError) as exc:
        raise DatasetError(f"{info_path}: no usable calibration ({exc})") from None
    return CaptionedSet(root=root, split=split, token=str(info.get("token", "<SAR>")),
                        polarisation=str(info.get("polarisation", "VV")), image_mode=str(info.get("image_mode", "L")),
                        calibration=calibration, items=items)
