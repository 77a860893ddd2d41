"""Skill of the PROXY embedding: emulator output from the proxy vs the scene's own real S1.

This measures the proxy (real AlphaEarth vectors of other places chosen from the scene's
optical image), not AlphaEarth: a real embedding of the place would be a different input.

For each of the 9 bundled samples (../shared/samples, imported as ``sarviz import`` does):

1. the proxy is built from the scene *with its Sentinel-1 removed* (the proxy never sees it);
2. the CPU emulator generates VV/VH from it (seed 0; no angle layer in any sample, so the
   emulator's default 37.5° is used — the samples' true angles are unknown);
3. generated and real images are averaged in 8×8-pixel blocks in linear power (pixels of
   Sen1Floods11 flood/permanent water and no-data are masked first; a block needs ≥ 50 %
   valid pixels), and compared in dB: Pearson r, R² (1 − SSres/SStot, the real image as
   truth) and bias (mean generated − real dB);
4. 95 % intervals from a spatial block bootstrap: tiles of 4×4 blocks (32×32 px) resampled
   with replacement within each scene (1000 draws; pooled: every scene resampled at once).

Rows per held-out dataset (Sen1Floods11, BigEarthNet, SSL4EO-S12) are leave-one-dataset-out
scores for any rule or model tuned on the other two; the recipe-v3 proxy has no parameter
fitted to any sample, so every row is held out.

Section 0 checks the optical land cover against the labels the samples ship: the
Sen1Floods11 hand-labelled water mask and BigEarthNet's CORINE classes.

Level offsets: ``--fit-levels`` fits the proxy's (VV, VH) level offsets leave-one-dataset-out
(for each dataset, the mean gap between real block levels and the chosen points' own S1 on
the *other two* datasets) and writes ``sarviz/proxy_levels.json``; the proxy of a sample of
dataset D uses the offsets fitted without D, so each dataset row below stays held out.

Run (small, ~1–4 min):  python benchmarks/bench_proxy_skill.py [--samples ../shared/samples] [--json out.json]
Before/after: run it once with PYTHONPATH at a checkout of main ("before") and once here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path and not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(REPO))

import rasterio  # noqa: E402
from rasterio.warp import Resampling, reproject  # noqa: E402

from sarviz.embedding_proxy import add_proxy_embedding  # noqa: E402
from sarviz.generators.base import GenerationRequest  # noqa: E402
from sarviz.importers import find_candidates  # noqa: E402
from sarviz.registry import REPO_MODELS_DIR, ModelRegistry  # noqa: E402

BLOCK = 8
TILE = 4  # bootstrap tile = 4×4 blocks
DRAWS = 1000
DATASETS = {"sen1floods11": "Sen1Floods11", "bigearthnet": "BigEarthNet", "ssl4eo": "SSL4EO-S12"}


# -- reading what the samples ship beside the scene -------------------------------------------------
def _resample_to(path: Path, scene, band: int = 1) -> np.ndarray:
    with rasterio.open(path) as src:
        arr = src.read(band, out_dtype="float32")
        out = np.full(scene.shape, np.nan, np.float32)
        reproject(
            arr,
            out,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=scene.transform,
            dst_crs=scene.crs,
            resampling=Resampling.bilinear,
            src_nodata=src.nodata,
            dst_nodata=np.nan,
        )
    return out


def swir_of(scene, samples: Path) -> np.ndarray | None:
    """(2, H, W) B11, B12 reflectance on the scene grid from the sample files (None when absent)."""
    prov = scene.provenance
    paths: list[tuple[Path, int]] = []
    if prov.get("chip"):
        f = next(samples.rglob(f"{prov['chip']}_S2Hand.tif"), None)
        if f is not None:
            with rasterio.open(f) as src:
                names = list(src.descriptions)
            paths = [(f, names.index("B11") + 1), (f, names.index("B12") + 1)]
    elif prov.get("s2_patch"):
        d = next(samples.rglob(f"{prov['s2_patch']}_B11.tif"), None)
        if d is not None:
            paths = [(d, 1), (d.with_name(f"{prov['s2_patch']}_B12.tif"), 1)]
    elif prov.get("s2_product") and prov.get("location"):
        d = next((p for p in samples.rglob(f"s2*/{prov['location']}/{prov['s2_product']}") if p.is_dir()), None)
        if d is not None:
            paths = [(d / "B11.tif", 1), (d / "B12.tif", 1)]
    if not paths:
        return None
    bands = [_resample_to(p, scene, b) for p, b in paths]
    out = np.stack(bands) / 10000.0
    out[out <= 0] = np.nan
    return out


def water_label_of(scene, samples: Path) -> np.ndarray | None:
    """Sen1Floods11 hand label on the scene grid: 1 water, 0 not, −1 no data (None for other datasets)."""
    chip = scene.provenance.get("chip")
    f = next(samples.rglob(f"{chip}_LabelHand.tif"), None) if chip else None
    if f is None:
        return None
    with rasterio.open(f) as src:
        lab = src.read(1)
    return lab if lab.shape == scene.shape else None


# -- land cover vs shipped labels ------------------------------------------------------------------
def landcover_section(scenes, samples: Path) -> dict:
    from sarviz.datasets.landcover import DW_CLASS_NAMES, classes_from_labels, classify_optical

    try:
        from sarviz.optical_landcover import classify
    except ImportError:  # an older main without it
        classify = None
    out: dict = {"water": [], "corine": []}
    for s in scenes:
        toa = str(s.provenance.get("optical_level") or "").upper().startswith("L1C")
        variants = {"classify_optical (as the dataset tools call it; no haze removal)": classify_optical(s.optical)}
        if classify is not None:
            swir = swir_of(s, samples)
            variants["rules v3 (4 bands)"] = classify(s.optical, top_of_atmosphere=toa).dynamic_world_labels()
            if swir is not None:
                variants["rules v3 + SWIR"] = classify(s.optical, swir, top_of_atmosphere=toa).dynamic_world_labels()
        lab = water_label_of(s, samples)
        if lab is not None:
            for name, cls in variants.items():
                ok = (lab >= 0) & (cls >= 0)
                truth, pred = lab[ok] == 1, cls[ok] == DW_CLASS_NAMES.index("water")
                tp, fp, fn = (truth & pred).sum(), (~truth & pred).sum(), (truth & ~pred).sum()
                out["water"].append(
                    {
                        "scene": s.scene_id,
                        "rules": name,
                        "precision": tp / max(tp + fp, 1),
                        "recall": tp / max(tp + fn, 1),
                        "iou": tp / max(tp + fp + fn, 1),
                        "accuracy": float((truth == pred).mean()),
                    }
                )
        allowed = classes_from_labels(s.provenance.get("labels"))
        if allowed:
            for name, cls in variants.items():
                v = cls[cls >= 0]
                shares = np.bincount(v, minlength=len(DW_CLASS_NAMES)) / max(v.size, 1)
                out["corine"].append(
                    {
                        "scene": s.scene_id,
                        "rules": name,
                        "labels": sorted(DW_CLASS_NAMES[i] for i in allowed),
                        "in_label_set": float(shares[sorted(allowed)].sum()),
                        "label_classes_found": float(np.mean([shares[i] >= 0.05 for i in allowed])),
                        "predicted": {DW_CLASS_NAMES[i]: round(float(x), 3) for i, x in enumerate(shares) if x >= 0.01},
                    }
                )
    return out


# -- proxy skill ------------------------------------------------------------------------------------
def block_means(power: np.ndarray, mask: np.ndarray) -> np.ndarray:
    h, w = (n - n % BLOCK for n in power.shape)
    p = np.where(mask, power, 0.0)[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK)
    n = mask[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= BLOCK * BLOCK / 2, p.sum(axis=(1, 3)) / n, np.nan)


def stats(gen_db: np.ndarray, real_db: np.ndarray) -> dict:
    r = float(np.corrcoef(gen_db, real_db)[0, 1]) if gen_db.size > 2 and gen_db.std() > 0 else float("nan")
    ss_tot = float(((real_db - real_db.mean()) ** 2).sum())
    r2 = 1.0 - float(((real_db - gen_db) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return {"r": r, "r2": r2, "bias_db": float((gen_db - real_db).mean()), "blocks": int(gen_db.size)}


def bootstrap(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], rng) -> dict:
    """95 % intervals of r, R², bias by resampling tiles of blocks within each scene."""
    draws = []
    for _ in range(DRAWS):
        g, t = [], []
        for gen, real, tile in parts:
            ids = np.unique(tile)
            pick = rng.choice(ids, size=ids.size, replace=True)
            idx = np.concatenate([np.flatnonzero(tile == i) for i in pick])
            g.append(gen[idx])
            t.append(real[idx])
        s = stats(np.concatenate(g), np.concatenate(t))
        draws.append((s["r"], s["r2"], s["bias_db"]))
    lo, hi = np.nanpercentile(np.array(draws), [2.5, 97.5], axis=0)
    return {"r_ci": [lo[0], hi[0]], "r2_ci": [lo[1], hi[1]], "bias_ci": [lo[2], hi[2]]}


def skill_section(scenes, samples: Path, points: Path) -> dict:
    gen = ModelRegistry([REPO_MODELS_DIR]).generator("emulator")
    rng = np.random.default_rng(0)
    per_scene, parts = [], {"VV": {}, "VH": {}}
    for s in scenes:
        blind = replace(s, vv_db=None, vh_db=None)  # the proxy is built without the scene's Sentinel-1
        proxy = add_proxy_embedding(blind, points)
        res = gen.generate(proxy, GenerationRequest(seed=0))
        mask = np.ones(s.shape, bool)
        lab = water_label_of(s, samples)
        if lab is not None:
            mask &= lab == 0  # flood and permanent water (1) and no data (−1) out
        rec = {
            "scene": s.scene_id,
            "dataset": s.scene_id.split("_")[0],
            "proxy": proxy.provenance.get("embedding_proxy", {}),
            "angle": res.provenance.get("angle_source"),
        }
        for pol, g_db, r_db in (("VV", res.vv_db, s.vv_db), ("VH", res.vh_db, s.vh_db)):
            m = mask & np.isfinite(g_db) & np.isfinite(r_db)
            gb = 10 * np.log10(block_means(10 ** (g_db / 10), m))
            rb = 10 * np.log10(block_means(10 ** (r_db / 10), m))
            ok = np.isfinite(gb) & np.isfinite(rb)
            rows, cols = np.indices(ok.shape)
            tile = (rows // TILE) * 10000 + cols // TILE
            part = (gb[ok], rb[ok], tile[ok])
            parts[pol][s.scene_id] = part
            rec[pol] = {**stats(part[0], part[1]), **bootstrap([part], rng)}
        per_scene.append(rec)
    groups = {"pooled (9 samples)": list(parts["VV"])}
    for key, name in DATASETS.items():
        groups[f"held out: {name}"] = [k for k in parts["VV"] if k.startswith(key)]
    pooled = {}
    for gname, ids in groups.items():
        pooled[gname] = {}
        for pol in ("VV", "VH"):
            ps = [parts[pol][i] for i in ids]
            pooled[gname][pol] = {
                **stats(np.concatenate([p[0] for p in ps]), np.concatenate([p[1] for p in ps])),
                **bootstrap(ps, rng),
            }
    return {"per_scene": per_scene, "pooled": pooled}


# -- level offsets (leave one dataset out) ----------------------------------------------------------
MEDIAN_TO_MEAN_DB = 0.33  # the points' S1 are medians of dB; + 0.33 dB is their mean σ⁰ at ENL 4.4


def fit_levels(scenes, samples: Path, points: Path) -> dict:
    """Per dataset, the mean gap (dB) between the real single-date block level and the own
    Sentinel-1 of the points a proxy (without offsets) chooses; offsets for each held-out dataset
    are the mean gap of the other two datasets (equal weight per dataset)."""
    from sarviz.embedding_proxy import build_proxy_embedding

    gaps: dict[str, list] = {}
    for s in scenes:
        toa = str(s.provenance.get("optical_level") or "").upper().startswith("L1C")
        diag: dict = {}
        build_proxy_embedding(s.optical, points, top_of_atmosphere=toa, latitude=s.center_latlon[0], diagnostics=diag)
        mask = np.ones(s.shape, bool)
        lab = water_label_of(s, samples)
        if lab is not None:
            mask &= lab == 0
        row = []
        for k, real in enumerate((s.vv_db, s.vh_db)):
            pts = diag["point_s1_db"][k] + MEDIAN_TO_MEAN_DB
            m = mask & np.isfinite(real) & np.isfinite(pts)
            rb = 10 * np.log10(block_means(10 ** (real / 10), m))
            pb = 10 * np.log10(block_means(10 ** (pts / 10), m))
            ok = np.isfinite(rb) & np.isfinite(pb)
            row.append((rb[ok] - pb[ok]))
        gaps.setdefault(s.scene_id.split("_")[0], []).append(row)
    per_dataset = {
        d: [float(np.mean(np.concatenate([r[k] for r in rows]))) for k in (0, 1)] for d, rows in gaps.items()
    }
    offsets = {
        "all": {
            "VV": float(np.mean([v[0] for v in per_dataset.values()])),
            "VH": float(np.mean([v[1] for v in per_dataset.values()])),
            "fitted_on": sorted(per_dataset),
        }
    }
    for held in per_dataset:
        rest = [v for d, v in per_dataset.items() if d != held]
        offsets[f"without:{held}"] = {
            "VV": float(np.mean([v[0] for v in rest])),
            "VH": float(np.mean([v[1] for v in rest])),
            "fitted_on": sorted(d for d in per_dataset if d != held),
        }
    from sarviz.embedding_proxy import PROXY_VERSION

    return {
        "proxy_version": PROXY_VERSION,
        "about": "Level offsets (dB) of the proxy embedding's point choice (sarviz.embedding_proxy."
        "level_offsets): mean gap between real single-date Sentinel-1 8x8-block levels of the bundled "
        "samples (flood water masked) and the own 2024 median S1 (+0.33 dB median-to-mean) of the "
        "points the unshifted proxy chose; 'without:D' is fitted on the other datasets only and is "
        "used for scenes of D. Written by benchmarks/bench_proxy_skill.py --fit-levels.",
        "per_dataset_gap_db": {d: {"VV": round(v[0], 3), "VH": round(v[1], 3)} for d, v in per_dataset.items()},
        "offsets": {k: {**v, "VV": round(v["VV"], 3), "VH": round(v["VH"], 3)} for k, v in offsets.items()},
    }


# -- report -----------------------------------------------------------------------------------------
def _ci(v: dict, key: str, ci: str, fmt: str = "{:+.2f}") -> str:
    lo, hi = v[ci]
    return f"{fmt.format(v[key])} [{fmt.format(lo)}, {fmt.format(hi)}]"


def report(lc: dict, skill: dict) -> str:
    lines = [
        "## 0. Optical land cover vs the labels the samples ship\n",
        "Sen1Floods11 hand-labelled water (pixels with a label; flood and permanent water = 1):\n",
        "| scene | rules | precision | recall | IoU | accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for w in lc["water"]:
        lines.append(
            f"| {w['scene']} | {w['rules']} | {w['precision']:.3f} | {w['recall']:.3f} | {w['iou']:.3f} | "
            f"{w['accuracy']:.3f} |"
        )
    lines += [
        "",
        "BigEarthNet CORINE labels (patch-level; mapped to Dynamic World classes): share of pixels whose "
        "class is one the labels name, and share of the named classes found on ≥ 5 % of the pixels:\n",
        "| patch | rules | CORINE → DW | in label set | label classes found | predicted (≥ 1 %) |",
        "|---|---|---|---|---|---|",
    ]
    for c in lc["corine"]:
        lines.append(
            f"| {c['scene'][-12:]} | {c['rules']} | {', '.join(c['labels'])} | {c['in_label_set']:.2f} | "
            f"{c['label_classes_found']:.2f} | {json.dumps(c['predicted'])} |"
        )
    for rules in sorted({c["rules"] for c in lc["corine"]}):
        sub = [c for c in lc["corine"] if c["rules"] == rules]
        lines.append(
            f"| **mean** | {rules} | | {np.mean([c['in_label_set'] for c in sub]):.2f} | "
            f"{np.mean([c['label_classes_found'] for c in sub]):.2f} | |"
        )
    lines += [
        "",
        "## 1. Proxy skill: emulator from the PROXY vs the real Sentinel-1 (8×8-px block means, dB)\n",
        "| group | pol | blocks | r [95 %] | R² [95 %] | bias dB [95 %] |",
        "|---|---|---|---|---|---|",
    ]
    for g, v in skill["pooled"].items():
        for pol in ("VV", "VH"):
            x = v[pol]
            lines.append(
                f"| {g} | {pol} | {x['blocks']} | {_ci(x, 'r', 'r_ci')} | {_ci(x, 'r2', 'r2_ci')} | "
                f"{_ci(x, 'bias_db', 'bias_ci')} |"
            )
    lines += [
        "",
        "| scene | VV r [95 %] | VV bias dB | VH r [95 %] | VH bias dB | proxy region |",
        "|---|---|---|---|---|---|",
    ]
    for rec in skill["per_scene"]:
        lines.append(
            f"| {rec['scene'][:44]} | {_ci(rec['VV'], 'r', 'r_ci')} | {rec['VV']['bias_db']:+.2f} | "
            f"{_ci(rec['VH'], 'r', 'r_ci')} | {rec['VH']['bias_db']:+.2f} | {rec['proxy'].get('region')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--samples", type=Path, default=Path(os.environ.get("SARVIZ_SHARED", REPO.parent / "shared")) / "samples"
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--fit-levels",
        action="store_true",
        help="fit the proxy's level offsets leave-one-dataset-out and write sarviz/proxy_levels.json",
    )
    args = ap.parse_args(argv)
    samples = args.samples.resolve()
    scenes = [c.build() for c in find_candidates(samples)]
    if args.fit_levels:
        from sarviz.atomic import atomic_path

        levels = fit_levels(scenes, samples, samples / "alphaearth_s1_points")
        with atomic_path(REPO / "sarviz" / "proxy_levels.json") as tmp:
            tmp.write_text(json.dumps(levels, indent=1) + "\n")
        print(json.dumps(levels, indent=1))
        return 0
    lc = landcover_section(scenes, samples)
    skill = skill_section(scenes, samples, samples / "alphaearth_s1_points")
    print(report(lc, skill))
    if args.json:
        args.json.write_text(json.dumps({"landcover": lc, "skill": skill}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
