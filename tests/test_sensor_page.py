"""The Sensor page (AppTest): paths are checked against the allowed roots; a tiny migration runs as a job."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from _migration_fixtures import speckle_amplitude, write_png

from _text_fixtures import one_torch_thread, write_sd15_base  # noqa: F401  (fixture)

PAGE = "../pages/7_Sensor.py"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def env(tmp_path, monkeypatch):
    root = tmp_path / "data"
    base = write_sd15_base(root / "sd15")
    (root / "refs").mkdir()
    write_png(root / "content.png", speckle_amplitude(64, 8, 1))
    write_png(root / "refs" / "r.png", speckle_amplitude(64, 1, 2))
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SARVIZ_ROOTS", str(root))
    monkeypatch.setenv("SARVIZ_DEVICE", "cpu")
    return root, base


def test_sensor_page_refuses_outside_paths_and_runs_a_migration(env, tmp_path):
    root, base = env
    at = AppTest.from_file(PAGE, default_timeout=300)
    at.run()
    assert not at.exception, at.exception
    assert any("must come from you" in c.value for c in at.caption)
    at.text_input(key="sensor_base").input("/etc")
    at.text_input(key="sensor_content").input(str(root / "content.png"))
    at.text_input(key="sensor_refs").input(str(root / "refs"))
    at.button[0].click().run()
    assert any("outside the folders" in e.value for e in at.error)
    at.text_input(key="sensor_base").input(str(base))
    at.number_input[0].set_value(2)
    at.button[0].click().run()
    assert not at.exception, at.exception
    job = at.session_state["sensor_job"]
    job.wait(300)
    at.run()
    assert job.state["status"] == "done", job.state
    assert not at.exception, at.exception
    assert len(at.get("image")) >= 1  # before / after / reference (AppTest groups st.columns images)
    labels = [d.label for d in at.get("download_button")]
    assert "Download the migrated GeoTIFF" in labels
    frame = at.dataframe[0].value
    assert list(frame["set"]) == ["references", "content (before)", "migrated (after)"]
