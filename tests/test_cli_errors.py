"""The ``sarviz`` entry point: a SarvizError (or OSError) is one line for the user; any other
exception is a bug — one "internal error, please report" line without paths, or its traceback
under SARVIZ_DEBUG=1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sarviz import cli
from sarviz.errors import CliError, DatasetError, SarvizError

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], debug: bool = False, code: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SARVIZ_DEBUG", None)
    if debug:
        env["SARVIZ_DEBUG"] = "1"
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "sarviz.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_every_error_class_is_a_sarviz_error_and_none_a_plain_value_error():
    import inspect

    import sarviz.errors as errors

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, BaseException)]
    assert len(classes) > 10
    for c in classes:
        assert issubclass(c, SarvizError), c
        # CalibrationError alone is also a ValueError (its readers parse numbers in one try)
        assert not issubclass(c, ValueError) or c is errors.CalibrationError, c
    assert cli.CliError is CliError  # commands import it from sarviz.cli


def test_user_error_is_one_line_through_the_real_entry_point(tmp_path):
    missing = tmp_path / "no-such-dataset"
    out = run_cli(["dataset", "info", str(missing)])
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sarviz dataset: error: ") and "does not exist" in lines[0]
    assert "Traceback" not in out.stderr

    debug = run_cli(["dataset", "info", str(missing)], debug=True)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "DatasetError" in debug.stderr


BUG = (
    "import sys, sarviz.commands.dataset as d\n"
    "def boom(args): raise KeyError('/srv/secret/server/path')\n"
    "d._info = boom  # a command with a bug: the entry point must not pass it off as a user error\n"
    "from sarviz.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_internal_error_is_reported_as_one_line_without_paths():
    out = run_cli(["dataset", "info", "x"], code=BUG)
    assert out.returncode == 70
    lines = out.stderr.strip().splitlines()
    assert lines == [f"sarviz dataset: {cli.INTERNAL_ERROR} [KeyError]"]
    assert "secret" not in out.stderr and "Traceback" not in out.stderr

    debug = run_cli(["dataset", "info", "x"], debug=True, code=BUG)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "/srv/secret/server/path" in debug.stderr


def test_value_error_is_no_longer_a_user_error(monkeypatch, capsys):
    import sarviz.commands.dataset as d

    def bug(args):
        raise ValueError("could not convert string to float: 'x'")

    monkeypatch.delenv("SARVIZ_DEBUG", raising=False)
    monkeypatch.setattr(d, "_info", bug)
    assert cli.main(["dataset", "info", "x"]) == 70
    assert "internal error" in capsys.readouterr().err
    monkeypatch.setenv("SARVIZ_DEBUG", "1")
    with pytest.raises(ValueError):
        cli.main(["dataset", "info", "x"])


def test_sarviz_error_and_os_error_keep_their_one_line(monkeypatch, capsys, tmp_path):
    import sarviz.commands.dataset as d

    monkeypatch.delenv("SARVIZ_DEBUG", raising=False)
    monkeypatch.setattr(d, "_info", lambda args: (_ for _ in ()).throw(DatasetError("the dataset is empty")))
    assert cli.main(["dataset", "info", "x"]) == 2
    assert capsys.readouterr().err.strip() == "sarviz dataset: error: the dataset is empty"
    monkeypatch.setattr(d, "_info", lambda args: open(tmp_path / "none" / "f"))
    assert cli.main(["dataset", "info", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sarviz dataset: error: ") and "No such file or directory" in err
    monkeypatch.setattr(d, "_info", lambda args: (_ for _ in ()).throw(CliError("bad flag", code=3)))
    assert cli.main(["dataset", "info", "x"]) == 3


def test_bad_settings_are_a_config_error(monkeypatch, tmp_path):
    from sarviz.errors import ConfigError
    from sarviz.settings import Settings

    monkeypatch.setenv("SARVIZ_NETWORK_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="SARVIZ_NETWORK_TIMEOUT"):
        Settings.load(tmp_path / "none.toml")
    monkeypatch.delenv("SARVIZ_NETWORK_TIMEOUT")
    (tmp_path / "bad.toml").write_text("scenes = [unclosed\n")
    with pytest.raises(ConfigError, match="bad.toml"):
        Settings.load(tmp_path / "bad.toml")
