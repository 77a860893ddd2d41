"""Bad files and full disks — a clear line, nothing lost.

* A 0.5 MB GeoTIFF whose header claims 200000×200000 pixels is skipped with its name and
  reason by every reader (metrics, scenes, generate, study add-images, the map page) while
  the rest of the folder goes on.
* A "full disk" (a real write failure: the file-size limit RLIMIT_FSIZE of the CLI process,
  so writes fail part-way with EFBIG exactly like ENOSPC) or an impossible output path: one
  line naming the path and the cause, existing files intact, no temporary files left.
* Inputs that used to pass silently: surplus CSV values, inf/1e308 embeddings, a model card
  naming a secret environment variable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from conftest import make_scene
from sarviz.cli import main

from _study_fixtures import build_pool_folder

ROOT = Path(__file__).resolve().parents[1]


def write_huge_claim(path: Path) -> Path:
    """A small sparse GeoTIFF whose header claims 200000 × 200000 pixels × 2 bands."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=200_000,
        height=200_000,
        count=2,
        dtype="float32",
        crs="EPSG:32633",
        transform=Affine(10, 0, 500_000, 0, -10, 5_300_000),
        tiled=True,
        blockxsize=1024,
        blockysize=1024,
        sparse_ok=True,
        compress="deflate",
        BIGTIFF="YES",
    ) as dst:
        dst.descriptions = ("VV", "VH")
    assert path.stat().st_size < 2_000_000
    return path


@pytest.fixture
def scene_folder(tmp_path: Path) -> tuple[Path, tuple[float, float]]:
    """A scene folder with one good tiny scene (with an embedding) and one huge-claim file."""
    from pyproj import Transformer

    from sarviz.scene import write_scene

    folder = tmp_path / "scenes"
    folder.mkdir()
    write_scene(make_scene(scene_id="good"), folder / "good.tif")
    write_huge_claim(folder / "huge.tif")
    lon, lat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True).transform(400_320, 5_339_680)
    return folder, (lat, lon)


def _cli(args: list[str], env: dict | None = None, fsize: int | None = None) -> subprocess.CompletedProcess:
    """Run ``sarviz ARGS`` in a real process (optionally with a file-size limit = a full disk)."""
    prelude = ""
    if fsize is not None:
        prelude = (
            "import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({fsize}, {fsize})); "
        )
    code = prelude + f"import sys; from sarviz.cli import main; sys.exit(main({args!r}))"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300)


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    return errors[0]


# -- claimed size ------------------------------------------------------------------------------
def test_huge_claim_is_skipped_by_every_reader(scene_folder, tmp_path, sqlite_url, capsys, monkeypatch):
    folder, (lat, lon) = scene_folder
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path / "home"))
    # metrics: refused before reading, one line
    assert main(["metrics", str(folder / "huge.tif"), str(folder / "good.tif")]) == 2
    err = capsys.readouterr().err
    assert "huge.tif: its header claims 200000×200000" in err and "skipped" in err
    # scenes: the good scene is listed, the bad one named with its reason
    assert main(["scenes", str(folder)]) == 0
    out = capsys.readouterr()
    assert "good" in out.out and "huge.tif" in out.err and "200000×200000" in out.err
    # generate on the same folder (the store index skips it; the good scene is generated)
    gen = tmp_path / "gen.tif"
    assert (
        main(
            [
                "generate",
                "--lat",
                f"{lat}",
                "--lon",
                f"{lon}",
                "--scenes",
                str(folder),
                "--model",
                "emulator",
                "--size",
                "64",
                "--out",
                str(gen),
            ]
        )
        == 0
    )
    assert "skipped huge.tif" in capsys.readouterr().err and gen.is_file()
    # study add-images: the rest of the folder is pooled
    pool = build_pool_folder(tmp_path / "pool", n_real=2, n_other=2, n_ours=4)
    write_huge_claim(pool / "huge.tif")
    assert main(["study", "create", "bad-files", "--db", sqlite_url]) == 0
    assert main(["study", "add-images", "bad-files", str(pool), "--source", "ours", "--db", sqlite_url, "--quiet"]) == 1
    out = capsys.readouterr()
    assert "added 8 image(s)" in out.out and "huge.tif: its header claims" in out.err
    # the map page: a warning naming the file, no memory error
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SARVIZ_SCENES", str(folder))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(lat=f"{lat}", lon=f"{lon}")
    at.run()
    assert not at.exception
    assert any("huge.tif" in w.value and "claims" in w.value for w in at.warning), [w.value for w in at.warning]


# -- full disks and impossible paths -------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.postgres
def test_full_disk_keeps_existing_files_and_says_one_line(scene_folder, tmp_path, postgres_url):
    # (the study database is PostgreSQL here: a SQLite database's own files would hit the limit first)
    folder, (lat, lon) = scene_folder
    env = {"SARVIZ_HOME": str(tmp_path / "home")}
    out, png = tmp_path / "out" / "gen.tif", tmp_path / "out" / "gen.png"
    out.parent.mkdir()
    out.write_bytes(b"OLD TIFF")
    png.write_bytes(b"OLD PNG")
    proc = _cli(
        [
            "generate",
            "--lat",
            f"{lat}",
            "--lon",
            f"{lon}",
            "--scenes",
            str(folder),
            "--model",
            "emulator",
            "--size",
            "64",
            "--out",
            str(out),
        ],
        env,
        fsize=4096,
    )
    line = _one_line_error(proc)
    assert "cannot write" in line and "unchanged" in line
    assert "File too large" in line or "incomplete (disk full" in line  # GDAL may only log its failure
    failed = png if str(png) in line else out
    assert failed.read_bytes() == (b"OLD PNG" if failed == png else b"OLD TIFF")
    if failed == png:  # the GeoTIFF before it fitted: it is complete, not truncated
        with rasterio.open(out) as src:
            assert src.read().shape == (2, 64, 64)
    assert sorted(p.name for p in out.parent.iterdir()) == ["gen.png", "gen.tif"]  # no temporary files left

    # study export: answers are rendered in memory, each file replaced atomically or not at all
    from sarviz.study import OwnerAPI, ParticipantAPI, QuizAnswer, StudyDatabase

    db = StudyDatabase(postgres_url)
    owner = OwnerAPI(db)
    owner.create_study("export-full", "Export")
    owner.import_folder("export-full", build_pool_folder(tmp_path / "pool"))
    api = ParticipantAPI(db)
    view = api.start("export-full", "L1", True)
    while not view.finished:
        view = api.submit(view.resume_code, view.current_public_id, QuizAnswer(False, 2, 3, 4, 5, 1.0))
    db.dispose()
    exp = tmp_path / "export"
    exp.mkdir()
    old = {n: f"old {n}".encode() for n in ("answers.csv", "summary.csv", "report.json", "fig7.png")}
    for n, data in old.items():
        (exp / n).write_bytes(data)
    proc = _cli(["study", "export", "export-full", "--out", str(exp), "--db", postgres_url], env, fsize=10_000)
    line = _one_line_error(proc)
    assert str(exp) in line and "File too large" in line
    ref = tmp_path / "reference"
    assert _cli(["study", "export", "export-full", "--out", str(ref), "--db", postgres_url], env).returncode == 0
    for n, data in old.items():  # each file is either the old one or the complete new one
        now = (exp / n).read_bytes()
        assert now in (data, (ref / n).read_bytes()), n
    assert (exp / "fig7.png").read_bytes() == old["fig7.png"]  # the big one could not be written
    assert not [p for p in exp.iterdir() if p.name.startswith(".")]

    # an output "folder" that is a file: one line naming it
    proc = _cli(["study", "export", "export-full", "--out", str(png / "sub"), "--db", postgres_url], env)
    assert str(png) in _one_line_error(proc)


def test_emulator_fit_on_a_full_disk(tmp_path, shared_dir):
    points = shared_dir / "samples" / "alphaearth_s1_points"
    if not points.is_dir():
        pytest.skip("../shared/samples/alphaearth_s1_points is absent")
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"OLD WEIGHTS")
    proc = _cli(
        ["emulator", "fit", "--points", str(points), "--out", str(weights), "--no-mlp", "--method", "linear"],
        fsize=2048,
    )
    assert f"cannot write {weights}" in _one_line_error(proc)
    assert weights.read_bytes() == b"OLD WEIGHTS"


_EVERY_RASTER_WRITER = """
import logging, resource, signal, sys
import numpy as np
from pathlib import Path
from conftest import make_scene
from sarviz.batch.items import write_cog
from sarviz.formats.generated_image import GeneratedImage
from sarviz.formats.sar2sar import RenderOutput, SarGeoTiff
from sarviz.scene import write_scene

# the log goes to stdout (a pipe: the file-size limit below does not apply to it)
logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="LOG %(name)s %(levelname)s %(message)s")
out = Path(sys.argv[1])
scene = make_scene(scene_id="noise")
rng = np.random.default_rng(0)
pixels = {p: rng.normal(-12, 3, (320, 320)).astype(np.float32) for p in ("VV", "VH")}
writers = {
    "write_scene": lambda: write_scene(scene, out / "scene.tif"),
    "write_cog": lambda: write_cog(out / "cog.tif", np.stack(list(pixels.values())), ("VV", "VH"), scene.crs, scene.transform),
    "GeneratedImage.save": lambda: GeneratedImage(pixels["VV"], pixels["VH"], scene.crs, scene.transform).save(out / "gen.tif"),
    "SarGeoTiff.save": lambda: SarGeoTiff(pixels, scene.crs, scene.transform).save(out / "sar.tif"),
    "RenderOutput.write": lambda: RenderOutput(pixels, scene.crs, scene.transform, {}).write(out / "render.tif"),
}
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))  # every write fails part-way, as on a full disk
for name, write in writers.items():
    try:
        write()
        print("RESULT", name, "WROTE")
    except OSError as exc:
        print("RESULT", name, "OSError", exc.errno)
    except Exception as exc:  # reported by the test below: every writer must fail with an OSError
        print("RESULT", name, type(exc).__name__)
"""


def test_failed_raster_writes_keep_gdal_and_libtiff_noise_off_the_terminal(tmp_path):
    """libtiff printed "_tiffWriteProc: File too large." (and on a full disk "No space left on
    device", "TIFFRewriteDirectory: …") straight to fd 2 beside our one line. Every raster writer
    routes GDAL's and libtiff's messages to logging (sarviz.gdal_messages): the process's stderr,
    captured at the file-descriptor level, stays empty, and the messages are in the log."""
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", _EVERY_RASTER_WRITER, str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])},
        timeout=300,
    )
    lines = proc.stdout.splitlines()
    results = dict(line.split(" ", 2)[1:] for line in lines if line.startswith("RESULT "))
    assert proc.returncode == 0 and len(results) == 5, (proc.stdout, proc.stderr)
    # each says one OSError (the command line prints it as "cannot write PATH: …"), none "wrote"
    assert all(r.startswith("OSError") for r in results.values()), results
    assert proc.stderr == "", proc.stderr  # no "_tiffWriteProc: …", no "ERROR 1: …", no traceback
    log = [line for line in lines if line.startswith("LOG ")]
    assert "LOG sarviz.gdal ERROR libtiff _tiffWriteProc: File too large" in log, log
    assert not [p for p in out.iterdir()]  # no half-written file left


def test_routing_gdal_messages_leaves_later_libraries_alone():
    """The handlers are set on the GDAL and libtiff already in the process without making their
    symbols global: with RTLD_GLOBAL, pyproj's own PROJ (loaded afterwards) bound to them and
    the process aborted (std::bad_alloc) on ``import pyproj``."""
    code = (
        "from sarviz.gdal_messages import route_gdal_messages; assert route_gdal_messages(); "
        "import pyproj; from pyproj import Transformer; "
        "print(round(Transformer.from_crs('EPSG:32633', 'EPSG:4326', always_xy=True).transform(500000, 0)[0], 6))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "15.0", (proc.stdout, proc.stderr)  # zone 33's meridian


# -- inputs that passed silently ------------------------------------------------------------------
def _points_csv(path: Path, rows: list[list[str]]) -> Path:
    header = [f"A{i:02d}" for i in range(64)]
    path.write_text("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n")
    return path


def test_emulate_points_refuses_surplus_values_and_infinite_embeddings(tmp_path, capsys):
    unit = [f"{v:.6f}" for v in np.full(64, 1 / 8.0)]
    good = _points_csv(tmp_path / "good.csv", [unit])
    out = tmp_path / "out.csv"
    assert main(["emulate-points", "--points", str(good), "--out", str(out)]) == 0
    capsys.readouterr()
    shifted = _points_csv(tmp_path / "shifted.csv", [unit, ["0.5"] + unit])  # 65 values, 64 columns
    out.write_text("previous")
    assert main(["emulate-points", "--points", str(shifted), "--out", str(out)]) == 2
    assert "line 3 has 65 values but the header has 64 columns" in capsys.readouterr().err
    assert out.read_text() == "previous"
    for bad in ("inf", "1e308", "-inf"):
        row = list(unit)
        row[5] = bad
        path = _points_csv(tmp_path / f"{bad}.csv", [unit, row])
        assert main(["emulate-points", "--points", str(path), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "column A05 row 2" in err and "not a possible AlphaEarth value" in err and "missing" not in err


def test_model_card_never_prints_an_environment_variable(tmp_path, monkeypatch, capsys):
    secret = "s3cret-owner-pw"
    monkeypatch.setenv("SARVIZ_STUDY_OWNER_PASSWORD", secret)
    monkeypatch.setenv("SOME_MODELS_DIR", str(tmp_path / "nowhere"))
    card = json.loads((ROOT / "models" / "huiyanearth-sar.json").read_text())
    card["id"] = "leaky"
    card["weights"]["controlnet"] = "${SARVIZ_STUDY_OWNER_PASSWORD}/controlnet"
    card["weights"]["base"] = "$SOME_MODELS_DIR/sd15"
    card["how_to_get"] = "ask $SARVIZ_STUDY_OWNER_PASSWORD"
    (tmp_path / "leaky.json").write_text(json.dumps(card))
    monkeypatch.setenv("SARVIZ_MODELS", str(tmp_path))
    from sarviz.registry import ModelRegistry

    gen = ModelRegistry().generator("leaky")
    problem = gen.readiness().details
    assert problem and secret not in problem
    assert "${SARVIZ_STUDY_OWNER_PASSWORD}/controlnet" in problem and "$SOME_MODELS_DIR/sd15" in problem
    main(["models"])  # the model list shows each card's problem
    shown = capsys.readouterr()
    assert "leaky" in shown.out + shown.err and secret not in shown.out + shown.err


def test_leftover_temporary_files_are_cleaned_quietly(scene_folder):
    """A killed write leaves ``.NAME.xxxx.tif.part`` beside its target: never read as a scene, never
    a warning, and removed once old enough to be certainly dead."""
    import time

    from sarviz.store import STALE_PART_SECONDS, SceneStore

    folder, _ = scene_folder
    old, fresh = folder / ".good.tif.k1ll3d.tif.part", folder / ".other.tif.runn1ng.tif.part"
    old.write_bytes(b"half a tiff")
    fresh.write_bytes(b"being written")
    past = time.time() - STALE_PART_SECONDS - 60
    os.utime(old, (past, past))
    store = SceneStore(folder)
    assert not old.exists() and fresh.exists()
    assert [e.scene_id for e in store] == ["good"]
    assert not any(".part" in p for p in store.problems)
