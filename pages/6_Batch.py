"""Batch: open a batch folder (sarviz batch), browse its items on the map, inspect one with the usual panels."""

import streamlit as st

from sarviz.ui.batch import batch_page
from sarviz.ui.gate import require_page

st.set_page_config(page_title="sarviz · batch", page_icon="🛰️", layout="wide")
require_page("Batch")  # study mode: the owner's login first (server side)
batch_page()
