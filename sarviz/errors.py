"""The errors sarviz raises for people: each message says what went wrong and why.

They live in this dependency-free module (and are re-exported where they belong:
``sarviz.scene.SceneError``, ``sarviz.generators.base.GenerationError``,
``sarviz.study.db.StudyError``) so that the command line can recognise them without
importing rasterio, torch or SQLAlchemy — a command imports only what it uses.
"""

from __future__ import annotations


class SceneError(Exception):
    """A scene or scene file cannot be used; the message says why, for a person."""


class GenerationError(Exception):
    """Generation cannot run or failed; the message says why and what to do."""


class GenerationCancelled(GenerationError):
    """The user cancelled a running generation."""


class WeightsMissing(GenerationError):
    """A model card points at weights that are not on this machine."""


class StudyError(Exception):
    """A study operation cannot be done; the message says why, for a person."""
