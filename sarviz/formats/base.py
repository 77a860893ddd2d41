"""The artifact base class and registry."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sarviz.errors import FormatError

A = TypeVar("A", bound=type)

#: artifact name → class; filled by :func:`register_artifact`
ARTIFACTS: dict[str, type["Artifact"]] = {}


class ArtifactMissing(FormatError):
    """The artifact (or one of its files) is not on disk at all."""


def register_artifact(cls: A) -> A:
    """Class decorator: add an artifact class to :data:`ARTIFACTS` under its ``name``."""
    name = getattr(cls, "artifact", None) or cls.__name__
    if name in ARTIFACTS and ARTIFACTS[name] is not cls:
        raise TypeError(f"artifact {name!r} is registered twice ({ARTIFACTS[name].__qualname__}, {cls.__qualname__})")
    ARTIFACTS[name] = cls
    return cls


class Artifact:
    """One on-disk object. Subclasses set ``artifact`` (its registry name), ``what`` (for messages), ``FORMAT`` (the
    ``format`` string in its metadata, if it has one) and ``FILES`` (the file names it owns),
    and implement ``save`` / ``load``."""

    artifact: ClassVar[str] = ""
    what: ClassVar[str] = "artifact"
    FORMAT: ClassVar[str | None] = None
    FILES: ClassVar[tuple[str, ...]] = ()


def read_json_object(
    path: Path, what: str, expected_format: str | None = None, error: type[FormatError] = FormatError
) -> dict[str, Any]:
    """A JSON object from ``path``; one-line ``error`` naming ``what`` it should be."""
    path = Path(path)
    if not path.is_file():
        raise (
            ArtifactMissing(f"{path} is missing: not a {what}")
            if error is FormatError
            else error(f"{path} is missing: not a {what}")
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path} is not a readable {what} ({exc})") from None
    if not isinstance(data, dict):
        raise error(f"{path} is not a {what} (not a JSON object)")
    if expected_format is not None and data.get("format") != expected_format:
        raise error(f"{path} has format {data.get('format')!r}, expected {expected_format!r}")
    return data


def fspath(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser()
