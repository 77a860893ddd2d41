"""Dataset builder (scene folders), splits, land cover, captions/imagefolder, torch reader, emulator refit."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from rasterio.windows import Window

from sarviz.calibration import DEFAULT_CALIBRATION
from sarviz.cli import main
from sarviz.datasets.layout import MANIFEST_COLUMNS, open_dataset
from sarviz.scene import TRAINING_PATCH_BANDS, read_scene, write_scene

from _dataset_fixtures import need_points, synthetic_scene, write_synthetic_folder

BUILD = [
    "--size",
    "32",
    "--stride",
    "32",
    "--split-block-km",
    "0.5",
    "--val-fraction",
    "0.25",
    "--test-fraction",
    "0.25",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    need_points()
    root = tmp_path_factory.mktemp("ds")
    scenes = write_synthetic_folder(root / "scenes")
    assert main(["dataset", "build", "--scenes", str(scenes), "--out", str(root / "out"), *BUILD]) == 0
    return root


def manifest(out):
    with open(out / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_patches_read_back_with_the_scene_reader(built):
    out = built / "out"
    info = json.loads((out / "dataset.json").read_text())
    rows = manifest(out)
    assert info["format"] == "sarviz-patches/1" and info["size"] == 32
    assert tuple(info["bands"]) == TRAINING_PATCH_BANDS and info["calibration"] == DEFAULT_CALIBRATION.to_dict()
    assert info["embedding_source"].startswith("proxy:") and info["s1_mode"] == "single"
    assert info["split"]["method"] == "spatial-blocks" and info["split"]["block_km"] == 0.5
    # two 128-px scenes → 2 × 16 patches, none missing pixels; every patch is in the manifest or the buffer count
    assert sum(info["counts"][s] for s in ("train", "val", "test")) + info["counts"]["dropped"]["split_buffer"] == 32
    assert list(rows[0].keys()) == list(MANIFEST_COLUMNS)
    row = next(r for r in rows if r["id"] == "iowa_a_r32_c64")
    patch = read_scene(out / row["file"])
    scene = read_scene(built / "scenes" / "iowa_a.tif", window=Window(64, 32, 32, 32))
    assert patch.crs == scene.crs and patch.transform == scene.transform and patch.shape == (32, 32)
    for layer in ("vv_db", "vh_db", "angle_deg", "embedding"):
        np.testing.assert_array_equal(getattr(patch, layer), getattr(scene, layer))
    assert patch.optical is None  # the 67-band layout
    import rasterio

    with rasterio.open(out / row["file"]) as src:
        assert src.count == 67 and src.descriptions == TRAINING_PATCH_BANDS and src.is_tiled
        assert src.tags()["EMBEDDING_SOURCE"].startswith("proxy:")
    assert row["orbit"] == "descending" and row["relative_orbit"] == "110" and row["date"] == "2024-07-15"
    assert abs(float(row["angle_mean"]) - float(np.mean(scene.angle_deg))) < 1e-3
    assert abs(float(row["lat"]) - 41.9) < 0.01 and abs(float(row["lon"]) + 93.6) < 0.01
    prov = json.loads(row["provenance"])
    assert prov["window"] == [64, 32, 32, 32] and prov["angle"] == "scene"
    # right half of iowa_a is built-up (class 6) in real AlphaEarth vectors; kNN finds it
    assert row["landcover"] == "built" and json.loads(row["landcover_fractions"])["built"] > 0.5
    assert prov["landcover_method"] == "embedding-knn (proxy embedding)"


def test_info_lists_splits_and_classes(built, capsys):
    assert main(["dataset", "info", str(built / "out")]) == 0
    text = capsys.readouterr().out
    assert "sarviz-patches/1, 32 patches of 32 px" in text and "spatial-blocks, 0.5 km blocks" in text
    assert "built" in text and "trees" in text
    assert main(["dataset", "info", str(built / "out"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sum(sum(v.values()) for v in data["class_counts"].values()) == 32


def test_splits_never_share_ground(tmp_path):
    need_points()
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    write_scene(synthetic_scene(41.9, -93.6, size=112, scene_id="iowa"), scenes / "iowa.tif")
    out = tmp_path / "out"
    args = [
        "--size",
        "32",
        "--stride",
        "16",
        "--split-block-km",
        "0.4",
        "--val-fraction",
        "0.3",
        "--test-fraction",
        "0.3",
    ]
    assert main(["dataset", "build", "--scenes", str(scenes), "--out", str(out), *args, "--split-seed", "2"]) == 0
    ds = _assert_no_cross_split_overlap(out)
    assert {r["split"] for r in ds.rows} == {"train", "val", "test"}
    assert ds.info["counts"]["dropped"]["split_buffer"] > 0  # overlapping strides straddle block edges
    # the block rule: patches whose centres share a block share a split
    from sarviz.datasets.splits import block_of

    by_block = {}
    for r in ds.rows:
        by_block.setdefault(block_of(float(r["lon"]), float(r["lat"]), 0.4), set()).add(r["split"])
    assert all(len(s) == 1 for s in by_block.values()) and len(by_block) > 3
    # re-split with another seed: no pixels rewritten, the manifest changes
    before = {r["id"]: r["split"] for r in ds.rows}
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "patches").iterdir()}
    assert main(["dataset", "build", "--scenes", str(scenes), "--out", str(out), *args, "--split-seed", "7"]) == 0
    after = {r["id"]: r["split"] for r in open_dataset(out).rows}
    assert after != before
    assert {p.name: p.stat().st_mtime_ns for p in (out / "patches").iterdir()} == mtimes


def test_resume_skips_finished_patches_and_redoes_lost_ones(built, capsys):
    out = built / "resume"
    shutil.copytree(built / "out", out)
    (out / "patches" / "amazon_b_r0_c0.tif").unlink()  # a lost patch (its record stays) is redone
    stamp = (out / "patches" / "iowa_a_r0_c0.tif").stat().st_mtime_ns
    assert main(["dataset", "build", "--scenes", str(built / "scenes"), "--out", str(out), *BUILD]) == 0
    text = capsys.readouterr()
    assert "(1 new, 31 from an earlier run)" in text.out
    assert (out / "patches" / "amazon_b_r0_c0.tif").exists()
    assert (out / "patches" / "iowa_a_r0_c0.tif").stat().st_mtime_ns == stamp
    assert manifest(out) == manifest(built / "out")
    # other patch options on the same folder: refused in one line
    assert main(["dataset", "build", "--scenes", str(built / "scenes"), "--out", str(out), "--size", "64"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "size 32 → 64" in err


def test_missing_pixels_small_scenes_and_scenes_without_embedding(tmp_path, capsys):
    need_points()
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    write_scene(synthetic_scene(41.9, -93.6, size=64, nan_rows=8, scene_id="holes"), scenes / "holes.tif")
    small = synthetic_scene(40.0, -90.0, size=24, scene_id="small", with_angle=False)
    write_scene(small, scenes / "small.tif")
    sar_only = synthetic_scene(35.0, -100.0, size=64, scene_id="no_emb")
    sar_only.embedding = None
    write_scene(sar_only, scenes / "no_emb.tif")
    out = tmp_path / "out"
    assert main(["dataset", "build", "--scenes", str(scenes), "--out", str(out), "--size", "32", "--stride", "32"]) == 0
    info = open_dataset(out).info
    assert info["counts"]["dropped"]["missing_pixels"] == 2  # the two top patches of "holes" (8 NaN rows of 32)
    assert info["counts"]["skipped_scenes"] == 2
    text = capsys.readouterr().out
    assert "small (smaller than --size" in text and "no_emb (no embedding layer)" in text
    # --allow-smaller keeps the small scene as one patch; its missing angle is assumed and recorded
    out2 = tmp_path / "out2"
    assert (
        main(
            [
                "dataset",
                "build",
                "--scenes",
                str(scenes),
                "--out",
                str(out2),
                "--size",
                "32",
                "--stride",
                "32",
                "--allow-smaller",
                "--max-missing",
                "0.3",
            ]
        )
        == 0
    )
    ds = open_dataset(out2)
    small_row = next(r for r in ds.rows if r["source_scene"] == "small")
    assert (small_row["width"], small_row["height"]) == ("24", "24")
    assert "assumed 37.5" in json.loads(small_row["provenance"])["angle"] and ds.info["counts"]["angle_assumed"] == 1
    assert np.all(read_scene(out2 / small_row["file"]).angle_deg == np.float32(37.5))
    assert ds.info["counts"]["dropped"]["missing_pixels"] == 0  # 25 % NaN rows allowed now


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["dataset", "build", "--scenes", "{tmp}/nope", "--out", "{tmp}/o"], "does not exist"),
        (["dataset", "build", "--out", "{tmp}/o"], "exactly one of"),
        (["dataset", "build", "--scenes", "{tmp}", "--out", "{tmp}/o", "--size", "8"], "--size"),
        (
            [
                "dataset",
                "build",
                "--scenes",
                "{tmp}",
                "--out",
                "{tmp}/o",
                "--val-fraction",
                "0.6",
                "--test-fraction",
                "0.5",
            ],
            "no training data",
        ),
        (["dataset", "caption", "{tmp}"], "not a sarviz dataset"),
        (["dataset", "build", "--points", "{tmp}/none.csv", "--out", "{tmp}/o"], "does not exist"),
        (["emulator", "fit", "--dataset", "{tmp}", "--out", "{tmp}/e.safetensors"], "not a sarviz dataset"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, argv, needle):
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and "\n" not in err and "Traceback" not in err


def test_captions_are_deterministic_and_the_imagefolder_loads(built, tmp_path):
    out = built / "out"
    assert main(["dataset", "caption", str(out), "--token", "<SAR>"]) == 0
    first = {p.name: p.read_bytes() for p in (out / "captioned").rglob("*") if p.is_file()}
    assert main(["dataset", "caption", str(out)]) == 0
    second = {p.name: p.read_bytes() for p in (out / "captioned").rglob("*") if p.is_file()}
    info = json.loads(second.pop("caption_info.json"))
    first.pop("caption_info.json")
    assert first == second  # same captions, same pixels
    assert info["format"] == "sarviz-captioned/1" and info["image_mode"] == "L" and info["token"] == "<SAR>"
    lines = [json.loads(x) for x in (out / "captioned" / "train" / "metadata.jsonl").read_text().splitlines()]
    assert all(x["text"].startswith("<SAR> Sentinel-1 SAR image, VV polarisation") for x in lines)
    iowa = next(x for x in lines if x["id"].startswith("iowa_a"))
    assert "Iowa" not in iowa["text"] and "United States" in iowa["text"] and "summer" in iowa["text"]
    assert "descending pass" in iowa["text"] and "incidence angle" in iowa["text"]
    amazon = [x for x in lines if x["id"].startswith("amazon_b")]
    assert amazon and all("acquired in January" in x["text"] and "Brazil" in x["text"] for x in amazon)
    # the PNG is VV through the dataset's calibration
    from PIL import Image

    row = next(r for r in manifest(out) if r["id"] == iowa["id"])
    png = np.asarray(Image.open(out / "captioned" / "train" / iowa["file_name"]))
    vv = read_scene(out / row["file"]).vv_db
    np.testing.assert_array_equal(png, np.rint(DEFAULT_CALIBRATION.to_unit(vv, "VV") * 255).astype(np.uint8))
    import datasets

    loaded = datasets.load_dataset("imagefolder", data_dir=str(out / "captioned"), cache_dir=str(tmp_path / "hf"))
    counts = open_dataset(out).info["counts"]
    assert {k: v.num_rows for k, v in loaded.items()} == {
        k: n for k, n in (("train", counts["train"]), ("validation", counts["val"]), ("test", counts["test"])) if n
    }
    sample = loaded["train"][0]
    assert sample["image"].mode == "L" and sample["image"].size == (32, 32) and sample["text"].startswith("<SAR>")
    # VV+VH: RGB = VV, VH, VV
    assert main(["dataset", "caption", str(out), "--polarisation", "VV+VH"]) == 0
    rgb = np.asarray(Image.open(out / "captioned" / "train" / iowa["file_name"]))
    assert rgb.shape == (32, 32, 3) and np.array_equal(rgb[..., 0], rgb[..., 2]) and np.array_equal(rgb[..., 0], png)
    assert "VV and VH polarisations" in (out / "captioned" / "train" / "metadata.jsonl").read_text()


def test_caption_phrases():
    from sarviz.datasets.captions import landcover_phrase, season_phrase
    from sarviz.datasets.places import nearest_place

    assert landcover_phrase({"crops": 0.8, "built": 0.15, "water": 0.05}) == "mostly cropland with some built-up area"
    assert landcover_phrase({"trees": 0.95, "water": 0.05}) == "almost entirely forest"
    assert (
        landcover_phrase({"crops": 0.4, "grass": 0.35, "built": 0.25})
        == "a mix of cropland, grassland and built-up area"
    )
    assert landcover_phrase({}) == ""
    assert season_phrase("2024-07-15", 47.0) == "summer" and season_phrase("2024-07-15", -35.0) == "winter"
    assert season_phrase("2024-07-15", 5.0) == "acquired in July" and season_phrase("2024-07-15", 47, True) == ""
    spain = nearest_place(38.1058, -0.7589)
    assert spain.country == "Spain" and spain.distance_km < 40
    assert nearest_place(38.0, -1.13).phrase() == "near Murcia, Spain"
    far = nearest_place(-30.0, -140.0)  # the open Pacific
    assert far.distance_km > 150 and far.phrase().startswith("in ") or far.phrase() == ""


def test_torch_dataset(built):
    torch = pytest.importorskip("torch")
    from sarviz.datasets.torch import PatchDataset

    ds = PatchDataset(built / "out", "train")
    sample = ds[0]
    assert sample["embedding"].shape == (64, 32, 32) and sample["angle"].shape == (1, 32, 32)
    assert sample["target"].shape == (2, 32, 32) and sample["mask"].all()
    patch = read_scene(built / "out" / ds.rows[0]["file"])
    np.testing.assert_allclose(sample["target"][0].numpy(), DEFAULT_CALIBRATION.to_signed(patch.vv_db, "VV"))
    np.testing.assert_allclose(sample["target"][1].numpy(), DEFAULT_CALIBRATION.to_signed(patch.vh_db, "VH"))
    assert float(sample["target"].min()) >= -1 and float(sample["target"].max()) <= 1
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["embedding"].shape == (4, 64, 32, 32)


def test_the_one_patch_dataset_fills_holes_with_the_patch_mean_and_orders_by_id(built, tmp_path):
    """One PatchDataset: missing target pixels → the band's patch mean dB (not mid-range
    grey), mask False there; angle/embedding as read (NaN); rows sorted by id; transforms passed in."""
    torch = pytest.importorskip("torch")
    import shutil

    from sarviz.datasets.torch import PatchDataset
    from sarviz.scene import TRAINING_PATCH_BANDS, write_scene
    from sarviz.training.data import PatchDataset as FromTraining

    assert FromTraining is PatchDataset  # one class, importable from the old place
    out = tmp_path / "holes"
    shutil.copytree(built / "out", out)
    ds = PatchDataset(out, "train")
    assert [r["id"] for r in ds.rows] == sorted(r["id"] for r in manifest(out) if r["split"] == "train")
    path = out / ds.rows[0]["file"]
    patch = read_scene(path)
    vv, angle = patch.vv_db.copy(), patch.angle_deg.copy()
    vv[:4, :4] = np.nan
    angle[-2:, -2:] = np.nan
    patch.vv_db, patch.angle_deg = vv, angle
    write_scene(patch, path, bands=TRAINING_PATCH_BANDS)
    sample = ds[0]
    fill = DEFAULT_CALIBRATION.to_signed(np.float32(np.nanmean(vv)), "VV")
    np.testing.assert_allclose(sample["target"][0, :4, :4].numpy(), fill, rtol=1e-5)
    assert not sample["mask"][:4, :4].any() and not sample["mask"][-2:, -2:].any() and sample["mask"][8:20, 8:20].all()
    assert torch.isnan(sample["angle"][0, -2:, -2:]).all() and torch.isfinite(sample["target"]).all()
    np.testing.assert_allclose(sample["target"][1].numpy(), DEFAULT_CALIBRATION.to_signed(patch.vh_db, "VH"))
    seen = []
    with_transform = PatchDataset(out, "train", transforms=lambda s: seen.append((s["index"], s["epoch"])) or s)
    with_transform[(1, 3)]
    assert seen == [(1, 3)]


def test_emulator_fit_from_dataset_and_card_is_listed(built, tmp_path, monkeypatch, capsys):
    weights, cards = tmp_path / "w" / "regional.safetensors", tmp_path / "cards"
    assert (
        main(
            [
                "emulator",
                "fit",
                "--dataset",
                str(built / "out"),
                "--out",
                str(weights),
                "--card-dir",
                str(cards),
                "--model-id",
                "emulator-test-region",
                "--block",
                "4",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "val (used to choose" in text and "test (held out)" in text
    card = json.loads((cards / "emulator-test-region.json").read_text())
    assert card["kind"] == "emulator" and "PROXY" in card["name"]
    assert card["validation"]["test"]["n"] > 0 and card["validation"]["val"]["r2_VV"] > 0.5
    monkeypatch.setenv("SARVIZ_MODELS", str(cards))
    assert main(["models", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    mine = next(c for c in listed if c["id"] == "emulator-test-region")
    assert mine["ready"] is True
    from sarviz.emulator.radiometric import RadiometricModel

    model = RadiometricModel.load(weights)
    assert model.metadata["training_dataset"] == str(built / "out") and model.metadata["test_scores"]["n"] > 0
    from sarviz.registry import ModelRegistry

    gen = ModelRegistry().generator("emulator-test-region")
    assert gen.kind == "emulator" and gen.model.feature_map == model.feature_map


def _assert_no_cross_split_overlap(out):
    from shapely.geometry import box

    ds = open_dataset(out)
    recs = {r["id"]: json.loads((out / ".build" / "records" / f"{r['id']}.json").read_text()) for r in ds.rows}
    for i, a in enumerate(ds.rows):
        for b in ds.rows[i + 1 :]:
            if a["split"] != b["split"]:
                ga, gb = box(*recs[a["id"]]["footprint"]), box(*recs[b["id"]]["footprint"])
                assert ga.intersection(gb).area <= 0.01 * min(ga.area, gb.area), (a["id"], b["id"])
    return ds


@pytest.mark.slow  # ~43 s: every sample scene cut into patches on a busy 2-core machine
def test_build_from_the_sample_scenes(tmp_path, capsys):
    """The real Sentinel-1 samples of ../shared (Sen1Floods11, BigEarthNet, SSL4EO-S12)."""
    from sarviz.importers import import_scenes
    from sarviz.store import SceneStore

    from _dataset_fixtures import SHARED, add_test_proxy

    if not (SHARED / "samples").is_dir():
        pytest.skip(f"{SHARED / 'samples'} is absent (../shared holds the real Sentinel samples)")
    need_points()
    scenes = tmp_path / "scenes"
    assert not import_scenes(SHARED / "samples", scenes).problems
    # keep the test fast: every dataset, not every chip (Spain, one SSL4EO date, two BigEarthNet patches)
    names = sorted(p.name for p in scenes.glob("*.tif"))
    for name in [n for n in names if n.startswith("bigearthnet")][2:] + [n for n in names if n.startswith("ssl4eo")][
        1:
    ]:
        (scenes / name).unlink()
    store = SceneStore(scenes)
    args = ["--size", "128", "--stride", "128", "--allow-smaller", "--split-block-km", "1", "--max-missing", "0.05"]
    if not any("embedding" in e.layers for e in store):
        # without an embedding a scene cannot be a training patch: every sample is skipped, and said so
        assert main(["dataset", "build", "--scenes", str(scenes), "--out", str(tmp_path / "none"), *args]) == 1
        text = capsys.readouterr().out
        assert "no patches were written" in text and "skipped 4 scene(s)" in text and "no embedding layer" in text
        for entry in store:  # a labelled test proxy (real AlphaEarth vectors chosen by the optical layer)
            write_scene(add_test_proxy(read_scene(entry.path)), entry.path)
    out = tmp_path / "out"
    assert main(["dataset", "build", "--scenes", str(scenes), "--out", str(out), *args, "--split-seed", "2"]) == 0
    ds = _assert_no_cross_split_overlap(out)
    assert ds.info["embedding_source"].startswith("proxy")
    assert ds.info["counts"]["angle_assumed"] == len(ds.rows)  # no sample carries an incidence angle
    by_dataset = {}
    for r in ds.rows:
        by_dataset.setdefault(r["source_scene"].split("_")[0], []).append(r)
    assert set(by_dataset) == {"sen1floods11", "bigearthnet", "ssl4eo"}
    assert all((r["width"], r["height"]) == ("120", "120") for r in by_dataset["bigearthnet"])
    spain = by_dataset["sen1floods11"][0]
    assert spain["orbit"] == "descending" and spain["relative_orbit"] == "110"
    patch = read_scene(out / spain["file"])
    prov = json.loads(spain["provenance"])
    col, row, w, h = prov["window"]
    source = read_scene(store.entry(spain["source_scene"]).path, window=Window(col, row, w, h))
    np.testing.assert_array_equal(patch.vv_db, source.vv_db)  # the real Sentinel-1, unchanged
    np.testing.assert_array_equal(patch.vh_db, source.vh_db)
    assert main(["dataset", "caption", str(out)]) == 0
    texts = "\n".join(
        (out / "captioned" / s / "metadata.jsonl").read_text()
        for s in ("train", "validation", "test")
        if (out / "captioned" / s).is_dir()
    )
    assert "Spain" in texts and "Pakistan" in texts or "India" in texts
    assert "incidence angle" not in texts  # assumed angles are not captioned


def test_landcover_methods():
    """Optical rules on known spectra; CORINE labels restrict the embedding vote; provenance wins."""
    from sarviz.datasets import landcover as lc
    from sarviz.scene import EMBEDDING_BANDS

    from _dataset_fixtures import load_points_frame

    spectra = {  # B2, B3, B4, B8 reflectance
        "water": (0.06, 0.07, 0.05, 0.02),
        "trees": (0.02, 0.05, 0.02, 0.40),
        "grass": (0.04, 0.07, 0.05, 0.18),
        "bare": (0.20, 0.25, 0.32, 0.36),
        "snow_and_ice": (0.80, 0.80, 0.78, 0.70),
    }
    optical = np.stack([np.array(v, np.float32) for v in spectra.values()], axis=1)[:, :, None]  # (4, 5, 1)
    classes = lc.classify_optical(optical)[:, 0]
    assert [lc.DW_CLASS_NAMES[c] for c in classes] == list(spectra)
    assert lc.classes_from_labels(
        [
            "Non-irrigated arable land",
            "Pastures",
            "Coniferous forest",
            "Water bodies",
            "Green urban areas",
            "Discontinuous urban fabric",
            "Peatbogs",
        ]
    ) == {lc.DW_CLASS_NAMES.index(n) for n in ("crops", "grass", "trees", "water", "built", "flooded_vegetation")}
    frame = load_points_frame()
    points = lc.LabelledPoints(frame[list(EMBEDDING_BANDS)].to_numpy(), frame["dw_label"].to_numpy(), "shared")
    crops = frame[frame["dw_label"] == 4][list(EMBEDDING_BANDS)].to_numpy(np.float32)[:64]
    emb = crops.T.reshape(64, 8, 8)
    assert lc.from_embedding(emb, points).label == "crops"
    only_grass = lc.from_embedding(emb, points, allowed={lc.DW_CLASS_NAMES.index("grass")})
    assert only_grass.fractions == {"grass": 1.0}
    from sarviz.scene import Scene

    patch = Scene(
        crs="EPSG:32615",
        transform=__import__("affine").Affine(10, 0, 0, 0, -10, 0),
        width=8,
        height=8,
        embedding=emb,
        provenance={"landcover_fractions": {"water": 3, "built": 1}},
    )
    got = lc.landcover_of(patch, "auto", points, "alphaearth")
    assert got.method == "provenance" and got.fractions == {"water": 0.75, "built": 0.25}
    patch.provenance = {"labels": ["Pastures"]}
    assert lc.landcover_of(patch, "auto", points, "alphaearth").method == "embedding-knn within the scene's labels"
    assert lc.landcover_of(patch, "none", points, "alphaearth").label == ""
