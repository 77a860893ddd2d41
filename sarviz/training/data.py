"""Training data for the trainers: the patch dataset (sarviz.formats.captioned) and the captioned image folder.

A patch becomes what the seed-000 model learns from:

* the **target** — ``calibration.to_signed`` of VV and VH (dB → [−1, 1]), third channel = VV
  (as the HuiYanEarth-SAR reference), resized to the training resolution when the patch is
  another size;
* the **condition** — :func:`sarviz.generators.condition.build_condition` with the run's
  :class:`ConditionSpec`: the very code inference uses, so training and generation cannot
  disagree about the 65 channels.

The dataset is the one :class:`sarviz.datasets.torch.PatchDataset` (its docstring says how
missing pixels are filled and why); :class:`GeoTrainingTransform` is the trainer's part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.calibration import DEFAULT_CALIBRATION, Calibration
from sarviz.constants import SPLITS  # noqa: F401 - re-exported
from sarviz.errors import DatasetError
from sarviz.formats.captioned import INFO_FILE as CAPTION_INFO_FILE
from sarviz.formats.captioned import CaptionedDataset, read_records
from sarviz.formats.captioned import read_info as read_caption_info
from sarviz.formats.patch_dataset import PatchDatasetFolder, open_dataset
from sarviz.training.common import TrainError, seed_for


def __getattr__(name: str):
    # the one PatchDataset lives in sarviz.datasets.torch; importable from here for older callers
    if name == "PatchDataset":
        from sarviz.datasets.torch import PatchDataset

        return PatchDataset
    raise AttributeError(name)


#: the training code's old name for the patch dataset artifact (one class: PatchDatasetFolder)
PatchDatasetInfo = PatchDatasetFolder


def open_patch_dataset(folder: str | Path) -> PatchDatasetFolder:
    """A dataset folder written by ``sarviz dataset build``, checked by the dataset tools' own reader."""
    try:
        ds = open_dataset(folder)
        for row in ds.rows:
            ds.patch_path(row)  # refuses a manifest row that points outside the folder
    except DatasetError as exc:
        raise TrainError(f"--data {folder} is not a sarviz training dataset: {exc}") from None
    if not ds.rows:
        raise TrainError(f"--data {folder}: the dataset has no patches")
    return ds


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


class GeoTrainingTransform:
    """The geo trainer's preprocessing of a :class:`~sarviz.datasets.torch.PatchDataset` sample:
    target (VV, VH, VV) resampled in linear power to the training resolution, then calibrated;
    the condition from the generator's own :func:`~sarviz.generators.condition.build_condition`
    (the very code inference uses),
    and flips/rotations seeded by (seed, epoch, index) so a run repeats."""

    def __init__(
        self,
        resolution: int,
        spec,
        calibration: Calibration,
        augment: bool = True,
        seed: int = 0,
        angle_deg: float | None = None,
    ) -> None:
        from sarviz.generators.condition import ConditionSpec

        self.resolution, self.calibration = resolution, calibration
        self.spec = ConditionSpec.from_dict(spec.to_dict(), size=resolution)
        self.augment, self.seed, self.angle_deg = augment, seed, angle_deg

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        import torch
        from affine import Affine

        from sarviz.generators.condition import build_condition
        from sarviz.scene import Scene
        from sarviz.training.validation import to_patch_grid

        db = sample["target_db"].numpy()
        h, w = db.shape[-2:]
        # the condition inputs as read (NaN where missing): build_condition fills them as at inference
        scene = Scene(
            crs=sample["crs"],
            transform=Affine.identity(),
            width=w,
            height=h,
            angle_deg=sample["angle"][0].numpy(),
            embedding=sample["embedding"].numpy(),
            scene_id=sample["id"],
        )
        # resampled to the training resolution in linear power, as the generator resamples its
        # output (averaging dB, i.e. logarithms, biases speckled targets low), then calibrated
        size = (self.resolution, self.resolution)
        vv, vh = (self.calibration.to_signed(to_patch_grid(band, size), pol) for band, pol in zip(db, ("VV", "VH")))
        target = torch.from_numpy(np.stack([vv, vh, vv]).astype(np.float32))
        cond = torch.from_numpy(build_condition(scene, self.spec, angle_deg=self.angle_deg).array)
        if self.augment:
            g = torch.Generator().manual_seed(seed_for(self.seed, sample["epoch"], sample["index"], 104729))
            target, cond = augment([target, cond], g)
        return {"pixel_values": target.contiguous(), "conditioning": cond.contiguous(), "id": sample["id"]}


def geo_training_dataset(
    info: PatchDatasetInfo,
    split: str,
    resolution: int,
    spec,
    calibration: Calibration,
    augment: bool = True,
    seed: int = 0,
    angle_deg: float | None = None,
):
    """The one :class:`~sarviz.datasets.torch.PatchDataset` with the geo trainer's transform,
    indexed by ``(index, epoch)`` (the trainer's sampler) or by index."""
    from sarviz.datasets.layout import DatasetError
    from sarviz.datasets.torch import PatchDataset

    try:
        ds = PatchDataset(
            info.folder,
            split,
            calibration=calibration,
            transforms=GeoTrainingTransform(resolution, spec, calibration, augment, seed, angle_deg),
        )
    except DatasetError as exc:
        raise TrainError(f"dataset {info.folder}: {exc}") from None
    if not len(ds):
        raise TrainError(f"dataset {info.folder} has no {split!r} patches")
    return ds


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        out[key] = torch.stack(values) if hasattr(values[0], "shape") else values
    return out


# -- captioned image folder (sarviz.formats.captioned) ---------------------------------------------------
@dataclass
class CaptionedInfo:
    """A captioned dataset as the text trainer reads it (rows through :mod:`sarviz.formats.captioned`)."""

    folder: Path
    info: dict[str, Any]

    @property
    def calibration(self) -> Calibration:
        cal = self.info.get("calibration")
        return Calibration.from_dict(cal) if cal else DEFAULT_CALIBRATION

    def records(self, split: str) -> list[dict[str, Any]]:
        try:
            return read_records(self.folder, split)
        except DatasetError as exc:
            raise TrainError(str(exc)) from None


def open_captioned(folder: str | Path) -> CaptionedInfo:
    """A captioned 🤗 imagefolder written by ``sarviz dataset caption`` (or the dataset folder holding it)."""
    folder = CaptionedDataset.find_root(folder)
    if not folder.is_dir():
        raise TrainError(f"--data {folder}: no such folder")
    if not (folder / CAPTION_INFO_FILE).is_file():
        raise TrainError(
            f"--data {folder} is not a captioned dataset (no {CAPTION_INFO_FILE}); "
            "write one with `sarviz dataset caption`"
        )
    try:
        info = read_caption_info(folder)
    except DatasetError as exc:
        raise TrainError(str(exc)) from None
    return CaptionedInfo(folder=folder, info=info)


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
        return {
            "pixel_values": image.contiguous(),
            "text": self.records[i]["text"],
            "id": str(self.records[i].get("id", i)),
        }
