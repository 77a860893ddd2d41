"""A proxy embedding field for scenes that have no AlphaEarth embedding.

The bundled sample chips (Sen1Floods11, BigEarthNet, SSL4EO-S12) carry optical and real
Sentinel-1 but no AlphaEarth patch, and none can be downloaded offline. Every generator
conditions on the 64-D embedding, so without one nothing can be generated. This module
builds an *honest proxy*:

1. **Land cover from the scene's own optical layer** (:mod:`sarviz.optical_landcover`):
   rules on Sentinel-2 B2/B3/B4/B8 — water, built-up (unvegetated and textured), trees,
   irrigated and fallow crops (by the landscape around), grass, shrub, bare soil, snow —
   as soft probabilities, folded into the nine Dynamic World classes.
2. **Objects.** The optical image is cut into SLIC superpixels (scikit-image), about
   12×12 px each: a field or a block of houses gets one land-cover estimate.
3. **Real AlphaEarth vectors chosen by class and by what else the optical says.** All
   vectors come from one region of ``alphaearth_s1_points`` (Amazonas, coastal California or
   Iowa), the one nearest in absolute latitude. Each object takes the real 2024 vector of a
   point of its class whose Dynamic World profile is near its own and whose *rank* within the
   class, in the point's own Sentinel-1 VV and VH, matches the object's rank within its class
   in texture (structure raises VV) and NDVI (vegetation volume raises VH) — a monotone
   physical reading with no parameter fitted to any scene.
4. **No superpixel edges.** The field is blended across object boundaries by a normalised
   Gaussian (σ 3 px, cut at 2σ) and put back on the unit sphere: an object's core keeps
   its real vector; at a boundary the vector turns smoothly instead of stepping.

The scene's real Sentinel-1 is never read here: the proxy must not leak the answer into a
comparison of generated and real SAR. A scene without optical gets no proxy. A scene that
already has an embedding keeps it: a proxy never replaces a real embedding.

The result is marked: ``scene.provenance["embedding_source"]`` starts with ``"proxy"`` and
says how it was made, ``scene.provenance["embedding_proxy"]`` holds the details, the scene
file carries an ``EMBEDDING_SOURCE`` tag, and generators copy the field into every result.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.optical_landcover import DW_CLASSES, classify, dark_object_subtraction
from sarviz.scene import EMBEDDING_BANDS, Scene, SceneError
from sarviz.settings import env

#: version of the recipe below; bump it when the output for a scene would change
PROXY_VERSION = "3"
PROXY_PREFIX = "proxy"
POINTS_ENV = "SARVIZ_PROXY_POINTS"
POINTS_DIRNAME = "alphaearth_s1_points"
SEGMENT_PX = 12  # superpixel side, pixels (~120 m at 10 m): the object scale
BLEND_SIGMA_PX = 3.0  # Gaussian blend across object boundaries (σ, pixels)
PROFILE_SCALE = 0.5  # squared Dynamic World profile distance that weighs like a full rank step
CLASS_MISMATCH = 4.0  # cost of a point whose main class differs from the segment's
LEVELS_FILE = "proxy_levels.json"  # level offsets fitted leave-one-dataset-out (see level_offsets)


class ProxyUnavailable(SceneError):
    """No proxy can be built for this scene (no optical layer, no point table)."""


def is_proxy(scene_or_provenance: Scene | dict) -> bool:
    """True when the scene's embedding layer is a proxy (not AlphaEarth for this place)."""
    prov = scene_or_provenance.provenance if isinstance(scene_or_provenance, Scene) else scene_or_provenance
    return str(prov.get("embedding_source") or "").startswith(PROXY_PREFIX)


def embedding_label(scene: Scene) -> str | None:
    """A short label for the scene's embedding layer: None (no layer), 'AlphaEarth' or the proxy note."""
    if scene.embedding is None:
        return None
    if is_proxy(scene):
        return "PROXY embedding (not AlphaEarth for this place): " + scene.provenance["embedding_source"]
    return "AlphaEarth embedding"


def result_note(provenance: dict) -> str | None:
    """The label that a result made from a proxy embedding carries wherever it is shown (None otherwise)."""
    if not is_proxy(provenance):
        return None
    return (
        "Made from a PROXY embedding, not AlphaEarth for this place (real AlphaEarth vectors of other places "
        "chosen by the scene's optical land cover). Read its comparison with the real image with that in mind."
    )


def default_points_dir(near: str | os.PathLike | None = None) -> Path | None:
    """The folder of AlphaEarth sample points: ``SARVIZ_PROXY_POINTS``, else beside ``near``
    (an import source), else ``../shared/samples/alphaearth_s1_points`` beside the checkout."""
    candidates = []
    if env(POINTS_ENV):
        candidates.append(Path(env(POINTS_ENV) or "").expanduser())
    if near is not None:
        near = Path(near).expanduser()
        candidates += [near / POINTS_DIRNAME, near / "samples" / POINTS_DIRNAME]
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "samples" / POINTS_DIRNAME)
    for c in candidates:
        if c.is_dir() and any(c.glob("*.csv")):
            return c
    return None


@lru_cache(maxsize=4)
def _load_points(points_dir: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings (N, 64), Dynamic World probabilities (N, 9), file names, region and latitude of each
    point, and the points' own 2024 median Sentinel-1 (N, 2: VV, VH dB; NaN when a table lacks it))."""
    import pandas as pd

    files = sorted(Path(points_dir).glob("*.csv"))
    if not files:
        raise ProxyUnavailable(f"no AlphaEarth point tables (*.csv) in {points_dir}")
    frames = []
    for f in files:
        df = pd.read_csv(f)
        missing = [c for c in (*EMBEDDING_BANDS, *DW_CLASSES) if c not in df.columns]
        if missing:
            raise ProxyUnavailable(f"{f.name}: not an AlphaEarth point table (missing {', '.join(missing[:3])}…)")
        part = df[[*EMBEDDING_BANDS, *DW_CLASSES]].dropna().copy()
        part["_region"] = df["region"].astype(str) if "region" in df.columns else f.stem
        part["_lat"] = df["latitude"].astype(float) if "latitude" in df.columns else np.nan
        for col in ("S1_VV", "S1_VH"):
            part[col] = df[col].astype(float) if col in df.columns else np.nan
        frames.append(part)
    table = pd.concat(frames, ignore_index=True)
    emb = table[list(EMBEDDING_BANDS)].to_numpy(np.float32)
    probs = table[list(DW_CLASSES)].to_numpy(np.float32, copy=True)
    probs /= np.clip(probs.sum(axis=1, keepdims=True), 1e-6, None)
    s1 = table[["S1_VV", "S1_VH"]].to_numpy(np.float64)
    s1 = np.where(np.isfinite(s1), s1, np.nanmedian(s1, axis=0) if np.isfinite(s1).any() else 0.0)
    return emb, probs, tuple(f.name for f in files), table["_region"].to_numpy(), table["_lat"].to_numpy(), s1


def land_cover_probabilities(optical: np.ndarray, top_of_atmosphere: bool = False) -> np.ndarray:
    """(9, H, W) Dynamic World class probabilities from B2, B3, B4, B8 reflectance (NaN where missing).

    The rules of :mod:`sarviz.optical_landcover` (built-up by texture, irrigated and fallow
    crops by landscape, water, trees, grass, bare, snow), folded into Dynamic World classes.
    """
    return classify(optical, top_of_atmosphere=top_of_atmosphere).dynamic_world_probabilities()


def _segments(optical: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """SLIC superpixels of the optical image (label −1 outside ``valid``)."""
    from skimage.segmentation import slic

    h, w = valid.shape
    img = np.nan_to_num(np.moveaxis(optical, 0, -1), nan=0.0)
    img = np.clip(img / 0.3, 0.0, 1.5)  # reflectance → roughly unit range for SLIC's colour distance
    n_segments = max(1, int(round(h * w / SEGMENT_PX**2)))
    labels = slic(
        img,
        n_segments=n_segments,
        compactness=0.1,
        channel_axis=-1,
        start_label=0,
        mask=valid if not valid.all() else None,
        convert2lab=False,
        enforce_connectivity=True,
    )
    labels = labels.astype(np.int64)
    labels[~valid] = -1
    return labels


def _segment_means(
    values: np.ndarray, flat_labels: np.ndarray, inside: np.ndarray, n_seg: int, counts: np.ndarray
) -> np.ndarray:
    return np.bincount(flat_labels[inside], weights=values.ravel()[inside], minlength=n_seg) / np.clip(counts, 1, None)


def _quantiles(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Rank of each value within its group, scaled to 0..1 (0.5 for a group of one)."""
    out = np.full(values.shape, 0.5, np.float32)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        if idx.size > 1:
            order = np.argsort(np.argsort(values[idx], kind="stable"), kind="stable")
            out[idx] = order / (idx.size - 1)
    return out


def blend_field(field: np.ndarray, valid: np.ndarray, sigma: float = BLEND_SIGMA_PX) -> np.ndarray:
    """The (64, H, W) field smoothed across object boundaries and put back on the unit sphere.

    A normalised Gaussian convolution over the valid pixels (σ = ``sigma`` px, cut at 2σ):
    at a boundary between two objects the vector turns smoothly from one to the other
    instead of stepping; in an object's core (≥ 2σ from its edge) the real vector is kept.
    """
    from scipy import ndimage

    w = valid.astype(np.float32)
    norm = ndimage.gaussian_filter(w, sigma, truncate=2.0)
    out = np.empty_like(field)
    for i in range(field.shape[0]):
        out[i] = ndimage.gaussian_filter(np.where(valid, field[i], 0.0), sigma, truncate=2.0) / np.maximum(norm, 1e-6)
    # a pixel whose neighbourhood holds one vector keeps it exactly (no rounding drift)
    same = np.isclose(out, field, atol=1e-5).all(axis=0)
    # a blend of unit vectors is shorter than each: back to the length of the real vectors (≈ 1)
    length = np.sqrt((out**2).sum(axis=0))
    out /= np.maximum(length, 1e-6)
    out[:, same] = field[:, same]
    out[:, ~valid] = np.nan
    return out


def _shift_ranks(
    q: np.ndarray, seg_class: np.ndarray, values: np.ndarray, pt_class: np.ndarray, offset_db: float
) -> np.ndarray:
    """Ranks moved by ``offset_db``: the rank, within the class's points, of (value at rank q) + offset."""
    if offset_db == 0.0:
        return q
    out = q.copy()
    for c in np.unique(seg_class):
        v = np.sort(values[pt_class == c])
        if v.size < 2:
            continue
        idx = seg_class == c
        target = np.quantile(v, q[idx]) + offset_db
        out[idx] = np.clip(np.interp(target, v, np.linspace(0.0, 1.0, v.size)), 0.0, 1.0)
    return out


def level_offsets(dataset: str | None = None, path: str | os.PathLike | None = None) -> tuple[tuple[float, float], str]:
    """(VV, VH) level offsets in dB for a scene of ``dataset`` and where they come from.

    The offsets (``proxy_levels.json``, written by ``benchmarks/bench_proxy_skill.py
    --fit-levels``) move the choice of points up or down within each class, from the annual
    median levels of the points' regions towards the level of single-date scenes. For a scene
    of a bundled dataset the offsets fitted *without* that dataset are used, so a sample's own
    Sentinel-1 never reaches its proxy; any other scene uses those fitted on all of them.
    """
    file = Path(path) if path is not None else Path(__file__).with_name(LEVELS_FILE)
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return (0.0, 0.0), "none (no level file)"
    if str(data.get("proxy_version")) != PROXY_VERSION:  # fitted for another recipe: its levels do not apply
        return (0.0, 0.0), f"none (level file fitted for recipe v{data.get('proxy_version')})"
    key = f"without:{dataset}" if dataset and f"without:{dataset}" in data.get("offsets", {}) else "all"
    entry = data.get("offsets", {}).get(key)
    if not entry:
        return (0.0, 0.0), "none"
    return (float(entry["VV"]), float(entry["VH"])), f"{key} ({', '.join(entry.get('fitted_on', []))})"


def build_proxy_embedding(
    optical: np.ndarray,
    points_dir: str | os.PathLike,
    seed: int = 0,
    top_of_atmosphere: bool = False,
    latitude: float | None = None,
    level_offset_db: tuple[float, float] = (0.0, 0.0),
    diagnostics: dict | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The (64, H, W) proxy field for an optical layer, and a record of how it was made.

    ``top_of_atmosphere``: the optical layer is L1C (TOA); haze is removed first.
    ``latitude``: the scene's; the vectors come from the sample region nearest in absolute
    latitude (a rough stand-in for climate and season). Without it, from the region whose
    land-cover profiles fit the scene best.
    ``level_offset_db``: (VV, VH) dB by which to move the choice within each class (see
    :func:`level_offsets`). ``diagnostics``: a dict that receives the (2, H, W) own Sentinel-1
    (dB) of the chosen points, unblended (used to fit the offsets on other scenes).
    """
    emb_table, prob_table, files, regions, point_lat, point_s1 = _load_points(str(Path(points_dir).resolve()))
    optical = np.asarray(optical, np.float32)
    if top_of_atmosphere:
        optical = dark_object_subtraction(optical)
    valid = np.isfinite(optical).all(axis=0)
    if not valid.any():
        raise ProxyUnavailable("the optical layer has no valid pixel")
    cover = classify(optical)
    probs = cover.dynamic_world_probabilities()
    labels = _segments(optical, valid)
    n_seg = int(labels.max()) + 1
    flat = labels.ravel()
    inside = flat >= 0
    counts = np.bincount(flat[inside], minlength=n_seg).astype(np.float32)
    seg_probs = np.stack(
        [_segment_means(probs[c], flat, inside, n_seg, counts) for c in range(len(DW_CLASSES))], axis=1
    )
    seg_texture = _segment_means(cover.features.texture, flat, inside, n_seg, counts)
    seg_ndvi = _segment_means(cover.features.ndvi, flat, inside, n_seg, counts)
    # Distances in Dynamic World probability space, segments × points. All vectors come from one
    # region: vectors of one region share its climate and season, so neighbouring segments of
    # one class stay alike. The region is the one nearest in |latitude| (Spain and Punjab →
    # coastal California, central Europe → Iowa, the tropics → Amazonas); the profile fit
    # decides only when the latitude is unknown.
    d2 = ((seg_probs[:, None, :] - prob_table[None, :, :]) ** 2).sum(axis=-1)
    weights = counts / max(counts.sum(), 1)
    fit = {r: float((d2[:, regions == r].min(axis=1) * weights).sum()) for r in np.unique(regions)}
    region_lat = {r: float(np.nanmean(np.abs(point_lat[regions == r]))) for r in fit}
    if latitude is not None and all(np.isfinite(v) for v in region_lat.values()):
        region = min(region_lat, key=lambda r: abs(region_lat[r] - abs(latitude)))
    else:
        region = min(fit, key=fit.__getitem__)
    in_region = np.flatnonzero(regions == region)
    d2 = d2[:, in_region]
    # Class AND what else the optical says. Within its class, a segment's rank in texture (the
    # structure that raises VV: buildings, rough surfaces) and in NDVI (the vegetation volume
    # that raises cross-pol VH) picks the point at the same rank in its own Sentinel-1 (VV, VH)
    # among the points of that class — a monotone physical reading, no parameter fitted to a
    # scene. The points' Sentinel-1 is of their own places; this scene's is never read.
    seg_class = seg_probs.argmax(axis=1)
    pt_class = prob_table[in_region].argmax(axis=1)
    q_seg = np.stack(
        [
            _shift_ranks(
                _quantiles(seg_texture, seg_class), seg_class, point_s1[in_region, 0], pt_class, level_offset_db[0]
            ),
            _shift_ranks(
                _quantiles(seg_ndvi, seg_class), seg_class, point_s1[in_region, 1], pt_class, level_offset_db[1]
            ),
        ],
        axis=1,
    )
    q_pt = np.stack(
        [_quantiles(point_s1[in_region, 0], pt_class), _quantiles(point_s1[in_region, 1], pt_class)], axis=1
    )
    cost = d2 / PROFILE_SCALE + ((q_seg[:, None, :] - q_pt[None, :, :]) ** 2).sum(axis=-1)
    cost = cost + np.where(seg_class[:, None] == pt_class[None, :], 0.0, CLASS_MISMATCH)
    rng = np.random.default_rng(seed)
    cost = cost + rng.uniform(0.0, 1e-6, cost.shape)  # exact ties broken by a draw seeded with the scene id
    chosen = in_region[np.argmin(cost, axis=1)]
    seg_emb = emb_table[chosen]  # (segments, 64), real AlphaEarth vectors
    out = np.full((len(EMBEDDING_BANDS),) + valid.shape, np.nan, np.float32)
    out[:, valid] = seg_emb[labels[valid]].T
    out = blend_field(out, valid)
    if diagnostics is not None:
        s1 = np.full((2,) + valid.shape, np.nan, np.float32)
        s1[:, valid] = point_s1[chosen][labels[valid]].T
        diagnostics["point_s1_db"] = s1
    share = cover.fractions()
    record = {
        "method": "optical-land-cover+texture/ndvi-rank+real-alphaearth-vectors+object-scale-blend",
        "version": PROXY_VERSION,
        "land_cover_method": cover.method + (", haze removed (L1C)" if top_of_atmosphere else ""),
        "land_cover_confidence": round(cover.mean_confidence(), 3),
        "points": list(files),
        "points_count": int(len(prob_table)),
        "segments": n_seg,
        "segment_px": SEGMENT_PX,
        "blend_sigma_px": BLEND_SIGMA_PX,
        "region": str(region),
        "region_choice": "nearest |latitude|" if latitude is not None else "best land-cover fit",
        "distinct_vectors": int(len(np.unique(chosen))),
        "seed": int(seed),
        "haze_correction": "dark-object subtraction (L1C input)" if top_of_atmosphere else None,
        "land_cover_classes": share,
        "land_cover_share": cover.dynamic_world_fractions(),
        "valid_fraction": round(float(valid.mean()), 4),
        "level_offset_db": [round(float(v), 3) for v in level_offset_db],
    }
    return out, record


def proxy_source_text(record: dict[str, Any]) -> str:
    """The ``embedding_source`` value: says 'proxy' first, then how it was made."""
    return (
        f"{PROXY_PREFIX}: real AlphaEarth 2024 vectors from {POINTS_DIRNAME} (other places), one per "
        f"object of this scene's Sentinel-2 optical, chosen by its land cover and, within the class, its "
        f"texture and NDVI, blended across object boundaries; not AlphaEarth for this place; never from its "
        f"Sentinel-1 (recipe v{record.get('version', PROXY_VERSION)})"
    )


def add_proxy_embedding(scene: Scene, points_dir: str | os.PathLike | None = None, force: bool = False) -> Scene:
    """The scene with a proxy embedding layer, marked as such in its provenance.

    A scene that has a real embedding is returned unchanged (a proxy never replaces one); a
    scene that already has a proxy is returned unchanged unless ``force``. Raises
    :class:`ProxyUnavailable` when the scene has no optical layer or no point table is found.
    """
    if scene.embedding is not None and not (force and is_proxy(scene)):
        return scene
    if scene.optical is None:
        raise ProxyUnavailable(
            f"scene {scene.scene_id or '(unnamed)'} has no Sentinel-2 optical layer; a proxy "
            "embedding is made from optical land cover only (never from Sentinel-1)"
        )
    folder = Path(points_dir).expanduser() if points_dir is not None else default_points_dir()
    if folder is None or not folder.is_dir():
        raise ProxyUnavailable(
            f"the AlphaEarth sample points ({POINTS_DIRNAME}) were not found; pass their folder or set {POINTS_ENV}"
        )
    seed = zlib.crc32((scene.scene_id or "scene").encode())
    toa = str(scene.provenance.get("optical_level") or "").upper().startswith("L1C")
    dataset = str(scene.provenance.get("source") or "").removeprefix("import:").split("-")[0] or None
    offsets, offsets_from = level_offsets(dataset)
    field, record = build_proxy_embedding(
        scene.optical,
        folder,
        seed=seed,
        top_of_atmosphere=toa,
        latitude=scene.center_latlon[0],
        level_offset_db=offsets,
    )
    record["level_offsets_from"] = offsets_from
    # The vectors do not depend on the angle (the points' Sentinel-1 are annual medians at their
    # own angles); the generator applies the scene's angle when it has one. Say which it will be.
    if scene.angle_deg is not None and np.isfinite(scene.angle_deg).any():
        record["incidence_angle"] = (
            f"from the scene's angle layer ({float(np.nanmin(scene.angle_deg)):.1f}–"
            f"{float(np.nanmax(scene.angle_deg)):.1f}°)"
        )
    else:
        record["incidence_angle"] = (
            "unknown: the scene carries no incidence angle; generators use their default "
            "(mid-swath) or the angle the user sets"
        )
    provenance = {**scene.provenance, "embedding_source": proxy_source_text(record), "embedding_proxy": record}
    return replace(scene, embedding=field, provenance=provenance)
