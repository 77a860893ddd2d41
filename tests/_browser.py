"""Real-browser test support: a Streamlit server on loopback and Debian Chromium via Playwright.

The test machine has no internet, and folium pages load Leaflet, jQuery and Bootstrap from
CDNs. ``chromium_page`` routes those requests to local copies fetched from the npm registry
by ``./dev test`` (into ``.cache/webassets``); other outside requests (map tiles, icon
fonts) get an empty answer, so nothing waits on a dead network.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from _waits import patience, patience_ms

ROOT = Path(__file__).resolve().parents[1]
WEB_ASSETS = ROOT / ".cache" / "webassets"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# a 1×1 transparent PNG, answered for map tiles
BLANK_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)
_NPM_URL = re.compile(r"https://cdn\.jsdelivr\.net/npm/(?P<pkg>[^@/]+)@[^/]+/(?P<path>.+)$")
_OTHER_LOCAL = {
    "https://code.jquery.com/jquery-3.7.1.min.js": WEB_ASSETS / "jquery/package/dist/jquery.min.js",
}


#: the Streamlit run has finished and no element of an earlier run is still on screen (stale)
RUN_IDLE_JS = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  return !!app && app.dataset.testScriptState === 'notRunning' && !document.querySelector("[data-stale='true']");
}"""


def wait_idle(page, seconds: float = 60) -> None:  # noqa: ANN001
    """Wait until the page's Streamlit run has finished and nothing stale is shown: clicks after
    this land on the elements of the current run, not on a stale copy that is about to go."""
    page.wait_for_function(RUN_IDLE_JS, timeout=patience_ms(seconds))


_IMAGES_STATE_JS = """([selector, first]) => {
  const imgs = [...document.querySelectorAll(selector)].slice(0, first ?? undefined);
  return imgs.map(i => ({src: i.src.slice(-60), complete: i.complete, width: i.naturalWidth}));
}"""


def wait_images_drawn(
    page,
    selector: str,
    *,
    min_width: int,
    first: int | None = None,  # noqa: ANN001
    seconds: float = 60,
) -> None:
    """Wait until every image matching ``selector`` (or its ``first`` few) in ``page`` (a page or
    a frame) has loaded and decoded to more than ``min_width`` pixels. The element appears before
    its bytes arrive, so a check right after the element is a race on a busy machine; an image
    that never draws fails with the state of each one."""
    check = """([selector, first, minWidth]) => {
      const imgs = [...document.querySelectorAll(selector)].slice(0, first ?? undefined);
      return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > minWidth);
    }"""
    try:
        page.wait_for_function(check, arg=[selector, first, min_width], timeout=patience_ms(seconds))
    except Exception as err:  # Playwright's TimeoutError: say which image did not draw
        state = page.evaluate(_IMAGES_STATE_JS, [selector, first])
        raise AssertionError(f"images not drawn after {seconds:.0f} s (quiet-machine budget): {state}") from err


#: base URL → pid of the servers run_streamlit started (a test may read the server's memory)
SERVER_PIDS: dict[str, int] = {}


def require_browser() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (./dev test installs it with apt)")
    if not (WEB_ASSETS / "leaflet/package/dist/leaflet.js").exists():
        pytest.skip(f"local Leaflet copy missing in {WEB_ASSETS} (./dev test fetches it with npm)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def run_streamlit(
    script: str,
    env: dict | None = None,
    page: str | None = None,
    timeout: float | None = None,
    address: str | None = "127.0.0.1",
) -> Iterator[str]:
    """Start ``streamlit run script`` on a free loopback port; yield its base URL.

    ``address=None``: no ``--server.address`` flag, i.e. the address the app's config chooses.
    """
    streamlit = shutil.which("streamlit", path=str(Path(sys.executable).parent)) or "streamlit"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    # the free port is released before Streamlit binds it (seconds later on a busy machine), so
    # another process may take it first: then start again on a new port
    for attempt in range(3):
        port = _free_port()
        log = open(ARTIFACTS.mkdir(exist_ok=True) or ARTIFACTS / f"streamlit-{port}.log", "w")
        proc = subprocess.Popen(
            [
                streamlit,
                "run",
                str(ROOT / script),
                "--server.port",
                str(port),
                *(["--server.address", address] if address else []),
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",
                "none",
            ],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base, proc, timeout or patience(90), log.name)
            break
        except RuntimeError:
            stop_server(proc, log)
            if attempt == 2 or "is not available" not in Path(log.name).read_text(
                errors="replace"
            ):  # Streamlit's words
                raise
    try:
        SERVER_PIDS[base] = proc.pid
        yield base + (f"/{page}" if page else "")
    finally:
        SERVER_PIDS.pop(base, None)
        stop_server(proc, log)


def listening_addresses(port: int) -> set[str]:
    """The local addresses (IPv4 and IPv6, as /proc/net shows them) listening on ``port``."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:  # 0A = LISTEN
                out.add(addr)
    return out


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float, log_name: str) -> None:
    """Wait until the Streamlit server at ``base`` answers its health check."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log_name}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"streamlit did not become healthy in {timeout} s; see {log_name}")
        time.sleep(0.3)


def stop_server(proc: subprocess.Popen, log) -> None:
    """Stop a server this process started (terminate, then kill after 10 s) and close its log."""
    proc.terminate()
    try:
        proc.wait(timeout=patience(10))
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _route(route) -> None:
    url = route.request.url
    if url.startswith(("http://127.0.0.1", "http://localhost", "ws://", "data:", "blob:")):
        route.continue_()
        return
    local = _OTHER_LOCAL.get(url)
    m = _NPM_URL.match(url)
    if m:
        local = WEB_ASSETS / m.group("pkg") / "package" / m.group("path")
    if local is not None and local.is_file():
        ctype = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
        route.fulfill(status=200, body=local.read_bytes(), content_type=ctype)
    elif re.search(r"\.(png|jpe?g)(\?|$)", url) or "/tile" in url:
        route.fulfill(status=200, body=BLANK_PNG, content_type="image/png")
    else:
        ctype = mimetypes.guess_type(url.split("?")[0])[0] or "text/plain"
        route.fulfill(status=200, body=b"", content_type=ctype)


def _route_offline(route, blocked: list[str]) -> None:
    """A machine without the internet: loopback answers, everything else fails at once."""
    url = route.request.url
    if url.startswith(
        ("http://127.0.0.1", "http://localhost", "ws://127.0.0.1", "ws://localhost", "data:", "blob:", "about:")
    ):
        route.continue_()
    else:
        blocked.append(url)
        route.abort("internetdisconnected")


class _SharedChromium:
    """One Playwright driver and one Chromium for the whole test session.

    Launching Chromium (and Playwright's node driver) costs seconds per test, more on a busy
    machine; a fresh *browser context* per test is as isolated as a fresh browser (its own
    cookies, storage, cache and routes, hence its own Streamlit session) for a fraction of
    the cost. The browser is relaunched if it died; :func:`close_shared_browser` (called at
    the end of the pytest session by conftest.py) stops both.

    Playwright's sync API keeps its event loop marked as this thread's running loop between
    calls, so ``asyncio.run`` in a later test (the websocket clients of the server tests) would
    refuse to start. Between browser blocks the loop is set aside (:meth:`suspend`) and put
    back before the next Playwright call (:meth:`resume`), which is what Playwright itself does
    around each sync call.
    """

    def __init__(self) -> None:
        self._pw = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._browser = None

    def resume(self) -> None:
        if self._loop is not None:
            asyncio._set_running_loop(self._loop)

    def suspend(self) -> None:
        if self._loop is not None:
            asyncio._set_running_loop(None)

    def browser(self):  # noqa: ANN201
        self.resume()
        if self._browser is not None and self._browser.is_connected():
            return self._browser
        if self._pw is None:
            from playwright.sync_api import sync_playwright

            self._pw = sync_playwright().start()
            self._loop = asyncio.get_running_loop()  # Playwright's, marked running between its calls
        self._browser = self._pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        return self._browser

    def close(self) -> None:
        self.resume()
        try:
            if self._browser is not None and self._browser.is_connected():
                self._browser.close()
        finally:
            self._browser = None
            if self._pw is not None:
                pw, self._pw = self._pw, None
                pw.stop()
            self._loop = None


_SHARED = _SharedChromium()


def close_shared_browser() -> None:
    """Stop the session's Chromium and Playwright driver, if a test started them."""
    _SHARED.close()


@contextlib.contextmanager
def chromium_page(
    width: int = 1400, height: int = 1000, offline: bool = False, blocked: list[str] | None = None
) -> Iterator["object"]:
    """A Playwright page in a fresh browser context of the session's Debian Chromium, with
    outside requests answered locally.

    ``offline``: no outside request is answered at all (CDNs and tiles fail, as on a machine
    without the internet); their URLs are appended to ``blocked``.
    ``page.context.browser`` is the shared browser: a test may open more contexts on it (and
    closes them); every context opened during the block is closed when it ends.
    """
    require_browser()
    others: set = set()
    browser = None
    try:
        browser = _SHARED.browser()
        others = set(browser.contexts)
        context = browser.new_context(viewport={"width": width, "height": height})
        sink = blocked if blocked is not None else []
        context.route("**/*", (lambda route: _route_offline(route, sink)) if offline else _route)
        page = context.new_page()
        page.set_default_timeout(patience_ms(60))  # scales with the machine's load
        yield page
    finally:
        try:
            if browser is not None and browser.is_connected():
                for left in [c for c in browser.contexts if c not in others]:  # incl. any a failed test left open
                    left.close()
        finally:
            _SHARED.suspend()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
