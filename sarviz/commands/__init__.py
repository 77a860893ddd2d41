"""CLI sub-commands: every module here defines ``register(subparsers)``.

``sarviz.cli`` discovers the modules, so adding a command means adding a module here.
Each ``register`` adds one or more sub-parsers and sets ``func`` on them: a callable
taking the parsed ``argparse.Namespace`` and returning an exit code.
"""


def cli_progress(label: str):
    """A progress callback for the terminal: ``[label] message`` on stderr, at most two lines a second."""
    import sys
    import time

    last = [0.0]

    def progress(step: int, total: int, message: str) -> None:
        now = time.monotonic()
        if step >= total or now - last[0] > 0.5:
            last[0] = now
            print(f"[{label}] {message}", file=sys.stderr, flush=True)

    return progress
