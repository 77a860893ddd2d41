"""What a participant can do to the upload endpoint without a browser.

Opens the app's websocket (a live browser session whose id the server tells its client),
forges a matching XSRF cookie/header pair, and PUTs files to
``/_stcore/upload_file/<session>/<any id>`` — no upload widget is needed on the page.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import urllib.parse
import uuid

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.web.server.starlette.starlette_app_utils import generate_xsrf_token_string

_BLOCK = os.urandom(1 << 20)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (MB)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def put_upload(base: str, session_id: str, size: int, file_id: str | None = None) -> int:
    """One multipart PUT of ``size`` bytes into the session; the HTTP status.

    A server that refuses before reading the body answers and closes the connection while the
    body is still being sent: the answer is read anyway (the status the server sent).
    """
    token = generate_xsrf_token_string()
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    parts = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    try:
        conn.putrequest("PUT", f"/_stcore/upload_file/{session_id}/{file_id or uuid.uuid4().hex}")
        for k, v in {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "X-Xsrftoken": token,
            "Cookie": f"_streamlit_xsrf={token}",
            "Content-Length": str(len(head) + size + len(tail)),
        }.items():
            conn.putheader(k, v)
        conn.endheaders()
        try:
            # the body streamed in 1 MB random blocks: the server holds every byte it accepts
            # the same way whatever they are, and the test need not build 50 MB of randomness per PUT
            conn.sock.sendall(head)
            for at in range(0, size, len(_BLOCK)):
                conn.sock.sendall(_BLOCK[: min(len(_BLOCK), size - at)])
            conn.sock.sendall(tail)
        except OSError:  # the server answered early and closed: read what it said
            pass
        try:
            return conn.getresponse().status
        except (OSError, http.client.HTTPException):
            return 0  # closed without an answer
    finally:
        conn.close()


async def _flood(base: str, page: str, query: str, n: int, size: int, out: list[int], during) -> str:  # noqa: ANN001
    url = base.replace("http://", "ws://") + "/_stcore/stream"
    async with websockets.connect(url, subprotocols=["streamlit"], max_size=2**26, open_timeout=120) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = query
        msg.rerun_script.page_name = page
        await ws.send(msg.SerializeToString())
        session_id = ""
        while True:
            fwd = ForwardMsg()
            fwd.ParseFromString(await asyncio.wait_for(ws.recv(), 120))
            kind = fwd.WhichOneof("type")
            if kind == "new_session":
                session_id = fwd.new_session.initialize.session_id
            if kind == "script_finished":
                break
        for _ in range(n):  # the socket stays open: the session (and its uploads) stay alive
            out.append(await asyncio.to_thread(put_upload, base, session_id, size))
        if during is not None:
            during()
        return session_id


def upload_flood(
    base: str, page: str = "Quiz", query: str = "", n: int = 8, size: int = 50 * 2**20, during=None
) -> list[int]:  # noqa: ANN001
    """Open a session on ``page`` and PUT ``n`` files of ``size`` bytes into it; their HTTP statuses.
    ``during()`` (if given) is called while the session is still open (e.g. to read memory)."""
    statuses: list[int] = []
    asyncio.run(_flood(base, page, query, n, size, statuses, during))
    return statuses
