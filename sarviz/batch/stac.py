"""Moved to :mod:`sarviz.formats.stac_catalog` (the STAC catalog artifact); old names kept for now."""

from sarviz.formats.stac_catalog import *  # noqa: F401,F403
from sarviz.formats.stac_catalog import (  # noqa: F401
    BUNDLED_SCHEMAS,
    COG_MEDIA_TYPE,
    PROPERTY_PREFIX,
    SCHEMA_DIR,
    AtomicStacIO,
    OfflineValidator,
    build_item,
    use_offline_validation,
    validate_catalog,
    write_catalog,
    write_item,
)
