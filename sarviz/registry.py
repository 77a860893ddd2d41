"""Model registry: model cards under ``models/`` (one JSON file a model).

A card says what a model is and where its weights are; the generator implementation is
chosen by ``kind``. Cards are data (like diffusers configs); adding a model means adding a
card, not code.

Common card fields::

    {
      "id": "huiyanearth-sar",           # unique, used by --model and the UI
      "name": "HuiYanEarth-SAR (SD 1.5 + 65-ch ControlNet + LoRA)",
      "kind": "controlnet-lora",         # or "emulator"
      "licence": "...",
      "description": "...",
      ...kind-specific fields (weights, sampler defaults, preprocessing, output mapping)
    }

Relative paths inside a card resolve against the card's folder; ``~`` and ``$VARS`` are
expanded *only into a path that exists* (and never from variables that hold secrets), so a
card can never make sarviz print an environment variable: a missing path is reported as the
card wrote it (``${MODELS}/controlnet``), and ``how_to_get`` and every message stay raw text.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from sarviz.errors import GenerationError

if TYPE_CHECKING:  # the generator base imports rasterio; listing cards needs none of it
    from sarviz.generators.base import Generator

#: environment variables never expanded into card paths (their values must not reach any message)
_SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PASSWD", "PRIVATE")
_VAR = re.compile(r"\$(\w+|\{[^}]*\})")


def expand_card_path(value: str) -> str:
    """``~`` and ``$VAR``/``${VAR}`` expanded, except variables whose names mark secrets."""
    def one(m: re.Match) -> str:
        name = m.group(1).strip("{}")
        if any(w in name.upper() for w in _SECRET_WORDS):
            return m.group(0)
        return os.environ.get(name, m.group(0))

    return os.path.expanduser(_VAR.sub(one, value))

REPO_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"

# kind -> factory(card) -> Generator. Implementations register themselves on import.
_FACTORIES: dict[str, Callable[["ModelCard"], Generator]] = {}
# kind -> module that registers it (imported lazily so that torch loads only when needed)
_KIND_MODULES = {
    "controlnet-lora": "sarviz.generators.diffusion",
    "emulator": "sarviz.generators.emulator",
    "text-to-sar": "sarviz.generators.text",
}


def register_kind(kind: str, factory: Callable[["ModelCard"], Generator]) -> None:
    _FACTORIES[kind] = factory


@dataclass
class ModelCard:
    id: str
    name: str
    kind: str
    path: Path  # the card file
    data: dict[str, Any] = field(default_factory=dict)

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
        value = str(value)
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


#: the types a card's fields must have (fields not listed are each generator's business)
CARD_FIELD_TYPES: dict[str, tuple[type, ...]] = {"id": (str,), "kind": (str,), "name": (str,),
                                                 "weights": (dict, str), "licence": (str,), "description": (str,)}


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


class ModelRegistry:
    """All model cards found in one or more folders (later folders override earlier ids)."""

    def __init__(self, folders: list[Path] | None = None) -> None:
        self.folders = [Path(f) for f in (folders or default_model_dirs())]
        self.cards: dict[str, ModelCard] = {}
        self.problems: list[str] = []
        shipped: set[str] = set()
        for folder in self.folders:
            if not folder.is_dir():
                continue
            is_shipped = folder.resolve() == REPO_MODELS_DIR.resolve()
            for path in sorted(folder.glob("*.json")):
                try:
                    data = json.loads(path.read_text())
                except (OSError, ValueError) as exc:
                    self.problems.append(f"{path}: not a valid model card ({exc})")
                    continue
                wrong = card_type_problem(data)
                if wrong:
                    self.problems.append(f"{path}: not a valid model card ({wrong}); ignored")
                    continue
                if not is_shipped and data["id"] in shipped:
                    # a user card named like a shipped one silently replaced it (and broke the default)
                    self.problems.append(f"{path}: id {data['id']!r} is the id of a card shipped with sarviz; "
                                         "ignored — give your card another id")
                    continue
                card = ModelCard(id=data["id"], name=data.get("name", data["id"]), kind=data["kind"], path=path,
                                 data=data)
                if is_shipped:
                    shipped.add(card.id)
                self.cards[card.id] = card

    def ids(self) -> list[str]:
        return list(self.cards)

    def card(self, model_id: str) -> ModelCard:
        try:
            return self.cards[model_id]
        except KeyError:
            known = ", ".join(sorted(self.cards)) or "none"
            raise GenerationError(
                f"unknown model id {model_id!r}; known models: {known} "
                f"(cards are read from {', '.join(str(f) for f in self.folders)})"
            ) from None

    def generator(self, model_id: str) -> Generator:
        return build_generator(self.card(model_id))


def build_generator(card: ModelCard) -> Generator:
    if card.kind not in _FACTORIES and card.kind in _KIND_MODULES:
        __import__(_KIND_MODULES[card.kind])
    try:
        factory = _FACTORIES[card.kind]
    except KeyError:
        raise GenerationError(f"model card {card.path} has unknown kind {card.kind!r}") from None
    return factory(card)


def default_model_dirs() -> list[Path]:
    """The repository's ``models/`` plus ``SARVIZ_MODELS`` (os.pathsep-separated)."""
    dirs = [REPO_MODELS_DIR]
    extra = os.environ.get("SARVIZ_MODELS", "")
    dirs += [Path(p) for p in extra.split(os.pathsep) if p]
    return dirs
