"""Source chain: local store → (EE) → public, caching into the store; and `sarviz fetch`."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

from _waits import patience
from sarviz.cli import main
from sarviz.scene import read_scene
from sarviz.settings import Settings
from sarviz.sources.base import NoDataHere, SourceError
from sarviz.sources.chain import SourceChain
from sarviz.sources.earthengine import EarthEngineSource
from sarviz.sources.local import LocalSource
from sarviz.sources.public import PublicSource

from _sources_fixtures import build_aef_zarr, closed_port_url, make_s1_items, make_s2_items, stac_api, write_items

LAT, LON = 47.0, 8.0
LAT2, LON2 = 46.0, 9.0  # embedding only: no Sentinel items there


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("chain")
    build_aef_zarr(d / "aef.zarr", [(LAT, LON, 60, 90), (LAT2, LON2, 60, 90)])
    (d / "cogs").mkdir()
    items = make_s1_items(d / "cogs", LAT, LON, ["2018-03-01", "2018-05-01"]) + make_s2_items(
        d / "cogs", LAT, LON, ["2018-06-01"]
    )
    files = write_items(d / "cogs", items)
    with stac_api(files) as url:
        yield {"aef": str(d / "aef.zarr"), "stac": url}


def chain_for(world, folder):
    return SourceChain(
        [LocalSource(folder), PublicSource(aef_url=world["aef"], stac_url=world["stac"], timeout=5)],
        cache_folder=folder,
    )


def test_fetch_caches_and_second_visit_is_local(world, tmp_path):
    chain = chain_for(world, tmp_path)
    seen = []
    first = chain.get_scene(LAT, LON, size_px=64, year=2018, progress=lambda f, m: seen.append(f))
    assert first.complete and set(first.served_by.values()) == {"public"}
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert first.cached_path is not None and first.cached_path.exists()
    assert not list(tmp_path.glob("*.part"))
    lines = first.summary_lines()
    assert lines[0].startswith("Scene for (47.00000, 8.00000)") and any("sentinel-1-rtc" in line for line in lines)
    # the cached file round-trips: same grid, same layers, provenance names the sources
    cached = read_scene(first.cached_path)
    assert cached.crs == first.scene.crs and cached.transform == first.scene.transform
    for layer in ("embedding", "vv_db", "vh_db", "angle_deg", "optical"):
        np.testing.assert_array_equal(getattr(cached, layer), getattr(first.scene, layer))
    assert cached.provenance["layers"]["vv_db"]["source"] == "public" and cached.dates["year"] == "2018"
    # second visit: served by the local store from the cached file, no remote source involved
    t0 = time.perf_counter()
    second = chain_for(world, tmp_path).get_scene(LAT, LON, size_px=64, year=2018)
    assert time.perf_counter() - t0 < patience(2.0)
    assert second.from_cache and second.cached_path is None
    assert "fetched from public" in second.reports["vv_db"].product
    np.testing.assert_array_equal(second.scene.embedding, first.scene.embedding)
    # another year is not served from the 2018 cache
    other = chain_for(world, tmp_path).get_scene(LAT, LON, size_px=64, year=2017)
    assert other.served_by["embedding"] == "public"


def test_partial_scene_says_what_is_missing(world, tmp_path):
    result = chain_for(world, tmp_path).get_scene(LAT2, LON2, size_px=64, year=2018)
    assert result.scene.embedding is not None and result.scene.vv_db is None
    assert "Sentinel-1" in result.missing["vv_db"] and "Planetary Computer" in result.missing["vv_db"]
    assert any(line.startswith("MISSING Sentinel-1 VV") for line in result.summary_lines())
    assert read_scene(result.cached_path).layers_present() == ["embedding"]


def test_no_data_anywhere_raises_and_leaves_no_file(world, tmp_path):
    with pytest.raises(NoDataHere, match="AlphaEarth embedding") as info:
        chain_for(world, tmp_path).get_scene(-30.0, -140.0, size_px=64, year=2018)
    assert "Sentinel-2" in str(info.value)
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".tif", ".part")]


def test_interrupted_fetch_leaves_no_partial_file(world, tmp_path):
    def cancel(fraction, message):
        if "writing" in message:
            raise KeyboardInterrupt  # the user stops the app just as the scene would be written

    with pytest.raises(KeyboardInterrupt):
        chain_for(world, tmp_path).get_scene(LAT, LON, size_px=64, year=2018, progress=cancel)
    assert not list(tmp_path.glob("*.tif")) and not list(tmp_path.glob(".*part"))


def test_dead_earth_engine_is_skipped_with_a_warning(world, tmp_path):
    class DeadHttp:
        def request(self, *a, **k):
            raise ConnectionRefusedError("connection refused")

    ee_source = EarthEngineSource("sarviz-test", http_transport=DeadHttp(), credentials=None)
    chain = SourceChain(
        [LocalSource(tmp_path), ee_source, PublicSource(aef_url=world["aef"], stac_url=world["stac"], timeout=5)],
        cache_folder=tmp_path,
    )
    t0 = time.perf_counter()
    result = chain.get_scene(LAT, LON, size_px=64, year=2018)
    assert time.perf_counter() - t0 < patience(10)
    assert any(w.startswith("earthengine skipped") and "network" in w for w in result.warnings)
    assert result.served_by["embedding"] == "public"


def test_from_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("SARVIZ_EE_PROJECT", raising=False)
    settings = Settings(scenes=tmp_path / "scenes", sources=("local", "ee", "public"), ee_project="")
    chain = SourceChain.from_settings(settings)
    assert [s.name for s in chain.sources] == ["local", "public"] and "earthengine" in chain.skipped
    settings.ee_project = "my-project"
    assert [s.name for s in SourceChain.from_settings(settings).sources] == ["local", "earthengine", "public"]
    settings.sources = ("local", "gdrive")
    with pytest.raises(SourceError, match="unknown scene source"):
        SourceChain.from_settings(settings)


@pytest.mark.parametrize(
    "lat,lon,year,size,match",
    [
        (95, 0, 2018, 64, "latitude"),
        (0, 0, 2030, 64, "2017–2025"),
        (0, 0, 2018, 7, "patch size"),
        ("north", 0, 2018, 64, "numbers"),
    ],
)
def test_bad_input_is_explained(tmp_path, lat, lon, year, size, match):
    chain = SourceChain([LocalSource(tmp_path)], cache_folder=tmp_path)
    with pytest.raises(Exception, match=match):
        chain.get_scene(lat, lon, size_px=size, year=year)


def test_cli_single_and_bulk(world, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SARVIZ_SOURCES", "local,public")
    out = tmp_path / "store"
    args = [
        "fetch",
        "--size",
        "64",
        "--year",
        "2018",
        "--out",
        str(out),
        "--source",
        "public",
        "--aef-url",
        world["aef"],
        "--stac-url",
        world["stac"],
    ]
    assert main(args + ["--lat", str(LAT), "--lon", str(LON)]) == 0
    text = capsys.readouterr().out
    assert "Sentinel-1 VV (dB): public" in text and "cached as" in text
    points = tmp_path / "points.csv"
    points.write_text(f"id,lat,lon\nalps,{LAT},{LON}\nsouth,{LAT2},{LON2}\nocean,-30,-140\nbad,abc,0\n")
    assert main(args + ["--points", str(points)]) == 1  # two points fail: exit code says so
    text = capsys.readouterr().out
    assert "alps" in text and "local — scene file" in text  # served from the first run's cache
    assert "ocean FAILED" in text and "bad FAILED" in text and "2 of 4 points fetched" in text
    geo = tmp_path / "points.geojson"
    geo.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "geometry": {"type": "Point", "coordinates": [LON2, LAT2]},
                        "properties": {"id": "g1"},
                    }
                ],
            }
        )
    )
    assert main(args + ["--points", str(geo), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["id"] == "g1" and "vv_db" in record["missing"]
    assert main(["fetch", "--lat", "1", "--out", str(out)]) == 2
    assert "--lat and --lon go together" in capsys.readouterr().err


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_cli_offline_public_fetch_fails_cleanly_and_readably(tmp_path):
    """The real CLI in a subprocess, every service refusing connections: the AlphaEarth mosaic on
    S3 (endpoint redirected to a closed local port), the STAC API likewise. No asyncio/botocore
    cleanup noise ("Exception ignored ...") at exit, fast, and one line a layer and source."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    dead = closed_port_url()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_S3": dead,
        "AWS_EC2_METADATA_DISABLED": "true",
        "HOME": str(tmp_path),
        "SARVIZ_HOME": str(tmp_path / ".sarviz"),
        "PYTHONWARNINGS": "ignore",
    }
    env.pop("AWS_PROFILE", None)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sarviz.cli",
            "fetch",
            "--lat",
            str(LAT),
            "--lon",
            str(LON),
            "--size",
            "64",
            "--year",
            "2018",
            "--source",
            "public",
            "--out",
            str(tmp_path / "store"),
            "--stac-url",
            dead,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    elapsed = time.perf_counter() - t0
    assert proc.returncode != 0
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert elapsed < patience(30), elapsed
    err = proc.stderr
    assert f"127.0.0.1:{_port_of(dead)}" in err and "zarr.json" in err  # the mosaic really went to S3
    lines = err.splitlines()
    start = next(i for i, line in enumerate(lines) if "no source has any layer" in line)
    block = lines[start + 1 :]
    assert [line.strip() for line in block if not line.startswith("    ")] == [
        "AlphaEarth embedding (64-D):",
        "Sentinel-1 VV/VH:",
        "Sentinel-2 optical:",
    ]
    reasons = [line.strip() for line in block if line.startswith("    - ")]
    assert len(reasons) == 6  # local + public for each of the three layers
    assert sum(r.startswith("- public:") and "network" in r for r in reasons) == 3
    assert all(len(line) < 400 for line in lines)  # no one-line wall of text (reasons are whole)


def test_missing_layers_list_one_reason_a_line(world, tmp_path):
    result = chain_for(world, tmp_path).get_scene(LAT2, LON2, size_px=64, year=2018)
    lines = result.summary_lines()
    i = lines.index("MISSING Sentinel-1 VV (dB):")
    assert lines[i + 1].startswith("  - local: no scene") and "Sentinel-1 VV/VH" in lines[i + 1]
    assert lines[i + 2].startswith("  - public: Sentinel-1") and "Planetary Computer" in lines[i + 2]
    assert result.missing_reasons["vv_db"] == [lines[i + 1][4:], lines[i + 2][4:]]
    assert result.missing["vv_db"] == "; ".join(result.missing_reasons["vv_db"])  # the JSON form is unchanged


def test_cli_ee_with_a_missing_key_file_names_the_file(tmp_path, capsys, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the key file must be checked before any network access")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("SARVIZ_EE_PROJECT", "sarviz-test")
    monkeypatch.setenv("SARVIZ_EE_KEY_FILE", "/nope.json")
    assert (
        main(
            [
                "fetch",
                "--lat",
                str(LAT),
                "--lon",
                str(LON),
                "--size",
                "64",
                "--year",
                "2018",
                "--source",
                "ee",
                "--out",
                str(tmp_path / "store"),
            ]
        )
        != 0
    )
    err = capsys.readouterr().err
    assert re.search(r"key file /nope\.json \(SARVIZ_EE_KEY_FILE[^)]*\) does not exist", err) and "network" not in err


def test_scene_provenance_says_single_or_composite_and_the_cache_keeps_them_apart(world, tmp_path):
    """The default scene holds one acquisition; a composite is an option recorded in the scene,
    cached under its own name, and never served for a single-acquisition request (or reverse)."""
    single = chain_for(world, tmp_path).get_scene(LAT, LON, size_px=64, year=2018)
    prov = single.scene.provenance
    assert prov["s1_mode"] == "single" and prov["s1_date"] == "2018-05-01"  # nearest to the window's middle
    assert prov["orbit"] == "descending" and prov["relative_orbit"] == 110 and "s1_composite" not in prov
    assert read_scene(single.cached_path).provenance["s1_mode"] == "single"
    composite = chain_for(world, tmp_path).get_scene(LAT, LON, size_px=64, year=2018, s1_mode="composite")
    assert composite.served_by["vv_db"] == "public"  # not the cached single acquisition
    assert composite.served_by["embedding"] == "local"
    cprov = composite.scene.provenance
    assert cprov["s1_mode"] == "composite" and "s1_date" not in cprov
    assert cprov["s1_composite"] == {"kind": "median", "n": 2, "dates": ["2018-03-01", "2018-05-01"]}
    assert composite.cached_path != single.cached_path and composite.cached_path.name.endswith("_composite.tif")
    # both are now served locally, each by its own kind, with the record carried over
    again = chain_for(world, tmp_path).get_scene(LAT, LON, size_px=64, year=2018, s1_mode="composite")
    assert again.from_cache and again.scene.provenance["s1_composite"]["n"] == 2
    again = chain_for(world, tmp_path).get_scene(LAT, LON, size_px=64, year=2018)
    assert again.from_cache and again.scene.provenance["s1_mode"] == "single"
    np.testing.assert_array_equal(again.scene.vv_db, single.scene.vv_db)
    # the chain's default comes from the settings (s1_mode)
    composite_chain = SourceChain(chain_for(world, tmp_path).sources, cache_folder=tmp_path, s1_mode="composite")
    assert composite_chain.get_scene(LAT, LON, size_px=64, year=2018).scene.provenance["s1_mode"] == "composite"
    with pytest.raises(SourceError, match="single.*composite"):
        chain_for(world, tmp_path).get_scene(LAT, LON, size_px=64, year=2018, s1_mode="median")


def test_cli_s1_mode(world, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SARVIZ_SOURCES", "local,public")
    args = [
        "fetch",
        "--size",
        "64",
        "--year",
        "2018",
        "--out",
        str(tmp_path / "store"),
        "--source",
        "public",
        "--aef-url",
        world["aef"],
        "--stac-url",
        world["stac"],
        "--lat",
        str(LAT),
        "--lon",
        str(LON),
        "--json",
    ]
    assert main(args + ["--s1-mode", "composite"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["request"]["s1_mode"] == "composite"
    assert record["layers"]["vv_db"]["detail"]["s1_composite"]["n"] == 2
    assert main(args + ["--date", "2018-03-05"]) == 0  # the default: one acquisition, nearest to --date
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["layers"]["vv_db"]["detail"]["s1_date"] == "2018-03-01"
    assert main(args + ["--s1-mode", "single", "--composite", "median"]) == 2
    assert "contradicts" in capsys.readouterr().err
