"""Land cover of a patch as Dynamic World classes and class fractions — never from its SAR.

Land cover labels the patch for captions and per-class evaluation, so it must not be
read off the very backscatter a model learns to produce. Three sources, in the order
``auto`` tries them:

``provenance``
    The scene says it (``provenance["landcover_fractions"]``: Dynamic World class →
    fraction, e.g. written by an exporter that sampled Dynamic World).
``embedding-knn`` (within the scene's labels when it has them)
    Each of up to :data:`MAX_PIXELS` pixels of the patch's embedding takes the majority
    label of its ``k`` nearest (cosine) labelled AlphaEarth points (real 2024 embeddings
    with their Dynamic World label; /work/shared/samples/alphaearth_s1_points or
    ``--landcover-points``). The fractions are the label shares over the valid pixels.
    Limitation: the shipped points cover three regions (Amazon forest, California coast,
    Iowa farmland), so classes elsewhere are those of the most similar of these places.
    When the patch's embedding is itself a proxy made from land cover, the result only
    echoes that land cover; the method string then says ``(proxy embedding)``. A scene with
    dataset labels (BigEarthNet's CORINE classes in ``provenance["labels"]``) restricts the
    vote to the Dynamic World classes those labels map to (:data:`CORINE_TO_DW`): the labels
    say *which* classes are there, the embedding *where*.
``optical``
    The rules of :mod:`sarviz.optical_landcover` on the scene's own Sentinel-2 B2/B3/B4/B8:
    water, trees, built-up (unvegetated and textured), irrigated and fallow crops (by the
    landscape around), grass, shrub, bare soil, snow — with a confidence (mean probability
    of the chosen class). It is the fallback for a scene with a real embedding, and *the*
    source for a scene whose embedding is a proxy: the proxy was made from these rules, and
    a kNN vote over its vectors would only echo them, blurred.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.emulator.radiometric import DW_CLASS_NAMES, load_points
from sarviz.errors import DatasetError
from sarviz.optical_landcover import METHOD as OPTICAL_METHOD
from sarviz.optical_landcover import PHRASES, classify, confidence_word
from sarviz.scene import Scene
from sarviz.settings import env

METHODS = ("auto", "provenance", "embedding-knn", "optical", "none")
MAX_PIXELS = 4096  # pixels sampled for the optical rules (cheap)
KNN_PIXELS = 256  # pixels sampled for the kNN: class shares to about ±3 %, at ~20 ms a patch
KNN_K = 5
# Optical rule thresholds (reflectance factor). NDWI > 0.1: open water (McFeeters 1996 uses
# > 0; a margin avoids wet soil); NDVI bands after the usual vegetation-density reading.
NDWI_WATER = 0.1
NDVI_TREES = 0.65
NDVI_GRASS = 0.4
NDVI_SHRUB = 0.2
BRIGHT_SNOW = 0.35  # mean visible reflectance of snow/ice (and, alas, cloud)
BRIGHT_BUILT = (0.08, 0.30)


#: CORINE Land Cover names (BigEarthNet labels) → Dynamic World class, by the first matching
#: keyword (order matters: "green urban" is grass, "water" before the rest).
CORINE_TO_DW: tuple[tuple[str, str], ...] = (
    ("water", "water"),
    ("lagoon", "water"),
    ("estuar", "water"),
    ("sea and ocean", "water"),
    ("green urban", "grass"),
    ("sport and leisure", "grass"),
    ("pasture", "grass"),
    ("grassland", "grass"),
    ("marsh", "flooded_vegetation"),
    ("peatbog", "flooded_vegetation"),
    ("intertidal", "flooded_vegetation"),
    ("salines", "flooded_vegetation"),
    ("wetland", "flooded_vegetation"),
    ("urban", "built"),
    ("industrial", "built"),
    ("road", "built"),
    ("port", "built"),
    ("airport", "built"),
    ("construction", "built"),
    ("dump", "built"),
    ("mineral extraction", "built"),
    ("agro-forestry", "trees"),
    ("forest", "trees"),
    ("arable", "crops"),
    ("rice", "crops"),
    ("vineyard", "crops"),
    ("fruit", "crops"),
    ("olive", "crops"),
    ("annual crops", "crops"),
    ("cultivation", "crops"),
    ("agricultur", "crops"),
    ("moor", "shrub_and_scrub"),
    ("heath", "shrub_and_scrub"),
    ("sclerophyllous", "shrub_and_scrub"),
    ("woodland", "shrub_and_scrub"),
    ("shrub", "shrub_and_scrub"),
    ("glacier", "snow_and_ice"),
    ("snow", "snow_and_ice"),
    ("beach", "bare"),
    ("dune", "bare"),
    ("sand", "bare"),
    ("bare rock", "bare"),
    ("sparsely vegetated", "bare"),
    ("burnt", "bare"),
)


def classes_from_labels(labels: Any) -> set[int]:
    """Dynamic World class indices named by dataset labels (CORINE names); empty when none map."""
    out: set[int] = set()
    for label in labels if isinstance(labels, (list, tuple)) else []:
        text = str(label).lower()
        for key, dw in CORINE_TO_DW:
            if key in text:
                out.add(DW_CLASS_NAMES.index(dw))
                break
    return out


@dataclass
class LandCover:
    label: str  # Dynamic World class name, or "" when unknown
    fractions: dict[str, float]  # class → share of valid pixels (sums to 1), {} when unknown
    method: str  # how it was obtained ("" when unknown)
    confidence: float | None = None  # mean probability of the chosen class (optical rules only)
    detail: str = ""  # the finer classes, e.g. "irrigated cropland 47 %, fallow fields 19 %, …"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "fractions": self.fractions, "method": self.method}
        if self.confidence is not None:
            out["confidence"] = round(float(self.confidence), 3)
        return out

    def source_words(self) -> str:
        """Where the land cover came from and how sure it is, in words for a user."""
        if not self.method:
            return "land cover unknown"
        words = {
            "provenance": "land cover recorded with the scene (Dynamic World fractions)",
            "optical-rules": f"land cover from this scene's Sentinel-2 optical image ({OPTICAL_METHOD}; never its SAR)",
        }.get(self.method, f"land cover by {self.method}")
        if self.method.startswith("embedding-knn"):
            words = "land cover by a vote of the scene's AlphaEarth embedding against labelled AlphaEarth points" + (
                " (a PROXY embedding)" if "proxy" in self.method else ""
            )
        if self.confidence is not None:
            words += f", confidence {self.confidence:.2f} ({confidence_word(self.confidence)})"
        return words + (f"; {self.detail}" if self.detail else "")


UNKNOWN = LandCover("", {}, "")


class LabelledPoints:
    """Labelled AlphaEarth points (unit embeddings + Dynamic World labels) for the kNN."""

    def __init__(self, embedding: np.ndarray, labels: np.ndarray, source: str) -> None:
        norms = np.linalg.norm(embedding, axis=1, keepdims=True)
        self.embedding = (embedding / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        self.labels = labels.astype(int)
        self.source = source

    def subset(self, classes: set[int]) -> "LabelledPoints":
        """The points of some classes only (all of them when none of those classes has a point)."""
        keep = np.isin(self.labels, sorted(classes))
        return LabelledPoints(self.embedding[keep], self.labels[keep], self.source) if keep.any() else self

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "LabelledPoints":
        table = load_points(folder)
        known = (table.dw_label >= 0) & (table.dw_label < len(DW_CLASS_NAMES))
        if not known.any():
            raise DatasetError(f"{folder}: no points with a Dynamic World label (dw_label 0–8)")
        return cls(table.embedding[known], table.dw_label[known], str(folder))


def default_points_folder() -> Path | None:
    """The labelled points shipped in ../shared (None when absent)."""
    roots = [Path(__file__).resolve().parents[2].parent / "shared"]

    shared = env("SARVIZ_SHARED")
    if shared:  # ../shared lives elsewhere (e.g. a git worktree checkout)
        roots.insert(0, Path(shared).expanduser())
    for root in roots:
        candidate = root / "samples" / "alphaearth_s1_points"
        if candidate.is_dir():
            return candidate
    return None


def _sample_pixels(valid: np.ndarray, limit: int = MAX_PIXELS) -> np.ndarray:
    """Flat indices of at most ``limit`` valid pixels, evenly spread (deterministic)."""
    idx = np.flatnonzero(valid.ravel())
    if idx.size > limit:
        idx = idx[np.linspace(0, idx.size - 1, limit).astype(int)]
    return idx


def _fractions(labels: np.ndarray, method: str) -> LandCover:
    if labels.size == 0:
        return UNKNOWN
    counts = np.bincount(labels, minlength=len(DW_CLASS_NAMES))
    shares = counts / counts.sum()
    fractions = {DW_CLASS_NAMES[i]: round(float(s), 4) for i, s in enumerate(shares) if s > 0}
    return LandCover(DW_CLASS_NAMES[int(np.argmax(counts))], fractions, method)


def from_embedding(
    embedding: np.ndarray,
    points: LabelledPoints,
    k: int = KNN_K,
    method: str = "embedding-knn",
    allowed: set[int] | None = None,
) -> LandCover:
    """kNN (cosine) of the patch's embedding pixels against the labelled points (of ``allowed`` classes)."""
    if allowed:
        points = points.subset(allowed)
    valid = np.isfinite(embedding).all(0)
    idx = _sample_pixels(valid, KNN_PIXELS)
    if idx.size == 0:
        return UNKNOWN
    pixels = embedding.reshape(embedding.shape[0], -1)[:, idx].T.astype(np.float32)
    pixels /= np.maximum(np.linalg.norm(pixels, axis=1, keepdims=True), 1e-12)
    sim = pixels @ points.embedding.T  # (n, m)
    k = min(k, sim.shape[1])
    nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    votes = points.labels[nearest]  # (n, k)
    counts = np.zeros((votes.shape[0], len(DW_CLASS_NAMES)), dtype=int)
    np.add.at(counts, (np.arange(votes.shape[0])[:, None], votes), 1)
    return _fractions(np.argmax(counts, axis=1), method)  # ties: the lower class index


def classify_optical(optical: np.ndarray, top_of_atmosphere: bool = False) -> np.ndarray:
    """(4, H, W) B2, B3, B4, B8 reflectance → (H, W) Dynamic World class index, −1 where unknown.

    The rules of :mod:`sarviz.optical_landcover`, folded into Dynamic World classes.
    """
    return classify(optical, top_of_atmosphere=top_of_atmosphere).dynamic_world_labels()


def from_optical(optical: np.ndarray, top_of_atmosphere: bool = False) -> LandCover:
    cover = classify(optical, top_of_atmosphere=top_of_atmosphere)
    cls = cover.dynamic_world_labels()
    idx = _sample_pixels(cls >= 0)
    lc = _fractions(cls.ravel()[idx], "optical-rules")
    if not lc.label:
        return lc
    fine = sorted(cover.fractions().items(), key=lambda kv: -kv[1])
    lc.confidence = cover.mean_confidence()
    lc.detail = ", ".join(f"{PHRASES[c]} {s:.0%}" for c, s in fine if s >= 0.03)
    return lc


def from_provenance(provenance: dict[str, Any]) -> LandCover:
    fractions = provenance.get("landcover_fractions") if isinstance(provenance, dict) else None
    if not isinstance(fractions, dict):
        return UNKNOWN
    clean = {k: float(v) for k, v in fractions.items() if k in DW_CLASS_NAMES and float(v) > 0}
    total = sum(clean.values())
    if total <= 0:
        return UNKNOWN
    clean = {k: round(v / total, 4) for k, v in clean.items()}
    return LandCover(max(clean, key=clean.__getitem__), clean, "provenance")


def landcover_of(patch: Scene, method: str, points: LabelledPoints | None, embedding_source: str) -> LandCover:
    """The land cover of a patch by ``method`` (see the module docstring); never from VV/VH."""
    if method not in METHODS:
        raise DatasetError(f"unknown land-cover method {method!r}; choose from {', '.join(METHODS)}")
    if method == "none":
        return UNKNOWN
    order = ["provenance", "embedding-knn", "optical"] if method == "auto" else [method]
    if method == "auto" and embedding_source.startswith("proxy") and patch.optical is not None:
        order = ["provenance", "optical"]  # the proxy was made from the optical rules: ask them directly
    for m in order:
        if m == "provenance":
            lc = from_provenance(patch.provenance)
        elif m == "embedding-knn":
            if patch.embedding is None or points is None:
                continue
            allowed = classes_from_labels((patch.provenance or {}).get("labels"))
            label = (
                "embedding-knn"
                + (" within the scene's labels" if allowed else "")
                + (" (proxy embedding)" if embedding_source.startswith("proxy") else "")
            )
            lc = from_embedding(patch.embedding, points, method=label, allowed=allowed or None)
        else:
            if patch.optical is None:
                continue
            toa = str((patch.provenance or {}).get("optical_level") or "").upper().startswith("L1C")
            lc = from_optical(patch.optical, top_of_atmosphere=toa)
        if lc.label:
            return lc
    return UNKNOWN
