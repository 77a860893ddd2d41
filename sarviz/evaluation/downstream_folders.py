"""Seed 003's downstream test in folder mode: does migrated / generated data help a new sensor's classifier?

Folders (each an image-folder layout ``DIR/<class>/<image>``; images read as in ``sarviz
migrate``, GeoTIFF band or grey image, A/(μ+3σ) clipped to [0, 1]):

* ``target`` — the new sensor's real training images (the paper's Fucheng-1 train split);
* ``old`` — the old sensor's raw images (TerraSAR-X), ``migrated`` — those after stage 2,
  ``generated`` — stage-1 content migrated (optional each);
* ``test`` — a fixed held-out set of the new sensor's real images (never trained on).

Arms (seed 003 Table 3, those whose folders are given): target real; + old raw;
+ migrated; + migrated + generated. Per seed, every arm trains the same architecture from
the same initialisation (torchvision, **random weights**: no pretrained weights offline; the
paper's ResNet-50 presumably started from ImageNet — it does not say) and predicts the same
test set, so arms are paired: the gain of an arm over "target real" gets an exact McNemar
test per seed and a 95 % t-interval over seeds. Reported per arm: accuracy and **macro**
precision, recall and F1 (unweighted mean over classes; a class never predicted has
precision 0, as scikit-learn's ``zero_division=0``), mean over ≥ 3 seeds with t-intervals.

The paper's Tables 2–4 are printed beside ours as reference rows labelled **different data**
(TerraSAR-X → Fucheng-1 aircraft, one run, 91 test images). Offline there is no second
sensor: a stand-in (e.g. Sentinel-1 degraded and re-speckled) must be labelled synthetic by
the caller (``data_label``), and the label goes into every report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.errors import EvaluationError
from sarviz.formats.evaluation_report import DOWNSTREAM_FOLDERS_JSON, DOWNSTREAM_FOLDERS_MD, EvaluationReport
from sarviz.generators.runtime import choose_device
from sarviz.migration.images import IMAGE_SUFFIXES, read_sar_image

ARM_PARTS: dict[str, tuple[str, ...]] = {
    "target real": ("target",),
    "+ old raw": ("target", "old"),
    "+ migrated": ("target", "migrated"),
    "+ migrated + generated": ("target", "migrated", "generated"),
}
BASELINE = "target real"
PAPER_REFERENCE = {
    "source": "seed 003 (Wu et al., Trans. NUAA 42(4) 2025), TerraSAR-X → Fucheng-1, 7 aircraft classes, ResNet-50, "
    "one run, 91 test images — different data",
    "table_2": {
        "No generated data added": [57.142, 55.659, 57.143, 51.650],
        "StarGAN": [50.549, 37.165, 50.549, 41.328],
        "CUT": [61.538, 59.865, 61.538, 56.110],
        "Pix2pix": [65.934, 71.705, 65.934, 63.770],
        "CycleGAN": [69.231, 71.082, 69.231, 69.396],
        "Ours (paper)": [85.714, 86.199, 85.714, 85.549],
    },
    "table_3": {
        "target real": [57.142, 55.659, 57.143, 51.650],
        "+ old raw": [48.351, 48.275, 48.352, 41.276],
        "+ migrated": [73.626, 73.365, 73.626, 71.580],
        "+ migrated + generated": [85.714, 86.199, 85.714, 85.549],
    },
    "table_4": {
        "only L_sp": [83.284, 83.371, 84.167, 81.728],
        "only L_f": [82.893, 81.644, 83.543, 80.469],
        "both losses": [85.714, 86.199, 85.714, 85.549],
    },
    "columns": ["accuracy", "macro precision", "macro recall", "macro F1"],
}


#: seed 003's classifier for the folder-mode downstream test (ResNet-50)
DEFAULT_MODELS = ("resnet50",)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts C[i, j] = test images of class i predicted as j."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def macro_scores(cm: np.ndarray) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 of a confusion matrix (0 where a class is never predicted/present)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        "accuracy": float(tp.sum() / cm.sum()) if cm.sum() else float("nan"),
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
    }


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, Any]:
    """Exact McNemar test of two classifiers on the same test images (two-sided binomial on the discordant pairs)."""
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    p = 1.0 if n == 0 else float(binomtest(only_b, n, 0.5).pvalue)
    return {"only_baseline_correct": only_a, "only_arm_correct": only_b, "p_value": p}


def load_image_folder(
    folder: str | os.PathLike, classes: list[str] | None, input_size: int, what: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(uint8 images (N, 3, S, S), labels, classes) of ``folder/<class>/*``; classes sorted unless given."""
    import torch
    import torch.nn.functional as F

    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationError(f"{what} folder {folder} does not exist")
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    classes = list(classes) if classes is not None else found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise EvaluationError(f"{what} folder {folder.name} has classes {unknown} that the target folder lacks")
    images, labels = [], []
    for k, name in enumerate(classes):
        sub = folder / name
        if not sub.is_dir():
            continue
        for path in sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            amp = torch.from_numpy(read_sar_image(path, what).amplitude)[None, None]
            amp = F.interpolate(amp, size=(input_size, input_size), mode="bilinear", align_corners=False)[0, 0]
            images.append(np.repeat((amp.clamp(0, 1).numpy() * 255).round().astype(np.uint8)[None], 3, axis=0))
            labels.append(k)
    if not images:
        raise EvaluationError(f"{what} folder {folder.name} holds no images in class sub-folders")
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


def run_downstream_folders(
    folders: dict[str, str | os.PathLike],
    models: tuple[str, ...] = DEFAULT_MODELS,
    seeds: int = 3,
    epochs: int = 30,
    input_size: int = 224,
    batch_size: int = 32,
    lr: float = 1e-3,
    device: str | None = None,
    data_label: str = "",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every arm whose folders are given, for each model over ``seeds`` seeds; the JSON-able result."""
    from sarviz.batch.downstream import t_interval, train_and_predict

    if "target" not in folders or "test" not in folders:
        raise EvaluationError("folder mode needs the target sensor's real training folder and the fixed test folder")
    if seeds < 3:
        raise EvaluationError("give at least 3 seeds (intervals need them)")
    device = choose_device(device)
    x_t, y_t, classes = load_image_folder(folders["target"], None, input_size, "target")
    parts = {"target": (x_t, y_t)}
    for key in ("old", "migrated", "generated"):
        if folders.get(key):
            parts[key] = load_image_folder(folders[key], classes, input_size, key)[:2]
    x_test, y_test, _ = load_image_folder(folders["test"], classes, input_size, "test")
    arms = {arm: need for arm, need in ARM_PARTS.items() if all(p in parts for p in need)}
    result: dict[str, Any] = {
        "format": "sarviz-downstream-folders/1",
        "classes": classes,
        "data_label": data_label or "real data",
        "sizes": {k: len(v[1]) for k, v in parts.items()} | {"test": len(y_test)},
        "device": device,
        "recipe": {
            "seeds": seeds,
            "epochs": epochs,
            "input_size": input_size,
            "batch_size": batch_size,
            "lr": lr,
            "optimizer": "AdamW (wd 0.05), cosine",
            "augmentation": "random h/v flips",
            "weights": "random init (torchvision, no pretrained weights offline)",
            "images": "A/(mu+3sigma) clipped to [0, 1], grey in 3 channels, bilinear resize",
        },
        "models": {},
        "paper_reference": PAPER_REFERENCE,
    }
    for name in models:
        per_arm: dict[str, dict[str, list]] = {
            arm: {"accuracy": [], "precision": [], "recall": [], "f1": [], "confusion": [], "correct": []}
            for arm in arms
        }
        for seed in range(seeds):
            for arm, need in arms.items():
                x = np.concatenate([parts[p][0] for p in need])
                y = np.concatenate([parts[p][1] for p in need])
                pred = train_and_predict(
                    x,
                    y,
                    x_test,
                    model_name=name,
                    num_classes=len(classes),
                    input_size=input_size,
                    epochs=epochs,
                    batch_size=batch_size,
                    lr=lr,
                    seed=seed,
                    device=device,
                )
                cm = confusion_matrix(y_test, pred, len(classes))
                scores = macro_scores(cm)
                for k, v in scores.items():
                    per_arm[arm][k].append(v)
                per_arm[arm]["confusion"].append(cm.tolist())
                per_arm[arm]["correct"].append(pred == y_test)
                if progress:
                    progress(
                        f"{name} seed {seed + 1}/{seeds} {arm}: accuracy {scores['accuracy']:.3f}, "
                        f"macro F1 {scores['f1']:.3f} ({len(y)} train, {len(y_test)} test)"
                    )
        out: dict[str, Any] = {}
        for arm, rec in per_arm.items():
            out[arm] = {k: t_interval(rec[k]) for k in ("accuracy", "precision", "recall", "f1")}
            out[arm]["confusion_matrices"] = rec["confusion"]
            if arm != BASELINE and BASELINE in per_arm:
                base = per_arm[BASELINE]
                out[arm]["gain_accuracy"] = t_interval(
                    [a - b for a, b in zip(rec["accuracy"], base["accuracy"])], bounds=(-1.0, 1.0)
                )
                out[arm]["mcnemar_per_seed"] = [mcnemar_exact(b, a) for a, b in zip(rec["correct"], base["correct"])]
        result["models"][name] = out
    return result


def downstream_table(result: dict[str, Any]) -> str:
    """Markdown: our arms (mean [95 % t-interval]) and the paper's reference rows (different data)."""

    def cell(s: dict[str, Any]) -> str:
        ci = f" [{100 * s['ci_low']:.1f}, {100 * s['ci_high']:.1f}]" if s.get("ci_low") is not None else ""
        return f"{100 * s['mean']:.1f}{ci}"

    label = result["data_label"]
    lines = [
        f"# Downstream classification, folder mode (seed 003 layout) — data: {label}",
        "",
        f"Classes: {', '.join(result['classes'])}; sizes {json.dumps(result['sizes'])}; device {result['device']}; "
        f"recipe {json.dumps(result['recipe'])}.",
        "",
        "Ours: % on the fixed held-out test folder, mean over seeds [95 % t-interval]; gain vs target real with "
        "McNemar p per seed.",
        "",
        "| classifier | training data | accuracy | macro P | macro R | macro F1 | gain (points) | McNemar p per seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, arms in result["models"].items():
        for arm, r in arms.items():
            gain = cell(r["gain_accuracy"]) if "gain_accuracy" in r else "—"
            ps = ", ".join(f"{m['p_value']:.3g}" for m in r.get("mcnemar_per_seed", [])) or "—"
            lines.append(
                f"| {name} | {arm} | {cell(r['accuracy'])} | {cell(r['precision'])} | {cell(r['recall'])} | "
                f"{cell(r['f1'])} | {gain} | {ps} |"
            )
    ref = result["paper_reference"]
    lines += [
        "",
        f"Paper reference rows — **different data**: {ref['source']}.",
        "",
        "| table | row | accuracy | macro P | macro R | macro F1 |",
        "|---|---|---|---|---|---|",
    ]
    for table in ("table_2", "table_3", "table_4"):
        for row, values in ref[table].items():
            lines.append(
                f"| {table.replace('_', ' ')} (different data) | {row} | "
                + " | ".join(f"{v:.2f}" for v in values)
                + " |"
            )
    return "\n".join(lines) + "\n"


def write_downstream_folders(result: dict[str, Any], out: str | os.PathLike) -> dict[str, Path]:
    """The report folder (:class:`sarviz.formats.evaluation_report.EvaluationReport`, kind ``downstream-folders``)."""
    files: dict[str, bytes | str] = {
        DOWNSTREAM_FOLDERS_JSON: json.dumps(result, indent=1, default=str),
        DOWNSTREAM_FOLDERS_MD: downstream_table(result),
    }
    return EvaluationReport(Path(out), "downstream-folders", files).save()
