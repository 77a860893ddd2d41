"""SAR-CLIP: fine-tune a CLIP model on SAR image–caption pairs (seed 001, §4.4).

Seed 001 scores prompt fidelity with "a SAR-specialised CLIP model"; it does not give the
recipe. Ours: a transformers ``CLIPModel`` (any local CLIP folder with its processor, e.g.
openai/clip-vit-base-patch32 copied offline) trained with CLIP's own symmetric contrastive
loss (``CLIPModel(..., return_loss=True)``) on the captioned dataset's train split, AdamW,
the validation split's loss reported after each epoch. Images are given to CLIP as the
captioned PNGs are (grey VV replicated to RGB, or R = VV, G = VH, B = VV), so evaluation
(:mod:`sarviz.evaluation.clip`) sees generated images exactly as training saw real ones.

Runs through 🤗 accelerate (one process here; ``accelerate launch`` for several GPUs).
The output folder holds ``CLIPModel.save_pretrained`` (safetensors), the processor and
``sarclip_info.json`` (recipe, losses, data); it is written beside the target and renamed
into place when complete.
"""

from __future__ import annotations

import datetime as _dt
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

import sarviz
from sarviz.errors import DatasetError, TrainError
from sarviz.evaluation.captioned import CaptionedSet, open_captioned
from sarviz.evaluation.clip import sar_rgb
from sarviz.formats.sarclip import CONFIG_FILE as SARCLIP_CONFIG
from sarviz.formats.sarclip import FORMAT as SARCLIP_FORMAT
from sarviz.formats.sarclip import SarClipFolder

Progress = Callable[[int, int, str], None]


@dataclass
class SarClipRecipe:
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 1e-5
    weight_decay: float = 0.1
    seed: int = 0
    max_items: int | None = None


@dataclass
class SarClipResult:
    out: Path
    train_losses: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def _pairs(data: CaptionedSet, max_items: int | None) -> tuple[list[np.ndarray], list[str]]:
    items = data.items[:max_items] if max_items else data.items
    return [sar_rgb(data.read_db(i), data.calibration) for i in items], [i.text for i in items]


def train_sarclip(
    data: str | Path,
    base: str | Path,
    out: str | Path,
    recipe: SarClipRecipe | None = None,
    device: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> SarClipResult:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import CLIPModel, CLIPProcessor

    recipe = recipe or SarClipRecipe()
    base, out = Path(base), Path(out)
    if not SarClipFolder.is_clip_folder(base):
        raise TrainError(
            f"{base} is not a CLIP model folder (no {SARCLIP_CONFIG}); give a local CLIP, e.g. a copy of "
            "openai/clip-vit-base-patch32"
        )
    from sarviz.training.common import check_weights

    try:  # the generators' rule: safetensors only (SAR-CLIP has no --allow-pickle)
        check_weights(base, False, f"CLIP model {base}")
    except TrainError as exc:
        raise TrainError(str(exc).replace(" unless you opt in with --allow-pickle", "")) from None
    train = open_captioned(data, "train")
    try:
        val: CaptionedSet | None = open_captioned(data, "validation")
    except DatasetError:
        val = None
    if len(train.items) < 2:
        raise TrainError(f"{data}: the train split has {len(train.items)} pair(s); contrastive training needs ≥ 2")
    set_seed(recipe.seed)
    try:
        model = CLIPModel.from_pretrained(str(base), use_safetensors=True)
        processor = CLIPProcessor.from_pretrained(str(base))
    except (OSError, ValueError) as exc:
        raise TrainError(f"cannot load the CLIP model and processor from {base} ({exc})") from None
    accelerator = Accelerator(cpu=(device or "cpu") == "cpu")
    images, texts = _pairs(train, recipe.max_items)

    def encode(batch_images, batch_texts):
        enc = processor(text=batch_texts, images=batch_images, return_tensors="pt", padding=True, truncation=True)
        return {k: v.to(accelerator.device) for k, v in enc.items()}

    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    rng = np.random.default_rng(recipe.seed)
    bs = max(2, min(recipe.batch_size, len(images)))
    steps_per_epoch = max(1, len(images) // bs)
    total = recipe.epochs * steps_per_epoch
    result = SarClipResult(out=out)
    step = 0
    for epoch in range(recipe.epochs):
        model.train()
        order = rng.permutation(len(images))
        losses = []
        for b in range(steps_per_epoch):  # drop the last short batch: contrastive loss needs negatives
            if cancel is not None and cancel.is_set():
                raise KeyboardInterrupt("SAR-CLIP training cancelled")
            idx = order[b * bs : (b + 1) * bs]
            loss = model(**encode([images[i] for i in idx], [texts[i] for i in idx]), return_loss=True).loss
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            step += 1
            if progress:
                progress(step, total, f"epoch {epoch + 1}/{recipe.epochs}, loss {losses[-1]:.4f}")
        result.train_losses.append(float(np.mean(losses)))
        if val is not None and len(val.items) >= 2:
            result.val_losses.append(_eval_loss(model, processor, val, bs, accelerator))
    unwrapped = accelerator.unwrap_model(model)
    info = {
        "format": SARCLIP_FORMAT,
        "base": str(base),
        "data": str(data),
        "recipe": recipe.__dict__,
        "train_pairs": len(images),
        "train_losses": result.train_losses,
        "val_losses": result.val_losses,
        "token": train.token,
        "polarisation": train.polarisation,
        "image_mode": train.image_mode,
        "calibration": train.calibration.to_dict(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "sarviz": sarviz.__version__,
    }
    SarClipFolder(Path(out), info).save(model=unwrapped, processor=processor)
    result.info = info
    return result


def _eval_loss(model, processor, data: CaptionedSet, bs: int, accelerator) -> float:
    import torch

    images, texts = _pairs(data, None)
    model.eval()
    losses = []
    with torch.inference_mode():
        for b in range(max(1, len(images) // bs)):
            sl = slice(b * bs, (b + 1) * bs)
            enc = processor(text=texts[sl], images=images[sl], return_tensors="pt", padding=True, truncation=True)
            enc = {k: v.to(accelerator.device) for k, v in enc.items()}
            losses.append(float(model(**enc, return_loss=True).loss))
    return float(np.mean(losses))
