"""Captions for a place on the map ("describe this place") in the dataset captioner's words.

The text-to-SAR models sarviz trains learn from captions written by
:mod:`sarviz.datasets.captions` (``sarviz dataset caption``). A prompt built for a clicked
scene must use the same words, or the model is asked in a language it never saw. So this
module only turns a :class:`~sarviz.scene.Scene` into the manifest row that captioner reads:

* **land cover** — :func:`sarviz.datasets.landcover.landcover_of` with the dataset tools'
  ``auto`` order: the scene's own Dynamic World fractions (provenance), else a k-NN vote of
  its real embedding against the labelled AlphaEarth points, else (and always when the
  embedding is a proxy, which was made from them) the optical rules on its Sentinel-2 bands
  — never its Sentinel-1. The description says which source it used and how sure it is
  (:attr:`SceneDescription.landcover_note`);
* **place** — the nearest 15,000+ town of the offline gazetteer (:mod:`sarviz.datasets.places`);
* **season, orbit pass, incidence angle** — from the scene's dates, provenance and angle layer
  (an angle the scene does not carry is not captioned).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sarviz.errors import SarvizError

DEFAULT_TOKEN = "<SAR>"


@dataclass
class SceneDescription:
    fractions: dict[str, float]
    landcover_source: str
    place: str | None
    caption: str
    extra: dict[str, Any] = field(default_factory=dict)
    landcover_confidence: float | None = None
    #: the land cover's source and confidence in words, shown beside the caption
    landcover_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "caption": self.caption,
            "landcover_fractions": self.fractions,
            "landcover_source": self.landcover_source,
            "landcover_confidence": self.landcover_confidence,
            "landcover_note": self.landcover_note,
            "place": self.place,
            **self.extra,
        }


def _labelled_points():
    from sarviz.datasets.landcover import default_points_folder

    folder = default_points_folder()
    if folder is None:
        return None
    try:
        return _load_points(str(folder))
    except (OSError, ValueError, SarvizError):  # unreadable or unlabelled points: no kNN land cover
        return None


@functools.lru_cache(maxsize=2)
def _load_points(folder: str):
    from sarviz.datasets.landcover import LabelledPoints

    return LabelledPoints.load(folder)


def scene_landcover(scene: Any):
    """The scene's :class:`~sarviz.datasets.landcover.LandCover` by the ``auto`` order (never from its SAR)."""
    from sarviz.datasets.builder import embedding_source_of
    from sarviz.datasets.landcover import landcover_of

    prov = dict(getattr(scene, "provenance", {}) or {})
    embedding_source = embedding_source_of(prov, {})[0] if scene.embedding is not None else ""
    points = (
        _labelled_points() if scene.embedding is not None and not str(embedding_source).startswith("proxy") else None
    )
    return landcover_of(scene, "auto", points, embedding_source or "")


def scene_row(scene: Any, lc: Any = None) -> dict[str, str]:
    """The manifest row (manifest columns, sarviz.formats.patch_dataset) the dataset captioner reads, for a whole scene."""
    prov = dict(getattr(scene, "provenance", {}) or {})
    lat, lon = scene.center_latlon
    lc = scene_landcover(scene) if lc is None else lc
    angle = getattr(scene, "angle_deg", None)
    angle_mean = float(np.nanmean(angle)) if angle is not None and np.isfinite(angle).any() else None
    dates = getattr(scene, "dates", {}) or {}
    return {
        "lat": f"{lat:.6f}",
        "lon": f"{lon:.6f}",
        "date": str(prov.get("s1_date") or dates.get("s1") or "")[:10],
        "orbit": str(prov.get("orbit") or ""),
        "angle_mean": "" if angle_mean is None else f"{angle_mean:.2f}",
        "landcover": lc.label,
        "landcover_fractions": json.dumps(lc.fractions) if lc.fractions else "",
        "landcover_method": lc.method,
        "provenance": json.dumps({"s1_mode": prov.get("s1_mode", ""), "angle": "scene"}),
    }


def describe_scene(scene: Any, token: str = DEFAULT_TOKEN, polarisation: str = "VV") -> SceneDescription:
    from sarviz.datasets.captions import caption_for
    from sarviz.datasets.places import nearest_place

    lc = scene_landcover(scene)
    row = scene_row(scene, lc)
    try:
        place = nearest_place(float(row["lat"]), float(row["lon"])).phrase()
    except (ImportError, ValueError, SarvizError):  # no gazetteer installed, or a scene without a usable grid
        place = ""
    fractions = json.loads(row["landcover_fractions"]) if row["landcover_fractions"] else {}
    return SceneDescription(
        fractions=fractions,
        landcover_source=row["landcover_method"] or "none",
        place=place or None,
        caption=caption_for(row, token, polarisation, place=place),
        extra={"landcover": row["landcover"]},
        landcover_confidence=lc.confidence,
        landcover_note=lc.source_words()[:1].upper() + lc.source_words()[1:] + ".",
    )


def caption_for_scene(scene: Any, token: str = DEFAULT_TOKEN) -> str:
    """The prompt that describes ``scene`` — the caption a training patch of it would get."""
    return describe_scene(scene, token).caption
