"""The patch dataset folder (``sarviz-patches/1``): what is where, writing and reading it back.

::

    OUT/
      dataset.json        format, size, bands, calibration, embedding_source, s1_mode, counts,
                          split (method, block_km, seed, fractions), landcover method, created, sarviz
      manifest.csv        one row per patch (MANIFEST_COLUMNS)
      failures.csv        id, reason — items that could not be fetched/cut (retried on the next run)
      patches/<id>.tif    67-band float32 COG: VV, VH, angle, A00..A63 (VV/VH dB, NaN = missing)
      captioned/          the 🤗 imagefolder of ``sarviz dataset caption`` (see captions.py)
      .build/records/     one JSON a finished item (patch written or dropped): what makes a
                          build resumable; the manifest is rebuilt from these

The manifest is the index: the splits are in it, not in folders, so that a re-split (other
fractions, block size or seed) rewrites one CSV and no pixels.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sarviz.atomic import write_csv_atomic, write_json, write_text_atomic  # noqa: F401 - re-exported
from sarviz.calibration import Calibration, calibration_from_card
from sarviz.constants import SPLITS  # noqa: F401 - re-exported
from sarviz.errors import DatasetError  # noqa: F401 - re-exported
from sarviz.formats.base import Artifact, register_artifact
from sarviz.scene import TRAINING_PATCH_BANDS

FORMAT = "sarviz-patches/1"
INFO_FILE = "dataset.json"
MANIFEST_FILE = "manifest.csv"
FAILURES_FILE = "failures.csv"
PATCH_DIR = "patches"
BUILD_DIR = Path(".build")
RECORDS_DIR = BUILD_DIR / "records"
#: the build options a resumed build must repeat
OPTIONS_FILE = BUILD_DIR / "options.json"
#: the binding manifest columns (docs/datasets.md); width/height follow for patches smaller than ``size``
MANIFEST_COLUMNS = (
    "id",
    "file",
    "split",
    "lon",
    "lat",
    "date",
    "orbit",
    "relative_orbit",
    "angle_mean",
    "landcover",
    "landcover_fractions",
    "embedding_source",
    "source_scene",
    "provenance",
    "width",
    "height",
)


#: the old name of :func:`sarviz.atomic.write_json` (one JSON writer)
write_json_atomic = write_json


@register_artifact
@dataclass
class PatchDatasetFolder(Artifact):
    """A built patch dataset (``sarviz dataset build``): its info (dataset.json) and manifest rows.

    ``load(root)`` checks the folder (one-line :class:`DatasetError` otherwise); ``save(root)``
    writes dataset.json and manifest.csv atomically (the patches are written by the builder,
    each with :func:`sarviz.scene.write_scene`, under :data:`PATCH_DIR`).
    """

    artifact: ClassVar[str] = "patch-dataset"
    what: ClassVar[str] = "sarviz patch dataset"
    FORMAT: ClassVar[str] = FORMAT
    FILES: ClassVar[tuple[str, ...]] = (INFO_FILE, MANIFEST_FILE, FAILURES_FILE, PATCH_DIR)

    root: Path
    info: dict[str, Any]
    rows: list[dict[str, str]]

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> "PatchDatasetFolder":
        return open_dataset(root)

    def save(self, root: str | os.PathLike[str] | None = None) -> Path:
        """Write dataset.json and manifest.csv (manifest first: the info file marks a dataset)."""
        root = Path(root) if root is not None else self.root
        write_csv_atomic(root / MANIFEST_FILE, MANIFEST_COLUMNS, self.rows)  # other keys of a row are not kept
        write_json(root / INFO_FILE, {**self.info, "format": FORMAT})
        return root

    # the training code's names for the same things (it used a wrapper class, PatchDatasetInfo)
    @property
    def folder(self) -> Path:
        return self.root

    @property
    def meta(self) -> dict[str, Any]:
        return self.info

    def patch_file(self, patch_id: str) -> str:
        """The manifest's ``file`` value for a patch id (relative to the dataset folder)."""
        return f"{PATCH_DIR}/{patch_id}.tif"

    def records_dir(self) -> Path:
        return self.root / RECORDS_DIR

    @property
    def calibration(self) -> Calibration:
        return calibration_from_card(self.info)

    @property
    def size(self) -> int:
        return int(self.info.get("size", 0))

    def split(self, name: str) -> list[dict[str, str]]:
        """The rows of one split, ordered by id (what makes a training epoch reproducible)."""
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r}; a dataset has {', '.join(SPLITS)}")
        return sorted((r for r in self.rows if r["split"] == name), key=lambda r: r["id"])

    def class_counts(self) -> dict[str, dict[str, int]]:
        """split → land-cover class → number of patches ("unknown" when not labelled)."""
        out: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
        for r in self.rows:
            label = r.get("landcover") or "unknown"
            out[r["split"]][label] = out[r["split"]].get(label, 0) + 1
        return out

    def describe(self) -> str:
        """A few lines for a person: what the dataset is and how it is split."""
        info, counts = self.info, self.info.get("counts", {})
        dropped = ", ".join(f"{k} {v}" for k, v in (counts.get("dropped") or {}).items() if v) or "none"
        split = info.get("split", {})
        lines = [
            f"{self.root}: {info['format']}, {len(self.rows)} patches of {self.size} px, embedding "
            f"{info.get('embedding_source')}, Sentinel-1 {info.get('s1_mode')}",
            f"splits ({split.get('method')}, {split.get('block_km')} km blocks, seed {split.get('seed')}): "
            + ", ".join(f"{s} {counts.get(s, 0)}" for s in SPLITS)
            + f"; dropped: {dropped}",
        ]
        if counts.get("angle_assumed"):
            lines.append(
                f"{counts['angle_assumed']} patches have an assumed incidence angle ({info.get('assumed_angle_deg')}°)"
            )
        classes = self.class_counts()
        names = sorted({c for per in classes.values() for c in per})
        if names:
            width = max(len("land cover"), *(len(n) for n in names))
            lines.append(f"{'land cover':<{width}}  " + "  ".join(f"{s:>6}" for s in SPLITS))
            for n in names:
                lines.append(f"{n:<{width}}  " + "  ".join(f"{classes[s].get(n, 0):>6}" for s in SPLITS))
        return "\n".join(lines)

    def patch_path(self, row: dict[str, str]) -> Path:
        path = (self.root / row["file"]).resolve()
        if self.root.resolve() not in path.parents:  # a manifest must not point outside its folder
            raise DatasetError(
                f"{self.root / MANIFEST_FILE}: patch {row['id']!r} points outside the dataset ({row['file']!r})"
            )
        return path


def open_dataset(root: str | os.PathLike[str]) -> PatchDatasetFolder:
    """Open a dataset folder written by ``sarviz dataset build``; one-line errors otherwise."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(
            f"dataset folder {root} does not exist; build one with `sarviz dataset build ... --out {root}`"
        )
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder; a dataset is a folder with {INFO_FILE} and {MANIFEST_FILE}")
    info_path = root / INFO_FILE
    if not info_path.is_file():
        raise DatasetError(
            f"{root} is not a sarviz dataset (no {INFO_FILE}); build one with `sarviz dataset build ... --out {root}`"
        )
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{info_path}: not readable JSON ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        found = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise DatasetError(f"{info_path}: format {found!r}, expected {FORMAT!r}")
    if tuple(info.get("bands", ())) != TRAINING_PATCH_BANDS:
        raise DatasetError(f"{info_path}: bands must be VV, VH, angle, A00..A63")
    try:
        Calibration.from_dict(info["calibration"])
    except (KeyError, ValueError) as exc:
        raise DatasetError(f"{info_path}: no valid calibration ({exc})") from None
    manifest = root / MANIFEST_FILE
    if not manifest.is_file():
        raise DatasetError(
            f"{root}: no {MANIFEST_FILE}; the build did not finish — run `sarviz dataset build` "
            "again with the same arguments to resume it"
        )
    with open(manifest, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in MANIFEST_COLUMNS[:14] if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{manifest}: missing columns {missing}")
        rows = list(reader)
    bad = sorted({r["split"] for r in rows} - set(SPLITS))
    if bad:
        raise DatasetError(f"{manifest}: unknown split value(s) {bad}; expected {', '.join(SPLITS)}")
    return PatchDatasetFolder(root, info, rows)


def json_cell(value: str) -> Any:
    """A JSON manifest cell ("" = unknown)."""
    return json.loads(value) if value else None
