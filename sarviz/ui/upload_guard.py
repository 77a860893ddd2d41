"""ASGI middleware in front of Streamlit's upload endpoint (``serve.py`` installs it).

Streamlit 1.67's ``PUT /_stcore/upload_file/<session>/<file id>`` checks only the XSRF
cookie match, that the session is live and ``server.maxUploadSize`` per file: any browser
session — a study participant's too, whose pages have no upload widget — may upload any
number of files, and they stay in the server's memory until the session is dropped. A few
sockets were enough to take the server's memory from 520 to 920 MB.

:class:`UploadGuard` answers before Streamlit reads a byte of the body:

* study mode: only a browser session in which the study owner has logged in may upload
  (``sarviz.access.owner_session``); every other session gets 403;
* every mode: a request must say its size (``Content-Length``; 411 otherwise), and a session's
  stored uploads plus the uploads it is sending may not exceed ``SARVIZ_UPLOAD_SESSION_MB``
  (413 otherwise). Streamlit itself still caps each file at ``server.maxUploadSize``.

A middleware rather than a proxy of our own: Streamlit 1.67's ``st.App`` takes ASGI middleware,
so the guard runs in the server process and sees the same session table as the pages, with
no second process to start, supervise and configure.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)

UPLOAD_PREFIX = "/_stcore/upload_file/"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


def stored_upload_bytes(session_id: str) -> int:
    """Bytes of uploaded files Streamlit holds for one browser session (0 without a runtime)."""
    try:
        from streamlit.runtime import get_instance

        mgr = get_instance().uploaded_file_mgr
        storage = getattr(mgr, "file_storage", {})
        lock = getattr(mgr, "_lock", None)
        if lock is not None:
            with lock:
                files = list(storage.get(session_id, {}).values())
        else:
            files = list(storage.get(session_id, {}).values())
    except Exception:  # no runtime yet (not started): nothing stored
        return 0
    return sum(len(f.data) for f in files)


class UploadGuard:
    """Refuse uploads from sessions that may not upload, and cap the bytes per session."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app
        self._sending: dict[str, int] = defaultdict(int)  # session → bytes of uploads in flight
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope.get("type") == "http" else ""
        if not path.startswith(UPLOAD_PREFIX) or scope.get("method") != "PUT":
            await self.app(scope, receive, send)
            return
        from sarviz.access import is_owner_session
        from sarviz.settings import Settings

        settings = Settings.load()
        session_id = path[len(UPLOAD_PREFIX) :].split("/", 1)[0]
        if settings.study_mode and not is_owner_session(session_id):
            log.warning("upload refused: study mode and session %s is not the owner's", session_id[:8])
            await _answer(send, 403, "Uploads are for the study owner only.")
            return
        length = _content_length(scope)
        if length is None:
            await _answer(send, 411, "An upload must give its Content-Length.")
            return
        cap = int(settings.upload_session_mb * 1024 * 1024)
        with self._lock:
            used = stored_upload_bytes(session_id) + self._sending[session_id]
            if used + length > cap:
                refuse = True
            else:
                refuse = False
                self._sending[session_id] += length
        if refuse:
            log.warning("upload refused: session %s would hold %d bytes (cap %d)", session_id[:8], used + length, cap)
            await _answer(send, 413, "Too much uploaded in this browser session.")
            return
        try:
            await self.app(scope, receive, send)
        finally:
            with self._lock:
                self._sending[session_id] -= length
                if self._sending[session_id] <= 0:
                    del self._sending[session_id]


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                n = int(value)
            except ValueError:
                return None
            return n if n >= 0 else None
    return None


async def _answer(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
