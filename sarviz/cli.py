"""The ``sarviz`` command: a thin layer over the library.

Sub-commands live in :mod:`sarviz.commands` (one module each, discovered here). Errors a
user can fix are printed as one clear line on stderr with a non-zero exit code, never as
a traceback; ``SARVIZ_DEBUG=1`` shows the traceback too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

import sarviz
import sarviz.commands


class CliError(Exception):
    """An error for the user: printed without a traceback, exit code ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sarviz", description=sarviz.__doc__)
    parser.add_argument("--version", action="version", version=f"sarviz {sarviz.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(sarviz.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"sarviz.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # Errors the library raises for users carry their message; anything else is a bug.
    # (sarviz.errors imports nothing, so recognising them costs no rasterio/torch/SQLAlchemy.)
    from sarviz.errors import GenerationError, SceneError, StudyError

    user_errors: tuple[type[BaseException], ...] = (CliError, SceneError, GenerationError, StudyError,
                                                     FileNotFoundError, PermissionError, NotADirectoryError,
                                                     ValueError)
    extra = getattr(sarviz.commands, "USER_ERRORS", ())
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into `head` & co.: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("sarviz: interrupted", file=sys.stderr)
        return 130
    except user_errors + tuple(extra) + (OSError,) as exc:
        if os.environ.get("SARVIZ_DEBUG"):
            raise
        print(f"sarviz {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return getattr(exc, "code", 2) if isinstance(getattr(exc, "code", 2), int) else 2


def _one_line(exc: BaseException) -> str:
    """An error for the terminal; an OS error (full disk, read-only folder) names the path and the cause."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}; an existing file there is unchanged"
    return str(exc).strip() or type(exc).__name__  # (a few errors are a short structured block)


if __name__ == "__main__":
    sys.exit(main())
