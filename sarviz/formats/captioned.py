"""The captioned dataset: a 🤗 imagefolder of 8-bit SAR PNGs with captions (``sarviz dataset caption``).

::

    captioned/                     (inside a patch dataset folder, or anywhere)
      caption_info.json            format, token, polarisation, calibration, image_mode, counts, ...
      train/metadata.jsonl         one JSON line per image: file_name, text, id, label, lat, lon
      train/<id>.png               "L" = round(calibration.to_unit(VV)·255); "RGB" = VV, VH, VV
      validation/...  test/...     🤗 split names (the manifest's ``val`` is ``validation`` here)

:func:`read_db` inverts the PNG scaling with the dataset's own calibration, so every
measurement is on σ⁰ in dB again (quantised to the 8-bit step, ≈ 0.1 dB for a 25 dB range).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sarviz.atomic import write_json, write_text_atomic
from sarviz.calibration import Calibration
from sarviz.constants import CAPTION_SPLIT_FOLDERS, CAPTION_SPLITS
from sarviz.errors import DatasetError
from sarviz.formats.base import Artifact, register_artifact

FORMAT = "sarviz-captioned/1"
CAPTIONED_DIR = "captioned"  # where ``sarviz dataset caption`` puts it inside a patch dataset
INFO_FILE = "caption_info.json"
METADATA_FILE = "metadata.jsonl"
#: the split folders (🤗 names), also accepted as split names by the readers
SPLITS = CAPTION_SPLITS


def split_folder(split: str) -> str:
    """The folder of a split: the manifest's name (``val``) or the 🤗 name (``validation``)."""
    folder = CAPTION_SPLIT_FOLDERS.get(split, split)
    if folder not in CAPTION_SPLITS:
        raise DatasetError(f"unknown split {split!r}; use one of {', '.join(CAPTION_SPLITS)}")
    return folder


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
    """One split of a captioned dataset, checked: items with their PNG path and caption."""

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
    """A captioned PNG → {"VV": dB[, "VH": dB]} ("L" = VV; "RGB" = R VV, G VH, B VV)."""
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


def read_info(root: Path) -> dict[str, Any]:
    info_path = root / INFO_FILE
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(
            f"{info_path} is missing: {root} is not a captioned dataset (`sarviz dataset caption` writes one)"
        ) from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{info_path} is not readable JSON ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        found = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise DatasetError(f"{info_path}: format {found!r}, expected {FORMAT!r}")
    return info


def read_records(root: Path, split: str) -> list[dict[str, Any]]:
    """The metadata.jsonl rows of a split, each with ``path`` (checked to lie inside the split folder);
    [] when the split has no metadata file."""
    sub = root / split_folder(split)
    meta = sub / METADATA_FILE
    if not meta.is_file():
        return []
    out = []
    for n, line in enumerate(meta.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            path = (sub / rec["file_name"]).resolve()
            str(rec["text"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{meta}:{n}: not a metadata row (needs file_name and text; {exc})") from None
        if not path.is_relative_to(sub.resolve()):
            raise DatasetError(f"{meta}:{n}: {rec['file_name']!r} points outside the dataset")
        rec["path"] = path
        out.append(rec)
    return out


@register_artifact
@dataclass
class CaptionedDataset(Artifact):
    """A captioned dataset folder: its info and the metadata rows of each split.

    ``save(root)`` writes every split's metadata.jsonl, then caption_info.json (the file that
    marks a captioned dataset: a reader never sees one without the other); the PNGs are
    written by the captioner into :meth:`image_dir`. ``load(root)`` accepts the captioned
    folder or a patch dataset folder holding ``captioned/``.
    """

    artifact: ClassVar[str] = "captioned-dataset"
    what: ClassVar[str] = "captioned dataset"
    FORMAT: ClassVar[str] = FORMAT
    FILES: ClassVar[tuple[str, ...]] = (INFO_FILE, METADATA_FILE)

    root: Path
    info: dict[str, Any]
    #: split folder name → metadata rows (file_name, text, id, label, lat, lon, ...)
    entries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @staticmethod
    def find_root(root: str | os.PathLike[str]) -> Path:
        """The captioned folder itself: ``root`` or ``root/captioned``."""
        root = Path(root).expanduser()
        if not (root / INFO_FILE).is_file() and (root / CAPTIONED_DIR / INFO_FILE).is_file():
            return root / CAPTIONED_DIR
        return root

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> "CaptionedDataset":
        root = cls.find_root(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: no such folder")
        info = read_info(root)
        entries = {}
        for split in CAPTION_SPLITS:
            rows = read_records(root, split)
            if rows:
                entries[split] = [{k: v for k, v in r.items() if k != "path"} for r in rows]
        return cls(root, info, entries)

    def save(self, root: str | os.PathLike[str] | None = None) -> Path:
        root = Path(root) if root is not None else self.root
        for split, rows in self.entries.items():
            if rows:
                self.image_dir(root, split).mkdir(parents=True, exist_ok=True)
                text = (
                    "\n".join(json.dumps({k: v for k, v in r.items() if k != "path"}, ensure_ascii=False) for r in rows)
                    + "\n"
                )
                write_text_atomic(self.image_dir(root, split) / METADATA_FILE, text)
        write_json(root / INFO_FILE, {**self.info, "format": FORMAT})
        return root

    @staticmethod
    def image_dir(root: str | os.PathLike[str], split: str) -> Path:
        return Path(root) / split_folder(split)

    @property
    def calibration(self) -> Calibration:
        return Calibration.from_dict(self.info["calibration"])

    def records(self, split: str) -> list[dict[str, Any]]:
        return read_records(self.root, split)

    def split(self, split: str = "test") -> CaptionedSet:
        return open_captioned(self.root, split)


def open_captioned(root: str | os.PathLike[str], split: str = "test") -> CaptionedSet:
    """One split of the captioned dataset in ``root`` (exactly that folder), checked."""
    root = Path(root)
    info = read_info(root)
    if split not in CAPTION_SPLITS:
        raise DatasetError(f"unknown split {split!r}; use one of {', '.join(CAPTION_SPLITS)}")
    meta = root / split / METADATA_FILE
    if not meta.is_file():
        raise DatasetError(f"{meta} is missing: the dataset has no {split} split")
    items = [
        CaptionedItem(
            file=root / split / r["file_name"],
            text=str(r["text"]),
            label=str(r.get("label") or ""),
            id=str(r.get("id", Path(r["file_name"]).stem)),
            lat=r.get("lat"),
            lon=r.get("lon"),
        )
        for r in read_records(root, split)
    ]
    try:
        calibration = Calibration.from_dict(info["calibration"])
    except (KeyError, ValueError) as exc:
        raise DatasetError(f"{root / INFO_FILE}: no usable calibration ({exc})") from None
    return CaptionedSet(
        root=root,
        split=split,
        token=str(info.get("token", "<SAR>")),
        polarisation=str(info.get("polarisation", "VV")),
        image_mode=str(info.get("image_mode", "L")),
        calibration=calibration,
        items=items,
    )
