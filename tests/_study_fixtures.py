"""Shared fixtures for the study tests: real image files, real databases (SQLite file and a
real PostgreSQL server started on loopback in a temp dir)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CLASSES = ("urban", "forest", "farmland", "water")


# -- image files ----------------------------------------------------------------------------
def write_sar_tif(path: Path, seed: int, size: int = 32, crs: str = "EPSG:32633", offset_db: float = 0.0) -> Path:
    """A small real GeoTIFF: bands "VV", "VH" in dB, UTM 10 m grid, provenance tag."""
    rng = np.random.default_rng(seed)
    vv = (-12 + offset_db + 3 * rng.standard_normal((size, size))).astype(np.float32)
    vh = (vv - 7 + rng.standard_normal((size, size))).astype(np.float32)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=2,
        dtype="float32",
        crs=crs,
        transform=Affine(10, 0, 500_000 + 1000 * seed, 0, -10, 5_300_000),
    ) as dst:
        dst.write(np.stack([vv, vh]))
        dst.descriptions = ("VV", "VH")
        dst.update_tags(PROVENANCE=f'{{"model_id": "secret-model-{seed}"}}', SECRET_LABEL="real-or-not")
    return path


def write_png(path: Path, seed: int, size: int = 48) -> Path:
    """A grey PNG with a text chunk that must not survive pooling."""
    from PIL.PngImagePlugin import PngInfo

    rng = np.random.default_rng(seed)
    info = PngInfo()
    info.add_text("Source", f"generator-{seed}")
    Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).save(path, pnginfo=info)
    return path


def build_pool_folder(folder: Path, n_real: int = 4, n_other: int = 4, n_ours: int = 8, start_seed: int = 0) -> Path:
    """A folder of real/other/ours images with a labels.csv, classes cycling through CLASSES."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["file,source,model_id,scene_class"]
    seed = start_seed
    for source, n in (("real", n_real), ("other", n_other), ("ours", n_ours)):
        for i in range(n):
            seed += 1
            cls = CLASSES[i % len(CLASSES)]
            if source == "other":
                name = f"img_{seed:03d}.png"
                write_png(folder / name, seed)
            else:
                name = f"img_{seed:03d}.tif"
                write_sar_tif(folder / name, seed)
            rows.append(f"{name},{source},{'' if source == 'real' else source + '-model'},{cls}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def make_study(owner, code: str, folder: Path, **kw) -> str:
    owner.create_study(code, f"Study {code}")
    report = owner.import_folder(code, build_pool_folder(folder, **kw))
    assert not report.failed, [o.problem for o in report.failed]
    return code


# -- databases ------------------------------------------------------------------------------
@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.sqlite'}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server on 127.0.0.1:<free port> in a temp dir; yields its base URL.

    PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user
    (created by the Debian package) via ``runuser``.
    """
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (Debian: apt-get install postgresql)")
    as_root = os.geteuid() == 0
    if as_root:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
    base = Path(tempfile.mkdtemp(prefix="sarviz-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if as_root:
        for p in (base, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    port = _free_port()
    log = base / "server.log"
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    try:
        subprocess.run(
            prefix
            + [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            env=env,
        )
        subprocess.run(
            prefix
            + [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                "start",
            ],
            check=True,
            capture_output=True,
            env=env,
        )
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace")[-2000:]
        server_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {detail}\n{server_log}") from None
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True, env=env
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_base_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_base_url: str) -> str:
    """A fresh, empty database on the shared test server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{postgres_base_url}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres_base_url}/{name}"


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
