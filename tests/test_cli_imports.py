"""Commands import only what they use: no torch (or piq, diffusers) for listing or measuring.

Each check runs a fresh interpreter — the only way to see a command's cold imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = (
    "torch",
    "torchvision",
    "piq",
    "diffusers",
    "transformers",
    "streamlit",
    "ray",
    "sqlalchemy",
    "rasterio",
    "pandas",
    "matplotlib",
)


def imported_by(args: list[str], tmp_path) -> set[str]:
    code = (
        "import sys, io, contextlib, json\n"
        "from sarviz.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        rc = main({args!r})\n"
        "    except SystemExit as e:\n"
        "        rc = e.code\n"
        f"print(json.dumps({{'rc': rc, 'mods': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    env = {**os.environ, "SARVIZ_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["rc"] in (0, None), (args, result, out.stderr)
    return set(result["mods"])


def test_help_imports_nothing_heavy(tmp_path):
    assert imported_by(["--help"], tmp_path) == set()
    assert imported_by(["study", "--help"], tmp_path) == set()


def test_scenes_and_models_do_not_import_torch(tmp_path):
    from conftest import make_scene
    from sarviz.scene import write_scene

    folder = tmp_path / "scenes"
    write_scene(make_scene(), folder / "tiny.tif")
    assert not {"torch", "sqlalchemy", "streamlit"} & imported_by(["scenes", str(folder)], tmp_path)
    assert not {"torch", "diffusers", "streamlit"} & imported_by(["models"], tmp_path)


def test_metrics_does_not_import_torch(tmp_path):
    from conftest import make_scene
    from sarviz.scene import write_scene

    write_scene(make_scene(size=(96, 96)), tmp_path / "real.tif")
    write_scene(make_scene(size=(96, 96), seed=3, scene_id="gen"), tmp_path / "gen.tif")
    mods = imported_by(["metrics", str(tmp_path / "real.tif"), str(tmp_path / "gen.tif"), "--json"], tmp_path)
    assert not {"torch", "torchvision", "piq", "pandas", "matplotlib"} & mods, mods
