"""Old flag spellings that keep working: :func:`deprecated_alias`.

The CLI grammar (docs/cli.md) names every knob once. A renamed flag keeps its old spelling as a
hidden alias of the new option: the same argparse action parses it (so ``required`` and
``choices`` behave exactly as for the new name), ``--help`` does not show it, and using it prints
one line on stderr naming the new spelling. Training modules register their options here too (a
library layer: this module imports only the standard library).
"""

from __future__ import annotations

import argparse
import sys

#: the attribute on an action holding {old spelling: new spelling}
_ALIASES = "_sarviz_deprecated"
_wrapped: dict[type, type] = {}


def _deprecating(cls: type) -> type:
    """A subclass of the action class ``cls`` that prints the notice when called under an old spelling."""
    if cls not in _wrapped:

        def __call__(self, parser, namespace, values, option_string=None):
            new = getattr(self, _ALIASES, {}).get(option_string)
            if new is not None:
                print(f"{parser.prog}: {option_string} is deprecated, use {new}", file=sys.stderr)
                option_string = new
            return cls.__call__(self, parser, namespace, values, option_string)

        _wrapped[cls] = type(cls.__name__, (cls,), {"__call__": __call__})
    return _wrapped[cls]


def deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Let ``old`` (e.g. ``--to``) parse as the existing option ``new`` (e.g. ``--out``), with a notice."""
    action = parser._option_string_actions.get(new)
    if action is None:
        raise ValueError(f"{parser.prog}: no option {new} to alias {old} to")
    if old in parser._option_string_actions:
        raise ValueError(f"{parser.prog}: {old} is already an option")
    # argparse looks option strings up in this table; help lists action.option_strings only
    parser._option_string_actions[old] = action
    action.__class__ = _deprecating(type(action))
    if getattr(action, _ALIASES, None) is None:
        setattr(action, _ALIASES, {})
    getattr(action, _ALIASES)[old] = new


def deprecated_aliases(action: argparse.Action) -> dict[str, str]:
    """{old spelling: new spelling} registered on ``action`` (for the grammar test and docs)."""
    return dict(getattr(action, _ALIASES, {}))
