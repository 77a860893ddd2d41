"""`sarviz evaluate` on batch folders with known answers (generated = real, and distorted copies)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import rasterio

from _batch_fixtures import build_scene_folder, write_points_csv
from sarviz.batch.layout import BatchConfig, BatchFolder
from sarviz.batch.points import points_from_file


@pytest.fixture(scope="module")
def small_batch(tmp_path_factory):
    """A 6-item emulator batch (64 px, 1 seed) made inline (no Ray needed here)."""
    from sarviz.batch.engine import run_batch

    root = tmp_path_factory.mktemp("eval")
    pts = build_scene_folder(root / "scenes")
    chosen = [p for p in pts if p["id"].endswith(("_00", "_02", "_07"))]
    points = points_from_file(write_points_csv(root / "points.csv", chosen))
    summary = run_batch(points, BatchConfig(model="emulator", size=64, scenes=str(root / "scenes")), root / "batch",
                        engine="inline", progress=False)
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
    assert pooled_kl(entries, "VH", max_values=3000) == pytest.approx(0.0, abs=1e-9)  # sampled: same positions
    assert ev.summary["all"]["ssim_VV"]["ci_low"] == pytest.approx(1.0, abs=1e-6)
    assert ev.composite_items == 6  # the fixture's real layers are median composites, and flagged


def test_distortion_moves_every_metric_the_expected_way(small_batch, tmp_path):
    from sarviz.batch.evaluate import evaluate_batch

    def noisy(sigma):
        return lambda a, rng: a + rng.normal(0, sigma, a.shape).astype(np.float32)

    mild = evaluate_batch(_with_generated(small_batch, tmp_path / "mild", noisy(1.0)), engine="inline").summary["all"]
    strong = evaluate_batch(_with_generated(small_batch, tmp_path / "strong", noisy(4.0)), engine="inline").summary["all"]
    for p in ("VV", "VH"):
        assert 0 < mild[f"kl_{p}"]["mean"] < strong[f"kl_{p}"]["mean"]
        assert 1 > mild[f"ssim_{p}"]["mean"] > strong[f"ssim_{p}"]["mean"]
        assert 1 > mild[f"fsim_{p}"]["mean"] > strong[f"fsim_{p}"]["mean"]
        assert mild[f"std_sim_{p}"]["mean"] < strong[f"std_sim_{p}"]["mean"]
        lo, hi = strong[f"kl_{p}"]["ci_low"], strong[f"kl_{p}"]["ci_high"]
        assert lo <= strong[f"kl_{p}"]["mean"] <= hi
    # the memory-bounded pooled KL (a random equal share of each pair) stays near the exact one
    from sarviz.batch.evaluate import item_entries, pooled_kl

    entries = item_entries(BatchFolder(tmp_path / "strong"))
    exact = pooled_kl(entries, "VV")
    assert exact > 0 and pooled_kl(entries, "VV", max_values=12_000) == pytest.approx(exact, rel=0.15)


def test_cli_writes_tables_report_and_json(small_batch, tmp_path, capsys):
    from sarviz.cli import main

    out = tmp_path / "report"
    assert main(["evaluate", str(small_batch), "--engine", "inline", "--by", "region", "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["items"] == 6 and data["composite_real_items"] == 6
    assert set(data["summary"]) == {"all", "region=amazon_forest", "region=iowa_ag"}
    assert {r["polarisation"] for r in data["table1"]} == {"VV", "VH"}
    assert set(data["kl_by_class"]) == {"trees", "water", "crops", "built", "grass", "bare"} & set(data["kl_by_class"])
    for name in ("per_item.csv", "summary.csv", "table1.csv", "kl_by_class.csv", "evaluation.json", "report.md",
                 "metrics_boxplot.png", "kl_by_class.png"):
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
    assert main(["evaluate-downstream", str(small_batch), "--classes", "trees,built", "--input-size", "32",
                 "--epochs", "1", "--runs", "2", "--batch-size", "8", "--device", "cpu", "--out", str(out),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    res = result["models"]["resnet18"]
    for arm in ("real", "real+synthetic"):
        assert res[arm]["n"] == 2 and all(0.0 <= v <= 1.0 for v in res[arm]["values"])
        assert 0.0 <= res[arm]["ci_low"] <= res[arm]["mean"] <= res[arm]["ci_high"] <= 1.0
    assert res["gain"]["values"] == pytest.approx([s - r for s, r in zip(res["real+synthetic"]["values"],
                                                                         res["real"]["values"])])
    assert result["items"] == 4 and result["recipe"]["synthetic_per_real"] == [1]
    table = (out / "downstream.md").read_text()
    assert "| resnet18 | real data |" in table and "| resnet18 | real + synthetic |" in table
    assert len((out / "downstream.csv").read_text().splitlines()) == 1 + 4
    # a class the batch does not have: one clear line
    assert main(["evaluate-downstream", str(small_batch), "--classes", "trees,glacier"]) == 2
    assert "too few: glacier (0)" in capsys.readouterr().err
