"""Atomic file writes: a temporary file beside the target, renamed over it when complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".part") -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; when the block succeeds, rename it onto ``path``.

    On any error the temporary file is removed, so a crash, a full disk or an interrupt
    never leaves a half-written file, and an existing ``path`` stays as it was. The result
    is made 0644 (mkstemp creates 0600 files; these are shared data files).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
