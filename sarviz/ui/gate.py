"""Page gates: the owner's login in front of owner pages, and one-line errors instead of tracebacks.

The UI side of :mod:`sarviz.access` (which holds the policy itself and imports nothing from the UI).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from sarviz.settings import Settings

log = logging.getLogger(__name__)


def require_page(page: str, settings: "Settings | None" = None) -> None:
    """Gate a page: in study mode, show the owner login and stop the script until logged in."""
    from sarviz.settings import Settings

    settings = settings or Settings.load()
    if not settings.study_mode:
        return
    import streamlit as st

    from sarviz.ui.study import owner_logged_in, owner_login_form

    if owner_logged_in():
        return
    st.title("Study server")
    st.info(
        f"This server is running a study. The {page} page is for the study owner; participants use "
        "the link they were given."
    )
    if not owner_login_form(f"gate_login_{page}"):
        st.stop()


def guarded(body: Callable[[], Any]) -> Any:
    """Run a page body; an unexpected error shows one line (no traceback, no paths) and is logged."""
    import streamlit as st
    from streamlit.errors import StreamlitAPIException

    try:
        return body()
    except Exception as exc:  # st.stop()/st.rerun() raise BaseExceptions and pass through
        log.exception("page error")
        what = (
            "the request was refused"
            if isinstance(exc, (StreamlitAPIException, ValueError, KeyError, IndexError, TypeError))
            else "something went wrong"
        )
        st.error(f"Sorry, {what} ({type(exc).__name__}); nothing was changed. Reload the page to continue.")
        return None
