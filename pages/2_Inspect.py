"""Inspect: two GeoTIFFs (real Sentinel-1 and generated, bands VV/VH in dB) side by side, with metrics."""

from sarviz.access import require_page
from sarviz.ui.inspection import inspect_page

require_page("Inspect")  # study mode: the owner's login first (server side)
inspect_page()
