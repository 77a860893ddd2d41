"""Seed 001's evaluation of a text-to-SAR model, per scene label (ONERA, §4.3–4.4, table 7, fig. 15).

The protocol itself — per-image A/(μ+3σ) normalisation, pooled amplitude histograms and
their KL, GLCM of the normalised amplitude on homogeneous 64 px patches — is
:mod:`sarviz.metrics.protocols` (the one implementation, shared with the Inspect page and
``sarviz evaluate``); this module arranges it per label. Its names are re-exported here
for older callers (:func:`pooled_amplitude_histogram`, :func:`pooled_kl`,
:func:`homogeneous_patches` = :func:`sarviz.metrics.protocols.seed001_patches`).

:func:`summarise_label` puts them together for one label; :func:`evaluate_sets` for all
labels plus the pooled "all" row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from sarviz.metrics import sar
from sarviz.metrics.protocols import (
    SEED001_PATCH,
    PooledHistogram,
    pooled_amplitude_histogram,
    pooled_kl,
    seed001_glcm_of_set,
    seed001_kl,
)
from sarviz.metrics.protocols import seed001_patches as homogeneous_patches
from sarviz.metrics.sar import MetricError

__all__ = [
    "ALL",
    "PATCH_PX",
    "LabelSummary",
    "PooledHistogram",
    "evaluate_sets",
    "glcm_of_set",
    "homogeneous_patches",
    "pooled_amplitude_histogram",
    "pooled_kl",
    "summarise_label",
]

PATCH_PX = SEED001_PATCH
KL_BINS = sar.KL_BINS
GLCM_LEVELS = sar.GLCM_LEVELS
ALL = "all"


def glcm_of_set(images_db: Iterable[np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """Mean GLCM features over the homogeneous patches of a set of images, and the patch count
    (:func:`sarviz.metrics.protocols.seed001_glcm_of_set`)."""
    res = seed001_glcm_of_set(images_db)
    return res["mean"], res["n_patches"]


# -- per-label summary -----------------------------------------------------------------------------
@dataclass
class LabelSummary:
    label: str
    pol: str
    n_real: int
    n_generated: int
    kl: float
    saturated_real: float
    saturated_generated: float
    hist_real: PooledHistogram
    hist_generated: PooledHistogram
    glcm_real: dict[str, np.ndarray] | None
    glcm_generated: dict[str, np.ndarray] | None
    patches_real: int = 0
    patches_generated: int = 0
    notes: list[str] = field(default_factory=list)
    clip: dict[str, Any] | None = None

    def row(self) -> dict[str, Any]:
        """One flat table row (CSV / the paper's per-category table)."""
        out: dict[str, Any] = {
            "label": self.label,
            "pol": self.pol,
            "n_real": self.n_real,
            "n_generated": self.n_generated,
            "kl": round(self.kl, 5),
            "saturated_real": round(self.saturated_real, 4),
            "saturated_generated": round(self.saturated_generated, 4),
            "patches_real": self.patches_real,
            "patches_generated": self.patches_generated,
        }
        for name in sar.GLCM_FEATURES:
            for which, feats in (("real", self.glcm_real), ("generated", self.glcm_generated)):
                out[f"glcm_{name}_{which}"] = None if feats is None else round(float(np.mean(feats[name])), 5)
        if self.clip:
            for k, v in self.clip.items():
                out[f"clip_{k}"] = v
        return out

    def to_dict(self) -> dict[str, Any]:
        def glcm(feats):
            if feats is None:
                return None
            return {
                name: {
                    str(d): {str(a): round(float(v), 6) for a, v in zip(sar.GLCM_ANGLES_DEG, row)}
                    for d, row in zip(sar.GLCM_DISTANCES, feats[name])
                }
                for name in sar.GLCM_FEATURES
            }

        return {
            **self.row(),
            "glcm_real": glcm(self.glcm_real),
            "glcm_generated": glcm(self.glcm_generated),
            "hist_edges": self.hist_real.edges.round(4).tolist(),
            "hist_real": self.hist_real.probabilities.round(6).tolist(),
            "hist_generated": self.hist_generated.probabilities.round(6).tolist(),
            "normalisation": {"real": self.hist_real.normalisation(), "generated": self.hist_generated.normalisation()},
            "notes": self.notes,
        }


def summarise_label(
    label: str,
    real_db: Sequence[np.ndarray],
    generated_db: Sequence[np.ndarray],
    pol: str = "VV",
    patch_px: int = PATCH_PX,
) -> LabelSummary:
    """KL of the pooled amplitude histograms and GLCM on homogeneous patches, real vs generated."""
    if not real_db or not generated_db:
        raise MetricError(
            f"label {label!r}: needs real and generated images (have {len(real_db)} real, "
            f"{len(generated_db)} generated)"
        )
    if patch_px != SEED001_PATCH:
        raise MetricError(f"seed 001's GLCM patches are {SEED001_PATCH} px, not {patch_px}")
    kl = seed001_kl(real_db, generated_db, label)
    hr, hg = kl.hist_real, kl.hist_generated
    if hr is None or hg is None:  # seed001_kl keeps both pooled histograms
        raise MetricError(f"label {label!r}: the KL came without its pooled histograms")
    notes: list[str] = []
    glcm_r = glcm_g = None
    pr = pg = 0
    try:
        glcm_r, pr = glcm_of_set(real_db)
        glcm_g, pg = glcm_of_set(generated_db)
    except MetricError as exc:
        notes.append(f"GLCM not computed: {exc}")
    return LabelSummary(
        label,
        pol,
        len(real_db),
        len(generated_db),
        kl.kl,
        hr.saturated_fraction,
        hg.saturated_fraction,
        hr,
        hg,
        glcm_r,
        glcm_g,
        pr,
        pg,
        notes,
    )


def evaluate_sets(
    real: Mapping[str, Sequence[np.ndarray]],
    generated: Mapping[str, Sequence[np.ndarray]],
    pol: str = "VV",
    patch_px: int = PATCH_PX,
) -> list[LabelSummary]:
    """One summary per label present in both, then the pooled "all" row."""
    labels = [k for k in real if k in generated and real[k] and generated[k]]
    if not labels:
        raise MetricError("no label has both real and generated images")
    rows = [summarise_label(k, real[k], generated[k], pol, patch_px) for k in labels]
    if len(labels) > 1:
        rows.append(
            summarise_label(
                ALL, [a for k in labels for a in real[k]], [a for k in labels for a in generated[k]], pol, patch_px
            )
        )
    return rows
