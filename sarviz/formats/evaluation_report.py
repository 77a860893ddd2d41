"""Evaluation report folders: what ``sarviz evaluate``, ``evaluate-downstream`` and ``evaluate-text`` write.

::

    batch evaluation (sarviz evaluate BATCH --out REPORT)
      evaluation.json   everything below as one object (format sarviz-batch-evaluation/1)
      per_item.csv      one row an item and seed: metrics
      summary.csv       group × metric: mean, CI
      table1.csv        the seed-000 Table 1 layout
      kl_by_class.csv   KL by land-cover class (seed 001)
      report.md         the report for people, with the figures
      metrics_boxplot.png, kl_by_class.png
    downstream classification (sarviz evaluate-downstream)
      downstream.json, downstream.md, downstream.csv
    downstream classification, folder mode (seed 003)
      downstream_folders.json, downstream_folders.md
    text-to-SAR evaluation (sarviz evaluate-text)
      report.json, per_label.csv, glcm.csv, figures/hist_<label>_<pol>.png, figures/glcm_<label>_<pol>.png,
      generated/<label>/<caption id>.tif

A report is a set of files, each rendered in memory and written atomically (an existing
file survives a failed write); ``load`` reads back whichever of a report kind's files exist.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from sarviz.atomic import atomic_path
from sarviz.errors import FormatError
from sarviz.formats.base import Artifact, register_artifact

# batch evaluation
EVALUATION_JSON = "evaluation.json"
PER_ITEM_CSV = "per_item.csv"
SUMMARY_CSV = "summary.csv"
TABLE1_CSV = "table1.csv"
KL_BY_CLASS_CSV = "kl_by_class.csv"
REPORT_MD = "report.md"
METRICS_BOXPLOT_PNG = "metrics_boxplot.png"
KL_BY_CLASS_PNG = "kl_by_class.png"
BATCH_FILES = (
    EVALUATION_JSON,
    PER_ITEM_CSV,
    SUMMARY_CSV,
    TABLE1_CSV,
    KL_BY_CLASS_CSV,
    REPORT_MD,
    METRICS_BOXPLOT_PNG,
    KL_BY_CLASS_PNG,
)
# downstream classification
DOWNSTREAM_JSON = "downstream.json"
DOWNSTREAM_MD = "downstream.md"
DOWNSTREAM_CSV = "downstream.csv"
DOWNSTREAM_FILES = (DOWNSTREAM_JSON, DOWNSTREAM_MD, DOWNSTREAM_CSV)
# downstream classification, folder mode (seed 003: sarviz evaluate-downstream --target/--test)
DOWNSTREAM_FOLDERS_JSON = "downstream_folders.json"
DOWNSTREAM_FOLDERS_MD = "downstream_folders.md"
DOWNSTREAM_FOLDERS_FILES = (DOWNSTREAM_FOLDERS_JSON, DOWNSTREAM_FOLDERS_MD)
# text-to-SAR evaluation
TEXT_REPORT_JSON = "report.json"
PER_LABEL_CSV = "per_label.csv"
GLCM_CSV = "glcm.csv"
FIGURES_DIR = "figures"
#: the generated images of a text-to-SAR evaluation: generated/<label>/<caption id>.tif
GENERATED_DIR = "generated"
TEXT_FILES = (TEXT_REPORT_JSON, PER_LABEL_CSV, GLCM_CSV)

#: report kind → (its files, the file that must exist for a folder to be that report)
KINDS = {
    "batch": (BATCH_FILES, EVALUATION_JSON),
    "downstream": (DOWNSTREAM_FILES, DOWNSTREAM_JSON),
    "text": (TEXT_FILES, TEXT_REPORT_JSON),
    "downstream-folders": (DOWNSTREAM_FOLDERS_FILES, DOWNSTREAM_FOLDERS_JSON),
}


def text_figure(kind: str, label_stem: str) -> str:
    """``figures/hist_<stem>.png`` / ``figures/glcm_<stem>.png`` of a text-to-SAR report."""
    return f"{FIGURES_DIR}/{kind}_{label_stem}.png"


def write_file(path: Path, data: bytes | str) -> Path:
    """One report file, atomically (text as UTF-8)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=f"{path.suffix}.part") as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return path


@register_artifact
@dataclass
class EvaluationReport(Artifact):
    """One report folder: ``files`` maps a file name (relative) to its content."""

    artifact: ClassVar[str] = "evaluation-report"
    what: ClassVar[str] = "evaluation report"
    FILES: ClassVar[tuple[str, ...]] = BATCH_FILES + DOWNSTREAM_FILES + TEXT_FILES + DOWNSTREAM_FOLDERS_FILES

    folder: Path
    kind: str
    files: dict[str, bytes | str] = field(default_factory=dict)

    def save(self, folder: str | os.PathLike[str] | None = None) -> dict[str, Path]:
        """Write every file (the kind's main file last: a reader that sees it sees a whole report)."""
        folder = Path(folder) if folder is not None else self.folder
        folder.mkdir(parents=True, exist_ok=True)
        main = KINDS[self.kind][1]
        order = sorted(self.files, key=lambda n: n == main)
        return {name: write_file(folder / name, self.files[name]) for name in order}

    @classmethod
    def load(cls, folder: str | os.PathLike[str], kind: str = "batch") -> "EvaluationReport":
        folder = Path(folder)
        if kind not in KINDS:
            raise FormatError(f"unknown report kind {kind!r}; one of {', '.join(KINDS)}")
        names, main = KINDS[kind]
        if not (folder / main).is_file():
            raise FormatError(f"{folder} is not a {kind} evaluation report (no {main})")
        files: dict[str, bytes | str] = {}
        for name in names:
            path = folder / name
            if path.is_file():
                files[name] = path.read_bytes() if path.suffix == ".png" else path.read_text(encoding="utf-8")
        return cls(folder, kind, files)
