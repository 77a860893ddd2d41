"""Moved to :mod:`sarviz.formats.captioned` (the captioned dataset artifact); old names kept for now."""

from sarviz.errors import DatasetError  # noqa: F401
from sarviz.formats.captioned import (  # noqa: F401
    FORMAT,
    SPLITS,
    CaptionedItem,
    CaptionedSet,
    open_captioned,
    read_db,
)
