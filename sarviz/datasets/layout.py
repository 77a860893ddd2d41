"""Moved to :mod:`sarviz.formats.patch_dataset` (the patch dataset artifact); old names kept for now."""

from sarviz.formats.patch_dataset import *  # noqa: F401,F403
from sarviz.formats.patch_dataset import (  # noqa: F401
    FAILURES_FILE,
    FORMAT,
    INFO_FILE,
    MANIFEST_COLUMNS,
    MANIFEST_FILE,
    PATCH_DIR,
    RECORDS_DIR,
    SPLITS,
    DatasetError,
    PatchDatasetFolder,
    json_cell,
    open_dataset,
    write_csv_atomic,
    write_json_atomic,
    write_text_atomic,
)
