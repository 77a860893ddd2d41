"""Constants more than one part of sarviz needs, each defined once (import them from here).

``SPLITS`` are the split *values* of a patch dataset's manifest (``val``, as
``docs/datasets.md`` binds it); the captioned 🤗 imagefolder names the same split's folder
``validation`` (the 🤗 ``datasets`` split name), hence ``CAPTION_SPLIT_FOLDERS``. Both were
right in their own folder; the third copy (``("train", "validation", "test")`` in the
captioned-set reader) is ``CAPTION_SPLITS`` here.
"""

from __future__ import annotations

#: split values in a patch dataset's ``manifest.csv``
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: manifest split → folder of the captioned 🤗 imagefolder
CAPTION_SPLIT_FOLDERS: dict[str, str] = {"train": "train", "val": "validation", "test": "test"}
#: the captioned dataset's split folders, in order
CAPTION_SPLITS: tuple[str, ...] = tuple(CAPTION_SPLIT_FOLDERS.values())

#: incidence angle (degrees) used where a scene has none: mid-swath of Sentinel-1 IW (about 29°–46°)
DEFAULT_ANGLE_DEG = 37.5

#: the quality aspects a study participant scores (seed 000), key → label shown to people
QUALITY_ASPECTS: dict[str, str] = {
    "realism": "Overall realism",
    "detail": "Detail plausibility",
    "geographic": "Geographic consistency",
}
