"""Training data for the trainers: the patch dataset (FORMATS A) and the captioned image folder.

A patch becomes what the seed-000 model learns from:

* the **target** — ``calibration.to_signed`` of VV and VH (dB → [−1, 1]), third channel = VV
  (as the HuiYanEarth-SAR reference), resized to the training resolution when the patch is
  another size;
* the **condition** — :func:`sarviz.generators.condition.build_condition` with the run's
  :class:`ConditionSpec`: the very code inference uses, so training and generation cannot
  disagree about the 65 channels.

Missing backscatter pixels (NaN) are filled with the patch's mean dB (the reference filled
0 dB, which after clipping is the brightest value); patches the builder kept have ≤ 1 % missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.calibration import DEFAULT_CALIBRATION, Calibration
from sarviz.training.common import TrainError, read_json, seed_for

CAPTIONED_FORMAT = "sarviz-captioned/1"
SPLITS = ("train", "val", "test")
CAPTION_SPLITS = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}


@dataclass
class PatchDatasetInfo:
    folder: Path
    meta: dict[str, Any]
    rows: list[dict[str, str]]

    @property
    def calibration(self) -> Calibration:
        return Calibration.from_dict(self.meta["calibration"])  # checked by the reader

    def split(self, name: str) -> list[dict[str, str]]:
        return sorted((r for r in self.rows if r.get("split") == name), key=lambda r: r["id"])


def open_patch_dataset(folder: str | Path) -> PatchDatasetInfo:
    """A dataset folder written by ``sarviz dataset build``, checked by the dataset tools' own reader."""
    from sarviz.datasets.layout import DatasetError, open_dataset

    try:
        ds = open_dataset(folder)
        for row in ds.rows:
            ds.patch_path(row)  # refuses a manifest row that points outside the folder
    except DatasetError as exc:
        raise TrainError(f"--data {folder} is not a sarviz training dataset: {exc}") from None
    if not ds.rows:
        raise TrainError(f"--data {folder}: the dataset has no patches")
    return PatchDatasetInfo(folder=ds.root, meta=ds.info, rows=ds.rows)


def _fill_nan(db: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(db)
    if bad.any():
        db = db.copy()
        db[bad] = float(np.nanmean(db)) if (~bad).any() else -15.0
    return db


def _resize(t, size: int, mode: str = "bilinear"):
    import torch.nn.functional as F

    if t.shape[-1] == size and t.shape[-2] == size:
        return t
    down = t.shape[-1] > size
    return F.interpolate(t[None], size=(size, size), mode=mode, align_corners=False, antialias=down)[0]


def augment(tensors: list, generator) -> list:
    """Random flips and a random multiple of 90° (the reference's augmentation, without its
    ±5° rotation, which fills corners with zeros the model would learn as data)."""
    import torch

    flips = torch.randint(0, 2, (2,), generator=generator).tolist()
    k = int(torch.randint(0, 4, (1,), generator=generator))
    out = []
    for t in tensors:
        if flips[0]:
            t = torch.flip(t, dims=[-1])
        if flips[1]:
            t = torch.flip(t, dims=[-2])
        out.append(torch.rot90(t, k, dims=[-2, -1]) if k else t)
    return out


class PatchDataset:
    """One split of a patch dataset as (target, condition) tensors; indexed by ``(index, epoch)``."""

    def __init__(self, info: PatchDatasetInfo, split: str, resolution: int, spec, calibration: Calibration,
                 augment: bool = True, seed: int = 0, angle_deg: float | None = None) -> None:
        from sarviz.generators.condition import ConditionSpec

        self.info, self.rows = info, info.split(split)
        if not self.rows:
            raise TrainError(f"dataset {info.folder} has no {split!r} patches")
        self.resolution = resolution
        self.spec = ConditionSpec.from_dict(spec.to_dict(), size=resolution)
        self.calibration, self.augment, self.seed, self.angle_deg = calibration, augment, seed, angle_deg

    def __len__(self) -> int:
        return len(self.rows)

    def scene(self, i: int):
        from sarviz.scene import SceneError, read_scene

        row = self.rows[i]
        try:
            return read_scene(self.info.folder / row["file"])
        except SceneError as exc:
            raise TrainError(f"patch {row['id']}: {exc}") from None

    def __getitem__(self, key) -> dict[str, Any]:
        import torch

        from sarviz.generators.condition import build_condition

        i, epoch = key if isinstance(key, tuple) else (key, 0)
        row = self.rows[i]
        scene = self.scene(i)
        if scene.vv_db is None or scene.vh_db is None:
            raise TrainError(f"patch {row['id']} ({row['file']}) has no VV/VH backscatter")
        cal = self.calibration
        from sarviz.training.validation import to_patch_grid

        # resampled to the training resolution in linear power, as the generator resamples its
        # output (averaging dB, i.e. logarithms, biases speckled targets low), then mapped
        size = (self.resolution, self.resolution)
        vv_db, vh_db = (to_patch_grid(_fill_nan(db), size) for db in (scene.vv_db, scene.vh_db))
        vv, vh = cal.to_signed(vv_db, "VV"), cal.to_signed(vh_db, "VH")
        target = torch.from_numpy(np.stack([vv, vh, vv]).astype(np.float32))
        cond = torch.from_numpy(build_condition(scene, self.spec, angle_deg=self.angle_deg).array)
        if self.augment:
            g = torch.Generator().manual_seed(seed_for(self.seed, epoch, i, 104729))
            target, cond = augment([target, cond], g)
        return {"pixel_values": target.contiguous(), "conditioning": cond.contiguous(), "id": row["id"]}


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        out[key] = torch.stack(values) if hasattr(values[0], "shape") else values
    return out


# -- captioned image folder (FORMATS A, captioned/) ---------------------------------------------------
@dataclass
class CaptionedInfo:
    folder: Path
    info: dict[str, Any]

    @property
    def calibration(self) -> Calibration:
        cal = self.info.get("calibration")
        return Calibration.from_dict(cal) if cal else DEFAULT_CALIBRATION

    def records(self, split: str) -> list[dict[str, Any]]:
        sub = self.folder / CAPTION_SPLITS.get(split, split)
        meta = sub / "metadata.jsonl"
        if not meta.is_file():
            return []
        out = []
        for n, line in enumerate(meta.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TrainError(f"{meta} line {n} is not JSON ({exc})") from None
            if "file_name" not in rec or "text" not in rec:
                raise TrainError(f"{meta} line {n} lacks file_name/text")
            path = (sub / rec["file_name"]).resolve()
            if not path.is_relative_to(sub.resolve()):
                raise TrainError(f"{meta} line {n}: file_name points outside the folder")
            rec["path"] = path
            out.append(rec)
        return out


def open_captioned(folder: str | Path) -> CaptionedInfo:
    """A captioned 🤗 imagefolder written by ``sarviz dataset caption`` (or the dataset folder holding it)."""
    folder = Path(folder).expanduser()
    if (folder / "captioned" / "caption_info.json").is_file():
        folder = folder / "captioned"
    info_path = folder / "caption_info.json"
    if not folder.is_dir():
        raise TrainError(f"--data {folder}: no such folder")
    if not info_path.is_file():
        raise TrainError(f"--data {folder} is not a captioned dataset (no caption_info.json); "
                         "write one with `sarviz dataset caption`")
    return CaptionedInfo(folder=folder, info=read_json(info_path, "caption description", CAPTIONED_FORMAT))


class CaptionDataset:
    """One split of a captioned folder: image in [−1, 1] (3 channels) and its caption.

    The metadata.jsonl/PNG pairs are read directly (the 🤗 imagefolder convention) rather
    than through ``datasets.load_dataset``, which would first copy every image into an Arrow
    cache. An "L" image is repeated into the VAE's three channels; "RGB" is R VV, G VH, B VV.
    """

    def __init__(self, info: CaptionedInfo, split: str, resolution: int, augment: bool = True, seed: int = 0):
        self.info, self.records = info, info.records(split)
        if not self.records:
            raise TrainError(f"captioned dataset {info.folder} has no {split!r} images")
        self.resolution, self.augment, self.seed = resolution, augment, seed

    def __len__(self) -> int:
        return len(self.records)

    def image(self, i: int):
        import torch
        from PIL import Image

        rec = self.records[i]
        try:
            with Image.open(rec["path"]) as im:
                arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im, dtype=np.float32)
        except OSError as exc:
            raise TrainError(f"{rec['path']}: not a readable image ({exc})") from None
        if arr.ndim == 2:
            arr = np.repeat(arr[None], 3, axis=0)
        else:
            arr = arr.transpose(2, 0, 1)
        return _resize(torch.from_numpy(arr / 127.5 - 1.0).float(), self.resolution)

    def __getitem__(self, key) -> dict[str, Any]:
        import torch

        i, epoch = key if isinstance(key, tuple) else (key, 0)
        image = self.image(i)
        if self.augment:  # flips only: a caption may say where things are, never which way is north
            g = torch.Generator().manual_seed(seed_for(self.seed, epoch, i, 15485863))
            if int(torch.randint(0, 2, (1,), generator=g)):
                image = torch.flip(image, dims=[-1])
        return {"pixel_values": image.contiguous(), "text": self.records[i]["text"], "id": str(self.records[i].get("id", i))}
