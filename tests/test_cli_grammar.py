"""The CLI grammar (docs/cli.md), checked over every parser of `sarviz` as it is built today.

The rules are generic: a table of flag names and what they must be, and a list of spellings
that may only live on as hidden deprecated aliases. A command added later is checked by the
same rules without editing this file.
"""

from __future__ import annotations

import argparse
import re

import pytest

from sarviz.cli import build_parser, main
from sarviz.cli_args import deprecated_aliases

SWITCH, VALUE = "switch", "value"

#: flag → (kind, value type or None, meaning): the same name always means the same thing
GRAMMAR = {
    "--out": (VALUE, None, "where the command's output goes (file or folder)"),
    "--json": (SWITCH, None, "JSON on stdout instead of text"),
    "--json-out": (VALUE, None, "also write the JSON result to this file"),
    "--no-png": (SWITCH, None, "write only the GeoTIFF: a PNG preview beside --out is the default"),
    "--learning-rate": (VALUE, float, "learning rate of the denoiser / ControlNet (the main model)"),
    "--lora-rank": (VALUE, int, "LoRA rank of the denoiser / ControlNet"),
    "--lora-alpha": (VALUE, int, "LoRA alpha of the denoiser / ControlNet"),
    "--te-learning-rate": (VALUE, float, "text-encoder learning rate"),
    "--te-lora-rank": (VALUE, int, "text-encoder LoRA rank"),
    "--te-lora-alpha": (VALUE, int, "text-encoder LoRA alpha"),
    "--vae-learning-rate": (VALUE, float, "VAE learning rate"),
    "--noise-offset": (VALUE, float, "offset-noise γ"),
    "--augment": (SWITCH, None, "the trainer's data augmentation, --augment/--no-augment"),
    "--weights": (VALUE, None, "a training run folder"),
    "--checkpoint": (VALUE, int, "checkpoint-N of the run given with --weights"),
    "--controlnet-scale": (VALUE, float, "ControlNet conditioning scale"),
    "--seed": (VALUE, int, "random seed"),
    "--steps": (VALUE, int, "denoising steps"),
    "--guidance": (VALUE, float, "classifier-free guidance scale"),
    "--device": (VALUE, None, "torch device"),
    "--model": (VALUE, None, "a model card id"),
    "--model-id": (VALUE, None, "the id a new model card gets"),
    "--data": (VALUE, None, "an input dataset folder"),
    "--source": (VALUE, None, "where scenes come from"),
    "--s1-mode": (VALUE, None, "Sentinel-1: single acquisition or composite"),
    "--lat": (VALUE, None, "latitude in degrees"),
    "--lon": (VALUE, None, "longitude in degrees"),
    "--place": (VALUE, None, "a gazetteer place name"),
}

#: spellings that may exist only as hidden deprecated aliases (old name → the rule that replaced it)
RETIRED = [
    (r"--to", "--out for every output"),
    (r"--output(-.*)?|--out-dir|--dest.*|--save-to|--write-to", "--out for every output"),
    (r"--png", "one PNG polarity: --no-png"),
    (r"--lr(-unet|-te|-vae|-text-encoder)?", "--learning-rate / --te-learning-rate / --vae-learning-rate"),
    (r"--(unet|controlnet)-lora-(rank|alpha)", "--lora-rank / --lora-alpha"),
    (r"--offset-noise", "--noise-offset"),
    (r"--random-flip|--flip|--no-flip", "--augment/--no-augment"),
    (r"--cond(itioning)?-scale|--controlnet-conditioning-scale", "--controlnet-scale"),
    (r"--sources", "--source"),
    (r"--composite", "--s1-mode single|composite"),
    (r"--run|--run-dir", "--weights RUN"),
]

LONG_FLAG = re.compile(r"--[a-z0-9]+(-[a-z0-9]+)*")


def _parsers(parser: argparse.ArgumentParser, path=("sarviz",)):
    yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


PARSERS = list(_parsers(build_parser()))


def _options(parser):
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def _is_switch(action: argparse.Action) -> bool:
    return action.nargs == 0


def test_the_walk_reaches_every_command():
    names = {name for name, _ in PARSERS}
    for command in (
        "sarviz fetch",
        "sarviz generate",
        "sarviz train geo",
        "sarviz train text",
        "sarviz models",
        "sarviz models add",
        "sarviz emulator validate",
        "sarviz dataset build",
    ):
        assert command in names


@pytest.mark.parametrize("name,parser", PARSERS, ids=[n for n, _ in PARSERS])
def test_parser_follows_the_grammar(name, parser):
    problems = []
    for action in _options(parser):
        for flag in action.option_strings:
            if flag.startswith("--") and not LONG_FLAG.fullmatch(flag):
                problems.append(f"{flag}: long flags are lower-case words joined by '-'")
            for pattern, rule in RETIRED:
                if re.fullmatch(pattern, flag) and action.help is not argparse.SUPPRESS:
                    problems.append(f"{flag} is a retired spelling ({rule}); keep it only as a deprecated alias")
            public = (
                flag[len("--no-") :]
                if isinstance(action, argparse.BooleanOptionalAction) and flag.startswith("--no-")
                else flag
            )
            rule = GRAMMAR.get("--" + public.lstrip("-")) if public.startswith("--") else None
            if rule is None or action.help is argparse.SUPPRESS:
                continue
            kind, value_type, meaning = rule
            if kind == SWITCH and not _is_switch(action):
                # the one exception: `--json` with an optional legacy PATH (const=True is the switch)
                if not (flag == "--json" and action.nargs == "?" and action.const is True):
                    problems.append(f"{flag} must be a switch ({meaning})")
            if kind == VALUE and _is_switch(action):
                problems.append(f"{flag} must take a value ({meaning})")
            if value_type is not None and action.type not in (value_type, None):
                problems.append(f"{flag} must parse as {value_type.__name__}, not {action.type}")
            if (
                value_type is not None
                and action.type is None
                and action.default is not None
                and not isinstance(action.default, value_type)
            ):
                problems.append(f"{flag} must parse as {value_type.__name__}")
        for old, new in deprecated_aliases(action).items():
            if new not in action.option_strings:
                problems.append(f"alias {old} points at {new}, which is not a spelling of its option")
            if old in action.option_strings:
                problems.append(f"alias {old} shows in --help")
    flags = {f for a in _options(parser) for f in a.option_strings}
    if "--checkpoint" in flags and "--weights" not in flags and not name.endswith("models add"):
        problems.append("--checkpoint N only goes with --weights RUN (or `models add RUN`)")
    assert not problems, f"{name}: " + "; ".join(problems)


@pytest.mark.parametrize("name,parser", PARSERS, ids=[n for n, _ in PARSERS])
def test_every_alias_parses_as_its_new_spelling(name, parser, capsys):
    for action in _options(parser):
        for old, new in deprecated_aliases(action).items():
            # the alias is the same action: parsing finds it under the old spelling
            assert parser._option_string_actions[old] is action
            assert parser._option_string_actions[new] is action


def _parse(argv):
    return build_parser().parse_args(argv)


@pytest.mark.parametrize(
    "old,new,argv,dest,value",
    [
        ("--to", "--out", ["fetch", "--lat", "1", "--lon", "2", "{flag}", "scenes"], "out", "scenes"),
        ("--to", "--out", ["dataset", "build", "--scenes", "s", "{flag}", "ds"], "out", "ds"),
        ("--to", "--out", ["import", "src", "{flag}", "scenes"], "out", "scenes"),
        (
            "--lr",
            "--learning-rate",
            ["train", "geo", "--data", "d", "--base", "b", "--out", "o", "{flag}", "2e-4"],
            "lr",
            2e-4,
        ),
        (
            "--offset-noise",
            "--noise-offset",
            ["train", "geo", "--data", "d", "--base", "b", "--out", "o", "{flag}", "0.1"],
            "offset_noise",
            0.1,
        ),
        (
            "--lr-te",
            "--te-learning-rate",
            ["train", "text", "--data", "d", "--base", "b", "--out", "o", "{flag}", "1e-3"],
            "lr_te",
            1e-3,
        ),
        (
            "--unet-lora-rank",
            "--lora-rank",
            ["train", "text", "--data", "d", "--base", "b", "--out", "o", "{flag}", "4"],
            "lora_rank",
            4,
        ),
        (
            "--random-flip",
            "--augment",
            ["train", "text", "--data", "d", "--base", "b", "--out", "o", "{flag}"],
            "random_flip",
            True,
        ),
        (
            "--sources",
            "--source",
            ["batch", "--points", "p.csv", "--model", "m", "--out", "b", "{flag}", "auto"],
            "sources",
            "auto",
        ),
        ("--id", "--model-id", ["models", "add", "RUN", "{flag}", "mine"], "model_id", "mine"),
    ],
)
def test_old_spellings_still_work_with_a_notice(old, new, argv, dest, value, capsys):
    with_old = _parse([old if a == "{flag}" else a for a in argv])
    notice = capsys.readouterr().err
    assert f"{old} is deprecated, use {new}" in notice and notice.count("\n") == 1
    with_new = _parse([new if a == "{flag}" else a for a in argv])
    assert capsys.readouterr().err == ""
    assert getattr(with_old, dest) == getattr(with_new, dest)
    assert getattr(with_old, dest) == value or str(getattr(with_old, dest)) == value


def test_a_required_output_given_by_its_old_spelling_satisfies_required(capsys):
    # --out is required on fetch: the alias is the same action, so argparse counts it as given
    args = _parse(["fetch", "--lat", "1", "--lon", "2", "--to", "x"])
    assert str(args.out) == "x"
    with pytest.raises(SystemExit):
        _parse(["fetch", "--lat", "1", "--lon", "2"])
    assert "--out" in capsys.readouterr().err


def test_aliases_are_hidden_from_help(capsys):
    with pytest.raises(SystemExit):
        _parse(["fetch", "--help"])
    text = capsys.readouterr().out
    assert "--out" in text and "--to" not in text


def test_models_lists_by_default_and_as_list(capsys):
    assert main(["models", "--json"]) == 0
    by_default = capsys.readouterr().out
    assert main(["models", "list", "--json"]) == 0
    assert capsys.readouterr().out == by_default
    assert by_default.startswith("{") and '"id": "emulator"' in by_default


def test_models_add_takes_a_run_folder_and_its_latest_checkpoint(tmp_path):
    from sarviz.commands.models import run_checkpoint
    from sarviz.errors import CliError

    for n in (100, 2000, 500):
        (tmp_path / f"checkpoint-{n}").mkdir()
    assert run_checkpoint(str(tmp_path)).name == "checkpoint-2000"
    assert run_checkpoint(str(tmp_path), 500).name == "checkpoint-500"
    assert run_checkpoint(str(tmp_path / "checkpoint-100")).name == "checkpoint-100"
    with pytest.raises(CliError, match="no checkpoint-7"):
        run_checkpoint(str(tmp_path), 7)
