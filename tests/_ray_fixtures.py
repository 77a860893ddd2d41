"""One local Ray for the test session, shared by every test that runs a batch or an evaluation on Ray.

Starting Ray (GCS, raylet, the worker pool) is the dearest step of a Ray test — tens of seconds
on a busy 2-core machine — so it happens once, when the first test asks for ``ray_local``. The
library uses a Ray that is already running (:func:`sarviz.batch.engine.ray_runtime`) instead of
starting and stopping its own; the command line, with no Ray running, still starts and stops one
itself. An idle Ray still costs ~2 % of a core and its workers' memory, so it is shut down right
after the last test of the session that asks for it, not when the session ends.
"""

from __future__ import annotations

import pytest

#: CPUs of the shared runtime: two generation workers (the batch tests' ``workers=2``)
RAY_CPUS = 2

_last_user: list[str] = []  # node id of the last collected test that asks for ray_local


@pytest.fixture(scope="session")
def ray_local():
    from sarviz.batch.engine import ray_runtime

    with ray_runtime(None, workers=RAY_CPUS) as ray:
        yield ray


@pytest.hookimpl(trylast=True)  # after -k/-m deselection
def pytest_collection_modifyitems(session, config, items):
    users = [item.nodeid for item in items if "ray_local" in getattr(item, "fixturenames", ())]
    _last_user[:] = users[-1:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    if _last_user and item.nodeid == _last_user[0]:
        import sys

        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            ray.shutdown()  # the fixture's own shutdown at the session's end is then a no-op
