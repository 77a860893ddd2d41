"""`sarviz evaluate-text`: generate from a captioned test split and score it per label (seed 001).

For every label of the test split, the first ``per_label`` items (by id) are taken; the
model generates one image from each item's caption (seed = ``seed`` + item index, so the
run is reproducible); the generated set is compared with the real images of that label
(:mod:`sarviz.evaluation.text`); a SAR-CLIP model, when given, scores caption rank and
image–prompt cosine for the generated images and, as the baseline row, for the real ones.

REPORT_DIR gets ``report.json`` (everything), ``per_label.csv`` (the paper's per-category
table), ``glcm.csv`` (feature × distance × angle), ``figures/hist_<label>.png`` and
``figures/glcm_<label>.png``, and ``generated/<label>/<id>.tif`` (the images, with provenance).
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import sarviz
from sarviz.amplitude import FORMULA as AMPLITUDE_FORMULA
from sarviz.atomic import atomic_path
from sarviz.errors import EvaluationError
from sarviz.evaluation import clip as clip_mod
from sarviz.evaluation import figures
from sarviz.evaluation.captioned import CaptionedSet
from sarviz.evaluation.text import ALL, LabelSummary, evaluate_sets
from sarviz.formats import evaluation_report as er
from sarviz.formats.evaluation_report import GENERATED_DIR
from sarviz.generators.text import TextRequest
from sarviz.metrics import sar
from sarviz.metrics.protocols import SEED001_GLCM_PROTOCOL, SEED001_KL_PROTOCOL

Progress = Callable[[int, int, str], None]
CLIP_MISSING = "SAR-CLIP alignment not computed: {why}"


@dataclass
class TextEvaluation:
    summaries: list[LabelSummary]
    clip_rows: list[dict[str, Any]] = field(default_factory=list)
    clip_status: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "sarviz-text-evaluation/1",
            "settings": self.settings,
            "labels": [s.to_dict() for s in self.summaries],
            "sarclip": {"status": self.clip_status, "rows": self.clip_rows},
            "protocol": {
                "kl": f"{SEED001_KL_PROTOCOL}; normalisation {AMPLITUDE_FORMULA}, per image before "
                f"pooling; KL in nats, ε = {sar.KL_EPSILON} (sarviz.metrics.protocols)",
                "glcm": f"{SEED001_GLCM_PROTOCOL}; the whole image is normalised before the patches are "
                "cut; deviation: patches chosen by an edge-score test "
                "(sarviz.metrics.protocols.seed001_patches), not inside the largest SAM segment",
                "rank": f"caption rank among N = {clip_mod.RANK_BATCH} (eq. 5–6)",
            },
        }

    def table_text(self) -> str:
        lines = [
            f"{'label':<20} {'n':>4} {'KL':>8} {'sat real':>9} {'sat gen':>8}   CLIP rank mean/median/var (gen | real)"
        ]
        clip_by = {(r["label"], r["images"]): r for r in self.clip_rows}
        for s in self.summaries:
            g, r = clip_by.get((s.label, "generated")), clip_by.get((s.label, "real"))
            cl = "missing"
            if g:  # clip_scores scores the real images of every label it scores generated ones of
                real = f"{r['rank_mean']}/{r['rank_median']}/{r['rank_variance']}" if r else "missing"
                cl = f"{g['rank_mean']}/{g['rank_median']}/{g['rank_variance']} | {real}"
            lines.append(
                f"{s.label:<20} {s.n_generated:>4} {s.kl:>8.4f} {s.saturated_real:>9.2%} "
                f"{s.saturated_generated:>8.2%}   {cl}"
            )
        if self.clip_status:
            lines.append(self.clip_status)
        return "\n".join(lines)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "unlabelled"


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def clip_scores(
    model: "clip_mod.SarClip",
    dataset: CaptionedSet,
    items_by_label: dict[str, list],
    generated_by_label: dict[str, list],
    real_by_label: dict[str, list],
) -> list[dict[str, Any]]:
    """Rank and cosine rows: per label and pooled, for generated images and (baseline) real ones."""
    labels = list(items_by_label)
    texts = [it.text for k in labels for it in items_by_label[k]]
    groups = [k for k in labels for _ in items_by_label[k]]
    rows = []
    for which, source in (("generated", generated_by_label), ("real", real_by_label)):
        images = [clip_mod.sar_rgb(b, dataset.calibration) for k in labels for b in source[k]]
        for name, score in model.scores(images, texts, groups).items():
            rows.append({"label": ALL if name == "all" else name, "images": which, **score})
    return rows


def evaluate_text_model(
    generator: Any,
    dataset: CaptionedSet,
    out_dir: str | Path,
    per_label: int = 30,
    seed: int = 0,
    steps: int | None = None,
    guidance: float | None = None,
    sarclip: str | Path | None = None,
    device: str | None = None,
    dtype: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> TextEvaluation:
    out_dir = Path(out_dir)
    items_by_label = dataset.by_label(per_label)
    if not items_by_label:
        raise EvaluationError(f"{dataset.root}/{dataset.split}: no labelled item to evaluate")
    meta = generator.metadata()
    pol_model = meta.get("polarisation", "VV")
    total = sum(len(v) for v in items_by_label.values())
    done = 0
    real: dict[str, list] = {}
    gen: dict[str, list] = {}
    real_bands: dict[str, list] = {}
    gen_bands: dict[str, list] = {}
    files: list[Path] = []
    for label, items in items_by_label.items():
        for item in items:
            bands = dataset.read_db(item)
            real_bands.setdefault(label, []).append(bands)
            real.setdefault(label, []).append(bands["VV"])
            h, w = bands["VV"].shape
            index = done
            request = TextRequest(
                seed=seed + index,
                prompt=item.text,
                steps=steps,
                guidance=guidance,
                width=w - w % 8,
                height=h - h % 8,
                device=device,
                dtype=dtype,
            )
            message = f"{label}: image {len(gen.get(label, [])) + 1}/{len(items)}"
            result = generator.generate(
                request,
                cancel=cancel,
                progress=None if progress is None else (lambda i, n, m: progress(done, total, f"{message} ({m})")),
            )[0]
            result.provenance["evaluation"] = {"label": label, "caption_id": item.id, "test_split": str(dataset.root)}
            files.append(result.to_geotiff(out_dir / GENERATED_DIR / _safe(label) / f"{_safe(item.id)}.tif"))
            gen.setdefault(label, []).append(result.vv_db)
            gen_bands.setdefault(label, []).append(result.bands)
            done += 1
            if progress:
                progress(done, total, message)
    summaries = evaluate_sets(real, gen, pol="VV")
    if pol_model == "VV+VH" and dataset.polarisation == "VV+VH":
        vh_real = {k: [b["VH"] for b in v] for k, v in real_bands.items()}
        vh_gen = {k: [b["VH"] for b in v if "VH" in b] for k, v in gen_bands.items()}
        summaries += evaluate_sets(vh_real, vh_gen, pol="VH")
    evaluation = TextEvaluation(
        summaries,
        files=files,
        settings={
            "model_id": generator.model_id,
            "run": getattr(generator.paths, "run", None),
            "test": str(dataset.root),
            "split": dataset.split,
            "per_label": per_label,
            "seed": seed,
            "steps": steps,
            "guidance": guidance,
            "labels": {k: len(v) for k, v in items_by_label.items()},
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "sarviz": sarviz.__version__,
        },
    )
    try:
        model = clip_mod.load_sarclip(sarclip)
    except clip_mod.ClipMissing as exc:
        evaluation.clip_status = CLIP_MISSING.format(why=exc)
    else:
        evaluation.clip_rows = clip_scores(model, dataset, items_by_label, gen_bands, real_bands)
        evaluation.clip_status = f"SAR-CLIP model: {model.folder}"
    write_report(evaluation, out_dir)
    return evaluation


def write_report(evaluation: TextEvaluation, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    written = [_write(out_dir / er.TEXT_REPORT_JSON, json.dumps(evaluation.to_dict(), indent=2, default=str))]
    rows = [s.row() for s in evaluation.summaries]
    clip_by = {(r["label"], r["images"]): r for r in evaluation.clip_rows}
    for row in rows:
        for which in ("generated", "real"):
            c = clip_by.get((row["label"], which)) or {}
            for k in ("rank_mean", "rank_median", "rank_variance", "cosine_mean"):
                row[f"clip_{k}_{which}"] = c.get(k)
    written.append(_write(out_dir / er.PER_LABEL_CSV, _csv(rows)))
    glcm_rows = []
    for s in evaluation.summaries:
        for which, feats in (("real", s.glcm_real), ("generated", s.glcm_generated)):
            if feats is None:
                continue
            for name in sar.GLCM_FEATURES:
                for d, row in zip(sar.GLCM_DISTANCES, feats[name]):
                    for a, v in zip(sar.GLCM_ANGLES_DEG, row):
                        glcm_rows.append(
                            {
                                "label": s.label,
                                "pol": s.pol,
                                "images": which,
                                "feature": name,
                                "distance": d,
                                "angle_deg": a,
                                "value": round(float(v), 6),
                            }
                        )
    written.append(_write(out_dir / er.GLCM_CSV, _csv(glcm_rows)))
    for s in evaluation.summaries:
        stem = f"{_safe(s.label)}_{s.pol}"
        written.append(_write(out_dir / er.text_figure("hist", stem), figures.histogram_png(s)))
        if s.glcm_real is not None and s.glcm_generated is not None:
            written.append(_write(out_dir / er.text_figure("glcm", stem), figures.glcm_png(s)))
    evaluation.files += written
    return written


def _csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
