"""Sources/geometry: the audit's cases, measured before and after the fixes.

    python benchmarks/bench_geometry.py [--runs 5] [--out benchmarks/RESULTS_geometry.md]

1. **Composite vs single** — what the public source *returns* for a homogeneous field with
   Sentinel-1 speckle (gamma, L = 4.4), through the real path (local STAC API + COGs →
   ``PublicSource``): one acquisition (the default) vs the median of 6 (the old default). ENL,
   dB bias, and KL of a *perfect* generator (right σ⁰, single-acquisition speckle) against
   each. The Earth Engine whole-year median (~30) is simulated with numpy (no EE offline).
2. **Odd-size condition** — the 263² patch through the condition builder vs the transcribed
   reference (``inference_sar_gray.py``), old (``size=floor(h/2)``) and new
   (``scale_factor=0.5``).
3. **Mosaic layout** — a local store laid out like the published one (years only in
   ``/time``, GeoZarr attributes): what is read, how long it takes; and the position jitter
   of resampling an already nearest-neighbour mosaic a second time.
4. **Angle bias** — the footprint angle estimator before (29.1°–46.0° stretched over the
   footprint, along-track side "closer to north–south") and after (far edge 46.0°, measured
   width, heading from the orbit), on footprints from a propagated orbit at 0–80° latitude,
   and on the real SSL4EO footprints (edge angles, range direction vs the product's own
   angle grid).

Numbers are medians of ``--runs`` seeds/runs where random. The machine is shared and loaded
(2 cores, ~9 agents): times are indicative, ratios measured in one run hold.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
warnings.filterwarnings("ignore")

from sarviz.scene import patch_grid  # noqa: E402
from sarviz.sources.base import FetchRequest  # noqa: E402
from sarviz.sources.public import AlphaEarthMosaic, PublicSource  # noqa: E402
from sarviz.sources.s1_geometry import (  # noqa: E402
    _ground_range_at_incidence,
    _incidence_at_ground_range,
    estimate_incidence_angle,
)

from _sources_fixtures import (  # noqa: E402
    build_published_aef_zarr,
    make_s1_items,
    simulate_iw_swath,
    stac_api,
    write_items,
)

ENL = 4.4
LAT, LON = 47.0, 8.0


def enl(linear: np.ndarray) -> float:
    v = linear[np.isfinite(linear)]
    return float(v.mean() ** 2 / v.var())


# -- 1. composite vs single ----------------------------------------------------------------------
def composite_vs_single(runs: int) -> list[str]:
    from sarviz.metrics.sar import kl_divergence

    rows = {k: [] for k in ("single", "median6", "median30")}
    size = 256
    crs, transform = patch_grid(LAT, LON, size, 10.0)
    mean_power = 0.05  # γ⁰ = −13.0 dB
    dates = [f"2018-{m:02d}-01" for m in (2, 3, 4, 5, 6, 7)]
    for seed in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            items = make_s1_items(
                folder,
                LAT,
                LON,
                dates,
                size_px=size,
                seed=seed,
                looks=ENL,
                mean_power=mean_power,
                grid=(crs, transform),
            )  # on the patch grid: the warp is an identity
            files = write_items(folder, items)
            with stac_api(files) as url:
                source = PublicSource(aef_url=str(folder / "none.zarr"), stac_url=url, timeout=10)
                got = {}
                for mode in ("single", "composite"):
                    req = FetchRequest.make(LAT, LON, size, 2018, s1_mode=mode, target_date="2018-05-01")
                    result = source.fetch(req, ["s1"])
                    assert not result.failures, result.failures
                    got[mode] = (result.layers["vv_db"], result.layers["angle_deg"], result.reports["vv_db"].detail)
        angle = got["single"][1]
        cos_t = np.cos(np.radians(angle))
        rng = np.random.default_rng(1000 + seed)
        perfect = 10 * np.log10(rng.gamma(ENL, mean_power / ENL, (size, size)) * cos_t)  # right σ⁰, one look-set
        truth_db = 10 * np.log10(mean_power * cos_t)
        sim30 = np.median(rng.gamma(ENL, mean_power / ENL, (30, size, size)), axis=0) * cos_t  # EE-like year
        cases = {"single": got["single"][0], "median6": got["composite"][0], "median30": 10 * np.log10(sim30)}
        valid = np.isfinite(cases["single"]) & np.isfinite(cases["median6"])
        for name, db in cases.items():
            lin = 10 ** (db / 10)
            rows[name].append(
                {
                    "enl": enl(lin[valid]),
                    "bias_db": float(np.mean(10 * np.log10(lin[valid].mean() / (10 ** (truth_db[valid] / 10)).mean()))),
                    "median_db_offset": float(np.median(db[valid] - truth_db[valid])),
                    "kl": kl_divergence(np.where(valid, db, np.nan), np.where(valid, perfect, np.nan)).kl,
                }
            )
        rec = {m: {k: got[m][2].get(k) for k in ("s1_mode", "s1_date", "s1_composite")} for m in got}
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in rows.items()}
    spread = {name: {k: (min(r[k] for r in rs), max(r[k] for r in rs)) for k in rs[0]} for name, rs in rows.items()}
    out = [
        "## 1. Composite vs single: what the source returns",
        "",
        f"Homogeneous field, γ⁰ = −13.0 dB, gamma speckle L = {ENL}, {size}² px, 6 acquisitions of one track "
        f'through `PublicSource` (local STAC API + COGs); median of {runs} seeds. "Perfect generator" = the right '
        "σ⁰ with single-acquisition speckle. KL = `sarviz.metrics.sar.kl_divergence` (per pair, our protocol). "
        "The 30-acquisition median (Earth Engine's whole-year median of one track) is a numpy simulation.",
        "",
        "| real image | ENL (true 4.4) | mean-power bias dB | median dB − σ⁰ dB | KL(real ‖ perfect generator) "
        "| KL range over seeds |",
        "|---|---|---|---|---|---|",
    ]
    labels = {
        "single": "single acquisition (**new default**)",
        "median6": "median of 6 (old PC default, now `--s1-mode composite`)",
        "median30": "median of 30 (old EE default, simulated)",
    }
    for name in ("single", "median6", "median30"):
        m = med[name]
        out.append(
            f"| {labels[name]} | {m['enl']:.2f} | {m['bias_db']:+.3f} | {m['median_db_offset']:+.3f} | "
            f"{m['kl']:.4f} | {spread[name]['kl'][0]:.4f}–{spread[name]['kl'][1]:.4f} |"
        )
    out += [
        "",
        f"Scene provenance recorded: single → `{json.dumps(rec['single'])}`; composite → "
        f"`{json.dumps(rec['composite'])}`.",
        "",
    ]
    return out


# -- 2. odd-size condition --------------------------------------------------------------------------
def odd_size_condition() -> list[str]:
    import torch
    import torch.nn.functional as F
    from affine import Affine

    from sarviz.generators.condition import ConditionSpec, build_condition
    from sarviz.scene import Scene

    out = [
        "## 2. Odd-size condition vs the reference",
        "",
        "Condition of a patch through `build_condition` vs `inference_sar_gray.py`'s "
        "`load_and_preprocess_condition` (transcribed: ×0.5 with `F.interpolate(scale_factor=0.5)`, then bicubic "
        "to 512²). Embedding: a smooth field plus pixel-scale variation (as real 10 m embeddings have), angle "
        "ramp 30.5–45.5°. Max / mean |difference| in z-units over the 65 × 512² condition.",
        "",
        "| patch | old builder (`size=floor(h/2)`) vs reference | new builder (`scale_factor=0.5`) vs reference |",
        "|---|---|---|",
    ]
    for n in (263, 511, 512):
        rng = np.random.default_rng(n)
        coarse = rng.normal(size=(64, 8, 8))
        smooth = np.kron(coarse, np.ones((n // 8 + 1, n // 8 + 1)))[:, :n, :n]
        emb = (smooth + 0.5 * rng.normal(size=(64, n, n))).astype(np.float32)
        angle = np.tile(np.linspace(30.5, 45.5, n, dtype=np.float32), (n, 1))
        scene = Scene(
            crs="EPSG:32630",
            transform=Affine(10.0, 0, 5e5, 0, -10.0, 4.2e6),
            width=n,
            height=n,
            embedding=emb,
            angle_deg=angle,
            scene_id=f"odd-{n}",
            provenance={},
        )
        cond = np.concatenate([angle[None], emb]).astype(np.float32)
        cond[0] = np.clip((cond[0] - 35.0) / 15.0, -1, 1)
        cond[1:] = np.clip((cond[1:] - cond[1:].mean()) / cond[1:].std(), -3, 3)
        t = torch.from_numpy(cond)[None]
        reference = F.interpolate(
            F.interpolate(t, scale_factor=0.5, mode="bilinear", align_corners=False),
            size=(512, 512),
            mode="bicubic",
            align_corners=False,
        )[0].numpy()
        old = F.interpolate(
            F.interpolate(t, size=(n // 2, n // 2), mode="bilinear", align_corners=False),
            size=(512, 512),
            mode="bicubic",
            align_corners=False,
        )[0].numpy()
        new = build_condition(scene, ConditionSpec()).array
        d_old, d_new = np.abs(old - reference), np.abs(new - reference)
        out.append(f"| {n}² | {d_old.max():.3f} / {d_old.mean():.4f} | {d_new.max():.2e} / {d_new.mean():.2e} |")
    out += ["", "Even sizes were already identical; odd sizes now match the reference to float32 rounding.", ""]
    return out


# -- 3. mosaic layout and jitter ------------------------------------------------------------------
def mosaic_layout(runs: int) -> list[str]:
    from pyproj import Transformer

    out = ["## 3. AlphaEarth mosaic: published layout, and the second nearest-neighbour step", ""]
    with tempfile.TemporaryDirectory() as tmp:
        west, north = LON - 0.05, LAT + 0.05
        path, transform = build_published_aef_zarr(Path(tmp) / "aef.zarr", west, north, 1200, 1200)
        times = []
        for _ in range(runs):
            mosaic = AlphaEarthMosaic(str(path))
            t0 = time.perf_counter()
            years = mosaic.years
            crs, t = FetchRequest.make(LAT, LON, 512, 2020).grid
            emb = mosaic.read_patch(2020, crs, t, 512, 512)
            times.append(time.perf_counter() - t0)
        attrs = sorted(mosaic.attrs)
    out += [
        f"A local store written like aef-mosaic's `ZarrWriter` (group attributes {', '.join(f'`{a}`' for a in attrs if ':' in a and not a.startswith('zarr'))}; "
        "arrays `embeddings` (time, band, y, x) sharded + zstd, `/time`, `/band`, `/x`, `/y`; **no** `years` or "
        f"`start_year` attribute) with years 2018, 2020, 2021: read years **{years}** from `/time`, CRS "
        f"{mosaic.crs.to_string()} from `proj:code`, transform {list(mosaic.transform)[:6]} from "
        f"`spatial:transform`; a 512² patch of 2020 (index 1) opened and read in "
        f"{1000 * statistics.median(times):.0f} ms (median of {runs}, cold open each run), "
        f"{np.isfinite(emb).mean():.1%} valid.",
        "",
    ]
    # jitter: native UTM 10 m pixel → mosaic cell (NN, the publisher's step) → patch pixel (NN, ours)
    out += [
        "Position jitter. The mosaic is itself a nearest-neighbour reprojection of the native UTM 10 m "
        "AlphaEarth tiles onto a 0.0000898° grid; our patch (local UTM, 10 m, centred on the click) takes the "
        "mosaic cell under each pixel centre — a second nearest-neighbour step. Measured with pyproj: for each "
        "patch pixel, the native pixel it finally shows (two steps) vs the native pixel under its centre (what "
        "one resampling from the native tiles would give). 512² patches; native grid = the UTM zone's 10 m "
        "grid aligned to multiples of 10 m (as sarviz's patch grid is; the second block shifts the patch by "
        "3 m in x and y to show a misaligned grid).",
        "",
        "| latitude | patch grid | pixels showing another native pixel | two-step displacement, mean / max (m) "
        "| one-step displacement, mean / max (m) |",
        "|---|---|---|---|---|",
    ]
    res = 0.0000898
    shares = []
    for shift in (0.0, 3.0):
        for lat in (0.3, 47.0, 70.0):
            crs, t = patch_grid(lat, LON, 512, 10.0)
            cols, rows = np.meshgrid(np.arange(512) + 0.5, np.arange(512) + 0.5)
            xs, ys = t.a * cols + t.c + shift, t.e * rows + t.f + shift
            to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
            to_utm = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
            lon, la = to_ll.transform(xs, ys)
            # step 2 (ours): the mosaic cell under the pixel centre, at the cell's centre
            cell_lon = (np.floor((lon + 180.0) / res) + 0.5) * res - 180.0
            cell_lat = 90.0 - (np.floor((90.0 - la) / res) + 0.5) * res
            # step 1 (publisher's): the native pixel under the cell's centre
            cx, cy = to_utm.transform(cell_lon, cell_lat)
            native_two = (np.floor(cx / 10.0), np.floor(cy / 10.0))
            native_one = (np.floor(xs / 10.0), np.floor(ys / 10.0))
            differs = (native_two[0] != native_one[0]) | (native_two[1] != native_one[1])
            d2 = np.hypot((native_two[0] + 0.5) * 10 - xs, (native_two[1] + 0.5) * 10 - ys)
            d1 = np.hypot((native_one[0] + 0.5) * 10 - xs, (native_one[1] + 0.5) * 10 - ys)
            shares.append((shift, differs.mean()))
            out.append(
                f"| {lat:g}° | {'aligned' if shift == 0 else 'shifted 3 m, 3 m'} | {differs.mean():.1%} | "
                f"{d2.mean():.2f} / {d2.max():.2f} | {d1.mean():.2f} / {d1.max():.2f} |"
            )
    aligned = max(v for sh, v in shares if sh == 0)
    shifted = max(v for sh, v in shares if sh != 0)
    out += [
        "",
        f"On sarviz's aligned patch grid the second nearest-neighbour step changes at most {aligned:.1%} of "
        f"the pixels (the mosaic's cells, ~10 m × ≤10 m, are centred within 5 m of the native pixel centres), so "
        f"resampling the mosaic once more is harmless there; on a grid offset by 3 m up to "
        f"{shifted:.0%} of the pixels show a neighbouring native pixel. sarviz keeps nearest neighbour (every "
        "value a real embedding, never an average); the native grids are not recoverable from the mosaic, and "
        "Earth Engine's embedding (the `ee` source) is resampled only once.",
        "",
    ]
    return out


# -- 4. angle before/after --------------------------------------------------------------------------
def _old_estimate(footprint, orbit_state, crs, transform, width, height):
    """The earlier estimator (git history), for the comparison."""
    from pyproj import Transformer
    from shapely.geometry import shape
    from shapely.ops import transform as shp_transform

    to_grid = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    poly = shp_transform(to_grid.transform, shape(footprint))
    corners = np.asarray(poly.minimum_rotated_rectangle.exterior.coords)[:4]
    edges = [corners[(i + 1) % 4] - corners[i] for i in range(2)]
    lengths = [max(float(np.hypot(*e)), 1e-9) for e in edges]
    k = int(np.argmax([abs(e[1]) / n for e, n in zip(edges, lengths)]))
    along = edges[k]
    across = np.array([along[1], -along[0]]) / lengths[k]
    if (across[0] > 0) != (orbit_state == "ascending"):
        across = -across
    proj = corners @ across
    near, far = float(proj.min()), float(proj.max())
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    xs, ys = transform.a * cols + transform.c, transform.e * rows + transform.f
    frac = np.clip((xs * across[0] + ys * across[1] - near) / (far - near), 0.0, 1.0)
    g_near, g_far = _ground_range_at_incidence(29.1), _ground_range_at_incidence(46.0)
    return _incidence_at_ground_range(g_near + frac * (g_far - g_near)).astype(np.float32)


def angle_bias() -> list[str]:
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    out = [
        "## 4. Incidence angle from the footprint: before / after",
        "",
        "Footprints from a propagated circular orbit (a = 7064.94 km, i = 98.18°, 175 orbits / 12 days, Earth "
        "turning underneath; `tests/_sources_fixtures.simulate_iw_swath`), 340 km long, edges at 30.8° and 46.0° "
        "(≈ 252 km, as the SSL4EO footprints). Truth at a point g km from the track: θ(g) on a sphere of the "
        "local radius. Bias = estimate − truth (°) 10 km inside the near edge, mid-swath, 10 km inside the far "
        'edge. *Caveat:* the truth uses the same spherical geometry as the new estimator, so the "after" rows '
        "test the side choice, the width and the anchoring, not the Earth model; the real-data check is the "
        "SSL4EO table below.",
        "",
        "| latitude, pass | before: near / mid / far | after: near / mid / far |",
        "|---|---|---|",
    ]
    for lat, pass_ in (
        (0.5, "ascending"),
        (30, "descending"),
        (47, "ascending"),
        (60, "descending"),
        (70, "ascending"),
        (75, "descending"),
        (78, "ascending"),
        (80, "descending"),
        (81.5, "ascending"),
        (-70, "ascending"),
        (-78, "descending"),
        (-80, "ascending"),
    ):
        footprint, (lon0, lat0), heading, ground_range, incidence = simulate_iw_swath(lat, pass_, half_length_s=25.0)
        g0, g1 = ground_range(30.8), ground_range(46.0)
        cells = {"before": [], "after": []}
        for g in (g0 + 10, (g0 + g1) / 2, g1 - 10):
            lon, plat, _ = geod.fwd(lon0, lat0, heading + 90.0, g * 1000.0)
            crs, t = patch_grid(plat, lon, 8, 10.0)
            truth = incidence(g)
            old = _old_estimate(footprint, pass_, crs, t, 8, 8)[4, 4]
            new = estimate_incidence_angle(footprint, pass_, crs, t, 8, 8)
            cells["before"].append(f"{old - truth:+.2f}")
            cells["after"].append("n/a" if new is None else f"{new[4, 4] - truth:+.2f}")
        out.append(f"| {lat:g}°, {pass_} | {' / '.join(cells['before'])} | {' / '.join(cells['after'])} |")
    out += [
        "",
        "Real footprints (`../shared/samples/ssl4eo/s1/*/metadata.json`, Earth Engine `COPERNICUS/S1_GRD`): "
        "edge angles each estimator assigns, and the angle between the estimated range direction and the "
        "product's own angle tie-point grid's column (range) axis.",
        "",
        "| product | pass | footprint width km | before: near / far edge ° | after: near / far edge ° | "
        "range direction vs product grid, before / after |",
        "|---|---|---|---|---|---|",
    ]
    ssl = Path(ROOT).parent / "shared" / "samples" / "ssl4eo" / "s1"
    for path in sorted(glob.glob(str(ssl / "*" / "*" / "metadata.json"))):
        meta = json.loads(Path(path).read_text())
        ring = meta["system:footprint"]["coordinates"]
        fp = {"type": "Polygon", "coordinates": [ring]}
        pass_ = meta["orbitProperties_pass"].lower()
        lon, lat = float(np.mean([p[0] for p in ring])), float(np.mean([p[1] for p in ring]))
        a, b, _, d, e, _ = meta["system:bands"]["angle"]["crs_transform"]
        axis = np.array([a, d]) / math.hypot(a, d)
        crs, t = patch_grid(lat, lon, 64, 10.0)
        details: dict = {}
        new = estimate_incidence_angle(fp, pass_, crs, t, 64, 64, details=details)
        old = _old_estimate(fp, pass_, crs, t, 64, 64)

        def direction(angle):
            cols, rows = np.meshgrid(np.arange(64) + 0.5, np.arange(64) + 0.5)
            X = np.column_stack([(t.a * cols + t.c).ravel(), (t.e * rows + t.f).ravel(), np.ones(64 * 64)])
            gx, gy, _ = np.linalg.lstsq(X, angle.ravel().astype(float), rcond=None)[0]
            return math.degrees(math.acos(np.clip((np.array([gx, gy]) / math.hypot(gx, gy)) @ axis, -1, 1)))

        out.append(
            f"| {meta['system:index'][:32]}… | {pass_} | {details['swath_width_km']:.1f} | 29.10 / 46.00 | "
            f"{details['near_edge_deg']:.2f} / {details['far_edge_deg']:.2f} | "
            f"{direction(old):.1f}° / {direction(new):.1f}° |"
        )
    out += [
        "",
        "Before: 29.1°–46.0° (the IW *beam* limits, 274 km apart on the orbit's geometry) was stretched over "
        "a ~252 km GRD footprint, so the near range read 0.8–1.7° too low; and above ~75° the along-track side "
        'was chosen as "closer to north–south", which mirrors near and far range once the track runs more '
        "east–west in the local grid (the ±7° rows above; where it happens depends on the footprint's length "
        "and the UTM grid convergence). After: the far edge is 46.0°, the "
        "measured width sets the near edge (≈ 30.7° on real footprints, as in the GRD angle bands), and the "
        "along-track side and far-range side come from the orbit's heading at the nadir point.",
        "",
    ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS_geometry.md")
    args = ap.parse_args()
    t0 = time.perf_counter()
    lines = [
        "# Geometry and inputs (sources/geometry half)",
        "",
        f"`python benchmarks/bench_geometry.py --runs {args.runs}` — {time.strftime('%Y-%m-%d')}, "
        f"shared 2-core machine under load (load average {os.getloadavg()[0]:.1f}); times indicative.",
        "",
    ]
    for part in (
        lambda: composite_vs_single(args.runs),
        odd_size_condition,
        lambda: mosaic_layout(args.runs),
        angle_bias,
    ):
        lines += part()
        print("\n".join(lines[-6:]), flush=True)
    lines.append(f"Total benchmark time {time.perf_counter() - t0:.0f} s.")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
