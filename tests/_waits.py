"""Wait budgets that grow with how busy the machine is (a suite that holds on a busy machine).

CI runs beside other work; a 2-core machine at load 6 runs a browser and a server three times
slower than a quiet one. A wait given as a fixed number of seconds that is generous on a quiet
machine is a coin toss there. :func:`patience` scales a quiet-machine budget by the run queue
per core (the 1-minute load average), so the wait still ends when its condition holds and
only its give-up point moves.
"""

from __future__ import annotations

import os


def busy_factor() -> float:
    """How many times slower than a quiet machine this one may run now (1 … 8)."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        return 1.0
    return min(8.0, max(1.0, load / (os.cpu_count() or 1)))


def patience(seconds: float) -> float:
    """The give-up point for a wait that takes well under ``seconds`` on a quiet machine."""
    return seconds * busy_factor()


def patience_ms(seconds: float) -> float:
    """:func:`patience` in milliseconds (Playwright's unit)."""
    return patience(seconds) * 1000.0
