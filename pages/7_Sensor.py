"""Sensor: render a SAR image as another sensor (seed 003 migration) and compare sensor profiles."""

import streamlit as st

from sarviz.ui.gate import require_page
from sarviz.ui.sensor import sensor_page

st.set_page_config(page_title="sarviz · sensor", page_icon="🛰️", layout="wide")
require_page("Sensor")  # study mode: the owner's login first (server side)
sensor_page()
