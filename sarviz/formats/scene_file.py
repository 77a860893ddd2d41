"""The scene file: every layer of one place on one grid, as one GeoTIFF (COG).

::

    NAME.tif   71 float32 bands (SCENE_BANDS: B2, B3, B4, B8, VV, VH, angle, A00..A63; NaN = missing)
               or the 67-band training patch subset (TRAINING_PATCH_BANDS), CRS + transform,
               tags: SARVIZ_FORMAT, SCENE_ID, DATES, PROVENANCE, EMBEDDING_SOURCE, ...

The band layout, tags and checks are implemented in :mod:`sarviz.scene` (``write_scene`` /
``read_scene``, with ``verify_written_tiff``), which every reader of scenes already
imports; this class is the artifact's entry in the registry and its symmetric pair.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from sarviz.formats.base import Artifact, register_artifact
from sarviz.scene import FORMAT_VERSION, SCENE_BANDS, TRAINING_PATCH_BANDS, Scene, read_scene, write_scene

SUFFIX = ".tif"


@register_artifact
@dataclass
class SceneFile(Artifact):
    artifact: ClassVar[str] = "scene-file"
    what: ClassVar[str] = "sarviz scene file"
    FORMAT: ClassVar[str] = FORMAT_VERSION
    FILES: ClassVar[tuple[str, ...]] = ()  # named by the scene store (``<scene_id>.tif``) or the user

    scene: Scene

    def save(self, path: str | os.PathLike[str], bands: tuple[str, ...] = SCENE_BANDS) -> Path:
        """Write atomically (temp file checked complete, then renamed); one-line SceneError otherwise."""
        return write_scene(self.scene, path, bands=bands)

    def save_patch(self, path: str | os.PathLike[str]) -> Path:
        """The 67-band training patch layout (no optical bands)."""
        return write_scene(self.scene, path, bands=TRAINING_PATCH_BANDS)

    @classmethod
    def load(cls, path: str | os.PathLike[str], layers: tuple[str, ...] | None = None) -> "SceneFile":
        return cls(read_scene(path, layers=layers))
