"""`sarviz evaluate` on batch folders with known answers (generated = real, and distorted copies)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sarviz.batch.layout import BatchConfig, BatchFolder
from sarviz.batch.points import points_from_file

from _batch_fixtures import build_scene_folder, write_points_csv


@pytest.fixture(scope="module")
def small_batch(tmp_path_factory):
    """A 6-item emulator batch (64 px, 1 seed) made inline (no Ray needed here)."""
    from sarviz.batch.engine import run_batch

    root = tmp_path_factory.mktemp("eval")
    pts = build_scene_folder(root / "scenes")
    chosen = [p for p in pts if p["id"].endswith(("_00", "_02", "_07"))]
    points = points_from_file(write_points_csv(root / "points.csv", chosen))
    summary = run_batch(
        points,
        BatchConfig(model="emulator", size=64, scenes=str(root / "scenes")),
        root / "batch",
        engine="inline",
        progress=False,
    )
    assert summary.done == 6
    return root / "batch"


def _with_generated(src, dest, distort=None):
    """A copy of the batch whose generated image is the real crop (optionally distorted)."""
    from sarviz.batch.items import write_cog

    shutil.copytree(src, dest)
    folder = BatchFolder(dest)
    rng = np.random.default_rng(1)
    for item_id in folder.done_ids():
        real = folder.item_dir(item_id) / "real.tif"
        gen = folder.item_dir(item_id) / "generated_s000.tif"
        if distort is None:
            shutil.copyfile(real, gen)
            continue
        with rasterio.open(real) as r:
            data = distort(r.read().astype(np.float32), rng)
            write_cog(gen, data, ("VV", "VH"), r.crs, r.transform)
    return dest


def test_generated_equal_to_real_gives_the_known_answers(small_batch, tmp_path):
    from sarviz.batch.evaluate import evaluate_batch

    ev = evaluate_batch(_with_generated(small_batch, tmp_path / "same"), by="class", engine="inline")
    assert len(ev.rows) == 6 and not any(r["error"] for r in ev.rows)
    for r in ev.rows:
        for p in ("VV", "VH"):
            assert r[f"kl_{p}"] == pytest.approx(0.0, abs=1e-9)
            assert r[f"ssim_{p}"] == pytest.approx(1.0, abs=1e-6)
            assert r[f"fsim_{p}"] == pytest.approx(1.0, abs=1e-4)
            assert r[f"mean_sim_{p}"] == pytest.approx(0.0, abs=1e-7)
            assert r[f"enl_real_{p}"] == pytest.approx(r[f"enl_gen_{p}"])
    assert all(v["VV"] == pytest.approx(0.0, abs=1e-9) for v in ev.pooled_kl.values())
    from sarviz.batch.evaluate import item_entries, pooled_kl

    entries = item_entries(BatchFolder(tmp_path / "same"))
    assert pooled_kl(entries, "VH") == pytest.approx(0.0, abs=1e-9)
    assert ev.summary["all"]["ssim_VV"]["ci_low"] == pytest.approx(1.0, abs=1e-6)
    assert ev.composite_items == 6  # the fixture's real layers are median composites, and flagged


def test_distortion_moves_every_metric_the_expected_way(small_batch, tmp_path):
    from sarviz.batch.evaluate import evaluate_batch

    def noisy(sigma):
        return lambda a, rng: a + rng.normal(0, sigma, a.shape).astype(np.float32)

    mild = evaluate_batch(_with_generated(small_batch, tmp_path / "mild", noisy(1.0)), engine="inline").summary["all"]
    strong = evaluate_batch(_with_generated(small_batch, tmp_path / "strong", noisy(4.0)), engine="inline").summary[
        "all"
    ]
    for p in ("VV", "VH"):
        assert 0 < mild[f"kl_{p}"]["mean"] < strong[f"kl_{p}"]["mean"]
        assert 1 > mild[f"ssim_{p}"]["mean"] > strong[f"ssim_{p}"]["mean"]
        assert 1 > mild[f"fsim_{p}"]["mean"] > strong[f"fsim_{p}"]["mean"]
        assert mild[f"std_sim_{p}"]["mean"] < strong[f"std_sim_{p}"]["mean"]
        lo, hi = strong[f"kl_{p}"]["ci_low"], strong[f"kl_{p}"]["ci_high"]
        assert lo <= strong[f"kl_{p}"]["mean"] <= hi
    # the pooled KL: every real crop once against every generated image, each normalised on its own
    from sarviz.batch.evaluate import _read_vv_vh, item_entries, pooled_kl
    from sarviz.metrics.protocols import seed001_kl

    entries = item_entries(BatchFolder(tmp_path / "strong"))
    reals = [_read_vv_vh(Path(e["real"]))[0] for e in entries]
    gens = [_read_vv_vh(Path(p))[0] for e in entries for p in e["generated"].values()]
    pooled = pooled_kl(entries, "VV")
    assert pooled > 0 and pooled == pytest.approx(seed001_kl(reals, gens).kl, rel=1e-12)


def test_seed001_known_answer_through_evaluate(small_batch, tmp_path):
    """The seed-001 toy case through `sarviz evaluate`: four real crops at −20/−15/−10/−5 dB against
    four generated images at −12 dB with the same speckle → per-class KL 0.0049 (each image
    normalised by its own μ+3σ, then pooled), not the 3.50 of pooling raw dB first."""
    from sarviz.batch.evaluate import evaluate_batch
    from sarviz.batch.items import write_cog
    from sarviz.cli import main

    from _seed001_toy import KNOWN_KL, toy_sets

    dest = tmp_path / "toy"
    shutil.copytree(small_batch, dest)
    folder = BatchFolder(dest)
    real, generated = toy_sets()
    for k, item_id in enumerate(sorted(folder.done_ids())):
        path = folder.item_json(item_id)
        data = json.loads(path.read_text())
        data["properties"]["sarviz:class"] = "toy" if k < 4 else "other"
        path.write_text(json.dumps(data))
        if k >= 4:
            continue
        with rasterio.open(folder.item_dir(item_id) / "real.tif") as r:
            crs, transform = r.crs, r.transform
        write_cog(folder.item_dir(item_id) / "real.tif", np.stack([real[k], real[k] - 6]), ("VV", "VH"), crs, transform)
        write_cog(
            folder.item_dir(item_id) / "generated_s000.tif",
            np.stack([generated[k], generated[k] - 6]),
            ("VV", "VH"),
            crs,
            transform,
        )
    ev = evaluate_batch(dest, by="class", engine="inline")
    toy = ev.pooled_kl["toy"]
    assert toy["VV"] == pytest.approx(KNOWN_KL, abs=5e-5) and toy["VH"] == pytest.approx(KNOWN_KL, abs=5e-5)
    assert toy["n_items"] == 4 and toy["n_real_images"] == 4 and toy["n_generated_images"] == 4
    assert 0 < toy["saturated_real_VV"] < 0.05
    out = tmp_path / "report"
    assert main(["evaluate", str(dest), "--engine", "inline", "--by", "class", "--out", str(out)]) == 0
    import pandas as pd

    table = pd.read_csv(out / "kl_by_class.csv").set_index("class")
    assert table.loc["toy", "VV"] == pytest.approx(KNOWN_KL, abs=5e-5)
    assert "normalised by its own μ+3σ" in json.loads((out / "evaluation.json").read_text())["kl_by_class_protocol"]


def test_an_evaluation_worker_does_not_load_torch(small_batch):
    """Every Ray evaluation worker is a fresh process: an item's metrics are NumPy/SciPy (FSIM is a
    NumPy port), and importing torch there cost each worker seconds. A fresh interpreter shows it."""
    import subprocess
    import sys

    from _waits import patience

    code = (
        "import sys\n"
        "from sarviz.batch.evaluate import evaluate_item, item_entries\n"
        "from sarviz.batch.layout import BatchFolder\n"
        "rows = evaluate_item(item_entries(BatchFolder(sys.argv[1]))[0])\n"
        "assert rows and not any(r['error'] for r in rows) and rows[0]['fsim_VV'] is not None, rows\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(small_batch)], capture_output=True, text=True, timeout=patience(120)
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_cli_writes_tables_report_and_json(small_batch, tmp_path, capsys):
    from sarviz.cli import main

    out = tmp_path / "report"
    assert (
        main(["evaluate", str(small_batch), "--engine", "inline", "--by", "region", "--out", str(out), "--json"]) == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["items"] == 6 and data["composite_real_items"] == 6
    assert set(data["summary"]) == {"all", "region=amazon_forest", "region=iowa_ag"}
    assert {r["polarisation"] for r in data["table1"]} == {"VV", "VH"}
    assert set(data["kl_by_class"]) == {"trees", "water", "crops", "built", "grass", "bare"} & set(data["kl_by_class"])
    for name in (
        "per_item.csv",
        "summary.csv",
        "table1.csv",
        "kl_by_class.csv",
        "evaluation.json",
        "report.md",
        "metrics_boxplot.png",
        "kl_by_class.png",
    ):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "Table I layout" in report and "median composites" in report and "kl_by_class.png" in report
    # not a batch folder: one line, no traceback
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a sarviz batch folder" in capsys.readouterr().err


@pytest.mark.slow  # trains 4 ResNet18s (tiny input, 1 epoch)
def test_downstream_runs_both_arms_end_to_end_on_cpu(small_batch, tmp_path, capsys):
    from sarviz.cli import main

    out = tmp_path / "downstream"
    assert (
        main(
            [
                "evaluate-downstream",
                str(small_batch),
                "--classes",
                "trees,built",
                "--input-size",
                "32",
                "--epochs",
                "1",
                "--runs",
                "2",
                "--batch-size",
                "8",
                "--device",
                "cpu",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    res = result["models"]["resnet18"]
    for arm in ("real", "real+synthetic"):
        assert res[arm]["n"] == 2 and all(0.0 <= v <= 1.0 for v in res[arm]["values"])
        assert 0.0 <= res[arm]["ci_low"] <= res[arm]["mean"] <= res[arm]["ci_high"] <= 1.0
    assert res["gain"]["values"] == pytest.approx(
        [s - r for s, r in zip(res["real+synthetic"]["values"], res["real"]["values"])]
    )
    assert result["items"] == 4 and result["recipe"]["synthetic_per_real"] == [1]
    table = (out / "downstream.md").read_text()
    assert "| resnet18 | real data |" in table and "| resnet18 | real + synthetic |" in table
    assert len((out / "downstream.csv").read_text().splitlines()) == 1 + 4
    # a class the batch does not have: one clear line
    assert main(["evaluate-downstream", str(small_batch), "--classes", "trees,glacier"]) == 2
    assert "too few: glacier (0)" in capsys.readouterr().err
