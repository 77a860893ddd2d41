"""Reading training runs back: what the app's "Training runs" page and scripts list and plot.

A run folder is one ``sarviz train geo|text --out RUN``: ``run.json`` (status, config),
``train_log.csv`` (loss per step), ``validation.csv`` + ``validation/step-N/*.png`` (geo) and
``checkpoint-N/`` folders. A text run's refinement stage lives in ``RUN/refine/``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarviz.formats.training_run import (
    LOSS_LOG,
    REFINE_DIR,
    RUN_FILE,
    STEP_DIR_RE,
    VALIDATION_CSV,
    VALIDATION_DIR,
    list_checkpoints,
)

_STEP_DIR = STEP_DIR_RE


def runs_root() -> Path:
    """The folder the app lists runs from: ``SARVIZ_RUNS``, else ``$SARVIZ_HOME/runs``.

    The app never takes a run path from its user (no input reaches the file system outside
    configured roots); train with ``--out $SARVIZ_RUNS/NAME`` to see a run there.
    """
    from sarviz.settings import Settings

    return Settings.load().runs


@dataclass
class RunInfo:
    path: Path
    kind: str
    status: str
    step: int | None
    max_steps: int | None
    checkpoints: list[int] = field(default_factory=list)
    started: str = ""
    updated: str = ""
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name


def read_run(path: str | Path) -> RunInfo | None:
    """The run in ``path`` (None when it is not a run folder)."""
    path = Path(path)
    try:
        meta = json.loads((path / RUN_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    config = meta.get("config") or {}
    return RunInfo(
        path=path,
        kind=str(meta.get("kind", "?")),
        status=str(meta.get("status", "?")),
        step=meta.get("step"),
        max_steps=meta.get("max_steps") or config.get("max_steps"),
        checkpoints=[n for n, _ in list_checkpoints(path)],
        started=str(meta.get("started", "")),
        updated=str(meta.get("updated", "")),
        error=meta.get("error"),
        meta=meta,
    )


def list_runs(folder: str | Path) -> list[RunInfo]:
    """Runs directly in ``folder`` (and text refinement stages inside them), newest first."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return []
    runs = []
    for p in sorted(folder.iterdir()):
        for candidate in (p, p / REFINE_DIR):
            if candidate.is_dir():
                info = read_run(candidate)
                if info is not None:
                    runs.append(info)
    own = read_run(folder)  # the folder itself may be one run
    if own is not None:
        runs.append(own)
    return sorted(runs, key=lambda r: r.updated, reverse=True)


def _read_csv(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        conv: dict[str, Any] = {}
        for k, v in r.items():
            try:
                conv[k] = (
                    int(v)
                    if k == "step"
                    else (
                        float(v) if v not in ("", None) and k not in ("id", "pol", "time") else (v if v != "" else None)
                    )
                )
            except ValueError:
                conv[k] = v
        out.append(conv)
    return out


def loss_table(run: str | Path | RunInfo) -> list[dict[str, Any]]:
    """``train_log.csv`` rows (step, epoch, loss, lr, seconds_per_step, time), numbers parsed."""
    path = run.path if isinstance(run, RunInfo) else Path(run)
    return _read_csv(path / LOSS_LOG)


def validation_table(run: str | Path | RunInfo) -> list[dict[str, Any]]:
    """``validation.csv`` rows (step, id, pol, ssim, fsim, kl, …), numbers parsed."""
    path = run.path if isinstance(run, RunInfo) else Path(run)
    return _read_csv(path / VALIDATION_CSV)


def validation_images(run: str | Path | RunInfo) -> dict[int, list[Path]]:
    """{step: [PNG strip per val patch]} (real VV | generated VV | real VH | generated VH)."""
    path = run.path if isinstance(run, RunInfo) else Path(run)
    out: dict[int, list[Path]] = {}
    folder = path / VALIDATION_DIR
    if folder.is_dir():
        for d in folder.iterdir():
            m = _STEP_DIR.match(d.name)
            if m and d.is_dir():
                out[int(m.group(1))] = sorted(d.glob("*.png"))
    return dict(sorted(out.items()))


def geo_model_card(checkpoint: str | Path, model_id: str | None = None, name: str | None = None) -> dict[str, Any]:
    """A model card (kind ``controlnet-lora``) for a geo checkpoint, from its ``sarviz_train.json``.

    Write it as JSON into a model folder (``SARVIZ_MODELS``) to see the checkpoint in the app
    and in ``sarviz generate --model ID``. The card carries the run's preprocessing and
    calibration (and the calibration's ranges as ``output.db_range``, which the generator reads).
    """
    from sarviz.calibration import Calibration
    from sarviz.training.common import read_json
    from sarviz.training.geo import RUN_FORMAT, TRAIN_META

    checkpoint = Path(checkpoint).expanduser().resolve()
    meta = read_json(checkpoint / TRAIN_META, "sarviz geo checkpoint", RUN_FORMAT)
    cal = Calibration.from_dict(meta["calibration"])
    run = checkpoint.parent.name
    model_id = model_id or f"{run}-{checkpoint.name}"
    return {
        "id": model_id,
        "name": name or f"{run} ({checkpoint.name}, trained with sarviz)",
        "kind": "controlnet-lora",
        "licence": "your own training run (the base model's licence applies)",
        "weights": {
            "controlnet": str(checkpoint),
            "base": meta["base"],
            "vae": meta.get("vae"),
            "unet_lora": "unet_lora",
        },
        "preprocessing": meta["preprocessing"],
        "calibration": meta["calibration"],
        "output": {"channels": {"VV": "R", "VH": "G"}, "db_range": {p: list(cal.range(p)) for p in ("VV", "VH")}},
        "sampler": {"prompt": meta.get("prompt")} if meta.get("prompt") else {},
        "training": {
            "run": str(checkpoint.parent),
            "step": meta["step"],
            "recipe": meta.get("recipe", {}),
            "embedding_source": meta.get("embedding_source"),
        },
    }
