"""Participant quiz of a human-evaluation study (link: …/Quiz?study=<code>)."""

import streamlit as st

from sarviz.ui.gate import guarded
from sarviz.ui.study import quiz_page

st.set_page_config(page_title="SAR image study", layout="wide", initial_sidebar_state="collapsed")
guarded(quiz_page)  # an unexpected error: one line, never a traceback
