"""SAR→SAR ControlNet: a few training steps on a tiny SD 1.5 lower the loss and write a run that
`render` loads; a multi-tile render has no seam, an exact georeference and complete provenance;
bad inputs fail in one line with nothing written (seed 002)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine

from sarviz.cli import main as cli_main
from sarviz.datasets.sar2sar_pairs import PairsOptions, build_pairs
from sarviz.errors import GenerationError, WeightsMissing
from sarviz.formats.sar2sar import RUN_FILE, RenderOutput, Sar2SarRun
from sarviz.generators.base import GenerationResult
from sarviz.generators.sar2sar import (
    Sar2SarRenderer,
    TransformRequest,
    plan_tiles,
    render_file,
)
from sarviz.sar2sar.resample import scaled_transform
from sarviz.training.sar2sar import Sar2SarTrainConfig, Sar2SarTrainer
from test_sar2sar_pairs import s1_like_db, write_sar

from _text_fixtures import one_torch_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fixed_loss(trainer, batch, seed=123):
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        return float(trainer.micro_loss(batch))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_sd15_base):
    import torch

    root = tmp_path_factory.mktemp("s2s")
    base = tiny_sd15_base  # read only
    src = root / "src"
    src.mkdir()
    for i in range(2):
        t = Affine(10.0, 0, 500000.0 + 3000 * i, 0, -10.0, 4200000.0)
        write_sar(src / f"scene{i}.tif", {"VV": s1_like_db((128, 128), i)}, t)
    build_pairs(src, root / "pairs", PairsOptions(size=64, factor=2.0, val_fraction=0.0, test_fraction=0.0))
    config = Sar2SarTrainConfig(
        data=root / "pairs",
        base=base,
        out=root / "run",
        max_steps=6,
        batch_size=2,
        lr=1e-3,
        checkpoint_every=3,
        validation_count=1,
        validation_steps=2,
        mixed_precision="no",
        gradient_checkpointing=False,
        noise_offset=0.0,
    )
    trainer = Sar2SarTrainer(config)
    trainer.setup()
    from sarviz.training.sar2sar import collate

    batch = collate([trainer.dataset[i] for i in range(2)])
    before = _fixed_loss(trainer, batch)
    trainer.train()
    after = _fixed_loss(trainer, batch)
    del trainer
    torch.manual_seed(0)
    return {"root": root, "base": base, "run": root / "run", "before": before, "after": after, "config": config}


def test_training_lowers_the_loss_and_writes_a_resumable_run(trained):
    assert trained["after"] < trained["before"]
    run = Sar2SarRun.open(trained["run"])
    assert run.meta["step"] == 6 and run.meta["base_kind"] == "sd15"
    assert run.meta["consistency_calibration"]["threshold_db"] > 0 and "extrapolation" in run.meta["pairs"]["teaches"]
    assert Sar2SarRun.open(trained["run"], checkpoint=6).meta["step"] == 6
    assert (trained["run"] / "checkpoint-3" / "accelerate_state").is_dir()
    rows = (trained["run"] / "validation.csv").read_text().splitlines()
    assert rows[0].startswith("step,id,pol,consistency_db") and len(rows) >= 2
    # resume: one more step from the last checkpoint
    from dataclasses import replace

    from sarviz.training.sar2sar import train_sar2sar

    train_sar2sar(replace(trained["config"], max_steps=7, resume_from="latest", validation_count=0))
    meta = json.loads((trained["run"] / "run.json").read_text())
    assert meta["start_step"] == 6 and meta["step"] == 7 and meta["status"] == "finished"


def flat_generated_tif(path, rng, side: int):
    """A generated image (the simulator bridge's input format) of homogeneous ground: gamma speckle of
    ENL 4.4 around −12 dB VV / −19 dB VH, 10 m pixels in EPSG:32630; (its path, its transform)."""
    flat = (10 * np.log10(rng.gamma(4.4, 1 / 4.4, (side, side))) - 12).astype(np.float32)
    t = Affine(10.0, 0, 500000.0, 0, -10.0, 4200000.0)
    return GenerationResult(flat, flat - 7, "EPSG:32630", t, {"model_id": "emulator"}).to_geotiff(path), t


def test_multi_tile_render_no_seam_exact_georeference_complete_provenance(trained, tmp_path):
    # a generated image (the simulator bridge's input format) of homogeneous ground
    rng = np.random.default_rng(0)
    src, t = flat_generated_tif(tmp_path / "gen.tif", rng, 96)
    request = TransformRequest(seed=1, steps=4, strength=0.75, options={"factor": 2, "tile": 64, "overlap": 32})
    result = render_file(src, trained["run"], tmp_path / "out.tif", request)
    out = RenderOutput.read(tmp_path / "out.tif")
    with rasterio.open(tmp_path / "out.tif") as ds:
        assert ds.shape == (192, 192) and ds.crs.to_epsg() == 32630 and ds.driver == "GTiff"
        assert ds.transform == scaled_transform(t, (96, 96), (192, 192))
        assert ds.bounds == rasterio.coords.BoundingBox(500000.0, 4200000.0 - 960, 500960.0, 4200000.0)
    prov = out.provenance
    for key in (
        "input",
        "factor_requested",
        "factor_effective",
        "sampler",
        "seeds",
        "tile_plan",
        "weights",
        "training_pairs",
        "extrapolation",
        "consistency",
        "normalisation",
        "tail",
        "speed",
    ):
        assert prov.get(key) not in (None, "", []), key
    assert prov["weights"]["controlnet_sha256"] and prov["tile_plan"]["tiles"] > 4
    assert set(result.consistency) == {"VV", "VH"} and np.isfinite(result.consistency["VV"]["score_db"])
    # no seam: ENL where tiles overlap equals ENL where one tile covers (latent blending, not pixel averaging)
    plan = plan_tiles((192, 192), 64, 32, 16)
    cover = np.zeros((192, 192), int)
    th, tw = plan.latent_tile
    for r in plan.starts[0]:
        for c in plan.starts[1]:
            cover[r * 8 : (r + th) * 8, c * 8 : (c + tw) * 8] += 1
    intensity = 10 ** (out.bands["VV"] / 10)
    enl = lambda m: intensity[m].mean() ** 2 / intensity[m].var()
    many, few = cover >= 3, cover <= 2
    assert many.sum() > 1000 and few.sum() > 1000
    assert 0.75 < enl(many) / enl(few) < 1.33
    # pixel averaging of independently sampled tiles would raise it in the overlaps: the test can see a seam
    a, b = rng.gamma(2, 0.5, 20000), rng.gamma(2, 0.5, 20000)
    assert (((a + b) / 2).mean() ** 2 / ((a + b) / 2).var()) / (a.mean() ** 2 / a.var()) > 1.5


def test_renderer_is_an_image_transformer(trained):
    rng = np.random.default_rng(2)
    db = (10 * np.log10(rng.gamma(4.4, 1 / 4.4, (32, 32))) - 10).astype(np.float32)
    src = GenerationResult(db, db - 6, "EPSG:32630", Affine(10.0, 0, 0, 0, -10.0, 0), {"scene_id": "x"})
    out = Sar2SarRenderer(trained["run"]).transform(src, TransformRequest(steps=2, options={"factor": 1.5, "tile": 64}))
    assert isinstance(out, GenerationResult) and out.vv_db.shape == (48, 48)
    assert out.transform.a == pytest.approx(10.0 * 32 / 48) and np.isfinite(out.vv_db).all()


def test_bad_inputs_one_line_nothing_written(trained, tmp_path, capsys):
    t = Affine(10.0, 0, 500000.0, 0, -10.0, 4200000.0)
    good = write_sar(tmp_path / "in.tif", {"VV": s1_like_db((32, 32))}, t)
    optical = write_sar(tmp_path / "opt.tif", {"B4": np.ones((32, 32), np.float32)}, t)
    broken_run = tmp_path / "run_nobase"
    import shutil

    shutil.copytree(trained["run"] / "controlnet", broken_run / "controlnet")
    meta = json.loads((trained["run"] / RUN_FILE).read_text())
    Sar2SarRun.write_meta(
        broken_run, {**{k: v for k, v in meta.items() if k != "format"}, "base": str(tmp_path / "gone")}
    )
    cases = [
        (["--input", str(optical), "--weights", str(trained["run"]), "--factor", "2"], "not a SAR GeoTIFF"),
        (["--input", str(good), "--weights", str(trained["run"]), "--factor", "0.5"], "factor"),
        (["--input", str(good), "--weights", str(trained["run"]), "--factor", "1e6"], "factor"),
        (["--input", str(good), "--weights", str(trained["run"]), "--factor", "2", "--tile", "8"], "tile"),
        (["--input", str(good), "--weights", str(broken_run), "--factor", "2"], "base model"),
        (["--input", str(good), "--weights", str(tmp_path), "--factor", "2"], "not a sar2sar model"),
    ]
    for args, message in cases:
        out = tmp_path / "out.tif"
        code = cli_main(["render", *args, "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code != 0 and message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert not out.exists() and not list(tmp_path.glob("*.part"))
    state = Sar2SarRenderer(broken_run).readiness()
    assert not state.ready and "base model" in state.details
    with pytest.raises(WeightsMissing):
        Sar2SarRenderer(broken_run).check_ready()


def test_evaluate_render_reports_metrics_with_intervals(trained):
    from sarviz.evaluation.sar2sar import evaluate_render

    report = evaluate_render(trained["root"] / "pairs", trained["run"], split="train", max_items=2, steps=2)
    assert report["n"] == 2 and len(report["items"]) == 2
    for key in ("consistency_db", "enl_ratio", "spectrum_slope_diff", "kl"):
        s = report["summary"][key]
        assert s["n"] >= 1 and np.isfinite(s["mean"]), key
    assert report["summary"]["consistency_db"]["ci_low"] <= report["summary"]["consistency_db"]["mean"]
    assert "no land-cover label" in report["per_land_cover_class"]


def test_render_page_renders_a_scene_with_its_score(trained, tmp_path, monkeypatch):
    import shutil

    from streamlit.testing.v1 import AppTest

    runs, scenes = tmp_path / "runs", tmp_path / "scenes"
    shutil.copytree(trained["run"], runs / "tiny", ignore=shutil.ignore_patterns("checkpoint-*", "logs"))
    scenes.mkdir()
    write_sar(
        scenes / "spain_s1.tif",
        {"VV": s1_like_db((32, 32), 3), "VH": s1_like_db((32, 32), 4) - 7},
        Affine(10.0, 0, 500000.0, 0, -10.0, 4200000.0),
    )
    for name, value in (("HOME", tmp_path), ("RUNS", runs), ("SCENES", scenes)):
        monkeypatch.setenv(f"SARVIZ_{name}", str(value))
    at = AppTest.from_file("../pages/7_Render.py", default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    at.number_input(key="render_steps").set_value(2)
    at.number_input(key="render_seeds").set_value(2)  # the per-pixel spread band and its image
    at.button(key="render_go").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    table = at.dataframe[0].value
    assert list(table["polarisation"]) == ["VV", "VH"] and table["score (dB)"].notna().all()
    assert any("Extrapolation" in w.value for w in at.warning)
    assert at.slider(key="swipe_VV").value == 0.5
    shown = json.dumps([j.value for j in at.json])
    assert str(tmp_path) not in shown and str(trained["root"]) not in shown and "spain_s1.tif" in shown


def test_sdxl_controlnet_trains_and_renders(trained, tmp_path, tiny_sdxl_base):
    """The SDXL path (two text encoders, text-time added conditions in ControlNet and UNet)."""
    from sarviz.training.sar2sar import collate

    base = tiny_sdxl_base  # read only
    config = Sar2SarTrainConfig(
        data=trained["root"] / "pairs",
        base=base,
        out=tmp_path / "run",
        max_steps=4,
        batch_size=2,
        lr=1e-3,
        checkpoint_every=4,
        validation_count=0,
        mixed_precision="no",
        gradient_checkpointing=False,
        noise_offset=0.0,
    )
    trainer = Sar2SarTrainer(config)
    trainer.setup()
    batch = collate([trainer.dataset[i] for i in range(2)])
    before = _fixed_loss(trainer, batch)
    trainer.train()
    assert _fixed_loss(trainer, batch) < before
    assert Sar2SarRun.open(tmp_path / "run").meta["base_kind"] == "sdxl"
    t = Affine(10.0, 0, 500000.0, 0, -10.0, 4200000.0)
    src = write_sar(tmp_path / "in.tif", {"VV": s1_like_db((32, 32), 7)}, t)
    result = render_file(
        src, tmp_path / "run", tmp_path / "out.tif", TransformRequest(steps=2, options={"factor": 2, "tile": 64})
    )
    assert result.output.bands["VV"].shape == (64, 64) and np.isfinite(result.output.bands["VV"]).all()
    assert result.output.provenance["weights"]["base_kind"] == "sdxl"


@pytest.mark.browser
def test_render_page_in_a_real_browser(trained, tmp_path):
    import shutil

    from _waits import patience_ms

    from _browser import chromium_page, require_browser, run_streamlit, screenshot, wait_idle

    require_browser()
    runs, scenes = tmp_path / "runs", tmp_path / "scenes"
    shutil.copytree(trained["run"], runs / "tiny", ignore=shutil.ignore_patterns("checkpoint-*", "logs"))
    scenes.mkdir()
    write_sar(
        scenes / "spain_s1.tif",
        {"VV": s1_like_db((32, 32), 3), "VH": s1_like_db((32, 32), 4) - 7},
        Affine(10.0, 0, 500000.0, 0, -10.0, 4200000.0),
    )
    env = {"SARVIZ_HOME": str(tmp_path), "SARVIZ_RUNS": str(runs), "SARVIZ_SCENES": str(scenes), "OMP_NUM_THREADS": "1"}
    with run_streamlit("app.py", env=env, page="Render") as url, chromium_page() as page:
        page.goto(url)
        wait_idle(page, 120)  # the first run has drawn the form: input lands on its final widgets
        steps = page.get_by_label("Steps", exact=True)
        steps.fill("2")
        steps.press("Enter")
        wait_idle(page, 60)
        page.get_by_role("button", name="Render").click()
        page.get_by_text("Consistency with the input").wait_for(timeout=patience_ms(120))
        page.get_by_text("Swipe VV: input (left) ↔ rendering (right)").wait_for()
        download = page.get_by_role("button", name="Download the rendering (COG, σ⁰ dB, provenance)")
        download.wait_for(state="visible")
        wait_idle(page, 60)
        assert download.is_visible()
        page.locator("[data-testid='stImage'] img").first.wait_for(state="visible")
        screenshot(page, "render_page")


def test_compile_decision_is_the_one_measured_choice(monkeypatch, tmp_path):
    from sarviz.generators import dtype_choice
    from sarviz.generators.sar2sar import compile_decision

    for name in ("SARVIZ_COMPILE", "SARVIZ_DTYPE_MEASURE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SARVIZ_DTYPE_CACHE", str(tmp_path / "dtype-choice.json"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "kernels"))
    full = "unet320-640-1280-1280+controlnet@512px"
    # nothing measured on this machine: auto (the default) never compiles
    d = compile_decision(None, "cpu", 500, full)
    assert d["compile"] is False and "not measured" in d["compile_why"] and d["workload"] == full
    # renders filed their tile·step times: eager 20 s; compiled 16 s after 176 s of cold compile
    dtype_choice.record_steps("cpu", "float32", [30.0, 20.0, 20.0], compiled=False, workload=full)
    dtype_choice.record_steps("cpu", "float32", [192.0, 16.0, 16.0], compiled=True, compile_paid=True, workload=full)
    assert compile_decision("auto", "cpu", 20, full)["compile"] is False  # 80 s saved < 176 s
    d = compile_decision("auto", "cpu", 50, full)
    assert d["compile"] is True and "50 steps save 200 s vs a 176 s cold compile: kept" in d["compile_why"]
    assert compile_decision("auto", "cpu", 50, "unet32-64+controlnet@64px")["compile"] is False  # another model
    assert compile_decision("on", "cpu", 1, full)["compile"] is True
    assert compile_decision("off", "cpu", 10_000, full)["compile"] is False
    with pytest.raises(GenerationError):
        compile_decision("sometimes", "cpu", 1, full)


def test_renders_apply_the_measured_layout_and_file_their_tile_steps(trained, tmp_path, monkeypatch):
    from sarviz.generators import dtype_choice

    monkeypatch.setenv("SARVIZ_DTYPE_MEASURE", "1")
    monkeypatch.setenv("SARVIZ_DTYPE_CACHE", str(tmp_path / "dtype-choice.json"))
    monkeypatch.delenv("SARVIZ_COMPILE", raising=False)
    src, _ = flat_generated_tif(tmp_path / "in.tif", np.random.default_rng(5), 32)
    request = TransformRequest(seed=1, steps=3, strength=1.0, options={"factor": 1, "tile": 32, "overlap": 0})
    first = render_file(src, trained["run"], tmp_path / "a.tif", request)
    speed = first.output.provenance["speed"]["torch_compile"]
    assert speed["compile"] is False and speed["compile_paid"] is False and speed["channels_last"] is False
    assert speed["workload"].endswith("+controlnet@32px") and "not measured" in speed["compile_why"]
    records = dtype_choice.compile_records("cpu", "float32")
    assert list(records) == [speed["workload"]] and records[speed["workload"]].eager_step_s > 0
    # a measured (here: forced) channels-last layout reaches the cached renderer's modules; same numbers
    monkeypatch.setenv("SARVIZ_CHANNELS_LAST", "on")
    second = render_file(src, trained["run"], tmp_path / "b.tif", request)
    assert second.output.provenance["speed"]["torch_compile"]["channels_last"] is True
    np.testing.assert_allclose(second.output.bands["VV"], first.output.bands["VV"], atol=1e-3)


def test_render_page_is_gated_in_study_mode(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SARVIZ_MODE", "study")
    monkeypatch.setenv("SARVIZ_STUDY_OWNER_PASSWORD", "correct horse battery staple")
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path))
    monkeypatch.setenv("SARVIZ_STUDY_DB", f"sqlite:///{tmp_path / 'study.db'}")
    at = AppTest.from_file("../pages/7_Render.py", default_timeout=60)
    at.run()
    assert not at.exception
    assert [t.label for t in at.text_input][:1] == ["Study owner password"]
    assert not any(b.key == "render_go" for b in at.button)


def test_clipped_tail_masked_or_kept(trained, tmp_path):
    from sarviz.formats.sar2sar import SarGeoTiff

    rng = np.random.default_rng(5)
    db = (10 * np.log10(rng.gamma(4.4, 1 / 4.4, (32, 32))) - 12).astype(np.float32)
    db[10, 10] = 15.0  # a bright scatterer far above μ+3σ
    img = SarGeoTiff({"VV": db}, rasterio.crs.CRS.from_epsg(32630), Affine(10.0, 0, 0, 0, -10.0, 0), "bright.tif")
    renderer = Sar2SarRenderer(trained["run"])
    masked = renderer.render(img, TransformRequest(steps=2, options={"factor": 2, "tile": 64, "tail": "mask"}))
    assert masked.output.masks["VV"][20:22, 20:22].all() and masked.output.masks["VV"].mean() < 0.05
    masked.output.write(tmp_path / "m.tif")
    with rasterio.open(tmp_path / "m.tif") as ds:
        assert ds.descriptions == ("VV", "VV_clipped")
    kept = renderer.render(img, TransformRequest(steps=2, options={"factor": 2, "tile": 64, "tail": "keep"}))
    # the tail is not flattened at μ+3σ: where the up-sampled input is above it, its σ⁰ is kept
    clipped = masked.output.masks["VV"]
    assert np.allclose(kept.output.bands["VV"][clipped], kept.upsampled_db["VV"][clipped])
    threshold_db = 20 * np.log10(kept.consistency["VV"]["amplitude_stats"]["threshold"])
    assert kept.output.bands["VV"][20:22, 20:22].max() > threshold_db + 3  # the bright scatterer survives
