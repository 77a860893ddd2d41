"""The tiny SD3 base and SD3 text run under their old names (they live in ``tests/tiny_models.py``)."""

from __future__ import annotations

from tiny_models import SIZE, write_sd3_base, write_sd3_run  # noqa: F401 - the old names
