"""On-disk artifacts: one class per object sarviz writes and reads back.

Each class owns its file names, its format check and its one-line errors, and reads and
writes with a symmetric pair (``save`` / ``load``, the diffusers ``save_pretrained`` /
``from_pretrained`` discipline). Nothing else in sarviz spells an artifact's file name: it
asks the class. See ``docs/architecture.md`` for the list and for how a new artifact
registers (:func:`register_artifact`).

This package is core: it imports ``sarviz.errors``, ``sarviz.atomic``, ``sarviz.calibration``
and ``sarviz.scene`` only, and each module imports heavy libraries (torch, diffusers,
pystac, rasterio) inside the functions that need them.
"""

from __future__ import annotations

from sarviz.formats.base import ARTIFACTS, Artifact, ArtifactMissing, register_artifact

__all__ = ["ARTIFACTS", "Artifact", "ArtifactMissing", "register_artifact", "artifact_classes"]

#: module of each registered artifact (imported on demand so the package stays light)
MODULES = (
    "sarviz.formats.scene_file",
    "sarviz.formats.patch_dataset",
    "sarviz.formats.captioned",
    "sarviz.formats.training_run",
    "sarviz.formats.controlnet",
    "sarviz.formats.text_run",
    "sarviz.formats.sarclip",
    "sarviz.formats.emulator_weights",
    "sarviz.formats.model_card",
    "sarviz.formats.batch_folder",
    "sarviz.formats.stac_catalog",
    "sarviz.formats.evaluation_report",
    "sarviz.formats.study_export",
    "sarviz.formats.generated_image",
    "sarviz.formats.sensor_profile",
    "sarviz.formats.sar2sar",
)


def artifact_classes() -> dict[str, type[Artifact]]:
    """Every registered artifact class by name (imports all artifact modules)."""
    import importlib

    for name in MODULES:
        importlib.import_module(name)
    return dict(ARTIFACTS)
