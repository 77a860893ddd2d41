"""A proxy embedding field for scenes that have no AlphaEarth embedding.

The bundled sample chips (Sen1Floods11, BigEarthNet, SSL4EO-S12) carry optical and real
Sentinel-1 but no AlphaEarth patch, and none can be downloaded offline. Every generator
conditions on the 64-D embedding, so without one nothing can be generated. This module
builds an *honest proxy*:

1. **Land cover from the scene's own optical layer.** Each pixel's Sentinel-2 B2/B3/B4/B8
   gives four spectral features (NDVI, McFeeters NDWI, visible brightness, a red–blue
   slope); a soft nearest-prototype rule turns them into probabilities over the nine
   Dynamic World classes (water, trees, grass, flooded vegetation, crops, shrub & scrub,
   built, bare, snow & ice). The prototypes are textbook spectral signatures (see
   ``docs/embedding_proxy.md``); they are a coarse classifier, not Dynamic World.
2. **Spatial coherence.** The optical image is cut into SLIC superpixels (scikit-image),
   about 12×12 px each, so that a field or a water body gets one land-cover estimate —
   AlphaEarth fields are smooth at that scale.
3. **Real AlphaEarth vectors.** All vectors come from one region of ``alphaearth_s1_points``
   (Amazonas, coastal California or Iowa): the one nearest to the scene in absolute
   latitude, a rough stand-in for climate and season. Each superpixel takes the real 2024
   vector of the point whose Dynamic World probability profile is nearest to its own (ties
   broken by a draw seeded with the scene id). Every pixel thus holds a real, unit-length
   AlphaEarth vector of a place with that land cover — not of this place.

The scene's real Sentinel-1 is never read here: the proxy must not leak the answer into a
comparison of generated and real SAR. A scene without optical gets no proxy. A scene that
already has an embedding keeps it: a proxy never replaces a real embedding.

The result is marked: ``scene.provenance["embedding_source"]`` starts with ``"proxy"`` and
says how it was made, ``scene.provenance["embedding_proxy"]`` holds the details, the scene
file carries an ``EMBEDDING_SOURCE`` tag, and generators copy the field into every result.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from sarviz.scene import EMBEDDING_BANDS, Scene, SceneError

#: version of the recipe below; bump it when the output for a scene would change
PROXY_VERSION = "2"
PROXY_PREFIX = "proxy"
POINTS_ENV = "SARVIZ_PROXY_POINTS"
POINTS_DIRNAME = "alphaearth_s1_points"
#: Dynamic World class order (GOOGLE/DYNAMICWORLD/V1 label values 0..8)
DW_CLASSES: tuple[str, ...] = ("water", "trees", "grass", "flooded_vegetation", "crops", "shrub_and_scrub",
                               "built", "bare", "snow_and_ice")
# Spectral prototypes per class: (NDVI, NDWI, visible brightness, red–blue slope). Typical
# values for Sentinel-2 reflectance (water: NDWI > 0 and dark; dense forest: NDVI ≈ 0.8 and
# dark in the visible; bare soil: bright and reddish; built: grey, moderately bright; snow:
# very bright and neutral). Crops and grass are not separable from one date; the matching
# step below picks points whose own Dynamic World profile mixes them the same way.
_PROTOTYPES = np.array([
    [-0.25, 0.35, 0.05, -0.25],  # water
    [0.80, -0.68, 0.04, -0.05],  # trees
    [0.55, -0.52, 0.07, 0.05],   # grass
    [0.35, -0.25, 0.05, -0.10],  # flooded vegetation
    [0.62, -0.58, 0.07, 0.00],   # crops
    [0.30, -0.35, 0.10, 0.20],   # shrub & scrub
    [0.10, -0.15, 0.14, 0.05],   # built
    [0.08, -0.15, 0.22, 0.28],   # bare
    [0.00, 0.05, 0.60, -0.05],   # snow & ice
], dtype=np.float32)
_FEATURE_SCALE = np.array([0.15, 0.15, 0.05, 0.12], dtype=np.float32)
SEGMENT_PX = 12  # superpixel side, pixels (~120 m at 10 m)
TOP_K = 5  # equally near points among which a seeded draw decides


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
    return ("Made from a PROXY embedding, not AlphaEarth for this place (real AlphaEarth vectors of other places "
            "chosen by the scene's optical land cover). Read its comparison with the real image with that in mind.")


def default_points_dir(near: str | os.PathLike | None = None) -> Path | None:
    """The folder of AlphaEarth sample points: ``SARVIZ_PROXY_POINTS``, else beside ``near``
    (an import source), else ``../shared/samples/alphaearth_s1_points`` beside the checkout."""
    candidates = []
    if os.environ.get(POINTS_ENV):
        candidates.append(Path(os.environ[POINTS_ENV]).expanduser())
    if near is not None:
        near = Path(near).expanduser()
        candidates += [near / POINTS_DIRNAME, near / "samples" / POINTS_DIRNAME]
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "samples" / POINTS_DIRNAME)
    for c in candidates:
        if c.is_dir() and any(c.glob("*.csv")):
            return c
    return None


@lru_cache(maxsize=4)
def _load_points(points_dir: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray, np.ndarray]:
    """(embeddings (N, 64), Dynamic World probabilities (N, 9), file names, region and latitude of each point)."""
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
        frames.append(part)
    table = pd.concat(frames, ignore_index=True)
    emb = table[list(EMBEDDING_BANDS)].to_numpy(np.float32)
    probs = table[list(DW_CLASSES)].to_numpy(np.float32, copy=True)
    probs /= np.clip(probs.sum(axis=1, keepdims=True), 1e-6, None)
    return emb, probs, tuple(f.name for f in files), table["_region"].to_numpy(), table["_lat"].to_numpy()


def land_cover_probabilities(optical: np.ndarray) -> np.ndarray:
    """(9, H, W) soft Dynamic World class probabilities from B2, B3, B4, B8 reflectance.

    NaN where the optical layer is missing.
    """
    b2, b3, b4, b8 = (np.asarray(optical[i], np.float32) for i in range(4))
    eps = np.float32(1e-6)
    with np.errstate(divide="ignore", invalid="ignore"):
        feats = np.stack([
            (b8 - b4) / (b8 + b4 + eps),          # NDVI
            (b3 - b8) / (b3 + b8 + eps),          # NDWI (McFeeters)
            (b2 + b3 + b4) / 3.0,                 # visible brightness
            (b4 - b2) / (b4 + b2 + eps),          # red–blue slope (soil/rock vs water/snow)
        ], axis=-1)
    z = (feats[..., None, :] - _PROTOTYPES) / _FEATURE_SCALE  # (H, W, 9, 4)
    logits = -0.5 * np.sum(z * z, axis=-1)
    with np.errstate(invalid="ignore"):
        logits = logits - np.max(logits, axis=-1, keepdims=True)  # NaN pixels stay NaN
    p = np.exp(logits)
    p /= np.sum(p, axis=-1, keepdims=True)
    return np.moveaxis(p, -1, 0).astype(np.float32)


def dark_object_subtraction(optical: np.ndarray, floor: float = 0.01) -> np.ndarray:
    """Top-of-atmosphere → roughly surface reflectance by dark-object subtraction (Chavez 1988).

    Each band's 1st percentile is taken as haze and moved down to ``floor`` (a dark object
    still reflects about 1 %). Used for L1C optical only; the prototypes are surface values.
    """
    out = np.array(optical, np.float32, copy=True)
    for i in range(out.shape[0]):
        dark = np.nanpercentile(out[i], 1.0) if np.isfinite(out[i]).any() else 0.0
        out[i] = out[i] - max(float(dark) - floor, 0.0)
    return out


def _segments(optical: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """SLIC superpixels of the optical image (label −1 outside ``valid``)."""
    from skimage.segmentation import slic

    h, w = valid.shape
    img = np.nan_to_num(np.moveaxis(optical, 0, -1), nan=0.0)
    img = np.clip(img / 0.3, 0.0, 1.5)  # reflectance → roughly unit range for SLIC's colour distance
    n_segments = max(1, int(round(h * w / SEGMENT_PX**2)))
    labels = slic(img, n_segments=n_segments, compactness=0.1, channel_axis=-1, start_label=0,
                  mask=valid if not valid.all() else None, convert2lab=False, enforce_connectivity=True)
    labels = labels.astype(np.int64)
    labels[~valid] = -1
    return labels


def build_proxy_embedding(optical: np.ndarray, points_dir: str | os.PathLike, seed: int = 0,
                          top_of_atmosphere: bool = False, latitude: float | None = None
                          ) -> tuple[np.ndarray, dict[str, Any]]:
    """The (64, H, W) proxy field for an optical layer, and a record of how it was made.

    ``top_of_atmosphere``: the optical layer is L1C (TOA); haze is removed first.
    ``latitude``: the scene's; the vectors come from the sample region nearest in absolute
    latitude (a rough stand-in for climate and season). Without it, from the region whose
    land-cover profiles fit the scene best.
    """
    emb_table, prob_table, files, regions, point_lat = _load_points(str(Path(points_dir).resolve()))
    optical = np.asarray(optical, np.float32)
    if top_of_atmosphere:
        optical = dark_object_subtraction(optical)
    valid = np.isfinite(optical).all(axis=0)
    if not valid.any():
        raise ProxyUnavailable("the optical layer has no valid pixel")
    probs = land_cover_probabilities(optical)
    labels = _segments(optical, valid)
    n_seg = int(labels.max()) + 1
    flat = labels.ravel()
    inside = flat >= 0
    counts = np.bincount(flat[inside], minlength=n_seg).astype(np.float32)
    seg_probs = np.stack([np.bincount(flat[inside], weights=probs[c].ravel()[inside], minlength=n_seg)
                          for c in range(len(DW_CLASSES))], axis=1) / np.clip(counts[:, None], 1, None)
    # Distances in Dynamic World probability space, segments × points. All vectors come from one
    # region: vectors of one region share its climate and season, so neighbouring segments of
    # one class stay alike (mixing Amazonas and Iowa vectors patch by patch gave a salt-and-
    # pepper field). The region is the one nearest in |latitude| (Spain and Punjab → coastal
    # California, central Europe → Iowa, the tropics → Amazonas); the profile fit decides only
    # when the latitude is unknown (it favours the region with the most varied profiles).
    d2 = ((seg_probs[:, None, :] - prob_table[None, :, :]) ** 2).sum(axis=-1)
    weights = counts / max(counts.sum(), 1)
    fit = {r: float((d2[:, regions == r].min(axis=1) * weights).sum()) for r in np.unique(regions)}
    region_lat = {r: float(np.nanmean(np.abs(point_lat[regions == r]))) for r in fit}
    if latitude is not None and all(np.isfinite(v) for v in region_lat.values()):
        region = min(region_lat, key=lambda r: abs(region_lat[r] - abs(latitude)))
    else:
        region = min(fit, key=fit.get)
    in_region = np.flatnonzero(regions == region)
    d2 = d2[:, in_region]
    # the nearest point, with a seeded draw among the TOP_K nearest only where they are equally near
    k = min(TOP_K, len(in_region))
    nearest = np.argsort(d2, axis=1)[:, :k]
    near_d = np.take_along_axis(d2, nearest, axis=1)
    rng = np.random.default_rng(seed)
    ties = (near_d <= near_d[:, :1] + 1e-4).sum(axis=1)
    chosen = in_region[nearest[np.arange(n_seg), rng.integers(0, ties)]]
    seg_emb = emb_table[chosen]  # (segments, 64), real AlphaEarth vectors
    out = np.full((len(EMBEDDING_BANDS),) + valid.shape, np.nan, np.float32)
    out[:, valid] = seg_emb[labels[valid]].T
    seg_class = seg_probs.argmax(axis=1)
    share = np.bincount(seg_class, weights=counts, minlength=len(DW_CLASSES)) / max(counts.sum(), 1)
    record = {
        "method": "slic-superpixels+spectral-land-cover+nearest-dynamic-world-profile",
        "version": PROXY_VERSION,
        "points": list(files),
        "points_count": int(len(prob_table)),
        "segments": n_seg,
        "segment_px": SEGMENT_PX,
        "region": str(region),
        "region_choice": "nearest |latitude|" if latitude is not None else "best land-cover fit",
        "distinct_vectors": int(len(np.unique(chosen))),
        "seed": int(seed),
        "haze_correction": "dark-object subtraction (L1C input)" if top_of_atmosphere else None,
        "land_cover_share": {c: round(float(s), 4) for c, s in zip(DW_CLASSES, share) if s > 0},
        "valid_fraction": round(float(valid.mean()), 4),
    }
    return out, record


def proxy_source_text(record: dict[str, Any]) -> str:
    """The ``embedding_source`` value: says 'proxy' first, then how it was made."""
    return (f"{PROXY_PREFIX}: real AlphaEarth 2024 vectors from {POINTS_DIRNAME} (other places), one per "
            f"superpixel of this scene's Sentinel-2 optical, chosen by spectral land cover "
            f"(Dynamic World classes); not AlphaEarth for this place; never from its Sentinel-1 "
            f"(recipe v{record.get('version', PROXY_VERSION)})")


def add_proxy_embedding(scene: Scene, points_dir: str | os.PathLike | None = None, force: bool = False) -> Scene:
    """The scene with a proxy embedding layer, marked as such in its provenance.

    A scene that has a real embedding is returned unchanged (a proxy never replaces one); a
    scene that already has a proxy is returned unchanged unless ``force``. Raises
    :class:`ProxyUnavailable` when the scene has no optical layer or no point table is found.
    """
    if scene.embedding is not None and not (force and is_proxy(scene)):
        return scene
    if scene.optical is None:
        raise ProxyUnavailable(f"scene {scene.scene_id or '(unnamed)'} has no Sentinel-2 optical layer; a proxy "
                               "embedding is made from optical land cover only (never from Sentinel-1)")
    folder = Path(points_dir).expanduser() if points_dir is not None else default_points_dir()
    if folder is None or not folder.is_dir():
        raise ProxyUnavailable(f"the AlphaEarth sample points ({POINTS_DIRNAME}) were not found; pass their "
                               f"folder or set {POINTS_ENV}")
    seed = zlib.crc32((scene.scene_id or "scene").encode())
    toa = str(scene.provenance.get("optical_level") or "").upper().startswith("L1C")
    field, record = build_proxy_embedding(scene.optical, folder, seed=seed, top_of_atmosphere=toa,
                                          latitude=scene.center_latlon[0])
    provenance = {**scene.provenance, "embedding_source": proxy_source_text(record), "embedding_proxy": record}
    return replace(scene, embedding=field, provenance=provenance)
