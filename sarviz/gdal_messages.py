"""GDAL's and libtiff's messages go to Python logging (``sarviz.gdal``), never straight to the terminal.

A full disk while writing a GeoTIFF made libtiff print lines like "_tiffWriteProc: No space
left on device." and "TIFFRewriteDirectory: Error fetching directory count" on the process's
stderr, beside our own one-line "disk full at PATH". They come by two roads that
rasterio's own handling (a thread-local CPL error handler that logs, pushed only while a
rasterio environment is active) does not cover:

* GDAL's *global* CPL error handler (``CPLSetErrorHandler``; GDAL's default prints "ERROR 1:
  …" to stderr) — used for messages outside a rasterio environment, e.g. when a dataset is
  closed by the garbage collector;
* libtiff's *global* error and warning handlers (``TIFFSetErrorHandler``/``…WarningHandler``;
  libtiff's default prints "module: message." to stderr) — GDAL's own TIFF I/O callbacks
  report write and seek failures through ``TIFFErrorExt``, which only these handlers see.

Neither has a configuration option that routes it to logging (``CPL_LOG`` only redirects
GDAL's default handler to a file, not libtiff's), so :func:`route_gdal_messages` installs
logging handlers for both through ``ctypes`` on the libraries already loaded by rasterio —
the documented C entry points (GDAL's "Error handling" page; libtiff's ``TIFFError(3tiff)``).
The ``sarviz.gdal`` and ``rasterio`` loggers get a :class:`logging.NullHandler`, as a library's
loggers should: their records reach the handlers an application configures (the server log,
a batch's ``batch.log``) and never the terminal by Python's last-resort handler. The user
sees the one line our code says about the failure (e.g. :func:`sarviz.atomic.disk_full_error`).

Every place sarviz writes a raster calls :func:`route_gdal_messages` first (it is cheap after
the first call, and per process, so Ray workers install it too).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import logging
import os
import platform
import threading
from typing import Any, Iterator

log = logging.getLogger("sarviz.gdal")
log.addHandler(logging.NullHandler())

_LEVELS = {1: logging.DEBUG, 2: logging.WARNING, 3: logging.ERROR, 4: logging.CRITICAL}  # GDAL CPLErr
_CPL_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_char_p)
# libtiff's TIFFErrorHandler: (module, fmt, va_list); a va_list argument is a pointer on x86-64
# and on arm64 (there the 32-byte struct is passed by reference), so vsnprintf can format it
_TIFF_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
_VA_LIST_IS_POINTER = platform.machine().lower() in ("x86_64", "amd64", "aarch64", "arm64")

_lock = threading.Lock()
_installed: list[tuple[ctypes.CDLL, str]] = []  # (library, setter) pairs set by us, undone at exit
_done = False


def _text(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", "replace").strip()


def _on_cpl(err_class: int, err_no: int, msg: bytes | None) -> None:
    try:
        log.log(_LEVELS.get(err_class, logging.ERROR), "GDAL error %d: %s", err_no, _text(msg))
    except Exception:  # never raise into C
        pass


def _tiff_callback(level: int) -> Any:  # a ctypes function pointer
    def handler(module: bytes | None, fmt: bytes | None, args: int | None) -> None:
        try:
            text = _text(fmt)
            if _VA_LIST_IS_POINTER and fmt and args:
                buf = ctypes.create_string_buffer(1024)
                _libc().vsnprintf(buf, len(buf), fmt, args)
                text = _text(buf.value)
            log.log(level, "libtiff %s: %s", _text(module), text)
        except Exception:  # never raise into C
            pass

    return _TIFF_HANDLER(handler)


_libc_cache: list[ctypes.CDLL] = []


def _libc() -> ctypes.CDLL:
    if not _libc_cache:
        libc = ctypes.CDLL(None)
        libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
        libc.vsnprintf.restype = ctypes.c_int
        _libc_cache.append(libc)
    return _libc_cache[0]


# kept alive for as long as the libraries may call them
_CPL_CALLBACK = _CPL_HANDLER(_on_cpl)
_TIFF_ERROR_CALLBACK = _tiff_callback(logging.ERROR)
_TIFF_WARNING_CALLBACK = _tiff_callback(logging.WARNING)


def _loaded_libraries(stem: str) -> list[str]:
    """Paths of the shared libraries named ``stem*`` mapped into this process (Linux)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            paths = {line.split(None, 5)[-1].strip() for line in fh if stem in line}
    except OSError:
        return []
    return sorted(p for p in paths if os.path.basename(p).startswith(stem) and ".so" in p)


def _open_loaded(path: str) -> ctypes.CDLL | None:
    # RTLD_NOLOAD: the copy already in the process, never a second one. Never RTLD_GLOBAL: the
    # library's symbols would then bind libraries loaded later (pyproj's own PROJ aborted)
    try:
        return ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0))
    except OSError:
        return None


def _set(lib: ctypes.CDLL, setter: str, callback: Any) -> bool:  # a ctypes function pointer
    func = getattr(lib, setter, None)
    if func is None:
        return False
    func.restype = ctypes.c_void_p
    func.argtypes = [ctypes.c_void_p]
    func(ctypes.cast(callback, ctypes.c_void_p))
    _installed.append((lib, setter))
    return True


def route_gdal_messages() -> bool:
    """Send GDAL's and libtiff's global messages to the ``sarviz.gdal`` logger (once per process).

    True if the handlers are in place (GDAL found; libtiff too where it is a library of its
    own, as in rasterio's wheels, or built into GDAL); False where the libraries cannot be
    reached (then GDAL's defaults stay, and a failure is still reported by our own line).
    """
    global _done
    with _lock:
        if _done:
            return bool(_installed)
        _done = True
        import rasterio  # noqa: F401 - loads GDAL (and the libtiff it uses) into the process

        logging.getLogger("rasterio").addHandler(logging.NullHandler())
        gdal_ok = tiff_ok = False
        for path in _loaded_libraries("libgdal"):
            lib = _open_loaded(path)
            if lib is None:
                continue
            gdal_ok = _set(lib, "CPLSetErrorHandler", _CPL_CALLBACK) or gdal_ok
            for prefix in ("", "gdal_"):  # GDAL's internal libtiff renames its symbols gdal_TIFF…
                if _set(lib, f"{prefix}TIFFSetErrorHandler", _TIFF_ERROR_CALLBACK):
                    tiff_ok = _set(lib, f"{prefix}TIFFSetWarningHandler", _TIFF_WARNING_CALLBACK) or True
        for path in _loaded_libraries("libtiff"):  # every libtiff in the process (rasterio's, Pillow's)
            lib = _open_loaded(path)
            if lib is not None and _set(lib, "TIFFSetErrorHandler", _TIFF_ERROR_CALLBACK):
                _set(lib, "TIFFSetWarningHandler", _TIFF_WARNING_CALLBACK)
                tiff_ok = True
        if not (gdal_ok and tiff_ok):
            log.debug("GDAL/libtiff message handlers: GDAL %s, libtiff %s", gdal_ok, tiff_ok)
        return gdal_ok and tiff_ok


@atexit.register
def _quiet_at_exit() -> None:
    """At interpreter exit the Python callbacks go; messages during teardown are dropped, not printed.

    libtiff reports nothing without a handler; GDAL gets its own quiet handler.
    """
    for lib, setter in reversed(_installed):
        try:
            quiet = getattr(lib, "CPLQuietErrorHandler", None) if setter == "CPLSetErrorHandler" else None
            if setter == "CPLSetErrorHandler" and quiet is None:
                continue
            getattr(lib, setter)(ctypes.cast(quiet, ctypes.c_void_p) if quiet is not None else None)
        except Exception:
            pass
    _installed.clear()


@contextlib.contextmanager
def gdal_write_errors(target: str | os.PathLike) -> Iterator[None]:
    """GDAL's exception from writing a raster as the ``OSError`` a command reports in one line.

    A write that fails part-way (file-size limit, I/O error) comes out of rasterio as a
    ``CPLE_…Error`` that is not an ``OSError``; use inside :func:`sarviz.atomic.atomic_path`,
    which turns it into "disk full at FOLDER" when the disk is what ran out.
    """
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    try:
        yield
    except (CPLE_BaseError, RasterioError) as exc:
        if isinstance(exc, OSError):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise OSError(errno.EIO, f"GDAL could not write the file ({first})", os.fspath(target)) from exc
