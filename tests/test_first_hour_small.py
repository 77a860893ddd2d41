"""Smaller confusions of the first hour, each checked where it was said wrong."""

from __future__ import annotations


def test_pool_size_warning_names_smaller_and_larger_images_apart():
    from sarviz.study.pool import native_size_warnings

    # 2 real chips of 120 px and one of 512 px, against generated images of 256 px
    items = [("real", 120), ("real", 120), ("real", 512), ("ours", 256), ("ours", 256)]
    real = [w for w in native_size_warnings(items) if " real image" in w]
    assert any(w.startswith("2 of 3 real image(s) are natively about 120 px") for w in real), real
    assert any(w.startswith("1 of 3 real image(s) are natively about 512 px") for w in real), real
    assert not any("3 of 3" in w for w in real)


def test_study_admin_grey_display_label_says_the_range_it_renders():
    from sarviz.study.design import StudyDesign
    from sarviz.ui.study import _vv_grey_label

    lo, hi = StudyDesign().vv_range_db
    assert _vv_grey_label() == f"VV, grey (fixed {lo:g}…{hi:g} dB)".replace("-", "−")
    assert "…0 dB" in _vv_grey_label()  # what the images use, not −25…5


def test_batch_page_names_the_setting_that_exists(tmp_path, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path))
    monkeypatch.setenv("SARVIZ_BATCHES", str(tmp_path / "batches"))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "pages" / "6_Batch.py"), default_timeout=60)
    at.run()
    text = " ".join(c.value for c in at.caption)
    assert "SARVIZ_BATCHES" in text and "SARVIZ_BATCH_ROOTS" not in text


def test_a_junk_upload_error_shows_no_server_path():
    import pytest

    from sarviz.metrics.report import MetricError, read_sar_file

    with pytest.raises(MetricError) as err:
        read_sar_file(b"this is not a GeoTIFF at all" * 10, "upload junk.tif")
    assert "/vsimem" not in str(err.value) and "upload junk.tif: not a readable GeoTIFF" in str(err.value)


def test_study_admin_messages_keep_file_names_as_spelled():
    from sarviz.ui.study import _say
    from sarviz.ui.text import shown

    # messages are escaped for markdown (they quote file names users chose); a reader sees them as spelled
    assert shown(_say("img_001.tif: only GeoTIFF and PNG")) == "img_001.tif: only GeoTIFF and PNG"
    assert shown(_say("pool lacks 2 real images")) == "Pool lacks 2 real images"


def test_imported_samples_say_their_sentinel1_is_one_acquisition(sample_scenes):
    """The samples' S1 are single GRD acquisitions (the Batch page said 'unknown' for them)."""
    from sarviz.metrics.provenance import real_s1_acquisition
    from sarviz.scene import read_scene
    from sarviz.store import SceneStore

    for entry in SceneStore(sample_scenes):
        prov = read_scene(entry.path).provenance
        assert real_s1_acquisition(prov)["mode"] == "single", entry.scene_id
