"""SAR-CLIP alignment scores (seed 001, §4.4): caption rank among N = 16 and image–prompt cosine.

A SAR-CLIP model is a transformers ``CLIPModel`` fine-tuned on SAR–caption pairs
(:mod:`sarviz.training.sarclip`), saved with its ``CLIPProcessor``. Images are shown to it as
they were in training: σ⁰ dB → the dataset calibration's [0, 1] → 8-bit RGB (grey VV
replicated, or R = VV, G = VH, B = VV), then CLIP's own resize and normalisation.

Rank (eq. 5–6): in a batch of N image–caption pairs, S = cosine(image_i, caption_j); the
row softmax turns S into match probabilities (a monotone map, so it does not change the
order); the rank of image i is 1 + the number of captions of the batch scored above its own.
Reported: mean, median and variance of the ranks.

Batches: the pairs are put in a seeded random order, and image i is ranked in the batch of
the N pairs that starts at it (cyclically). Every image is ranked once, against N − 1
captions drawn from the whole evaluation set (as random batches of it are), and the
per-label rows are the ranks of that label's images — so a label with 30 images does not
lose 14 of them to an incomplete batch. Fewer than N pairs in all: no rank (null).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sarviz.calibration import Calibration
from sarviz.errors import ClipMissing  # noqa: F401 - re-exported (it lives in sarviz.errors)
from sarviz.formats.sarclip import INFO_FILE, SarClipFolder  # noqa: F401 - re-exported

RANK_BATCH = 16


def caption_ranks(
    image_embeds: np.ndarray, text_embeds: np.ndarray, batch: int = RANK_BATCH, seed: int = 0
) -> np.ndarray:
    """Rank (1 = best) of each image's own caption in a batch of ``batch`` pairs (input order; empty if too few)."""
    img = _unit_rows(image_embeds)
    txt = _unit_rows(text_embeds)
    if img.shape != txt.shape:
        raise ValueError(f"image and text embeddings differ in shape: {img.shape} vs {txt.shape}")
    m = len(img)
    if m < batch:
        return np.zeros(0, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(m)
    position = np.empty(m, dtype=np.int64)
    position[order] = np.arange(m)
    ranks = np.empty(m, dtype=np.int64)
    for i in range(m):
        members = order[(position[i] + np.arange(batch)) % m]  # members[0] == i
        s = img[i] @ txt[members].T
        probs = np.exp(s - s.max())
        probs /= probs.sum()
        ranks[i] = 1 + int((probs[1:] > probs[0] + 1e-12).sum())
    return ranks


def rank_summary(ranks: np.ndarray) -> dict[str, Any]:
    if len(ranks) == 0:
        return {"rank_mean": None, "rank_median": None, "rank_variance": None, "ranked_pairs": 0}
    return {
        "rank_mean": round(float(np.mean(ranks)), 4),
        "rank_median": float(np.median(ranks)),
        "rank_variance": round(float(np.var(ranks)), 4),
        "ranked_pairs": int(len(ranks)),
    }


def mean_cosine(image_embeds: np.ndarray, text_embeds: np.ndarray) -> float:
    return float(np.mean(np.sum(_unit_rows(image_embeds) * _unit_rows(text_embeds), axis=1)))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def sar_rgb(bands_db: dict[str, np.ndarray], calibration: Calibration) -> np.ndarray:
    """dB bands → (H, W, 3) uint8 in the captioned-dataset convention (sarviz.formats.captioned)."""
    vv = (calibration.to_unit(np.nan_to_num(bands_db["VV"], nan=-1e9), "VV") * 255).round().astype(np.uint8)
    if "VH" in bands_db and bands_db["VH"] is not None:
        vh = (calibration.to_unit(np.nan_to_num(bands_db["VH"], nan=-1e9), "VH") * 255).round().astype(np.uint8)
        return np.dstack([vv, vh, vv])
    return np.dstack([vv, vv, vv])


def _features(out) -> Any:
    import torch

    return out if torch.is_tensor(out) else out.pooler_output  # transformers 5 returns a model output


@dataclass
class SarClip:
    """A loaded SAR-CLIP model and its processor."""

    model: Any
    processor: Any
    folder: Path
    info: dict[str, Any]
    device: str = "cpu"

    def embed_images(self, images: Sequence[np.ndarray], batch: int = 16) -> np.ndarray:
        import torch

        out = []
        for i in range(0, len(images), batch):
            inputs = self.processor(images=list(images[i : i + batch]), return_tensors="pt")
            with torch.inference_mode():
                feats = _features(self.model.get_image_features(pixel_values=inputs["pixel_values"].to(self.device)))
            out.append(feats.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0))

    def embed_texts(self, texts: Sequence[str], batch: int = 64) -> np.ndarray:
        import torch

        out = []
        for i in range(0, len(texts), batch):
            inputs = self.processor(text=list(texts[i : i + batch]), return_tensors="pt", padding=True, truncation=True)
            with torch.inference_mode():
                feats = _features(
                    self.model.get_text_features(
                        input_ids=inputs["input_ids"].to(self.device),
                        attention_mask=inputs["attention_mask"].to(self.device),
                    )
                )
            out.append(feats.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0))

    def scores(
        self, images: Sequence[np.ndarray], texts: Sequence[str], groups: Sequence[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Rank summary and mean cosine of image i with caption i: for all pairs ("all") and per group."""
        img, txt = self.embed_images(images), self.embed_texts(texts)
        ranks = caption_ranks(img, txt)
        groups = list(groups) if groups is not None else ["all"] * len(texts)
        out = {}
        for name in list(dict.fromkeys(groups)) + (["all"] if "all" not in groups else []):
            sel = np.array([name == "all" or g == name for g in groups])
            out[name] = {
                **rank_summary(ranks[sel] if len(ranks) else ranks),
                "cosine_mean": round(mean_cosine(img[sel], txt[sel]), 4),
                "pairs": int(sel.sum()),
            }
        return out


def load_sarclip(folder: str | Path | None, device: str = "cpu") -> SarClip:
    """A SAR-CLIP folder (``sarviz train sarclip`` output, or any CLIPModel + CLIPProcessor folder)."""
    folder = SarClipFolder.check(folder)
    from transformers import CLIPModel, CLIPProcessor

    try:
        model = CLIPModel.from_pretrained(str(folder), use_safetensors=True).to(device).eval()
        processor = CLIPProcessor.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise ClipMissing(f"cannot load the SAR-CLIP model from {folder} ({exc})") from None
    return SarClip(model, processor, folder, SarClipFolder.load(folder).info, device)
