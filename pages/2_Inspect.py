"""Inspect: two GeoTIFFs (real Sentinel-1 and generated, bands VV/VH in dB) side by side, with metrics."""

from sarviz.ui.inspection import inspect_page

inspect_page()
