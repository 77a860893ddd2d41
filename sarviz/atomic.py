"""Atomic file writes: a temporary file beside the target, renamed over it when complete."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator


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
    except BaseException as exc:
        # checked before the partial file goes (its removal frees the space again)
        full = disk_full_error(path.parent) if isinstance(exc, Exception) else None
        Path(tmp).unlink(missing_ok=True)
        if full is not None and not (
            isinstance(exc, OSError) and exc.errno == errno.ENOSPC and "disk full at" in str(exc)
        ):
            raise full from exc
        raise


#: after a failed write, a folder with less free space than this is reported as full
DISK_FULL_BELOW = 8 * 2**20


def disk_full_error(folder: str | os.PathLike) -> OSError | None:
    """An ``OSError(ENOSPC, "disk full at FOLDER …")`` if ``folder``'s file system is (nearly) full.

    GDAL and libtiff rarely pass ENOSPC on: a full disk surfaces as "TIFFRewriteDirectory:
    Error fetching directory count" or a short file. After any failed write, the free space
    says what really happened.
    """
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free >= DISK_FULL_BELOW:
        return None
    return OSError(errno.ENOSPC, f"disk full at {folder} ({free // 1024} KiB free)")


def replace_dir(tmp: str | os.PathLike, final: str | os.PathLike, old: str | os.PathLike | None = None) -> Path:
    """Rename the complete folder ``tmp`` to ``final``; an existing ``final`` survives any failure.

    A folder cannot be renamed over a non-empty one, so the existing ``final`` is first moved
    aside to ``old`` (default ``.NAME.old`` beside it), put back if the swap fails, and removed
    only once the new folder is in place.
    """
    import shutil

    tmp, final = Path(tmp), Path(final)
    old = Path(old) if old is not None else final.with_name(f".{final.name}.old")
    had = final.exists()
    if had:
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        if had:
            os.replace(old, final)
        raise
    if had:
        shutil.rmtree(old, ignore_errors=True)
    return final


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; when the block succeeds, swap it in (:func:`replace_dir`).

    On any error the temporary folder is removed and an existing ``path`` stays as it was.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON (sorted keys, trailing newline) to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_csv_atomic(path: str | os.PathLike, columns: Iterable[str], rows: Iterable[dict]) -> Path:
    """Write ``rows`` (dicts; None → empty cell, extra keys ignored) as CSV to ``path`` atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return write_text_atomic(path, buf.getvalue())
