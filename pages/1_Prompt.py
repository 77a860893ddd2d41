"""Prompt: type a prompt → text-to-SAR → the image with histogram, GLCM, metrics and downloads."""

import streamlit as st

from sarviz.ui.gate import require_page
from sarviz.ui.prompt import prompt_page

st.set_page_config(page_title="sarviz · prompt", page_icon="🛰️", layout="wide")
require_page("Prompt")  # study mode: the owner's login first (server side)
prompt_page()
