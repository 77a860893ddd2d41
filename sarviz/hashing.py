"""File hashes, for provenance (which weights made an image) and dataset records."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike, chunk: int = 16 << 20) -> str:
    """sha256 (hex) of a file, cached by (path, size, mtime) since weight files are GBs."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(chunk), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def seed_for(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes and Python runs, unlike hash())."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
