"""A training run folder (``sarviz train geo|text|... --out RUN``): logs, validation and checkpoints.

::

    RUN/
      run.json                    kind, status, started, updated, config, step, max_steps, error, ...
      train_log.csv               one row per logged step (LOSS_FIELDS)
      validation.csv              geo runs: step, id, pol, ssim, fsim, kl, ... per validation patch
      validation/step-N/*.png     geo runs: real | generated strips
      checkpoint-N/               a complete checkpoint (the model's own layout, see
                                  sarviz.formats.controlnet / sarviz.formats.text_run)
        accelerate_state/         optimizer, LR scheduler, RNG (no model weights)
      .tmp-checkpoint-N/          a checkpoint being written (renamed when complete)
      refine/                     a text run's refinement stage: a run folder of its own
      logs/                       accelerate / TensorBoard logs

A checkpoint is written into a temp folder and renamed when complete, so a listed
checkpoint is always whole; a killed run's temp folders are removed on the next start.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sarviz.atomic import atomic_path, replace_dir, write_json
from sarviz.errors import FormatError
from sarviz.formats.base import Artifact, read_json_object, register_artifact

RUN_FILE = "run.json"
LOSS_LOG = "train_log.csv"
LOSS_FIELDS = ("step", "epoch", "loss", "lr", "seconds_per_step", "time")
VALIDATION_CSV = "validation.csv"
VALIDATION_DIR = "validation"
ACCELERATE_STATE = "accelerate_state"
REFINE_DIR = "refine"
LOGS_DIR = "logs"  # accelerate / TensorBoard logs
CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
TMP_PREFIX = ".tmp-checkpoint-"
STEP_DIR_RE = re.compile(r"^step-(\d+)$")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def checkpoint_dir(out: str | os.PathLike[str], step: int) -> Path:
    """``out/checkpoint-N``."""
    return Path(out) / f"{CHECKPOINT_PREFIX}{step}"


def validation_step_dir(out: str | os.PathLike[str], step: int) -> Path:
    return Path(out) / VALIDATION_DIR / f"step-{step}"


def list_checkpoints(out: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """Complete ``checkpoint-N`` folders of a run, oldest first (temp folders are never listed)."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = []
    for p in out.iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def clean_stale_temp(out: str | os.PathLike[str]) -> None:
    """Remove checkpoint folders a killed run left half-written (they were never renamed)."""
    for p in Path(out).glob(TMP_PREFIX + "*"):
        shutil.rmtree(p, ignore_errors=True)


def temp_checkpoint_dir(out: str | os.PathLike[str], step: int) -> Path:
    # the same name on every process: DeepSpeed/FSDP save their shards from all of them
    return Path(out) / f"{TMP_PREFIX}{step}"


def publish_checkpoint(tmp: Path, out: Path, step: int, total_limit: int | None = None) -> Path:
    """Rename a complete temp folder to ``checkpoint-N`` (an existing one is replaced only after)."""
    final = checkpoint_dir(out, step)
    # the replaced checkpoint is parked under the temp prefix, so a killed run's leftover is cleaned
    replace_dir(tmp, final, old=final.with_name(f"{TMP_PREFIX}{step}-old"))
    if total_limit:
        for _, p in list_checkpoints(out)[:-total_limit]:
            shutil.rmtree(p, ignore_errors=True)
    return final


def publish_final(tmp: Path, out: Path, marker: str | None = None) -> None:
    """Move a final model's parts from ``tmp`` into ``out``; the ``marker`` metadata file last,
    so a loader that sees it sees a complete model (default: the text run's metadata file)."""
    if marker is None:
        from sarviz.formats.text_run import MODEL_FILE

        marker = MODEL_FILE
    meta = tmp / marker
    (out / marker).unlink(missing_ok=True)
    for item in sorted(tmp.iterdir()):
        if item == meta:
            continue
        dest = out / item.name
        if dest.is_dir():
            shutil.rmtree(dest)
        elif dest.exists():
            dest.unlink()
        os.replace(item, dest)
    if meta.exists():
        os.replace(meta, out / marker)
    shutil.rmtree(tmp, ignore_errors=True)


@register_artifact
@dataclass
class TrainingRun(Artifact):
    """``run.json`` of a run folder: ``load`` reads and checks it, ``save`` writes it atomically."""

    artifact: ClassVar[str] = "training-run"
    what: ClassVar[str] = "sarviz training run"
    FILES: ClassVar[tuple[str, ...]] = (
        RUN_FILE,
        LOSS_LOG,
        VALIDATION_CSV,
        VALIDATION_DIR,
        ACCELERATE_STATE,
        REFINE_DIR,
    )

    path: Path
    meta: dict[str, Any]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "TrainingRun":
        path = Path(path)
        meta = read_json_object(path / RUN_FILE, cls.what)
        if not isinstance(meta.get("kind"), str) or not isinstance(meta.get("status"), str):
            raise FormatError(f"{path / RUN_FILE} is not a {cls.what} (no kind/status)")
        return cls(path, meta)

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        path = Path(path) if path is not None else self.path
        write_json(path / RUN_FILE, self.meta)
        return path

    def checkpoints(self) -> list[tuple[int, Path]]:
        return list_checkpoints(self.path)

    def read_losses(self) -> list[dict[str, str]]:
        return read_csv_rows(self.path / LOSS_LOG)


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@dataclass
class RunLog:
    """RUN/run.json (config and status) and RUN/train_log.csv (one row per logged step)."""

    out: Path
    kind: str
    config: dict[str, Any]
    status: str = "running"
    started: str = field(default_factory=_now)
    info: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def write(self, **update: Any) -> None:
        self.info.update(update)
        TrainingRun(
            Path(self.out),
            {
                "kind": self.kind,
                "status": self.status,
                "started": self.started,
                "updated": _now(),
                "config": self.config,
                **self.info,
            },
        ).save()

    def load_losses(self, keep_until: int | None) -> None:
        """Read an existing log (a resumed run), dropping rows after the checkpoint's step."""
        path = self.out / LOSS_LOG
        self.rows = []
        if path.is_file() and keep_until is not None:
            self.rows = [r for r in read_csv_rows(path) if r.get("step") and int(r["step"]) <= keep_until]

    def add_loss(self, row: dict[str, Any]) -> None:
        self.rows.append({k: row.get(k, "") for k in LOSS_FIELDS})

    def flush_losses(self) -> None:
        # rewritten whole and atomically (a few thousand short rows): a reader never sees half a file
        with atomic_path(self.out / LOSS_LOG) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOSS_FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)
