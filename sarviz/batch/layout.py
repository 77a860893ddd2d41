"""Moved to :mod:`sarviz.formats.batch_folder` (the batch folder artifact); old names kept for now."""

from sarviz.formats.batch_folder import (  # noqa: F401
    FORMAT,
    MANIFEST_COLUMNS,
    RUN_KEYS,
    BatchConfig,
    BatchFolder,
    write_points_csv,
)
