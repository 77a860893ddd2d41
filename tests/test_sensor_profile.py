"""Sensor profile: ENL, HF ratio, histogram, GLCM of image sets and their distances (seed 003 evaluation aid)."""

from __future__ import annotations

import json

import numpy as np

from _migration_fixtures import speckle_amplitude, write_png
from sarviz.cli import main
from sarviz.metrics.sensor_profile import SensorProfile, profile_distance, sensor_profile


def _db(amp):
    return 20 * np.log10(amp)


def test_profile_separates_one_look_from_four_looks(tmp_path):
    one = sensor_profile("L1", [_db(speckle_amplitude(64, 1, s, pattern=False)) for s in range(3)])
    four = sensor_profile("L4", [_db(speckle_amplitude(64, 4, s + 10, pattern=False)) for s in range(3)])
    four_b = sensor_profile("L4b", [_db(speckle_amplitude(64, 4, s + 20, pattern=False)) for s in range(3)])
    assert 0.7 < one.enl_median < 1.4 and 3.0 < four.enl_median < 5.5
    assert profile_distance(four, four_b)["abs_delta_log_enl"] < profile_distance(four, one)["abs_delta_log_enl"]
    assert profile_distance(four, four_b)["histogram_kl"] < profile_distance(four, one)["histogram_kl"]
    assert set(one.glcm) == {"contrast", "homogeneity", "correlation", "entropy"}
    back = SensorProfile.read(one.write(tmp_path / "p.json"))
    assert back == one


def test_cli_table_and_json(tmp_path, capsys):
    for name, looks in (("ref", 4), ("content", 1)):
        (tmp_path / name).mkdir()
        for s in range(2):
            write_png(tmp_path / name / f"{s}.png", speckle_amplitude(64, looks, s + looks * 100))
    assert (
        main(["sensor-profile", str(tmp_path / "ref"), "--compare", f"content={tmp_path / 'content'}", "--json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["distances"]["content"]["abs_delta_log_enl"] > 0.5
    assert main(["sensor-profile", str(tmp_path / "ref"), "--compare", "content"]) == 2
    assert "NAME=DIR" in capsys.readouterr().err
