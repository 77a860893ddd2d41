"""Refit the CPU emulator's radiometric model from a built dataset (``sarviz emulator fit --dataset``).

Samples are not raw pixels: a single Sentinel-1 acquisition is speckled (ENL ≈ 4.4), and a
ridge fit on speckled dB would learn the speckle's dB bias and its noise. Each patch is cut
into ``block`` × ``block`` cells; a cell whose pixels are all valid gives one sample:

* target σ⁰: the mean of VV/VH in *linear power* (speckle-free mean σ⁰), in dB, brought
  to the reference angle with the model's cos^n law (−correction(θ̄)), and — for single
  acquisitions — moved from the mean to the median-of-dB convention the emulator's
  weights use (the shipped model is fitted on 2024 median composites; the generator adds
  :func:`~sarviz.generators.emulator.median_to_mean_db` back before speckle). Composite
  datasets are already in that convention.
* embedding: the cell mean, re-normalised to unit length (AlphaEarth vectors are unit
  vectors; this keeps the samples on the distribution the model sees per pixel).

The feature map (linear/poly2) and ridge λ are chosen by R² on the *val* split; the model is
fitted on *train*; the *test* split, untouched by any choice, gives the held-out score.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sarviz.constants import DEFAULT_ANGLE_DEG
from sarviz.emulator.radiometric import FEATURE_MAPS, RadiometricModel, file_sha256
from sarviz.emulator.validation import LAMBDAS, r2_score
from sarviz.errors import DatasetError
from sarviz.formats.model_card import CARD_SUFFIX, SHIPPED_EMULATOR_CARD, ModelCard
from sarviz.formats.patch_dataset import PatchDatasetFolder, open_dataset
from sarviz.scene import read_scene

DEFAULT_BLOCK = 8
DEFAULT_MAX_SAMPLES = 200_000
DEFAULT_ENL = 4.4  # Sentinel-1 IW GRDH (the shipped emulator card's value)


@dataclass
class Samples:
    embedding: np.ndarray  # (N, 64)
    target_db: np.ndarray  # (N, 2) at the reference angle, model convention
    patches: int

    def __len__(self) -> int:
        return int(self.embedding.shape[0])


def _cells(arr: np.ndarray, block: int) -> np.ndarray:
    """(..., H, W) → (..., H//b, W//b, b*b) cells (the edge remainder is left out)."""
    *lead, h, w = arr.shape
    hb, wb = h // block, w // block
    a = arr[..., : hb * block, : wb * block].reshape(*lead, hb, block, wb, block)
    return np.moveaxis(a, -3, -2).reshape(*lead, hb, wb, block * block)


def patch_samples(
    path: Path, block: int, offset_db: float, reference: RadiometricModel
) -> tuple[np.ndarray, np.ndarray]:
    patch = read_scene(path, layers=("vv_db", "vh_db", "angle_deg", "embedding"))
    if patch.vv_db is None or patch.vh_db is None or patch.embedding is None or patch.angle_deg is None:
        return np.empty((0, 64)), np.empty((0, 2))
    sar = _cells(np.stack([patch.vv_db, patch.vh_db]), block)  # (2, hb, wb, n)
    emb = _cells(patch.embedding, block)  # (64, hb, wb, n)
    ang = _cells(patch.angle_deg, block)  # (hb, wb, n)
    valid = np.isfinite(sar).all((0, -1)) & np.isfinite(emb).all((0, -1)) & np.isfinite(ang).all(-1)
    if not valid.any():
        return np.empty((0, 64)), np.empty((0, 2))
    power = 10.0 ** (sar[:, valid].astype(np.float64) / 10.0)  # (2, m, n)
    mean_db = 10.0 * np.log10(power.mean(-1)).T  # (m, 2)
    theta = ang[valid].astype(np.float64).mean(-1)
    target = mean_db - reference.angle_correction_db(theta)[:, None] - offset_db
    e = emb[:, valid].astype(np.float64).mean(-1).T  # (m, 64)
    e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return e, target


def collect(
    ds: PatchDatasetFolder,
    split: str,
    block: int,
    max_samples: int,
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> Samples:
    from sarviz.generators.emulator import median_to_mean_db

    rows = ds.split(split)
    reference = RadiometricModel("linear", np.zeros((64, 2)), np.zeros(2), np.zeros(64), 1.0)
    composite = ds.info.get("s1_mode") == "composite"
    offset = 0.0 if composite else median_to_mean_db(DEFAULT_ENL)
    embs, targets = [], []
    for n, row in enumerate(rows, 1):
        e, t = patch_samples(ds.patch_path(row), block, offset, reference)
        embs.append(e)
        targets.append(t)
        if progress and (n % 20 == 0 or n == len(rows)):
            progress(n, len(rows), f"{split}: read {n} patches")
    emb = np.concatenate(embs) if embs else np.empty((0, 64))
    target = np.concatenate(targets) if targets else np.empty((0, 2))
    if len(emb) > max_samples:  # seeded subsample, order kept (reproducible)
        keep = np.sort(np.random.default_rng(seed).choice(len(emb), max_samples, replace=False))
        emb, target = emb[keep], target[keep]
    return Samples(emb, target, len(rows))


def _scores(model: RadiometricModel, samples: Samples) -> dict[str, float]:
    if not len(samples):
        return {}
    pred = model.predict_reference_db(samples.embedding)
    r2 = r2_score(samples.target_db, pred)
    mae = np.abs(pred - samples.target_db).mean(0)
    bias = (pred - samples.target_db).mean(0)
    return {
        "n": len(samples),
        "r2_VV": round(float(r2[0]), 4),
        "r2_VH": round(float(r2[1]), 4),
        "mae_VV_db": round(float(mae[0]), 3),
        "mae_VH_db": round(float(mae[1]), 3),
        "bias_VV_db": round(float(bias[0]), 3),
        "bias_VH_db": round(float(bias[1]), 3),
    }


@dataclass
class FitResult:
    model: RadiometricModel
    weights: Path
    card: Path | None
    val: dict[str, float]
    test: dict[str, float]
    train_samples: int

    def summary(self) -> str:
        def fmt(s: dict[str, float]) -> str:
            return (
                (
                    f"R² VV {s['r2_VV']:.3f}, VH {s['r2_VH']:.3f}; MAE VV {s['mae_VV_db']:.2f} dB, "
                    f"VH {s['mae_VH_db']:.2f} dB (n={s['n']})"
                )
                if s
                else "no samples"
            )

        lines = [
            f"fitted {self.model.feature_map} ridge, λ={self.model.ridge_lambda:g} on {self.train_samples} "
            f"train samples → {self.weights} (sha256 {file_sha256(self.weights)})",
            f"val (used to choose the feature map and λ): {fmt(self.val)}",
            f"test (held out): {fmt(self.test)}",
        ]
        if self.card:
            lines.append(f"model card: {self.card} (add its folder to SARVIZ_MODELS to list it in `sarviz models`)")
        return "\n".join(lines)


def fit_from_dataset(
    root: str | os.PathLike,
    out: str | os.PathLike,
    card_dir: str | os.PathLike | None = None,
    model_id: str | None = None,
    block: int = DEFAULT_BLOCK,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> FitResult:
    out = Path(out)
    if out.suffix != ".safetensors":
        raise DatasetError(f"--out {out}: the weights file must end in .safetensors")
    if not 1 <= int(block) <= 256:
        raise DatasetError(f"--block must be 1–256 pixels, got {block}")
    ds = open_dataset(root)
    train = collect(ds, "train", block, max_samples, seed, progress)
    if len(train) < 2 * 64:
        raise DatasetError(
            f"{ds.root}: only {len(train)} valid {block}×{block} cells in the train split; at least "
            f"{2 * 64} are needed (more or larger patches, or a smaller --block)"
        )
    val = collect(ds, "val", block, max_samples, seed, progress)
    test = collect(ds, "test", block, max_samples, seed, progress)
    choice = val if len(val) else train
    best: tuple[float, str, float] | None = None
    for fmap in FEATURE_MAPS:
        for lam in LAMBDAS:
            model = RadiometricModel.fit(train.embedding, train.target_db, fmap, lam)
            score = float(np.nanmean(r2_score(choice.target_db, model.predict_reference_db(choice.embedding))))
            if best is None or score > best[0]:
                best = (score, fmap, lam)
    assert best is not None
    digest = hashlib.sha256(
        np.ascontiguousarray(train.embedding, "<f8").tobytes() + np.ascontiguousarray(train.target_db, "<f8").tobytes()
    ).hexdigest()
    model = RadiometricModel.fit(
        train.embedding,
        train.target_db,
        best[1],
        best[2],
        training_dataset=str(ds.root),
        training_samples=len(train),
        training_patches=train.patches,
        training_sha256=digest,
        embedding_source=ds.info.get("embedding_source", ""),
        sample_cells_px=block,
        s1_mode=ds.info.get("s1_mode", ""),
        selection=(
            "best val-split R² over linear/poly2 × λ" if len(val) else "no val split: best train R² (optimistic)"
        ),
    )
    val_scores, test_scores = _scores(model, val), _scores(model, test)
    model.metadata.update(
        val_scores={k: v for k, v in val_scores.items()}, test_scores={k: v for k, v in test_scores.items()}
    )
    weights = model.save(out)
    card_path = (
        write_card(card_dir, weights, model_id or f"emulator-{_slug(ds.root.name)}", ds, val_scores, test_scores)
        if card_dir
        else None
    )
    return FitResult(model, weights, card_path, val_scores, test_scores, len(train))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c == "-" else "-" for c in text.lower()).strip("-") or "dataset"


def write_card(
    card_dir: str | os.PathLike,
    weights: Path,
    model_id: str,
    ds: PatchDatasetFolder,
    val: dict[str, float],
    test: dict[str, float],
) -> Path:
    """An emulator model card (the shipped card's speckle and angle law) pointing at the new weights."""
    from sarviz.registry import REPO_MODELS_DIR

    base: dict[str, Any] = {}
    shipped = REPO_MODELS_DIR / SHIPPED_EMULATOR_CARD
    if shipped.is_file():
        base = ModelCard.load(shipped).data
    card_dir = Path(card_dir)
    emb = ds.info.get("embedding_source", "")
    proxy = (
        " — trained on PROXY embeddings (not AlphaEarth), results are proxy results"
        if emb.startswith("proxy") or emb == "mixed"
        else ""
    )
    card = {
        "id": model_id,
        "name": f"sarviz CPU SAR emulator, refitted on dataset {ds.root.name}{proxy}",
        "kind": "emulator",
        "description": f"Regional refit of the CPU emulator's radiometric model on the train split of {ds.root} "
        f"(val/test scores below); speckle and angle law as the shipped emulator{proxy}.",
        "weights": os.path.relpath(weights.resolve(), card_dir.resolve()),
        "sha256": file_sha256(weights),
        "licence": base.get("licence", ""),
        "training_data": str(ds.root),
        "embedding_source": emb,
        "refit": f"sarviz emulator fit --dataset {ds.root} --out {weights} --card-dir {card_dir}",
        "validation": {"val": val, "test": test},
        "speckle": base.get("speckle", {"enl": DEFAULT_ENL}),
        "angle": base.get("angle", {"reference_deg": DEFAULT_ANGLE_DEG, "cos_power": 2.0}),
        "outputs": ["VV", "VH"],
        "units": "dB",
    }
    return ModelCard(model_id, card["name"], "emulator", card_dir / f"{_slug(model_id)}{CARD_SUFFIX}", card).save()
