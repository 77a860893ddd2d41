"""A bare Streamlit websocket client: what a hostile participant can send without a browser.

It speaks the app's own protocol (``streamlit.proto`` BackMsg/ForwardMsg over
``/_stcore/stream``), so a test can submit widget states the browser UI would never produce
(an index past a radio's options, a value outside a slider's range) and read back exactly
what the server renders in answer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState


@dataclass
class Run:
    """What one script run sent: element protos (in order) and the widgets among them."""

    elements: list[Any] = field(default_factory=list)
    widgets: dict[str, Any] = field(default_factory=dict)  # label → widget proto (with .id)

    def texts(self) -> list[str]:
        out = []
        for el in self.elements:
            kind = el.WhichOneof("type")
            inner = getattr(el, kind)
            for attr in ("body", "message", "label", "stack_trace"):
                v = getattr(inner, attr, None)
                if isinstance(v, str) and v:
                    out.append(v)
                elif v is not None and not isinstance(v, str):
                    out.extend(str(x) for x in v)
        return out

    def kinds(self) -> list[str]:
        return [el.WhichOneof("type") for el in self.elements]


async def _session(url: str, query: str, page: str, forge, timeout: float) -> tuple[Run, Run]:  # noqa: ANN001
    async with websockets.connect(url, subprotocols=["streamlit"], max_size=2**26, open_timeout=timeout) as ws:

        async def rerun(widget_states: list[WidgetState]) -> Run:
            msg = BackMsg()
            msg.rerun_script.query_string = query
            msg.rerun_script.page_name = page
            msg.rerun_script.widget_states.widgets.extend(widget_states)
            await ws.send(msg.SerializeToString())
            got = Run()
            while True:
                fwd = ForwardMsg()
                fwd.ParseFromString(await asyncio.wait_for(ws.recv(), timeout))
                kind = fwd.WhichOneof("type")
                if kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                    el = fwd.delta.new_element
                    got.elements.append(el)
                    inner = getattr(el, el.WhichOneof("type"))
                    if getattr(inner, "id", ""):
                        got.widgets[getattr(inner, "label", "") or inner.id] = inner
                if kind == "script_finished":
                    return got

        first = await rerun([])
        return first, await rerun(forge(first.widgets))


def forged_run(base: str, page: str, query: str, forge, timeout: float = 60.0) -> tuple[Run, Run]:  # noqa: ANN001
    """Load ``page`` once, then rerun it in the same session with the widget states ``forge(widgets)``
    returns (``widgets``: label → widget proto of the first run). Returns both runs."""
    url = base.replace("http://", "ws://") + "/_stcore/stream"
    return asyncio.run(_session(url, query, page, forge, timeout))
