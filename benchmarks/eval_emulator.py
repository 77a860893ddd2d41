"""Evaluate the CPU SAR emulator (issue #4 checks) and print the results as Markdown tables.

1. Leave-one-region-out R²/MAE per region and per Dynamic World class (linear ridge, poly2
   ridge, small MLP) on ../shared/samples/alphaearth_s1_points; targets R² ≥ 0.6 VV and
   ≥ 0.75 VH on every held-out region for the shipped method.
2. Speckle on generated homogeneous areas: measured ENL vs the configured target (±10 %),
   gamma goodness of fit (Kolmogorov–Smirnov), neighbour and VV/VH correlations.
3. The real-data speckle statistics the model card's correlation defaults come from
   (../shared/samples/bigearthnet IW GRDH patches).
4. Speed: median wall time of a 512×512 VV+VH emulation (the whole generate() path).

Run: ``python benchmarks/eval_emulator.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import glob
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sarviz.emulator import validation  # noqa: E402
from sarviz.emulator.radiometric import load_points  # noqa: E402
from sarviz.emulator.speckle import gamma_ks, lag1_corr, measure_enl  # noqa: E402
from sarviz.generators.base import GenerationRequest  # noqa: E402
from sarviz.registry import REPO_MODELS_DIR, ModelRegistry  # noqa: E402
from sarviz.scene import Scene, patch_grid  # noqa: E402

SHARED = REPO.parent / "shared"
POINTS = SHARED / "samples" / "alphaearth_s1_points"
BIGEARTHNET = SHARED / "samples" / "bigearthnet"
VV_R2_MIN, VH_R2_MIN = 0.6, 0.75


def loro_section(table) -> None:
    print("## 1. Leave-one-region-out (held-out region never seen in fitting; ridge λ chosen by nested LORO)\n")
    comparison = validation.compare_methods(table)
    shipped = ModelRegistry([REPO_MODELS_DIR]).generator("emulator").model.feature_map
    print(validation.format_report(comparison, shipped=shipped))
    print("\nTargets on every held-out region (shipped method):\n")
    print("| held-out region | R² VV ≥ 0.6 | R² VH ≥ 0.75 |\n|---|---|---|")
    for r in comparison[shipped]:
        print(
            f"| {r.region} | {r.r2[0]:.3f} {'PASS' if r.r2[0] >= VV_R2_MIN else 'FAIL'} | "
            f"{r.r2[1]:.3f} {'PASS' if r.r2[1] >= VH_R2_MIN else 'FAIL'} |"
        )
    print(
        "\nBias-free check (R² after removing each held-out region's mean bias; shows how much of the "
        "error is a regional offset):\n"
    )
    print("| method | region | R² VV (debiased) | R² VH (debiased) | corr² VV | corr² VH |\n|---|---|---|---|---|---|")
    for method in comparison:
        for r in comparison[method]:
            debiased = validation.r2_score(r.truth, r.pred - r.bias)
            corr = [np.corrcoef(r.truth[:, k], r.pred[:, k])[0, 1] ** 2 for k in (0, 1)]
            print(f"| {method} | {r.region} | {debiased[0]:.3f} | {debiased[1]:.3f} | {corr[0]:.3f} | {corr[1]:.3f} |")
    print()


def homogeneous_scene(table, size: int, label: int | None) -> Scene:
    """A size×size scene whose every pixel has the same embedding (class mean, renormalised)."""
    crs, transform = patch_grid(41.9, -95.4, size_px=size)
    if table is not None and label is not None:
        vec = table.embedding[table.dw_label == label].mean(0)
    else:
        vec = np.random.default_rng(0).standard_normal(64)
    vec = (vec / np.linalg.norm(vec)).astype(np.float32)
    emb = np.broadcast_to(vec[:, None, None], (64, size, size)).copy()
    return Scene(crs=crs, transform=transform, width=size, height=size, embedding=emb, scene_id=f"homog-{label}")


def speckle_section(gen, table) -> None:
    sp = gen.speckle
    print(
        f"## 2. Speckle on generated homogeneous 512×512 areas (target ENL {sp.enl:g}, lag-1 x {sp.lag1_corr_x:g}, "
        f"y {sp.lag1_corr_y:g}, VV/VH {sp.pol_corr:g})\n"
    )
    print(
        "| area | seed | pol | ENL | ENL error | KS D vs gamma (every 4th px) | KS p | lag-1 x | lag-1 y | VV/VH corr | "
        "median dB − predicted composite dB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    enl_errors, ks = [], []
    labels = [(1, "trees"), (0, "water"), (4, "crops")] if table is not None else [(None, "random")]
    for k, (label, name) in enumerate(labels):
        scene = homogeneous_scene(table, 512, label)
        mean_vv, mean_vh, _ = gen.mean_sigma0_db(scene, GenerationRequest())
        for seed in (10 * k, 10 * k + 1, 10 * k + 2):
            res = gen.generate(scene, GenerationRequest(seed=seed))
            lin = [10 ** (res.vv_db / 10), 10 ** (res.vh_db / 10)]
            pol_corr = np.corrcoef(lin[0].ravel(), lin[1].ravel())[0, 1]
            for pol, img, ref in (("VV", lin[0], mean_vv), ("VH", lin[1], mean_vh)):
                enl = measure_enl(img)
                d, p = gamma_ks(img[::4, ::4] / img.mean(), sp.enl)
                med_off = float(np.median(10 * np.log10(img)) - np.median(ref))
                enl_errors.append(abs(enl / sp.enl - 1))
                ks.append(d)
                print(
                    f"| {name} | {seed} | {pol} | {enl:.3f} | {100 * (enl / sp.enl - 1):+.1f}% | {d:.4f} | {p:.2f} | "
                    f"{lag1_corr(img, 1):.3f} | {lag1_corr(img, 0):.3f} | {pol_corr:.3f} | {med_off:+.3f} |"
                )
    print(
        f"\nMax |ENL error| {100 * max(enl_errors):.1f}% (target ≤ 10%: {'PASS' if max(enl_errors) <= 0.10 else 'FAIL'});"
        f" median KS D {np.median(ks):.4f}\n"
    )


def real_speckle_section() -> None:
    files = sorted(glob.glob(str(BIGEARTHNET / "**" / "*_VV.tif"), recursive=True))
    if not files:
        print(f"## 3. Real-data speckle statistics: skipped ({BIGEARTHNET} absent)\n")
        return
    import rasterio
    from scipy.ndimage import uniform_filter

    print("## 3. Real Sentinel-1 IW GRDH speckle (BigEarthNet patches; 9×9 windows, the most homogeneous quartile)\n")
    print("| patch | ENL (median window) | lag-1 x | lag-1 y | VV/VH corr |\n|---|---|---|---|---|")
    rows = []
    for vv_path in files:
        with rasterio.open(vv_path) as a, rasterio.open(vv_path.replace("_VV.tif", "_VH.tif")) as b:
            vv, vh = 10 ** (a.read(1).astype(float) / 10), 10 ** (b.read(1).astype(float) / 10)
        m1, m2 = uniform_filter(vv, 9), uniform_filter(vh, 9)
        enl1 = m1**2 / np.maximum(uniform_filter(vv**2, 9) - m1**2, 1e-12)
        enl2 = m2**2 / np.maximum(uniform_filter(vh**2, 9) - m2**2, 1e-12)
        sel = (enl1 > np.percentile(enl1, 75)) & (enl2 > np.percentile(enl2, 75))
        sel[:4], sel[-4:], sel[:, :4], sel[:, -4:] = False, False, False, False
        r1, r2 = vv / m1 - 1, vh / m2 - 1

        def lag(r: np.ndarray, ax: int) -> float:
            s = sel & np.roll(sel, 1, ax)
            return float(np.corrcoef(r[s], np.roll(r, 1, ax)[s])[0, 1])

        row = (float(np.median(enl1)), lag(r1, 1), lag(r1, 0), float(np.corrcoef(r1[sel], r2[sel])[0, 1]))
        rows.append(row)
        print(f"| {Path(vv_path).stem[:-3]} | {row[0]:.2f} | {row[1]:.3f} | {row[2]:.3f} | {row[3]:.3f} |")
    med = np.median(np.array(rows), 0)
    print(f"| **median** | {med[0]:.2f} | {med[1]:.3f} | {med[2]:.3f} | {med[3]:.3f} |\n")


def speed_section(gen, table, runs: int = 7) -> None:
    rng = np.random.default_rng(0)
    if table is not None:  # real embeddings, shuffled into an image
        emb = table.embedding[rng.integers(0, len(table), 512 * 512)].T.reshape(64, 512, 512).astype(np.float32)
    else:
        v = rng.standard_normal((64, 512, 512)).astype(np.float32)
        emb = v / np.linalg.norm(v, axis=0, keepdims=True)
    crs, transform = patch_grid(41.9, -95.4, size_px=512)
    scene = Scene(crs=crs, transform=transform, width=512, height=512, embedding=emb, scene_id="speed")
    timings = {"generate() total": [], "radiometric only": [], "speckle only": []}
    gen.generate(scene, GenerationRequest(seed=0))  # warm the quantile table and kernels
    for seed in range(runs):
        t0 = time.perf_counter()
        gen.generate(scene, GenerationRequest(seed=seed))
        t1 = time.perf_counter()
        gen.mean_sigma0_db(scene, GenerationRequest())
        t2 = time.perf_counter()
        gen.speckle.sample((512, 512), np.random.default_rng(seed))
        t3 = time.perf_counter()
        timings["generate() total"].append(t1 - t0)
        timings["radiometric only"].append(t2 - t1)
        timings["speckle only"].append(t3 - t2)
    print(f"## 4. Speed: 512×512 VV+VH, median of {runs} runs (target < 0.3 s)\n")
    print("| stage | median s | min s | max s |\n|---|---|---|---|")
    for name, ts in timings.items():
        print(f"| {name} | {np.median(ts):.4f} | {min(ts):.4f} | {max(ts):.4f} |")
    total = float(np.median(timings["generate() total"]))
    print(f"\n512×512 median {total:.3f} s: {'PASS' if total < 0.3 else 'FAIL'}\n")


def main() -> int:
    gen = ModelRegistry([REPO_MODELS_DIR]).generator("emulator")
    print(f"# CPU SAR emulator evaluation\n\nmodel: {gen.describe()}\nweights sha256: {gen.weights_sha256}\n")
    table = None
    if POINTS.is_dir():
        table = load_points(POINTS)
        loro_section(table)
    else:
        print(f"## 1. Leave-one-region-out: skipped ({POINTS} absent)\n")
    speckle_section(gen, table)
    real_speckle_section()
    speed_section(gen, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
