"""Study owner page: studies, image pools, results and exports (behind the owner login)."""

import streamlit as st

from sarviz.ui.gate import guarded
from sarviz.ui.study import admin_page

st.set_page_config(page_title="Study admin", layout="wide")
guarded(admin_page)  # an unexpected error: one line, never a traceback
