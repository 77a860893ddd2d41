"""Shared fixtures: the ../shared sample data, an imported sample scene folder, tiny scenes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# Tests run tiny models: the per-machine dtype measurement (a full-size UNet block, seconds)
# is exercised by tests/test_dtype_choice.py with injected timings, not on every generate.
os.environ.setdefault("SARVIZ_DTYPE_MEASURE", "0")

ROOT = Path(__file__).resolve().parents[1]
# SARVIZ_SHARED: another place for ../shared (a worktree checked out away from it)
SHARED = Path(os.environ.get("SARVIZ_SHARED") or ROOT.parent / "shared")
SAMPLES = SHARED / "samples"
SPAIN_LATLON = (38.1058, -0.7589)  # centre of the Sen1Floods11 Spain_7370579 chip

# fixtures every test may ask for by name, without importing them: the study databases (sqlite_url,
# postgres_url, postgres_base_url), the session's tiny models (tiny_ckpt, tiny_sd15_base, tiny_sdxl_base,
# tiny_sd3_base: tests/tiny_models.py) and the session's one local Ray (ray_local). Helper functions stay
# plain imports from tests/_*.py.
pytest_plugins = ["_study_fixtures", "tiny_models", "_ray_fixtures"]


def pytest_sessionfinish(session, exitstatus):  # noqa: ANN001, ANN201, ARG001
    """Stop the Chromium the browser tests share (tests/_browser.py), if any test started it."""
    import sys

    browser = sys.modules.get("_browser")
    if browser is not None:
        browser.close_shared_browser()


@pytest.fixture(scope="session", autouse=True)
def library_log_handlers_on_the_session_stderr():
    """transformers and diffusers give their loggers a StreamHandler on ``sys.stderr`` the first time
    one is asked for. Inside a test that captures with ``capsys`` that stream is the test's capture,
    closed when the test ends, and every later library warning becomes a "--- Logging error ---"
    traceback on stderr — which CLI tests that assert "no Traceback" then see (it depends on which
    test first touched the library: the test order of a pytest-xdist worker). Configure them here,
    on the session's stderr."""
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    transformers_logging.get_logger("transformers")
    diffusers_logging.get_logger("diffusers")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared (sample Sentinel data and reference configs) is not beside the repo")
    return SHARED


@pytest.fixture(scope="session")
def samples_dir(shared_dir: Path) -> Path:
    if not SAMPLES.is_dir():
        pytest.skip("../shared/samples is missing")
    return SAMPLES


@pytest.fixture(scope="session")
def sample_scenes(samples_dir: Path, tmp_path_factory) -> Path:
    """A scene folder with every sample of ../shared/samples imported (built once a session)."""
    from sarviz.importers import import_scenes

    folder = tmp_path_factory.mktemp("scenes")
    report = import_scenes(samples_dir, folder)
    assert not report.problems, report.problems
    return folder


@pytest.fixture(scope="session")
def sample_workbench(sample_scenes: Path, tmp_path_factory) -> str:
    """One `streamlit run app.py` on the imported samples (local sources only) for the map-page
    browser tests of the session; its base URL. Every test opens its own browser context, hence
    its own Streamlit session: a server start and the app's first imports are paid once."""
    from _browser import require_browser, run_streamlit

    require_browser()
    env = {
        "SARVIZ_SCENES": str(sample_scenes),
        "SARVIZ_HOME": str(tmp_path_factory.mktemp("workbench-home")),
        "SARVIZ_SOURCES": "local",
    }
    with run_streamlit("app.py", env=env) as url:
        yield url


def make_scene(
    crs="EPSG:32633",
    origin=(400_000.0, 5_340_000.0),
    res=10.0,
    size=(64, 64),
    seed=0,
    layers=("optical", "vv_db", "vh_db", "angle_deg", "embedding"),
    scene_id="tiny",
):
    """A small scene with random but plausible layers (tests build their data by code)."""
    from sarviz.scene import Scene

    rng = np.random.default_rng(seed)
    h, w = size
    data = {
        "optical": rng.uniform(0.01, 0.4, (4, h, w)),
        "vv_db": rng.normal(-11, 3, (h, w)),
        "vh_db": rng.normal(-18, 3, (h, w)),
        "angle_deg": np.tile(np.linspace(30, 45, w), (h, 1)),
        "embedding": (lambda e: e / np.linalg.norm(e, axis=0, keepdims=True))(rng.normal(0, 1, (64, h, w))),
    }
    return Scene(
        crs=crs,
        transform=Affine(res, 0, origin[0], 0, -res, origin[1]),
        width=w,
        height=h,
        scene_id=scene_id,
        dates={"s1": "2024-06-01T05:00:00"},
        provenance={"source": "test"},
        **{k: v for k, v in data.items() if k in layers},
    )


@pytest.fixture
def tiny_scene():
    return make_scene()
