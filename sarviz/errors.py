"""The errors sarviz raises for people: each message says what went wrong and why.

Every sarviz exception derives from :class:`SarvizError`. The command line turns a
``SarvizError`` (or an ``OSError``: full disk, missing file) into one line; anything else is
a bug and is reported as one ("internal error, please report"). None of these derives from
``ValueError``: a ``ValueError`` from the code or a library is a bug, not a user error.

They live in this dependency-free module (and are re-exported where they belong:
``sarviz.scene.SceneError``, ``sarviz.generators.base.GenerationError``,
``sarviz.study.db.StudyError``, ``sarviz.training.common.TrainError``, …) so that the command
line can recognise them without importing rasterio, torch or SQLAlchemy.
"""

from __future__ import annotations


class SarvizError(Exception):
    """Root of every sarviz error: a problem a person can fix, said in one line."""


class CliError(SarvizError):
    """An error for the user of the command line: printed without a traceback, exit code ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class ConfigError(SarvizError):
    """A setting (environment variable, config file, command-line value) cannot be used."""


class CalibrationError(SarvizError, ValueError):
    """A calibration (dB ranges) is not valid.

    Also a ``ValueError`` on purpose: a calibration is parsed from JSON together with
    ``float()`` conversions, and its readers catch both in one ``except ValueError``.
    """


class FormatError(SarvizError):
    """An artifact on disk (dataset, run, checkpoint, card, ...) is missing a file or is not valid."""


class SceneError(SarvizError):
    """A scene or scene file cannot be used; the message says why, for a person."""


class DatasetError(FormatError):
    """A dataset folder (patch dataset or captioned dataset) cannot be used; the message says why."""


class GenerationError(SarvizError):
    """Generation cannot run or failed; the message says why and what to do."""


class GenerationCancelled(GenerationError):
    """The user cancelled a running generation."""


class WeightsMissing(GenerationError):
    """A model card points at weights that are not on this machine."""

    #: the long form (paths, how to get the weights), for ``--details`` and the app's expander
    details: str | None = None


class TrainError(SarvizError):
    """A training problem a user can fix; the message is one line saying what and why."""


class MetricError(SarvizError):
    """The images cannot be compared; the message says why, for a person."""


class EmulatorError(SarvizError):
    """The emulator cannot use its input; the message says why, for a person."""


class EvaluationError(SarvizError):
    """An evaluation cannot run on its input (no items, unknown option); the message says why."""


class ClipMissing(EvaluationError):
    """No usable SAR-CLIP model; the message says what is missing."""


class BatchError(SarvizError):
    """A batch run cannot start or continue (folder made with other settings, busy, no workers)."""


class AccessDenied(SarvizError):
    """A request may not be served; the message says why, in one line, for a person."""


class StudyError(SarvizError):
    """A study operation cannot be done; the message says why, for a person."""
