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

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sarviz.errors import FormatError, GenerationError
from sarviz.formats.model_card import ModelCard, expand_card_path  # noqa: F401 - re-exported
from sarviz.settings import env, sarviz_home

if TYPE_CHECKING:  # the generator base imports rasterio; listing cards needs none of it
    from sarviz.generators.base import Generator

#: the shipped model cards: sarviz/models (in a checkout a symlink to the repository's models/; in an installed
#: wheel a copy, package data)
REPO_MODELS_DIR = Path(__file__).resolve().parent / "models"

# kind -> factory(card) -> Generator. Implementations register themselves on import.
_FACTORIES: dict[str, Callable[["ModelCard"], Generator]] = {}
# kind -> module that registers it (imported lazily so that torch loads only when needed)
_KIND_MODULES = {
    "controlnet-lora": "sarviz.generators.diffusion",
    "emulator": "sarviz.generators.emulator",
    "text-to-sar": "sarviz.generators.text",
    "text-to-sar-sd3": "sarviz.generators.text_sd3",
    "ad-migration": "sarviz.migration.migrate",
    "sar2sar": "sarviz.generators.sar2sar",
}


def register_kind(kind: str, factory: Callable[["ModelCard"], Generator]) -> None:
    _FACTORIES[kind] = factory


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
            for path in ModelCard.card_files(folder):
                try:
                    card = ModelCard.load(path)  # checks the card's field types (one line a problem)
                except FormatError as exc:
                    self.problems.append(f"{exc}; ignored")
                    continue
                if not is_shipped and card.id in shipped:
                    # a user card named like a shipped one silently replaced it (and broke the default)
                    self.problems.append(
                        f"{path}: id {card.id!r} is the id of a card shipped with sarviz; "
                        "ignored — give your card another id"
                    )
                    continue
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


def home_models_dir() -> Path:
    """``SARVIZ_HOME/models``: where ``sarviz models add`` registers trained runs."""
    return sarviz_home() / "models"


def default_model_dirs() -> list[Path]:
    """The repository's ``models/``, ``SARVIZ_HOME/models`` (runs registered with ``sarviz models
    add``) and ``SARVIZ_MODELS`` (os.pathsep-separated)."""
    dirs = [REPO_MODELS_DIR, home_models_dir()]
    extra = env("SARVIZ_MODELS", "") or ""
    dirs += [Path(p) for p in extra.split(os.pathsep) if p]
    return dirs
