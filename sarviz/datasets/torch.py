"""The torch ``Dataset`` over a built patch dataset — the one ``PatchDataset`` (torchgeo style:
one dict a sample, ``transforms`` passed in).

    ds = PatchDataset("OUT", split="train")            # calibration from dataset.json
    sample = ds[0]                                     # or ds[(index, epoch)] (a sampler's key)
    sample["target"]     # (2, H, W) float32 VV, VH → calibration.to_signed, in [−1, 1]
    sample["target_db"]  # (2, H, W) float32 VV, VH in dB (holes filled as in "target"), unclipped
    sample["mask"]       # (H, W) bool, True where VV, VH, angle and embedding are all valid
    sample["angle"]      # (1, H, W) float32 incidence angle, degrees, NaN where missing
    sample["embedding"]  # (64, H, W) float32 AlphaEarth embedding (A00..A63), raw, NaN where missing
    sample["id"], sample["crs"], sample["bounds"], sample["index"], sample["epoch"]

The trainers pass their preprocessing in as ``transforms`` (the geo trainer:
:class:`sarviz.training.data.GeoTrainingTransform`, which builds the condition with the
generator's own :func:`sarviz.generators.condition.build_condition`), so one dataset class
serves the trainers and any other torch user.

Semantics, chosen once (there used to be two classes that differed):

* **missing target pixels** are filled with the patch's own mean dB of that band before the
  dB → [−1, 1] mapping, and are False in ``mask``. Not 0 in [−1, 1] (the middle of the
  calibration range, a made-up level that draws false edges around every hole), nor 0 dB
  (the HuiYanEarth-SAR reference, the brightest value after clipping): a diffusion model is
  trained on every pixel of its target, and the patch mean is the least informative value
  at the patch's own level. Patches the builder kept have ≤ 1 % missing.
* **angle and embedding** stay physical, NaN where missing, so the condition builder treats
  them exactly as at inference (it fills them and records it).
* **order**: the split's rows sorted by patch id, not manifest order — the manifest is
  rewritten by resumed builds and re-splits, and index i must stay patch i for a seeded
  run's sampler and augmentation to repeat.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from sarviz.calibration import Calibration
from sarviz.datasets.layout import DatasetError, PatchDatasetFolder, open_dataset
from sarviz.scene import SceneError, read_scene

TRAINING_LAYERS = ("vv_db", "vh_db", "angle_deg", "embedding")
EMBEDDING_BANDS = 64


def fill_missing_with_mean(db: np.ndarray, default: float = -15.0) -> np.ndarray:
    """``db`` with non-finite pixels set to the mean of the finite ones (``default`` when none is)."""
    bad = ~np.isfinite(db)
    if not bad.any():
        return db
    out = db.astype(np.float32, copy=True)
    out[bad] = float(np.mean(db[~bad])) if (~bad).any() else default
    return out


class PatchDataset(Dataset):
    """Patches of one split of a ``sarviz-patches/1`` folder (see the module docstring)."""

    def __init__(
        self,
        root: str | os.PathLike | PatchDatasetFolder,
        split: str = "train",
        calibration: Calibration | None = None,
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.folder = root if isinstance(root, PatchDatasetFolder) else open_dataset(root)
        self.split = split
        self.rows = sorted(self.folder.split(split), key=lambda r: r["id"])
        self.calibration = calibration or self.folder.calibration
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, index: int):
        """The patch's :class:`~sarviz.scene.Scene` (the training layers only); one-line
        :class:`DatasetError` when it cannot be read or has no VV/VH backscatter."""
        row = self.rows[index]
        try:
            patch = read_scene(self.folder.patch_path(row), layers=TRAINING_LAYERS)
        except SceneError as exc:
            raise DatasetError(f"patch {row['id']}: {exc}") from None
        if patch.vv_db is None or patch.vh_db is None:
            raise DatasetError(f"patch {row['id']} ({row['file']}) has no VV/VH backscatter")
        return patch

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        row = self.rows[index]
        patch = self.read(index)
        h, w = patch.shape
        vv, vh = patch.vv_db, patch.vh_db
        angle = patch.angle_deg if patch.angle_deg is not None else np.full((h, w), np.nan, np.float32)
        emb = patch.embedding if patch.embedding is not None else np.full((EMBEDDING_BANDS, h, w), np.nan, np.float32)
        mask = np.isfinite(vv) & np.isfinite(vh) & np.isfinite(angle) & np.isfinite(emb).all(0)
        db = np.stack([fill_missing_with_mean(vv), fill_missing_with_mean(vh)]).astype(np.float32, copy=False)
        target = np.stack([self.calibration.to_signed(db[0], "VV"), self.calibration.to_signed(db[1], "VH")])
        sample = {
            "target": torch.from_numpy(target.astype(np.float32, copy=False)),
            "target_db": torch.from_numpy(db),
            "mask": torch.from_numpy(mask),
            "angle": torch.from_numpy(np.ascontiguousarray(angle, dtype=np.float32)[None]),
            "embedding": torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32)),
            "id": row["id"],
            "crs": patch.crs.to_string(),
            "bounds": tuple(patch.bounds),
            "index": index,
            "epoch": epoch,
        }
        return self.transforms(sample) if self.transforms else sample
