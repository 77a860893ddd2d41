"""Training runs: status, loss curves and validation images/metrics of `sarviz train` runs."""

import streamlit as st

from sarviz.ui.gate import require_page
from sarviz.ui.training import runs_page

st.set_page_config(page_title="sarviz · training runs", page_icon="🛰️", layout="wide")
require_page("Training runs")  # study mode: the owner's login first (server side)
runs_page()
