"""A torch ``Dataset`` over a built dataset (torchgeo style: one dict a sample).

    ds = PatchDataset("OUT", split="train")            # calibration from dataset.json
    sample = ds[0]
    sample["angle"]      # (1, H, W) float32 incidence angle, degrees
    sample["embedding"]  # (64, H, W) float32 AlphaEarth embedding (A00..A63), raw
    sample["target"]     # (2, H, W) float32 VV, VH → calibration.to_signed, in [−1, 1]
    sample["mask"]       # (H, W) bool, True where VV, VH, angle and embedding are all valid
    sample["id"], sample["crs"], sample["bounds"]

Condition preprocessing (angle normalisation, embedding z-score, resizing) is the
generator's :mod:`sarviz.generators.condition` job, applied by the trainer — the dataset
returns physical values so that one condition builder serves training and inference.
Missing target pixels are 0 in ``target`` and False in ``mask``.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from sarviz.calibration import Calibration
from sarviz.datasets.layout import open_dataset
from sarviz.scene import read_scene

TRAINING_LAYERS = ("vv_db", "vh_db", "angle_deg", "embedding")


class PatchDataset(Dataset):
    """Patches of one split of a ``sarviz-patches/1`` folder."""

    def __init__(self, root: str | os.PathLike, split: str = "train", calibration: Calibration | None = None,
                 transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.folder = open_dataset(root)
        self.rows = self.folder.split(split)
        self.split = split
        self.calibration = calibration or self.folder.calibration
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        patch = read_scene(self.folder.patch_path(row), layers=TRAINING_LAYERS)
        h, w = patch.shape
        nan = np.full((h, w), np.nan, np.float32)
        vv = patch.vv_db if patch.vv_db is not None else nan
        vh = patch.vh_db if patch.vh_db is not None else nan
        angle = patch.angle_deg if patch.angle_deg is not None else nan
        emb = patch.embedding if patch.embedding is not None else np.full((64, h, w), np.nan, np.float32)
        mask = np.isfinite(vv) & np.isfinite(vh) & np.isfinite(angle) & np.isfinite(emb).all(0)
        target = np.stack([self.calibration.to_signed(vv, "VV"), self.calibration.to_signed(vh, "VH")])
        sample = {
            "angle": torch.from_numpy(np.nan_to_num(angle)[None].copy()),
            "embedding": torch.from_numpy(np.nan_to_num(emb).astype(np.float32, copy=False)),
            "target": torch.from_numpy(np.nan_to_num(target).astype(np.float32, copy=False)),
            "mask": torch.from_numpy(mask),
            "id": row["id"], "crs": patch.crs.to_string(), "bounds": patch.bounds,
        }
        return self.transforms(sample) if self.transforms else sample
