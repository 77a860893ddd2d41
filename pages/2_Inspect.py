"""Inspect: two GeoTIFFs (real Sentinel-1 and generated, bands VV/VH in dB) side by side, with metrics."""

import streamlit as st

from sarviz.ui.gate import require_page
from sarviz.ui.inspection import inspect_page

st.set_page_config(page_title="sarviz · inspect", page_icon="🛰️", layout="wide")
require_page("Inspect")  # study mode: the owner's login first (server side)
inspect_page()
