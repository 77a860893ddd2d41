"""Radiometric model: AlphaEarth embedding (+ incidence angle) → mean σ⁰ VV/VH in dB.

Trained on point samples that pair the 64-D AlphaEarth annual embedding with the 2024
*median* Sentinel-1 IW GRD backscatter (dB) at the same 10 m pixel
(``../shared/samples/alphaearth_s1_points``). The model is a ridge regression on a
feature map of the embedding:

* ``linear`` – the 64 embedding values;
* ``poly2``  – the 64 values and their 64 squares (a diagonal quadratic: a small,
  well-regularised nonlinearity that generalises across regions, see
  :mod:`sarviz.emulator.validation`).

Ridge regression is closed form (three lines of numpy), so it is written out here rather
than pulling in scikit-learn for it; inference is one matrix product, which keeps a
512×512 image far below the 0.3 s budget.

Incidence angle: the points carry no angle (the composite mixes all 2024 passes), so the
regression predicts σ⁰ at a *reference* angle and the angle dependence is physical, not
learnt: σ⁰(θ) = σ⁰(θ_ref) · (cos θ / cos θ_ref)^n with n = 2 (Lambert's law, Ulaby &
Long 2014, *Microwave Radar and Radiometric Remote Sensing*, §10). At θ_ref = 37.5° this
is −0.12 dB per degree, inside the −0.1 … −0.2 dB/° range reported for C-band σ⁰ over
land in the incidence-angle normalisation literature (e.g. Mladenova et al. 2013, IEEE
TGRS 51(3)).

VH gets its own law (``cos_power_vh``; the shipped card sets n = 1), justified rather than
fitted — no sample in ``../shared`` carries angle-resolved VH (the training points are
all-pass composites; the SSL4EO pair is two dates three months apart over growing crops).
Cross-polarised backscatter over land is dominated by volume scattering, and the volume
term of the water-cloud model (Attema & Ulaby 1978, Radio Science 13(2)) of an optically
thick canopy is σ⁰ ∝ cos θ·(1 − exp(−2τ/cos θ)) → cos θ: n = 1, i.e. −0.06 dB/° at 37.5°,
half VV's slope (across the IW swath, 30°→46°: −1.0 dB for VH vs −1.9 dB for VV). Over bare
soil VH falls about as fast as VV, so there n = 1 understates the slope; the card can set
``cos_power_vh`` (a stored model without it uses the VV law, as before).

Files: one ``.safetensors`` file (tensors ``weight`` (F, 2), ``intercept`` (2,),
``feature_mean`` (F,)) with the model's JSON metadata in the safetensors header under
the key ``"sarviz"``; no pickle anywhere.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.constants import DEFAULT_ANGLE_DEG
from sarviz.errors import EmulatorError  # noqa: F401 - re-exported
from sarviz.formats.emulator_weights import FORMAT, EmulatorWeights  # noqa: F401 - FORMAT re-exported
from sarviz.hashing import file_sha256  # noqa: F401 - re-exported
from sarviz.scene import EMBEDDING_BANDS, EMBEDDING_DIM

FEATURE_MAPS = ("linear", "poly2")
TARGETS = ("VV", "VH")
#: CSV columns of the training points
TARGET_COLUMNS = ("S1_VV", "S1_VH")
DW_CLASS_NAMES = (
    "water",
    "trees",
    "grass",
    "flooded_vegetation",
    "crops",
    "shrub_and_scrub",
    "built",
    "bare",
    "snow_and_ice",
)
REFERENCE_ANGLE_DEG = (
    DEFAULT_ANGLE_DEG  # 37.5°: assumed effective angle of the all-pass 2024 median composite (mid IW swath)
)
COS_POWER = 2.0  # Lambert's law
ANGLE_RANGE_DEG = (10.0, 65.0)  # outside this the cos^n law is no longer a sensible C-band model
_CHUNK = 2048  # pixels per block in image prediction (64 × 2048 float32 = 512 KiB, cache-resident)


# -- training points ------------------------------------------------------------------------
@dataclass
class PointTable:
    """Training/validation points: embeddings, targets (dB) and grouping labels."""

    embedding: np.ndarray  # (N, 64) float64
    target_db: np.ndarray  # (N, 2) VV, VH
    region: np.ndarray  # (N,) str
    dw_label: np.ndarray  # (N,) int, -1 when unknown
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.embedding.shape[0])

    def subset(self, mask: np.ndarray) -> "PointTable":
        return PointTable(
            self.embedding[mask], self.target_db[mask], self.region[mask], self.dw_label[mask], self.sources
        )

    def digest(self) -> str:
        """sha256 of the numbers the model is fitted on (reproducibility record)."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.embedding, dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(self.target_db, dtype="<f8").tobytes())
        return h.hexdigest()


def embedding_matrix(frame: Any, where: str) -> np.ndarray:
    """The (N, 64) float64 A00..A63 block of a table, with a clear error when it is not there."""
    missing = [c for c in EMBEDDING_BANDS if c not in frame.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise EmulatorError(
            f"{where}: needs the {EMBEDDING_DIM} embedding columns A00..A63; missing {len(missing)} ({shown})"
        )
    import pandas as pd

    block = frame[list(EMBEDDING_BANDS)].apply(pd.to_numeric, errors="coerce")
    bad = block.isna() & frame[list(EMBEDDING_BANDS)].notna()
    if bad.to_numpy().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        raise EmulatorError(
            f"{where}: column {EMBEDDING_BANDS[col]} row {row + 1} is not a number "
            f"({frame[EMBEDDING_BANDS[col]].iloc[row]!r})"
        )
    return block.to_numpy(dtype=np.float64)


def load_points(folder: str | os.PathLike) -> PointTable:
    """Read every ``*.csv`` of AlphaEarth/Sentinel-1 points in ``folder`` (export format of
    ``earth_engine_export_script.js``: A00..A63, S1_VV, S1_VH, region, dw_label, …)."""
    import pandas as pd

    folder = Path(folder)
    if not folder.is_dir():
        raise EmulatorError(
            f"points folder {folder} does not exist (expected a folder of CSV files with "
            f"A00..A63, S1_VV, S1_VH, region)"
        )
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise EmulatorError(f"no *.csv files in {folder}")
    frames = []
    for path in files:
        frame = pd.read_csv(path)
        for col in TARGET_COLUMNS + ("region",):
            if col not in frame.columns:
                raise EmulatorError(f"{path}: missing column {col!r} (needs A00..A63, S1_VV, S1_VH, region)")
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    emb = embedding_matrix(frame, str(folder))
    target = frame[list(TARGET_COLUMNS)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    keep = np.isfinite(emb).all(1) & np.isfinite(target).all(1)
    dw = (
        pd.to_numeric(frame["dw_label"], errors="coerce").fillna(-1).astype(int).to_numpy()
        if "dw_label" in frame.columns
        else np.full(len(frame), -1)
    )
    table = PointTable(
        emb[keep], target[keep], frame["region"].astype(str).to_numpy()[keep], dw[keep], [p.name for p in files]
    )
    if len(table) < 2 * EMBEDDING_DIM:
        raise EmulatorError(
            f"{folder}: only {len(table)} complete rows; at least {2 * EMBEDDING_DIM} are needed "
            "to fit the radiometric model"
        )
    return table


# -- the model ----------------------------------------------------------------------------------
def features(embedding: np.ndarray, feature_map: str) -> np.ndarray:
    """(N, 64) → (N, F) design matrix of ``feature_map``."""
    if feature_map == "linear":
        return embedding
    if feature_map == "poly2":
        return np.concatenate([embedding, embedding * embedding], axis=1)
    raise EmulatorError(f"unknown feature map {feature_map!r}; choose one of {', '.join(FEATURE_MAPS)}")


@dataclass
class RadiometricModel:
    """Ridge regression of [VV, VH] dB on a feature map of the embedding."""

    feature_map: str
    weight: np.ndarray  # (F, 2)
    intercept: np.ndarray  # (2,)
    feature_mean: np.ndarray  # (F,)
    ridge_lambda: float
    reference_angle_deg: float = REFERENCE_ANGLE_DEG
    cos_power: float = COS_POWER
    metadata: dict[str, Any] = field(default_factory=dict)
    #: the VH law's power; None = the same law as VV (``cos_power``). See the module docstring.
    cos_power_vh: float | None = None

    @property
    def cos_powers(self) -> dict[str, float]:
        """The cos^n power of each polarisation's angle law."""
        return {"VV": self.cos_power, "VH": self.cos_power if self.cos_power_vh is None else self.cos_power_vh}

    # -- fitting ---------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        embedding: np.ndarray,
        target_db: np.ndarray,
        feature_map: str = "poly2",
        ridge_lambda: float = 0.3,
        **metadata: Any,
    ) -> "RadiometricModel":
        """Closed-form ridge on centred features (the intercept is not penalised)."""
        embedding = _check_embedding(np.asarray(embedding, dtype=np.float64))
        target_db = np.asarray(target_db, dtype=np.float64)
        if target_db.shape != (embedding.shape[0], 2):
            raise EmulatorError(
                f"targets must be (N, 2) VV/VH dB for N={embedding.shape[0]} points, got {target_db.shape}"
            )
        if not np.isfinite(embedding).all() or not np.isfinite(target_db).all():
            raise EmulatorError("training points contain NaN/inf; drop incomplete rows first")
        if not ridge_lambda > 0:
            raise EmulatorError(f"ridge lambda must be > 0, got {ridge_lambda}")
        design = features(embedding, feature_map)
        mean = design.mean(0)
        centred = design - mean
        gram = centred.T @ centred + ridge_lambda * np.eye(design.shape[1])
        weight = np.linalg.solve(gram, centred.T @ (target_db - target_db.mean(0)))
        return cls(feature_map, weight, target_db.mean(0), mean, float(ridge_lambda), metadata=dict(metadata))

    # -- prediction ------------------------------------------------------------------------
    def predict_reference_db(self, embedding: np.ndarray) -> np.ndarray:
        """(N, 64) → (N, 2) VV/VH dB at the reference angle; NaN rows stay NaN."""
        embedding = _check_embedding(np.asarray(embedding))
        out = (features(embedding, self.feature_map) - self.feature_mean) @ self.weight + self.intercept
        out[~np.isfinite(embedding).all(1)] = np.nan  # explicit: never let a missing pixel become a value
        return out

    def angle_correction_db(self, angle_deg: np.ndarray | float, pol: str = "VV") -> np.ndarray:
        """dB to add to the reference-angle σ⁰ of ``pol`` for incidence angle θ (its cos^n law)."""
        angle = np.asarray(angle_deg, dtype=np.float64)
        check_angles(angle)
        ref = math.cos(math.radians(self.reference_angle_deg))
        return 10.0 * self.cos_powers[pol] * np.log10(np.cos(np.radians(angle)) / ref)

    def predict_db(self, embedding: np.ndarray, angle_deg: np.ndarray | float | None = None) -> np.ndarray:
        """(N, 64) [+ angle (N,) or scalar] → (N, 2) VV/VH dB (the 2024-median-like σ⁰)."""
        out = self.predict_reference_db(embedding)
        if angle_deg is not None:
            for k, pol in enumerate(TARGETS):
                out[:, k] += self.angle_correction_db(angle_deg, pol)
        return out

    def predict_image_db(self, embedding: np.ndarray, angle_deg: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Embedding field (64, H, W) + angle (H, W) or scalar → VV, VH (H, W) float32 dB.

        Works on the band-major layout directly (W.T @ E) so that no (H·W, 64) transpose
        copy is made; float32 throughout for speed.
        """
        embedding = np.asarray(embedding)
        if embedding.ndim != 3 or embedding.shape[0] != EMBEDDING_DIM:
            raise EmulatorError(
                f"the embedding field must have {EMBEDDING_DIM} bands (A00..A63) shaped "
                f"(64, H, W); got shape {embedding.shape}"
            )
        _, h, w = embedding.shape
        flat = embedding.reshape(EMBEDDING_DIM, h * w).astype(np.float32, copy=False)
        w_lin = np.ascontiguousarray(self.weight[:EMBEDDING_DIM].T, dtype=np.float32)  # (2, 64)
        w_sq = (
            np.ascontiguousarray(self.weight[EMBEDDING_DIM:].T, dtype=np.float32)
            if self.feature_map == "poly2"
            else None
        )
        bias = (self.intercept - self.feature_mean @ self.weight).astype(np.float32)[:, None]
        out = np.empty((2, h * w), dtype=np.float32)
        squares = np.empty((EMBEDDING_DIM, _CHUNK), dtype=np.float32)
        # Cache-sized pixel chunks: one product over the whole (64, 262k) field is ~3x slower
        # on this CPU (memory-bound, and the squared copy would be another 67 MB).
        for start in range(0, h * w, _CHUNK):
            block = flat[:, start : start + _CHUNK]
            n = block.shape[1]
            dst = out[:, start : start + n]
            np.matmul(w_lin, block, out=dst)
            if w_sq is not None:
                np.multiply(block, block, out=squares[:, :n])
                dst += w_sq @ squares[:, :n]
            dst += bias
        # A pixel missing any band is NaN in the weighted sums (IEEE NaN propagation through
        # the product; tests pin this), and must be NaN in the output — never a value.
        out[:, ~np.isfinite(out).all(0)] = np.nan
        out = out.reshape(2, h, w)
        for k, pol in enumerate(TARGETS):
            out[k] += self.angle_correction_db(angle_deg, pol).astype(np.float32)
        return out[0], out[1]

    # -- files (the file itself: sarviz.formats.emulator_weights) ----------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (.safetensors) atomically: tensors + JSON metadata in the header."""
        meta = {
            "feature_map": self.feature_map,
            "ridge_lambda": self.ridge_lambda,
            "targets": list(TARGETS),
            "units": "dB",
            "embedding_bands": f"A00..A{EMBEDDING_DIM - 1:02d}",
            "reference_angle_deg": self.reference_angle_deg,
            "cos_power": self.cos_power,
            **self.metadata,
        }
        if self.cos_power_vh is not None:
            meta["cos_power_vh"] = self.cos_power_vh
        tensors = {
            "weight": self.weight.astype(np.float64),
            "intercept": self.intercept.astype(np.float64),
            "feature_mean": self.feature_mean.astype(np.float64),
        }
        return EmulatorWeights(tensors, meta).save(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RadiometricModel":
        stored = EmulatorWeights.load(path)
        tensors, meta = stored.tensors, stored.meta
        fmap = meta["feature_map"]
        n_feat = features(np.zeros((1, EMBEDDING_DIM)), fmap).shape[1]
        if tensors["weight"].shape != (n_feat, 2) or tensors["feature_mean"].shape != (n_feat,):
            raise EmulatorError(f"{path}: tensor shapes {tensors['weight'].shape} do not fit feature map {fmap!r}")
        extra = {
            k: v
            for k, v in meta.items()
            if k
            not in {
                "format",
                "feature_map",
                "ridge_lambda",
                "targets",
                "units",
                "embedding_bands",
                "reference_angle_deg",
                "cos_power",
                "cos_power_vh",
            }
        }
        vh = meta.get("cos_power_vh")
        return cls(
            fmap,
            tensors["weight"],
            tensors["intercept"],
            tensors["feature_mean"],
            float(meta["ridge_lambda"]),
            float(meta["reference_angle_deg"]),
            float(meta["cos_power"]),
            metadata=extra,
            cos_power_vh=None if vh is None else float(vh),
        )


def check_angles(angle: np.ndarray) -> None:
    finite = angle[np.isfinite(angle)]
    lo, hi = ANGLE_RANGE_DEG
    if finite.size and (finite.min() < lo or finite.max() > hi):
        raise EmulatorError(
            f"incidence angle {float(finite.min()):.1f}…{float(finite.max()):.1f}° is outside "
            f"{lo:.0f}–{hi:.0f}°, where the emulator's cos^n angle law applies "
            "(Sentinel-1 IW spans about 29–46°)"
        )


def _check_embedding(embedding: np.ndarray) -> np.ndarray:
    if embedding.ndim != 2 or embedding.shape[1] != EMBEDDING_DIM:
        raise EmulatorError(
            f"embeddings must have {EMBEDDING_DIM} values (A00..A63) per point; got shape {embedding.shape}"
        )
    return embedding
