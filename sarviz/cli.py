"""The ``sarviz`` command: a thin layer over the library.

Sub-commands live in :mod:`sarviz.commands` (one module each, discovered here). Errors a
user can fix (:class:`sarviz.errors.SarvizError`, ``OSError``) are printed as one clear line
on stderr with a non-zero exit code, never as a traceback; any other exception is a bug and
prints one "internal error, please report" line (exit 70). ``SARVIZ_DEBUG=1`` shows the
traceback in both cases.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import sarviz
import sarviz.commands
from sarviz.errors import CliError, SarvizError  # noqa: F401  (CliError re-exported: commands import it from here)
from sarviz.settings import env

INTERNAL_ERROR = "internal error, please report it (set SARVIZ_DEBUG=1 for details)"


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
    # sarviz.errors imports nothing, so recognising user errors costs no rasterio/torch/SQLAlchemy.
    # Only SarvizError (said for a person) and OSError (full disk, missing file) are user errors;
    # anything else is a bug: its traceback under SARVIZ_DEBUG, otherwise one line without paths.
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into `head` & co.: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("sarviz: interrupted", file=sys.stderr)
        return 130
    except (SarvizError, OSError) as exc:
        if env("SARVIZ_DEBUG"):
            raise
        print(f"sarviz {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        code = getattr(exc, "code", 2)
        return code if isinstance(code, int) and not isinstance(code, bool) and code != 0 else 2
    except Exception as exc:
        if env("SARVIZ_DEBUG"):
            raise
        print(f"sarviz {args.command}: {INTERNAL_ERROR} [{type(exc).__name__}]", file=sys.stderr)
        return 70  # EX_SOFTWARE


def _one_line(exc: BaseException) -> str:
    """An error for the terminal; an OS error (full disk, read-only folder) names the path and the cause."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}; an existing file there is unchanged"
    return str(exc).strip() or type(exc).__name__  # (a few errors are a short structured block)


if __name__ == "__main__":
    sys.exit(main())
