"""Training pairs for SAR→SAR rendering: ``sarviz dataset pairs`` (seed 002 leaves pair-making open).

**Degradation model** (from a finer source; every step a setting, recorded in ``pairs.json``):

1. the finer σ⁰ image (dB → linear intensity) is **band-limited to 1/F** of its bandwidth and
   decimated to spacing × F (Fourier truncation, :func:`~sarviz.sar2sar.resample.resample_intensity`);
2. **re-speckled** to the coarser product's looks L: the decimation averages the source's
   speckle (ENL rises), so the coarse image is multiplied by unit-mean Gamma(L′) noise with
   1/L′ = 1/L − 1/ENL_measured (no added speckle when the source is already at or below L looks);
   optionally a thermal **noise floor** (NESZ, dB) is added as an independent speckled term;
3. **resampled back** to the target grid (Fourier zero-padding): the condition is the coarser
   image at the finer spacing — what ``sarviz render`` feeds the ControlNet.

Normalisation (seed 001 eq. 1): A/(μ+3σ) with μ, σ of the **coarse** scene (what a render
has), applied to condition and target alike, once per scene and polarisation; the stats are
in each row, so a target inverts to σ⁰ dB. Splits: the dataset builder's spatial blocks
(:mod:`sarviz.datasets.splits`, with its buffer rule), so no ground is in two splits.

**What the bundled data can teach**: all bundled samples are Sentinel-1 GRD at 10 m spacing
(~20 m resolution, ENL ≈ 4–5), so offline pairs teach ~20 m → 10 m (F = 2 around 10 m);
rendering finer than the training pairs' target spacing is extrapolation, and the run and
every render say so.

Real co-registered pairs (``--coarse-images``): :func:`align_pair` puts a coarser SAR image
on the finer one's grid (rasterio reprojection) and removes a residual sub-pixel shift found
by phase correlation of the log-intensity; VV/VH of one sensor pair with HH/HV of another only
by the explicit ``--pol-map`` (e.g. ``HH:VV`` for single-pol X-band beside Sentinel-1 VV) —
co-polarised with co-polarised, never silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.amplitude import AmplitudeError, normalise_amplitude
from sarviz.formats.sar2sar import PairsDataset, Sar2SarError, SarGeoTiff
from sarviz.hashing import seed_for
from sarviz.sar2sar.consistency import calibrate_threshold, spectrum_slope
from sarviz.sar2sar.options import S1_GRD_ENL, PairsOptions  # noqa: F401  (re-exported)
from sarviz.sar2sar.resample import (
    fill_missing,
    output_shape,
    resample_db,
    resample_intensity,
)


@dataclass
class Degraded:
    coarse_db: np.ndarray  # at spacing × F
    condition_db: np.ndarray  # the coarse image back on the target grid
    enl_before: float | None  # ENL of the decimated source (before re-speckling)
    added_looks: float | None  # L′ of the multiplicative Gamma noise (None: none added)


def _enl(db: np.ndarray) -> float | None:
    from sarviz.metrics import sar

    window = max(4, min(sar.ENL_WINDOW, min(db.shape) // 4))
    try:
        return sar.enl(db, window=window).enl
    except sar.MetricError:
        return None


def degrade(
    fine_db: np.ndarray, factor: float, looks: float, rng: np.random.Generator, noise_floor_db: float | None = None
) -> Degraded:
    """The degradation model (module doc): band-limit to 1/F, re-speckle to ``looks``, resample back."""
    fine = 10.0 ** (fill_missing(np.asarray(fine_db, dtype=np.float64)) / 10.0)
    coarse_shape = output_shape(fine.shape, 1.0 / factor)
    coarse = resample_intensity(fine, coarse_shape)
    coarse_db0 = 10 * np.log10(np.maximum(coarse, 1e-12))
    enl_before = _enl(coarse_db0)
    added = None
    if enl_before is not None and enl_before > looks:
        added = 1.0 / (1.0 / looks - 1.0 / enl_before)
        coarse = coarse * rng.gamma(added, 1.0 / added, coarse.shape)
    if noise_floor_db is not None:
        coarse = coarse + 10 ** (noise_floor_db / 10) * rng.gamma(looks, 1.0 / looks, coarse.shape)
    coarse_db = (10 * np.log10(np.maximum(coarse, 1e-12))).astype(np.float32)
    cond = resample_intensity(coarse, fine.shape)
    return Degraded(coarse_db, (10 * np.log10(np.maximum(cond, 1e-12))).astype(np.float32), enl_before, added)


def align_pair(
    fine: SarGeoTiff, coarse: SarGeoTiff, pol_map: dict[str, str] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A coarser SAR image on the finer one's grid: reprojection, then the residual shift removed.

    Returns ({fine pol: coarse σ⁰ dB on the fine grid}, {"shift_px": [dy, dx], "pols": {...}}).
    """
    from rasterio.warp import Resampling, reproject
    from scipy.ndimage import shift as nd_shift
    from skimage.registration import phase_cross_correlation

    pol_map = pol_map or {p: p for p in coarse.bands}
    out: dict[str, np.ndarray] = {}
    shifts = []
    for cpol, fpol in pol_map.items():
        if cpol not in coarse.bands or fpol not in fine.bands:
            continue
        dst = np.full(fine.shape, np.nan, np.float32)
        lin = 10 ** (fill_missing(coarse.bands[cpol]) / 10)
        reproject(
            lin,
            dst,
            src_transform=coarse.transform,
            src_crs=coarse.crs,
            dst_transform=fine.transform,
            dst_crs=fine.crs,
            resampling=Resampling.cubic,
            src_nodata=np.nan,
            dst_nodata=np.nan,
        )
        ok = np.isfinite(dst)
        if ok.mean() < 0.5:
            raise Sar2SarError(
                f"{Path(coarse.path).name} covers {ok.mean():.0%} of {Path(fine.path).name}; "
                "co-registered pairs must share their ground"
            )
        ref = fill_missing(fine.bands[fpol])
        mov = np.where(ok, 10 * np.log10(np.maximum(dst, 1e-12)), np.nan)
        mov = fill_missing(mov)
        shift, _, _ = phase_cross_correlation(ref, mov, upsample_factor=10, normalization=None)
        out[fpol] = nd_shift(mov, shift, order=3, mode="nearest").astype(np.float32)
        shifts.append(shift)
    if not out:
        raise Sar2SarError("the two images share no polarisation; give --pol-map COARSE:FINE (e.g. HH:VV)")
    return out, {"shift_px": np.mean(shifts, axis=0).round(3).tolist(), "pols": pol_map}


def find_sar_images(folder: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """SAR GeoTIFFs under ``folder`` (recursively) and one line per skipped file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise Sar2SarError(f"{folder} is not a folder")
    found, skipped = [], []
    for path in sorted(folder.rglob("*.tif")):
        try:
            SarGeoTiff.read(path)
            found.append(path)
        except Sar2SarError as exc:
            skipped.append(str(exc))
    return found, skipped


def _group_single_pol(paths: list[Path]) -> list[list[Path]]:
    """``VV.tif`` + ``VH.tif`` in one folder are one scene."""
    groups: dict[Path, list[Path]] = {}
    out = []
    for p in paths:
        if p.stem.upper() in ("VV", "VH", "HH", "HV"):
            groups.setdefault(p.parent, []).append(p)
        else:
            out.append([p])
    return out + list(groups.values())


def _read_group(group: list[Path]) -> SarGeoTiff:
    first = SarGeoTiff.read(group[0])
    for p in group[1:]:
        other = SarGeoTiff.read(p)
        if other.shape == first.shape and other.transform == first.transform:
            first.bands.update(other.bands)
    return first


def _coarse_match(img: SarGeoTiff, coarse: list[SarGeoTiff]) -> SarGeoTiff | None:
    """The coarser image covering most of ``img``'s bounds (None when none overlaps)."""
    from rasterio.warp import transform_bounds

    best, best_area = None, 0.0
    l0, b0, r0, t0 = img.bounds
    for c in coarse:
        l1, b1, r1, t1 = transform_bounds(c.crs, img.crs, *c.bounds) if c.crs != img.crs else c.bounds
        area = max(0.0, min(r0, r1) - max(l0, l1)) * max(0.0, min(t0, t1) - max(b0, b1))
        if area > best_area:
            best, best_area = c, area
    return best


def parse_pol_map(text: str | None) -> dict[str, str] | None:
    """``"HH:VV,HV:VH"`` → {"HH": "VV", "HV": "VH"} (coarse polarisation : fine polarisation)."""
    if not text:
        return None
    out = {}
    for part in text.split(","):
        a, _, b = part.strip().upper().partition(":")
        if a not in ("VV", "VH", "HH", "HV") or b not in ("VV", "VH", "HH", "HV"):
            raise Sar2SarError(f"--pol-map {text!r}: use COARSE:FINE pairs of VV/VH/HH/HV, e.g. HH:VV")
        out[a] = b
    return out


def build_pairs(
    images: str | os.PathLike,
    out: str | os.PathLike,
    options: PairsOptions,
    progress: Callable[[int, int, str], None] | None = None,
    coarse_images: str | os.PathLike | None = None,
    pol_map: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Write a pairs dataset from every SAR GeoTIFF under ``images``: degradation mode, or, with
    ``coarse_images``, real co-registered pairs (each fine image with the coarser image covering it,
    aligned by :func:`align_pair`; the factor is then the two images' spacing ratio)."""
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    from sarviz.atomic import atomic_dir
    from sarviz.datasets.splits import SplitSpec, assign_splits
    from sarviz.scene import footprint_wgs84

    try:
        spec = SplitSpec(options.val_fraction, options.test_fraction, options.block_km, options.seed)
    except ValueError as exc:
        raise Sar2SarError(str(exc)) from None
    paths, skipped = find_sar_images(images)
    if not paths:
        raise Sar2SarError(f"no SAR GeoTIFF under {images} (skipped {len(skipped)} other files)")
    rng = np.random.default_rng(options.seed)
    calibration_pairs = []
    spacings = set()
    n = options.size
    coarse: list[SarGeoTiff] = []
    if coarse_images is not None:
        cpaths, cskipped = find_sar_images(coarse_images)
        skipped += cskipped
        coarse = [_read_group(g) for g in _group_single_pol(cpaths)]
        if not coarse:
            raise Sar2SarError(f"no SAR GeoTIFF under {coarse_images}")
    real_pairs: list[dict[str, Any]] = []
    match_rows: list[dict[str, Any]] = []
    groups = _group_single_pol(paths)
    staged: list[tuple[dict[str, Any], np.ndarray, np.ndarray]] = []
    for gi, group in enumerate(groups):
        img = _read_group(group)
        h, w = img.shape
        if h < n or w < n:
            skipped.append(f"{group[0].name}: {h}×{w} px is smaller than --size {n}")
            continue
        spacings.add(round(abs(img.transform.a), 9))
        scene_id = "_".join(group[0].parent.name.split()[:1] + [group[0].stem])[:60]
        aligned = None
        if coarse:
            match = _coarse_match(img, coarse)
            if match is None:
                skipped.append(f"{group[0].name}: no coarser image covers it")
                continue
            aligned, how = align_pair(img, match, pol_map)
            factor = abs(match.transform.a) / abs(img.transform.a) if match.crs == img.crs else options.factor
            real_pairs.append({"fine": str(group[0]), "coarse": match.path, "factor": factor, **how})
        for pol, db in img.bands.items():
            if aligned is not None:
                if pol not in aligned:
                    continue
                cond = aligned[pol]
                coarse_db = resample_db(cond, output_shape(cond.shape, 1.0 / max(1.0, real_pairs[-1]["factor"])))
                deg = Degraded(coarse_db, cond, None, None)
            else:
                deg = degrade(db, options.factor, options.looks, rng, options.noise_floor_db)
            try:  # μ and σ of the coarse scene (what a render has), once per scene and polarisation
                stats = normalise_amplitude(deg.coarse_db)[1]
            except AmplitudeError as exc:
                skipped.append(f"{group[0].name} {pol}: {exc}")
                continue
            # the gate's calibration: a perfect render's degradation differs from its input by speckle
            # (an independent realisation at the coarser product's looks), not by nothing
            respeckled = deg.coarse_db + 10 * np.log10(rng.gamma(options.looks, 1 / options.looks, deg.coarse_db.shape))
            calibration_pairs.append((respeckled.astype(np.float32), fill_missing(db)))
            enl_after = _enl(deg.coarse_db)
            # does the condition look like the coarser product? ENL and spectrum slope beside the source's
            match_rows.append(
                {
                    "scene": group[0].name if len(group) == 1 else group[0].parent.name,
                    "pol": pol,
                    "source_enl": _enl(fill_missing(db)),
                    "condition_enl": enl_after,
                    "target_looks": options.looks,
                    "source_spectrum_slope": spectrum_slope(fill_missing(db)),
                    "condition_spectrum_slope_coarse_grid": spectrum_slope(deg.coarse_db),
                }
            )
            for r in range(0, h - n + 1, n):
                for c in range(0, w - n + 1, n):
                    target = db[r : r + n, c : c + n]
                    if np.mean(~np.isfinite(target)) > options.max_missing:
                        continue
                    ct = window_transform(Window(c, r, n, n), img.transform)
                    fp = footprint_wgs84(img.crs, ct, n, n)
                    cid = f"s{gi:03d}_{pol}_{r:05d}_{c:05d}"
                    row: dict[str, Any] = {
                        "id": cid,
                        "scene": scene_id,
                        "source": str(group[0]),
                        "pol": pol,
                        "row": r,
                        "col": c,
                        "footprint_wgs84": list(fp),
                        "centre": [(fp[0] + fp[2]) / 2, (fp[1] + fp[3]) / 2],
                        "amplitude_stats": stats.to_dict(),
                        "condition_enl": enl_after,
                        "source_enl_after_decimation": deg.enl_before,
                        "added_looks": deg.added_looks,
                        "text": f"{options.token} SAR image, {pol} polarisation, "
                        f"{abs(img.transform.a):.3g} CRS-unit spacing",
                    }
                    staged.append(
                        (
                            row,
                            normalise_amplitude(fill_missing(target), stats=stats)[0],
                            normalise_amplitude(deg.condition_db[r : r + n, c : c + n], stats=stats)[0],
                        )
                    )
        if progress:
            progress(gi + 1, len(groups), f"degraded {gi + 1}/{len(groups)} images")
    if not staged:
        raise Sar2SarError(f"no chip of {n} px with ≤ {options.max_missing:.0%} missing pixels in {images}")
    # splits by ground: every polarisation of one place follows the place's block
    centres = [tuple(s[0]["centre"]) for s in staged]
    footprints = [tuple(s[0]["footprint_wgs84"]) for s in staged]
    splits, keep, blocks = assign_splits(centres, footprints, spec)
    out = Path(out)
    calibration = calibrate_threshold(calibration_pairs)
    with atomic_dir(out) as tmp:
        tmp = Path(tmp)
        rows: dict[str, list] = {"train": [], "val": [], "test": []}
        for (staged_row, target, cond), split, k, block in zip(staged, splits, keep, blocks):
            if not k:
                continue
            row = {
                **staged_row,
                "split": split,
                "block": list(block),
                **PairsDataset.chip_paths(staged_row["id"]),
            }
            PairsDataset.write_png(tmp / split / row["file_name"], target)
            PairsDataset.write_png(tmp / split / row["conditioning_image"], cond)
            rows[split].append(row)
        for split, split_rows in rows.items():
            PairsDataset.write_split(tmp, split, split_rows)
        enls = [s[0]["condition_enl"] for s in staged if s[0]["condition_enl"]]
        info = {
            "mode": "real co-registered pairs" if coarse else "degradation",
            "real_pairs": real_pairs,
            "options": asdict(options),
            "splits": spec.to_json(),
            "counts": {k: len(v) for k, v in rows.items()},
            "dropped_by_buffer": int(sum(not k for k in keep)),
            "skipped": skipped[:50],
            "source_spacing": sorted(spacings),
            "target_spacing": "the source spacing",
            "condition_spacing": f"source spacing × {options.factor:g}",
            "degradation": [
                "band-limit to 1/F and decimate (Fourier)",
                (f"re-speckle to {options.looks:g} looks (unit-mean Gamma, 1/L' = 1/L - 1/ENL_measured)"),
                f"noise floor {options.noise_floor_db} dB"
                if options.noise_floor_db is not None
                else "no noise floor added",
                "resample back to the target grid (Fourier)",
            ],
            "condition_enl_median": float(np.median(enls)) if enls else None,
            "condition_vs_source": match_rows,
            "normalisation": "A/(μ+3σ) clipped to [0, 1], μ and σ of the coarse scene per polarisation, on both images",
            "consistency_calibration": calibration,
            "teaches": f"{options.factor:g}× finer spacing from the source's own spacing "
            f"({', '.join(f'{s:g}' for s in sorted(spacings))} CRS units): rendering finer than the "
            "source spacing, or from another sensor, is extrapolation",
        }
        PairsDataset.write_info(tmp, info)
    return info


class PairsTorchDataset:
    """(target, condition, caption) of one split, as the trainer wants them."""

    def __init__(self, ds, split: str, resolution: int, flip: bool, seed: int) -> None:
        self.ds, self.split, self.resolution, self.flip, self.seed = ds, split, resolution, flip, seed
        self.rows = ds.rows(split)

    def __len__(self) -> int:
        return len(self.rows)

    def _load(self, rel: str):
        import torch
        from PIL import Image

        with Image.open(self.ds.folder / self.split / rel) as im:
            im = im.convert("L")
            if im.size != (self.resolution, self.resolution):
                im = im.resize((self.resolution, self.resolution), Image.BICUBIC)
            a = np.asarray(im, dtype=np.float32) / 255.0
        return torch.from_numpy(a)[None].repeat(3, 1, 1)

    def __getitem__(self, key) -> dict[str, Any]:
        import torch

        i, epoch = key if isinstance(key, tuple) else (key, 0)  # ShardedEpochSampler yields (index, epoch)
        row = self.rows[i]
        target, cond = self._load(row["file_name"]), self._load(row["conditioning_image"])
        g = torch.Generator().manual_seed(seed_for(self.seed, epoch, i, 104729))
        if self.flip and torch.rand((), generator=g) < 0.5:
            target, cond = target.flip(-1), cond.flip(-1)
        return {"pixel_values": target * 2 - 1, "conditioning": cond, "text": row.get("text", "")}
