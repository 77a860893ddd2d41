"""A non-editable install ships the model cards and the emulator weights, and the registry finds them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_the_models_and_the_registry_finds_the_emulator(tmp_path):
    src = tmp_path / "src"  # build from a copy: setuptools writes build/ and *.egg-info beside pyproject.toml
    shutil.copytree(
        ROOT,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".cache", "tests", "benchmarks", "docs", "build", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    wheel = next(wheels.glob("sarviz-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"sarviz/models/emulator.json", "sarviz/models/emulator_radiometric.safetensors"} <= names
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SARVIZ_MODELS")}
    env.update(PYTHONPATH=str(site), SARVIZ_HOME=str(tmp_path / "home"))
    code = (
        "import sarviz, sarviz.registry as r; assert sarviz.__file__.startswith(%r), sarviz.__file__; "
        "card = r.ModelRegistry().card('emulator'); g = r.build_generator(card); "
        "print(card.kind, g.readiness().ready)"
    ) % str(site)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["emulator", "True"]
