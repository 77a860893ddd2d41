"""`sarviz generate-text`, `sarviz evaluate-text` and `sarviz train sarclip` end to end on tiny models."""

from __future__ import annotations

import json

import pytest

from sarviz.cli import main

from _text_fixtures import (
    one_torch_thread,  # noqa: F401  (fixture)
    tiny_text_model,
    write_captioned,
    write_tiny_clip,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_text_model(tmp_path_factory.mktemp("m"), kind="sd15", unet="lora")


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path / "home"))


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_text_writes_geotiff_png_and_prints_provenance(model, tmp_path, capsys):
    out = tmp_path / "port.tif"
    code, stdout, stderr = _run(
        capsys,
        "generate-text",
        "--prompt",
        "a port with ships",
        "--weights",
        str(model.run),
        "--steps",
        "2",
        "--seed",
        "7",
        "--out",
        str(out),
    )
    assert code == 0, stderr
    prov = json.loads(stdout)
    assert prov["seed"] == 7 and prov["prompt"] == "<SAR> a port with ships" and prov["token_prepended"] is True
    assert prov["steps"] == 2 and "learned_embeds" in prov["weights_sha256"] and prov["scheduler"]
    assert out.is_file() and out.with_suffix(".png").is_file()
    assert "step 2/2" in stderr


def test_generate_text_batch_names_files_by_index(model, tmp_path, capsys):
    out = tmp_path / "batch.tif"
    code, stdout, stderr = _run(
        capsys,
        "generate-text",
        "--prompt",
        "a forest",
        "--weights",
        str(model.run),
        "--base",
        str(model.base),
        "--steps",
        "1",
        "--num-images",
        "2",
        "--seed",
        "3",
        "--out",
        str(out),
    )
    assert code == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert [p["seed"] for p in lines] == [3, 4]
    assert (tmp_path / "batch_0.tif").is_file() and (tmp_path / "batch_1.tif").is_file() and not out.exists()
    assert "batch_0.tif … batch_1.tif" in stderr and "seeds 3 … 4" in stderr


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--prompt", "   "], "prompt is empty"),
        (["--prompt", "a field", "--width", "100", "--height", "64"], "not divisible by 8"),
        (["--prompt", "speckle " * 120], "would be cut"),
        (["--prompt", "a field", "--model", "emulator"], "needs a text-to-sar model"),
    ],
)
def test_generate_text_errors_are_one_line(model, tmp_path, capsys, extra, message):
    argv = ["generate-text", "--steps", "1", "--out", str(tmp_path / "x.tif")] + extra
    if "--model" not in extra:
        argv += ["--weights", str(model.run)]
    code, stdout, stderr = _run(capsys, *argv)
    assert code == 2 and message in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()[-1]) < 300


@pytest.mark.slow  # ~23 s: SAR-CLIP fine-tuning and a text evaluation on a busy 2-core machine
def test_evaluate_text_and_sarclip(model, tmp_path, capsys):
    data = write_captioned(tmp_path / "captioned", n_per_label=6, size=64, splits=("train", "validation", "test"))
    report = tmp_path / "report"
    code, stdout, stderr = _run(
        capsys,
        "evaluate-text",
        "--weights",
        str(model.run),
        "--data",
        str(data),
        "--per-label",
        "1",
        "--steps",
        "1",
        "--out",
        str(report),
    )
    assert code == 0, stderr
    assert "SAR-CLIP alignment not computed" in stdout and "missing" in stdout
    doc = json.loads((report / "report.json").read_text())
    assert [row["label"] for row in doc["labels"]] == ["built", "trees", "water", "all"]
    assert all(row["kl"] > 0 and row["n_generated"] == (3 if row["label"] == "all" else 1) for row in doc["labels"])
    assert doc["sarclip"]["rows"] == []
    assert (report / "per_label.csv").read_text().startswith("label,pol,n_real")
    assert (report / "figures" / "hist_trees_VV.png").is_file() and (report / "generated" / "trees").is_dir()

    clip_out = tmp_path / "sarclip"
    code, stdout, stderr = _run(
        capsys,
        "train",
        "sarclip",
        "--data",
        str(data),
        "--base",
        str(write_tiny_clip(tmp_path / "clip-base")),
        "--out",
        str(clip_out),
        "--epochs",
        "4",
        "--batch-size",
        "8",
        "--learning-rate",
        "1e-3",
    )
    assert code == 0, stderr
    losses = json.loads(stdout)
    assert losses["train_losses"][-1] < losses["train_losses"][0] and len(losses["val_losses"]) == 4
    assert (clip_out / "sarclip_info.json").is_file()

    code, stdout, stderr = _run(
        capsys,
        "evaluate-text",
        "--weights",
        str(model.run),
        "--data",
        str(data),
        "--per-label",
        "6",
        "--steps",
        "1",
        "--sarclip",
        str(clip_out),
        "--json",
        "--out",
        str(tmp_path / "report2"),
    )
    assert code == 0, stderr
    doc = json.loads(stdout)
    rows = {(r["label"], r["images"]): r for r in doc["sarclip"]["rows"]}
    assert rows[("all", "real")]["ranked_pairs"] == 18 and rows[("all", "generated")]["ranked_pairs"] == 18
    assert 1 <= rows[("all", "real")]["rank_mean"] <= 16
    assert rows[("trees", "real")]["ranked_pairs"] == 6 and rows[("trees", "generated")]["cosine_mean"] is not None
