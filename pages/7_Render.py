"""Render: a SAR image at a finer pixel spacing (SAR→SAR, seed 002), with the consistency gate."""

import streamlit as st

from sarviz.ui.gate import require_page
from sarviz.ui.render import render_page

st.set_page_config(page_title="sarviz · render", page_icon="🛰️", layout="wide")
require_page("Render")  # study mode: the owner's login first (server side)
render_page()
