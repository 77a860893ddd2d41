"""Seed 000's downstream test (Table III): does synthetic SAR help a scene classifier?

For each run (seed): the finished items of the chosen classes are split 3:1 into train and
test, stratified by class. Two classifiers of the same architecture and initialisation are
trained: on the real train patches alone, and on the real train patches plus the generated
images of the same train items (K a real patch: the training set grows to (1 + K)×). Both are
tested on the held-out real patches. Generated images of test items are never used.

Images: VV and VH mapped to [0, 1] with the model calibration (:mod:`sarviz.calibration`),
laid out as R = VV, G = VH, B = VV (the model output convention), resized to ``input_size``
and kept as 8-bit in memory (0.1 dB steps: what the papers' 8-bit images hold too). Random
horizontal/vertical flips augment training (both arms). Optimiser AdamW, cosine schedule;
the paper does not give its training recipe — ours is stated in docs/batch.md.

Accuracy is reported per arm with the mean over runs and a 95 % t-interval, and the paired
gain (same split, same initialisation) with its own interval.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sarviz.errors import EvaluationError
from sarviz.formats.batch_folder import BatchFolder

CLASSIFIERS = ("resnet18", "resnet34", "vgg19", "vit_b_32")
#: the classifier a batch's downstream test trains unless told otherwise (seed 000's first of Table III)
DEFAULT_MODELS = ("resnet18",)
ARMS = ("real", "real+synthetic")


@dataclass
class Patches:
    classes: tuple[str, ...]
    ids: list[str]
    labels: np.ndarray  # (N,) int
    real: np.ndarray  # (N, 3, S, S) uint8
    synthetic: list[np.ndarray] = field(default_factory=list)  # per item: (K, 3, S, S) uint8


def _to_image(vv: np.ndarray, vh: np.ndarray, size: int, calibration: Any = None) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    from sarviz.calibration import DEFAULT_CALIBRATION

    cal = calibration or DEFAULT_CALIBRATION
    vv_u = np.nan_to_num(cal.to_unit(vv, "VV"), nan=0.0)
    vh_u = np.nan_to_num(cal.to_unit(vh, "VH"), nan=0.0)
    t = torch.from_numpy(np.stack([vv_u, vh_u, vv_u]).astype(np.float32))[None]
    t = F.interpolate(t, size=(size, size), mode="area" if t.shape[-1] >= size else "bilinear")
    return np.round(t[0].clamp(0, 1).numpy() * 255).astype(np.uint8)


def _read_generated(path: Path) -> tuple[np.ndarray, np.ndarray, Any]:
    """VV, VH (dB) and the calibration recorded in a generated GeoTIFF's provenance."""
    from sarviz.calibration import calibration_from_provenance
    from sarviz.metrics.report import read_sar_file

    scene = read_sar_file(str(path), path.name, sar_only=True)
    return scene.vv_db, scene.vh_db, calibration_from_provenance(scene.provenance)[0]


def load_patches(
    root: str | os.PathLike, classes: tuple[str, ...], input_size: int, synthetic_factor: int | None = None
) -> Patches:
    """The real and generated images of the finished items whose class is in ``classes``."""
    from sarviz.batch.evaluate import _read_vv_vh, item_entries

    folder = BatchFolder(root)
    folder.read_settings()
    entries = [e for e in item_entries(folder) if e["class"] in classes and e.get("real")]
    counts = {c: sum(e["class"] == c for e in entries) for c in classes}
    short = [f"{c} ({n})" for c, n in counts.items() if n < 2]
    if short:
        have = sorted({e["class"] for e in item_entries(folder)} - {""})
        raise EvaluationError(
            f"every class needs at least 2 items with a real crop (train and test); too few: "
            f"{', '.join(short)}; classes in this batch: {', '.join(have) or 'none'}"
        )
    ids, labels, real, synth = [], [], [], []
    for e in entries:
        ids.append(e["id"])
        labels.append(classes.index(e["class"]))
        seeds = sorted(e["generated"])[: synthetic_factor or None]
        generated = [_read_generated(Path(e["generated"][s])) for s in seeds]
        # the model's calibration, from each generated file's provenance; the real patch of the
        # item is mapped with the same one, so both arms see images on one scale
        cal = generated[0][2] if generated else None
        real.append(_to_image(*_read_vv_vh(Path(e["real"])), input_size, cal))
        synth.append(
            np.stack([_to_image(vv, vh, input_size, c) for vv, vh, c in generated])
            if generated
            else np.zeros((0, 3, input_size, input_size), np.uint8)
        )
    return Patches(tuple(classes), ids, np.asarray(labels), np.stack(real), synth)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test), test_fraction of each class (at least one, at most n − 1) held out."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = min(max(1, int(round(test_fraction * idx.size))), idx.size - 1)
        test.extend(idx[:k])
        train.extend(idx[k:])
    return np.sort(np.asarray(train)), np.sort(np.asarray(test))


def build_classifier(name: str, num_classes: int, input_size: int):
    """A torchvision classifier by name, random weights (no download)."""
    import torchvision

    kwargs: dict[str, Any] = {"weights": None, "num_classes": num_classes}
    if name.startswith("vit_"):
        patch = int(name.rsplit("_", 1)[1])
        if input_size % patch:
            raise EvaluationError(f"{name} needs an input size that is a multiple of {patch}, got {input_size}")
        kwargs["image_size"] = input_size
    try:
        return torchvision.models.get_model(name, **kwargs)
    except ValueError as exc:
        raise EvaluationError(f"unknown classifier {name!r}: {exc}; e.g. {', '.join(CLASSIFIERS)}") from None


def train_and_test(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    model_name: str,
    num_classes: int,
    input_size: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
) -> float:
    """Train a fresh classifier (seeded) and return its accuracy on the test set."""
    pred = train_and_predict(
        x_train,
        y_train,
        x_test,
        model_name=model_name,
        num_classes=num_classes,
        input_size=input_size,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
    )
    return int((pred == y_test).sum()) / max(1, len(x_test))


def train_and_predict(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    *,
    model_name: str,
    num_classes: int,
    input_size: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
) -> np.ndarray:
    """Train a fresh classifier (seeded) and return its predicted class for every test image."""
    import torch

    torch.manual_seed(seed)
    model = build_classifier(model_name, num_classes, input_size).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = max(1, epochs * math.ceil(len(x_train) / batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train).long()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            xb = xt[idx].float().div_(255.0)
            flips = torch.rand(2, generator=gen)
            if flips[0] < 0.5:
                xb = xb.flip(-1)
            if flips[1] < 0.5:
                xb = xb.flip(-2)
            xb = (xb - 0.5) / 0.25
            loss = torch.nn.functional.cross_entropy(model(xb.to(device)), yt[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    preds = []
    with torch.no_grad():
        for start in range(0, len(x_test), batch_size):
            xb = (torch.from_numpy(x_test[start : start + batch_size]).float() / 255.0 - 0.5) / 0.25
            preds.append(model(xb.to(device)).argmax(1).cpu().numpy())
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def t_interval(values: list[float], bounds: tuple[float, float] = (0.0, 1.0)) -> dict[str, Any]:
    """Mean, std and the 95 % t-interval of the mean, clipped to ``bounds`` (accuracies live in [0, 1])."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    out = {
        "n": int(v.size),
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else None,
        "ci_low": None,
        "ci_high": None,
        "values": [float(x) for x in v],
    }
    if v.size > 1:
        half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
        out["ci_low"], out["ci_high"] = max(bounds[0], out["mean"] - half), min(bounds[1], out["mean"] + half)
    return out


def run_downstream(
    root: str | os.PathLike,
    classes: tuple[str, ...],
    models: tuple[str, ...] = DEFAULT_MODELS,
    runs: int = 3,
    epochs: int = 30,
    input_size: int = 224,
    batch_size: int = 32,
    lr: float = 1e-3,
    test_fraction: float = 0.25,
    synthetic_factor: int | None = None,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Both arms for each model over ``runs`` seeds; returns the JSON-able result."""
    from sarviz.generators.runtime import choose_device

    if len(classes) < 2:
        raise EvaluationError("give at least two classes")
    device = choose_device(device)
    patches = load_patches(root, classes, input_size, synthetic_factor)
    per_item_k = sorted({s.shape[0] for s in patches.synthetic})
    if per_item_k == [0]:
        raise EvaluationError("the batch has no generated images for these items")
    results: dict[str, Any] = {
        "format": "sarviz-downstream/1",
        "classes": list(classes),
        "models": {},
        "items": len(patches.ids),
        "device": device,
        "recipe": {
            "runs": runs,
            "epochs": epochs,
            "input_size": input_size,
            "batch_size": batch_size,
            "lr": lr,
            "optimizer": "AdamW (wd 0.05), cosine",
            "augmentation": "random h/v flips",
            "weights": "random init (no pretraining)",
            "test_fraction": test_fraction,
            "synthetic_per_real": per_item_k,
            "split": "stratified by class, a new split a run; paired arms",
        },
    }
    for name in models:
        acc: dict[str, list[float]] = {arm: [] for arm in ARMS}
        for run in range(runs):
            train, test = stratified_split(patches.labels, test_fraction, seed=run)
            synth = [patches.synthetic[i] for i in train]
            x_syn = np.concatenate(synth) if synth else np.zeros((0,) + patches.real.shape[1:], np.uint8)
            y_syn = np.concatenate([np.full(s.shape[0], patches.labels[i]) for i, s in zip(train, synth)])
            arms = {
                "real": (patches.real[train], patches.labels[train]),
                "real+synthetic": (
                    np.concatenate([patches.real[train], x_syn]),
                    np.concatenate([patches.labels[train], y_syn]),
                ),
            }
            for arm, (x, y) in arms.items():
                a = train_and_test(
                    x,
                    y,
                    patches.real[test],
                    patches.labels[test],
                    model_name=name,
                    num_classes=len(classes),
                    input_size=input_size,
                    epochs=epochs,
                    batch_size=batch_size,
                    lr=lr,
                    seed=run,
                    device=device,
                )
                acc[arm].append(a)
                if progress:
                    progress(f"{name} run {run + 1}/{runs} {arm}: accuracy {a:.3f} ({len(x)} train, {len(test)} test)")
        results["models"][name] = {arm: t_interval(v) for arm, v in acc.items()}
        results["models"][name]["gain"] = t_interval(
            [s - r for s, r in zip(acc["real+synthetic"], acc["real"])], bounds=(-1.0, 1.0)
        )
    return results


def write_downstream(result: dict[str, Any], out: str | os.PathLike) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def pct(s: dict[str, Any]) -> str:
        ci = f" [{100 * s['ci_low']:.1f}, {100 * s['ci_high']:.1f}]" if s.get("ci_low") is not None else ""
        return f"{100 * s['mean']:.1f}{ci}"

    lines = [
        "# Downstream scene classification (seed 000, Table III layout)",
        "",
        f"Classes: {', '.join(result['classes'])}; {result['items']} items; device {result['device']}. "
        f"Recipe: {json.dumps(result['recipe'])}.",
        "",
        "Accuracy (%) on held-out real patches, mean over runs [95 % t-interval]; gain = paired difference.",
        "",
        "| classifier | training data | accuracy | runs |",
        "|---|---|---|---|",
    ]
    csv_lines = ["model,arm,run,accuracy"]
    for name, res in result["models"].items():
        lines.append(f"| {name} | real data | {pct(res['real'])} | {res['real']['n']} |")
        lines.append(f"| {name} | real + synthetic | {pct(res['real+synthetic'])} | {res['real+synthetic']['n']} |")
        lines.append(f"| {name} | gain (points) | {pct(res['gain'])} | {res['gain']['n']} |")
        for arm in ARMS:
            csv_lines += [f"{name},{arm},{i},{v}" for i, v in enumerate(res[arm]["values"])]
    from sarviz.formats import evaluation_report as er

    return er.EvaluationReport(
        out,
        "downstream",
        {
            er.DOWNSTREAM_JSON: json.dumps(result, indent=1),
            er.DOWNSTREAM_MD: "\n".join(lines) + "\n",
            er.DOWNSTREAM_CSV: "\n".join(csv_lines) + "\n",
        },
    ).save()
