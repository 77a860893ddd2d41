"""`sarviz models`: list the model cards (the default) or `add` a trained run as a card."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sarviz.cli_args import deprecated_alias
from sarviz.errors import CliError, SarvizError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list model cards and whether their weights are present; `models add RUN` registers a trained run",
        description="`sarviz models` (or `models list`) lists the model cards; `sarviz models add RUN "
        "[--checkpoint N] [--model-id ID]` writes a card for a run of `sarviz train geo` "
        "(its latest checkpoint unless --checkpoint N) into SARVIZ_HOME/models, so it "
        "appears in `sarviz models`, `--model ID` and the app.",
    )
    _list_options(p, argparse.SUPPRESS)  # `sarviz models --json` lists, as before the group existed
    p.set_defaults(func=run_models, json=False, details=False)
    actions = p.add_subparsers(dest="models_action", metavar="ACTION")
    lst = actions.add_parser("list", help="list the model cards (the default)")
    _list_options(lst, argparse.SUPPRESS)
    lst.set_defaults(func=run_models)
    add = actions.add_parser("add", help="register a run of `sarviz train geo` as a model card")
    add.add_argument("checkpoint", metavar="RUN", help="a run folder (or one of its checkpoint-N folders)")
    add.add_argument(
        "--checkpoint",
        dest="step",
        type=int,
        default=None,
        metavar="N",
        help="which checkpoint (default: the run's latest)",
    )
    add.add_argument("--model-id", dest="model_id", help="the model id (default RUN-checkpoint-N)")
    add.add_argument("--force", action="store_true", help="replace a card of the same id")
    add.set_defaults(func=run_models_add)
    deprecated_alias(add, "--id", "--model-id")


def _list_options(p: argparse.ArgumentParser, default) -> None:  # noqa: ANN001
    # SUPPRESS: a sub-parser's default must not overwrite `sarviz models --json` given before `list`
    p.add_argument("--json", action="store_true", default=default, help="one JSON object per model")
    p.add_argument(
        "--details",
        action="store_true",
        default=default,
        help="for models that cannot run: every missing file and how to get the weights",
    )


def run_checkpoint(run: str, step: int | None = None) -> Path:
    """The checkpoint folder ``--weights RUN [--checkpoint N]`` means: RUN's latest ``checkpoint-N``, or
    step N; a checkpoint folder given directly is taken as it is."""
    from sarviz.formats.training_run import list_checkpoints

    folder = Path(run).expanduser()
    if not folder.is_dir():
        raise CliError(f"{run}: not a folder (give a run folder of `sarviz train`)")
    found = dict(list_checkpoints(folder))
    if not found:
        if step is None:
            return folder  # a checkpoint folder itself
        raise CliError(f"{run}: no checkpoint-N folders, so --checkpoint {step} names nothing")
    if step is None:
        return found[max(found)]
    if step not in found:
        raise CliError(f"{run}: no checkpoint-{step} (there are {', '.join(str(n) for n in sorted(found))})")
    return found[step]


def run_models_add(args: argparse.Namespace) -> int:
    """Register a trained checkpoint as a model card in SARVIZ_HOME/models (atomically)."""
    from sarviz.atomic import atomic_path
    from sarviz.registry import ModelRegistry, home_models_dir
    from sarviz.training.runs import geo_model_card

    if not args.checkpoint:
        raise CliError("models add needs a run folder: sarviz models add RUN [--checkpoint N]")
    ckpt = run_checkpoint(args.checkpoint, args.step)
    try:
        card = geo_model_card(ckpt, model_id=args.model_id)
    except (SarvizError, OSError, ValueError, KeyError) as exc:
        raise CliError(f"{args.checkpoint}: not a sarviz geo checkpoint ({exc})") from None
    model_id = str(card["id"])
    if not model_id or not all(c.isalnum() or c in "-_." for c in model_id) or model_id.startswith("."):
        raise CliError(f"model id {model_id!r}: use letters, digits, '-', '_' and '.'")
    existing = ModelRegistry().cards.get(model_id)
    target = home_models_dir() / f"{model_id}.json"
    if existing is not None and (existing.path.resolve() != target.resolve() or not args.force):
        raise CliError(
            f"a model {model_id!r} exists ({existing.path}); choose another --model-id"
            + ("" if existing.path.resolve() != target.resolve() else " or replace it with --force")
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(card, indent=2), encoding="utf-8")
    ModelRegistry().card(model_id)  # reads back: the card is valid where the app looks
    print(
        f"registered {model_id}: {target} (controlnet {card['weights']['controlnet']}); it appears in "
        f"`sarviz models`, `sarviz generate --model {model_id}` and the app's model pickers"
    )
    return 0


def run_models(args: argparse.Namespace) -> int:
    from sarviz.generators.runtime import card_readiness
    from sarviz.registry import ModelRegistry

    registry = ModelRegistry()
    for problem in registry.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if not registry.cards:
        raise CliError(f"no model cards in {', '.join(str(f) for f in registry.folders)}")
    hidden = False
    for card in registry.cards.values():
        state = card_readiness(card)
        problem = state.message
        short = state.problem if problem and state.problem != problem else None
        if args.json:
            print(
                json.dumps(
                    {
                        "id": card.id,
                        "name": card.name,
                        "kind": card.kind,
                        "card": str(card.path),
                        "ready": problem is None,
                        "problem": problem,
                        "licence": card.get("licence"),
                    }
                )
            )
        else:
            state = "ready" if problem is None else "weights missing"
            print(f"{card.id:<20} {card.kind:<16} {state:<16} {card.name}")
            if problem:
                print(f"    {problem if args.details or not short else short}")
                hidden = hidden or bool(short and not args.details)
    if hidden:
        print("(`sarviz models --details` lists the missing files and how to get the weights)")
    return 0
