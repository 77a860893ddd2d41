"""The sarviz server: ``streamlit run serve.py`` (``./dev app`` runs it).

``app.py`` is the app; this launcher wraps it in Streamlit's ASGI ``st.App`` so that the
upload guard (:mod:`sarviz.ui.upload_guard`) stands in front of Streamlit's upload endpoint.
Run this file, not ``app.py``, on any server others reach.
"""

import streamlit as st
from starlette.middleware import Middleware

from sarviz.ui.upload_guard import UploadGuard

app = st.App("app.py", middleware=[Middleware(UploadGuard)])
