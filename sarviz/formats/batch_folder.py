"""The batch run folder (layout documented in docs/batch.md), its manifest and item files.

    OUT/
      batch.json                  run settings {"format": "sarviz-batch/1", "model", "size", "seeds", ...}
      points.csv                  the points of the run (id, lat, lon, year, class, region)
      catalog.json                STAC Catalog linking every finished item
      manifest.parquet            one row an item: id, lat, lon, class, region, status, error, stage,
      manifest.csv                seeds, scene_id, s1_mode, timings (fetch_s, generate_s, write_s, total_s)
      items/<id>/<id>.json        STAC Item (projection extension; provenance in sarviz:* properties)
      items/<id>/real.tif         real Sentinel-1 crop, bands VV, VH (dB), COG
      items/<id>/optical.tif      Sentinel-2 crop, bands B2, B3, B4, B8 (reflectance), COG (when present)
      items/<id>/scene.tif        the whole input crop as a sarviz scene file (71 bands: optical, S1,
                                  angle, AlphaEarth embedding) — what the generator was conditioned on
      items/<id>/generated_s000.tif   generated VV, VH (dB) for seed 0, COG, provenance in its tags
      .staging/<id>/              an item being made; renamed to items/<id>/ when complete
      .lock                       held by the running batch (a second run on the folder is refused)
      logs/batch.log              the run log (per-item errors with their tracebacks)

An item folder exists only when the item is complete: it is assembled in ``.staging`` and
renamed into ``items/`` in one step, so a killed run leaves no half-written item (the
staging folder is cleared by the next run).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from sarviz.atomic import atomic_path
from sarviz.errors import BatchError, FormatError
from sarviz.formats.base import Artifact, register_artifact

FORMAT = "sarviz-batch/1"
SETTINGS_FILE = "batch.json"
POINTS_FILE = "points.csv"
MANIFEST_CSV = "manifest.csv"
MANIFEST_PARQUET = "manifest.parquet"
ITEMS_DIR = "items"
STAGING_DIR = ".staging"
LOG_DIR = "logs"
LOG_FILE = "batch.log"
LOCK_FILE = ".lock"
#: where ``sarviz evaluate`` / ``evaluate-downstream`` write their report by default
EVALUATION_DIR = "evaluation"
#: the files of one item folder (the STAC Item is ``<id>.json``, the catalog sarviz.formats.stac_catalog)
REAL_FILE = "real.tif"
OPTICAL_FILE = "optical.tif"
SCENE_FILE = "scene.tif"
GENERATED_PREFIX = "generated_s"
POINTS_COLUMNS = ("id", "lat", "lon", "year", "class", "region")


def generated_name(seed: int) -> str:
    """The asset key / file stem of the image generated with ``seed`` (``generated_s000``)."""
    return f"{GENERATED_PREFIX}{int(seed):03d}"


def generated_seed(name: str) -> int | None:
    """The seed of a generated asset key or file name (None when it is not one)."""
    stem = Path(name).stem
    if not stem.startswith(GENERATED_PREFIX):
        return None
    try:
        return int(stem[len(GENERATED_PREFIX) :])
    except ValueError:
        return None


MANIFEST_COLUMNS = (
    "id",
    "lat",
    "lon",
    "class",
    "region",
    "status",
    "error",
    "stage",
    "seeds",
    "scene_id",
    "s1_mode",
    "fetch_s",
    "generate_s",
    "write_s",
    "total_s",
    "worker",
    "finished",
    "item",
)
#: settings that must match for a re-run to continue a batch folder
RUN_KEYS = ("model", "size", "seeds", "s1_mode", "year", "sources")


@dataclass
class BatchConfig:
    """What a batch makes: model, patch size, seeds, where scenes come from."""

    model: str
    size: int = 512
    seeds: tuple[int, ...] = (0,)
    year: int | None = None
    s1_mode: str = "single"  # "single" acquisition (where the source allows) or "composite"
    scenes: str | None = None  # scene folder (None: the settings' folder)
    sources: str = "local"  # "local": the scene folder only; "auto": the source chain (fetch + cache)
    keep_scene: bool = True  # keep scene.tif (all input layers, 71 bands) in each item
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BatchConfig":
        d = dict(d)
        d["seeds"] = tuple(d.get("seeds") or (0,))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@register_artifact
class BatchFolder(Artifact):
    """Paths and state of one batch run folder.

    ``save(config, points, info)`` (= :meth:`start`) creates or continues the folder;
    ``load(root)`` opens an existing one, checked (one-line :class:`FormatError`).
    """

    artifact = "batch-folder"
    what = "sarviz batch folder"
    FORMAT = FORMAT
    FILES = (
        SETTINGS_FILE,
        POINTS_FILE,
        MANIFEST_CSV,
        MANIFEST_PARQUET,
        ITEMS_DIR,
        STAGING_DIR,
        LOG_DIR,
        LOCK_FILE,
        REAL_FILE,
        OPTICAL_FILE,
        SCENE_FILE,
    )

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> "BatchFolder":
        folder = cls(root)
        if not folder.root.is_dir():
            raise FormatError(f"{folder.root}: no such folder")
        if not folder.exists():
            raise FormatError(f"{folder.root} is not a sarviz batch folder (no {SETTINGS_FILE})")
        folder.read_settings()
        return folder

    def save(self, config: "BatchConfig", points: list[Any], info: dict[str, Any]) -> Path:
        self.start(config, points, info)
        return self.root

    @staticmethod
    def is_batch_folder(path: str | os.PathLike[str]) -> bool:
        return (Path(path) / SETTINGS_FILE).is_file()

    # -- paths ----------------------------------------------------------------------------
    @property
    def settings_file(self) -> Path:
        return self.root / SETTINGS_FILE

    @property
    def items_dir(self) -> Path:
        return self.root / ITEMS_DIR

    @property
    def staging_dir(self) -> Path:
        return self.root / STAGING_DIR

    @property
    def log_dir(self) -> Path:
        return self.root / LOG_DIR

    @property
    def log_file(self) -> Path:
        return self.log_dir / LOG_FILE

    @property
    def lock_file(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def points_file(self) -> Path:
        return self.root / POINTS_FILE

    @staticmethod
    def item_json_name(item_id: str) -> str:
        return f"{item_id}.json"

    def item_href(self, item_id: str) -> str:
        """The item's STAC JSON relative to the batch folder (what the manifest records)."""
        return f"{ITEMS_DIR}/{item_id}/{self.item_json_name(item_id)}"

    def generated_files(self, item_id: str) -> dict[int, Path]:
        """seed → generated GeoTIFF of a finished item."""
        out = {}
        for p in self.item_dir(item_id).glob(f"{GENERATED_PREFIX}*.tif"):
            seed = generated_seed(p.name)
            if seed is not None:
                out[seed] = p
        return dict(sorted(out.items()))

    def item_dir(self, item_id: str) -> Path:
        return self.items_dir / item_id

    def item_json(self, item_id: str) -> Path:
        return self.item_dir(item_id) / self.item_json_name(item_id)

    def staging(self, item_id: str) -> Path:
        return self.staging_dir / item_id

    # -- state ----------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.settings_file.is_file()

    def read_settings(self) -> dict[str, Any]:
        try:
            data = json.loads(self.settings_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FormatError(f"{self.root} is not a sarviz batch folder ({SETTINGS_FILE}: {exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise FormatError(f"{self.root}: {SETTINGS_FILE} has format {found!r}, expected {FORMAT!r}")
        return data

    def config(self) -> BatchConfig:
        return BatchConfig.from_dict(self.read_settings()["config"])

    def start(self, config: BatchConfig, points: list[Any], info: dict[str, Any]) -> None:
        """Create or continue the folder: same settings required; clear leftovers of a killed run."""
        if self.exists():
            old = self.read_settings()["config"]
            new = config.to_dict()
            diff = [k for k in RUN_KEYS if old.get(k) != new.get(k)]
            if diff:
                said = ", ".join(f"{k} {old.get(k)!r} (now {new.get(k)!r})" for k in diff)
                raise BatchError(
                    f"{self.root} holds a batch made with other settings: {said}; "
                    "use another --out for a different batch"
                )
        self.root.mkdir(parents=True, exist_ok=True)
        self.items_dir.mkdir(exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        shutil.rmtree(self.staging_dir, ignore_errors=True)  # half-made items of a killed run
        self.staging_dir.mkdir()
        settings = {"format": FORMAT, "config": config.to_dict(), **info}
        with atomic_path(self.settings_file) as tmp:
            tmp.write_text(json.dumps(settings, indent=1, default=str), encoding="utf-8")
        write_points_csv(self.points_file, points)

    def done_ids(self) -> set[str]:
        """Items that are complete (their folder and STAC Item exist)."""
        if not self.items_dir.is_dir():
            return set()
        return {p.name for p in self.items_dir.iterdir() if p.is_dir() and (p / self.item_json_name(p.name)).is_file()}

    def item_files(self) -> list[Path]:
        return sorted(self.item_json(i) for i in self.done_ids())

    def item_record(self, item_id: str) -> dict[str, Any]:
        """The manifest row stored in a finished item's STAC properties."""
        data = json.loads(self.item_json(item_id).read_text(encoding="utf-8"))
        return dict(data["properties"].get("sarviz:record") or {"id": item_id, "status": "done"})

    def read_manifest(self) -> list[dict[str, Any]]:
        path = self.root / MANIFEST_CSV
        if not path.is_file():
            return []
        with path.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))

    def write_manifest(self, rows: Iterable[dict[str, Any]]) -> None:
        """manifest.csv and manifest.parquet, both atomically, sorted by id."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = sorted(rows, key=lambda r: str(r.get("id")))
        table = {c: [_cell(r.get(c), c) for r in rows] for c in MANIFEST_COLUMNS}
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for i in range(len(rows)):
            writer.writerow({c: "" if table[c][i] is None else table[c][i] for c in MANIFEST_COLUMNS})
        with atomic_path(self.root / MANIFEST_CSV) as tmp:
            tmp.write_text(buf.getvalue(), encoding="utf-8")
        schema = pa.schema([(c, pa.float64() if c in _FLOAT_COLUMNS else pa.string()) for c in MANIFEST_COLUMNS])
        with atomic_path(self.root / MANIFEST_PARQUET, suffix=".parquet.part") as tmp:
            pq.write_table(pa.table(table, schema=schema), tmp)


_FLOAT_COLUMNS = {"lat", "lon", "fetch_s", "generate_s", "write_s", "total_s"}


def _cell(value: Any, column: str) -> Any:
    if column in _FLOAT_COLUMNS:
        try:
            return None if value in (None, "") else float(value)
        except (TypeError, ValueError):
            return None
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return None if value is None else str(value)


def write_points_csv(path: Path, points: list[Any]) -> None:
    """The points of a run (``BatchPoint``s: id, lat, lon, year, cls, region) as CSV, atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(POINTS_COLUMNS))
    for p in points:
        writer.writerow([p.id, p.lat, p.lon, "" if p.year is None else p.year, p.cls, p.region])
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
