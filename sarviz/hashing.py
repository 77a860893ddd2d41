"""File hashes, for provenance (which weights made an image) and dataset records."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_HASHES: dict[tuple[str, int, int], str] = {}


def _persistent_cache_path() -> Path:
    from sarviz.settings import HOME, env

    return Path(env("SARVIZ_HASH_CACHE") or HOME / "sha256-cache.json")


def _persistent_get(key: str) -> str | None:
    import json

    try:
        value = json.loads(_persistent_cache_path().read_text()).get(key)
        return value if isinstance(value, str) and len(value) == 64 else None
    except (OSError, ValueError, AttributeError):
        return None  # absent or corrupt: hashed again


def _persistent_put(key: str, digest: str) -> None:
    import json

    from sarviz.atomic import atomic_path

    path = _persistent_cache_path()
    try:
        data = json.loads(path.read_text())
        data = data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        data = {}
    data[key] = digest
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=0))
    except OSError:
        pass  # a read-only home only costs hashing again next time


def file_sha256(path: str | os.PathLike, chunk: int = 16 << 20, persistent: bool = False) -> str:
    """sha256 (hex) of a file, cached by (path, size, mtime) since weight files are GBs.

    ``persistent``: also cache across processes in the sarviz home folder, keyed by (path,
    size, mtime_ns, inode) — hashing the ~5.6 GB of SD 1.5 + ControlNet weights costs seconds
    of every cold start (time to first image, benchmarks/RESULTS_cpu_speed.md). A file rewritten
    in place with the same size within the same nanosecond timestamp would keep its old hash;
    every writer we know of changes mtime or inode.
    """
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    disk_key = f"{key[0]}|{key[1]}|{key[2]}|{st.st_ino}"
    if key not in _HASHES and persistent:
        cached = _persistent_get(disk_key)
        if cached:
            _HASHES[key] = cached
    if key not in _HASHES:
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(chunk), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
        if persistent:
            _persistent_put(disk_key, _HASHES[key])
    return _HASHES[key]


def seed_for(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes and Python runs, unlike hash())."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
