"""Model cards: one JSON file a model (``models/*.json``, ``$SARVIZ_MODELS/*.json``).

A card says what a model is and where its weights are; the generator implementation is
chosen by ``kind`` (:mod:`sarviz.registry`). Relative paths inside a card resolve against
the card's folder; ``~`` and ``$VARS`` are expanded *only into a path that exists* (and
never from variables that hold secrets), so a card can never make sarviz print an
environment variable.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sarviz.atomic import write_json
from sarviz.errors import FormatError
from sarviz.formats.base import Artifact, register_artifact

CARD_SUFFIX = ".json"
#: the name an in-memory card (a checkpoint or run given on the command line) claims in its folder
CARD_FILE = "card.json"
#: the shipped emulator's card in the repository's models/ (a refit copies its speckle and angle law)
SHIPPED_EMULATOR_CARD = "emulator.json"

#: environment variables never expanded into card paths (their values must not reach any message)
_SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PASSWD", "PRIVATE")
_VAR = re.compile(r"\$(\w+|\{[^}]*\})")


def expand_card_path(value: str) -> str:
    """``~`` and ``$VAR``/``${VAR}`` expanded, except variables whose names mark secrets."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1).strip("{}")
        if any(w in name.upper() for w in _SECRET_WORDS):
            return str(m.group(0))
        return os.environ.get(name, str(m.group(0)))

    return os.path.expanduser(_VAR.sub(one, value))


#: the types a card's fields must have (fields not listed are each generator's business)
CARD_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "kind": (str,),
    "name": (str,),
    "weights": (dict, str),
    "licence": (str,),
    "description": (str,),
}


def card_type_problem(data: Any) -> str | None:
    """What is wrong with a card's JSON as a card (types, required fields), or None."""
    if not isinstance(data, dict):
        return f"the file holds a JSON {type(data).__name__}, not an object"
    for key in ("id", "kind"):
        if key not in data:
            return f"no {key!r} field"
    for key, types in CARD_FIELD_TYPES.items():
        if key in data and not isinstance(data[key], types):
            return f"{key!r} must be {' or '.join(t.__name__ for t in types)}, not {type(data[key]).__name__}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", data["id"]):
        return f"'id' {data['id'][:40]!r} must be letters, digits, '.', '_' or '-' (at most 100)"
    return None


def _in_sarviz_home(value: str) -> str:
    """``~/.sarviz/…`` in a card means the sarviz home: SARVIZ_HOME when set (where training
    runs and weights go), so a card and a run made under another home find each other."""
    from sarviz.settings import sarviz_home

    if value == "~/.sarviz":
        return str(sarviz_home())
    if value.startswith("~/.sarviz/"):
        return str(sarviz_home() / value[len("~/.sarviz/") :])
    return value


@register_artifact
@dataclass
class ModelCard(Artifact):
    """A model card: ``load(path)`` reads and checks one, ``save(path)`` writes it atomically."""

    artifact: ClassVar[str] = "model-card"
    what: ClassVar[str] = "model card"
    FILES: ClassVar[tuple[str, ...]] = (CARD_FILE,)

    id: str
    name: str
    kind: str
    path: Path  # the card file
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "ModelCard":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FormatError(f"{path}: not a valid model card ({exc})") from None
        wrong = card_type_problem(data)
        if wrong:
            raise FormatError(f"{path}: not a valid model card ({wrong})")
        try:
            return cls(
                id=str(data["id"]), name=str(data.get("name", data["id"])), kind=str(data["kind"]), path=path, data=data
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FormatError(f"{path}: not a valid model card ({exc})") from None

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        path = Path(path) if path is not None else self.path
        if path.suffix != CARD_SUFFIX:
            raise FormatError(f"{path}: a model card file must end in {CARD_SUFFIX}")
        write_json(path, {**self.data, "id": self.id, "name": self.name, "kind": self.kind})
        return path

    @staticmethod
    def card_files(folder: str | os.PathLike[str]) -> list[Path]:
        """The card files of a model folder (every ``*.json`` in it), sorted."""
        return sorted(Path(folder).glob(f"*{CARD_SUFFIX}"))

    @property
    def folder(self) -> Path:
        return self.path.parent

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def resolve(self, value: str | None) -> str | None:
        """A path from the card: env vars and ~ expanded, relative to the card's folder.

        Strings that look like Hugging Face ids (``org/name`` that is not an existing
        path) are returned unchanged.
        """
        if value is None:
            return None
        value = _in_sarviz_home(str(value))
        expanded = expand_card_path(value)
        if expanded != os.path.expanduser(value):
            # Variables were expanded: keep the result only if it names something that exists,
            # else give the card's own text back, so a message about the missing path can never
            # show a variable's value (a card naming ${SOME_PASSWORD} printed the password).
            target = Path(expanded) if Path(expanded).is_absolute() else self.folder / expanded
            if not target.exists():
                expanded = os.path.expanduser(value)
        p = Path(expanded)
        if p.is_absolute():
            return str(p)
        local = self.folder / p
        if local.exists() or expanded.startswith("."):
            return str(local)
        return expanded
