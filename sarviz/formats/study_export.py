"""A study export folder (``sarviz study export CODE --out DIR``): the answers and the analysis.

::

    DIR/answers.csv    one row an answer (excluded ones marked)
    DIR/summary.csv    per level × source: scores and detection rates
    DIR/report.json    the whole analysis (seed 000 §4.3)
    DIR/fig7.png       the seed-000 Figure 7

Everything is rendered in memory first; each file is then written beside its target and
renamed over it, so a full disk or a read-only folder leaves every existing file as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from sarviz.errors import FormatError, StudyError
from sarviz.formats.base import Artifact, register_artifact
from sarviz.formats.evaluation_report import write_file

ANSWERS_CSV = "answers.csv"
SUMMARY_CSV = "summary.csv"
REPORT_JSON = "report.json"
FIGURE_PNG = "fig7.png"


@register_artifact
@dataclass
class StudyExport(Artifact):
    artifact: ClassVar[str] = "study-export"
    what: ClassVar[str] = "study export"
    FILES: ClassVar[tuple[str, ...]] = (ANSWERS_CSV, SUMMARY_CSV, REPORT_JSON, FIGURE_PNG)

    folder: Path
    answers_csv: str = ""
    summary_csv: str = ""
    report_json: str = ""
    figure_png: bytes = b""
    written: list[str] = field(default_factory=list)

    def _files(self) -> dict[str, bytes]:
        return {
            ANSWERS_CSV: self.answers_csv.encode("utf-8"),
            SUMMARY_CSV: self.summary_csv.encode("utf-8"),
            REPORT_JSON: self.report_json.encode("utf-8"),
            FIGURE_PNG: self.figure_png,
        }

    def save(self, folder: str | os.PathLike[str] | None = None) -> list[str]:
        """Write the four files; one-line :class:`StudyError` naming what was written before a failure."""
        out = Path(folder) if folder is not None else self.folder
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StudyError(f"cannot make the folder {out}: {exc.strerror or exc}") from None
        self.written = []
        for name, data in self._files().items():
            try:
                write_file(out / name, data)
            except OSError as exc:
                done = f"; written before it: {', '.join(self.written)}" if self.written else ""
                raise StudyError(
                    f"cannot write {out / name}: {exc.strerror or exc}; the existing file there is unchanged{done}"
                ) from None
            self.written.append(name)
        return list(self.written)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> "StudyExport":
        folder = Path(folder)
        missing = [n for n in cls.FILES if not (folder / n).is_file()]
        if missing:
            raise FormatError(f"{folder} is not a complete study export (missing {', '.join(missing)})")
        return cls(
            folder,
            (folder / ANSWERS_CSV).read_text(encoding="utf-8"),
            (folder / SUMMARY_CSV).read_text(encoding="utf-8"),
            (folder / REPORT_JSON).read_text(encoding="utf-8"),
            (folder / FIGURE_PNG).read_bytes(),
        )
