"""Land cover from one Sentinel-2 image, in classes a SAR scientist reads backscatter by.

Rules, not a learned model: thresholds are textbook values for surface reflectance
(McFeeters 1996, Xu 2006, Hall 1995 and the usual NDVI bands), none fitted to any sample's
SAR; four rule details were set while inspecting the *optical* class maps of two bundled
samples (``docs/embedding_proxy.md`` says which). Inputs: B2, B3, B4, B8 (what a sarviz scene
stores) and, where the caller has them, SWIR B11/B12 (the sample files carry them; the scene
format does not), which add MNDWI for water, NDBI for built-up and NDSI for snow.

Classes (:data:`CLASSES`), each mapped to a Dynamic World class (:data:`TO_DYNAMIC_WORLD`):

* ``water`` — MNDWI > 0.1 (Xu 2006) with SWIR, else McFeeters NDWI > 0.05, or a near-black
  NIR (< 0.07) without vegetation or texture (shallow, turbid or vegetated flood water often
  has NDWI < 0; a shadow between buildings is as dark, but textured);
  either way dark (NIR < 0.12, visible < 0.2: snow and cloud also have a high NDWI, but are bright).
* ``snow_and_ice`` — bright (visible > 0.3), unvegetated, and NDSI > 0.4 with SWIR (Hall 1995).
* ``built`` — unvegetated (NDVI < 0.3), not soil-red (red–blue slope < 0.4: concrete is grey,
  clay roofs are less red than bare soil) and *textured*: the coefficient of variation of
  visible brightness in 5×5 px, averaged over 11×11 px, exceeds 0.13 (streets, roofs and
  shadows alternate at 10 m; a field or bare plain is smooth); NDBI > 0 with SWIR; not in a
  snowy landscape (≥ 20 % snow within 31×31 px: there the texture is snow between tree shadows).
* ``trees`` — NDVI > 0.7 and dark in the visible (< 0.05): a closed canopy absorbs.
* ``irrigated_crops`` / ``grass`` — green vegetation (NDVI > 0.45). One date cannot tell crops from grass spectrally; the landscape can: green
  vegetation in a *dry landscape* (≥ 30 % of the 31×31 px around, or of the whole image, is
  unvegetated, NDVI < 0.3) is irrigated cropland; in a green landscape it is grass (pasture,
  meadow). Sparse vegetation (NDVI 0.3–0.45) in a dry landscape counts as cropland too
  (orchards, young or senescent crops), elsewhere as ``shrub_and_scrub``.
* ``fallow`` — unvegetated (NDVI 0.12–0.3) land among fields (a dry landscape, or parcel
  edges: NDVI standard deviation in 7×7 px, averaged over 11×11 px, > 0.1): stubble,
  ploughed soil. ``bare`` — NDVI < 0.12, or unvegetated land without fields around.

Memberships are soft (logistic ramps around each threshold), so every pixel gets class
probabilities; the highest is its label and its value the *confidence*. Images smaller than
16 px on a side have no neighbourhood: their green vegetation is ``grass``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

CLASSES: tuple[str, ...] = (
    "water",
    "snow_and_ice",
    "built",
    "trees",
    "irrigated_crops",
    "grass",
    "fallow",
    "bare",
    "shrub_and_scrub",
)
#: Dynamic World class of each class (fallow fields are cropland to Dynamic World's definition)
TO_DYNAMIC_WORLD: dict[str, str] = {
    "water": "water",
    "snow_and_ice": "snow_and_ice",
    "built": "built",
    "trees": "trees",
    "irrigated_crops": "crops",
    "grass": "grass",
    "fallow": "crops",
    "bare": "bare",
    "shrub_and_scrub": "shrub_and_scrub",
}
DW_CLASSES: tuple[str, ...] = (
    "water",
    "trees",
    "grass",
    "flooded_vegetation",
    "crops",
    "shrub_and_scrub",
    "built",
    "bare",
    "snow_and_ice",
)
PHRASES = {
    "irrigated_crops": "irrigated cropland",
    "fallow": "fallow fields",
    "built": "built-up area",
    "bare": "bare soil",
    "water": "water",
    "trees": "forest",
    "grass": "grassland",
    "shrub_and_scrub": "shrubland",
    "snow_and_ice": "snow and ice",
}
RULES_VERSION = "3"
METHOD = f"Sentinel-2 spectral and texture rules v{RULES_VERSION}"

# thresholds (surface reflectance factor); widths are the soft ramps around them
NDWI_WATER, MNDWI_WATER, NIR_WATER, NIR_BLACK = 0.05, 0.1, 0.12, 0.07
VIS_SNOW, NDSI_SNOW, SNOW_CONTEXT = 0.30, 0.4, 0.2
NDVI_BARE, NDVI_SPARSE, NDVI_GREEN, NDVI_TREES = 0.12, 0.30, 0.45, 0.70
VIS_CANOPY = 0.05
TEXTURE_BUILT = 0.13
SLOPE_ROOF = 0.40  # grey concrete ~0, red clay tiles ~0.3; soil and rock redder still
VIS_WATER = 0.20  # water is dark in the visible too (turbid flood water included); snow is not
PARCEL_NDVI_STD = 0.10
DRY_CONTEXT = 0.30
TEXTURE_PX, PARCEL_PX, OBJECT_PX, CONTEXT_PX = 5, 7, 11, 31
CONTEXT_MIN_PX = 16


def _ramp(x: np.ndarray, threshold: float, width: float) -> np.ndarray:
    """Soft step 0 → 1 around ``threshold`` (logistic, 10–90 % over ±2·width)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return 1.0 / (1.0 + np.exp(-(x - threshold) / width))


def _local_mean(a: np.ndarray, size: int) -> np.ndarray:
    return ndimage.uniform_filter(a, size=size, mode="reflect")


def _local_std(a: np.ndarray, size: int) -> np.ndarray:
    m = _local_mean(a, size)
    return np.sqrt(np.clip(_local_mean(a * a, size) - m * m, 0.0, None))


def dark_object_subtraction(optical: np.ndarray, floor: float = 0.01) -> np.ndarray:
    """Top-of-atmosphere → roughly surface reflectance by dark-object subtraction (Chavez 1988).

    Each band's 1st percentile is taken as haze and moved down to ``floor`` (a dark object
    still reflects about 1 %). For L1C optical; the thresholds are surface values.
    """
    out = np.array(optical, np.float32, copy=True)
    for i in range(out.shape[0]):
        dark = np.nanpercentile(out[i], 1.0) if np.isfinite(out[i]).any() else 0.0
        out[i] = out[i] - max(float(dark) - floor, 0.0)
    return out


@dataclass
class OpticalFeatures:
    """Per-pixel spectral indices and texture (NaN-free; ``valid`` says where the image is)."""

    ndvi: np.ndarray
    ndwi: np.ndarray
    visible: np.ndarray
    nir: np.ndarray
    slope: np.ndarray  # (B4 − B2)/(B4 + B2): soil and rock are red, water, snow and roofs grey-blue
    texture: np.ndarray  # coefficient of variation of visible brightness (5×5 px), averaged over 11×11 px
    parcel: np.ndarray  # NDVI standard deviation (7×7 px: field edges), averaged over 11×11 px
    dry_context: np.ndarray  # share of unvegetated pixels within 31×31 px or in the whole image (the larger)
    valid: np.ndarray
    mndwi: np.ndarray | None = None
    ndbi: np.ndarray | None = None
    ndsi: np.ndarray | None = None


def optical_features(optical: np.ndarray, swir: np.ndarray | None = None) -> OpticalFeatures:
    """Indices and texture of (4, H, W) B2, B3, B4, B8 (+ optional (2, H, W) B11, B12) reflectance."""
    optical = np.asarray(optical, np.float32)
    valid = np.isfinite(optical).all(axis=0)
    if swir is not None:
        swir = np.asarray(swir, np.float32)
        valid &= np.isfinite(swir).all(axis=0)
    # fill gaps with the band median so that the local filters do not spread NaN; gaps stay invalid
    fill = np.array([np.nanmedian(b) if np.isfinite(b).any() else 0.0 for b in optical], np.float32)
    b2, b3, b4, b8 = (np.where(valid, optical[i], fill[i]) for i in range(4))
    eps = np.float32(1e-6)
    ndvi = (b8 - b4) / (b8 + b4 + eps)
    visible = (b2 + b3 + b4) / 3.0
    small = min(valid.shape) < CONTEXT_MIN_PX
    feats = OpticalFeatures(
        ndvi=ndvi,
        ndwi=(b3 - b8) / (b3 + b8 + eps),
        visible=visible,
        nir=b8,
        slope=(b4 - b2) / (b4 + b2 + eps),
        # texture and parcel structure are read at object scale (11×11 px): a town or a field
        # pattern is an area, not the single pixel of a road or a field edge
        texture=_local_mean(_local_std(visible, TEXTURE_PX) / (_local_mean(visible, TEXTURE_PX) + 0.02), OBJECT_PX),
        parcel=np.zeros_like(ndvi) if small else _local_mean(_local_std(ndvi, PARCEL_PX), OBJECT_PX),
        dry_context=np.zeros_like(ndvi)
        if small
        else np.maximum(
            _local_mean((ndvi < NDVI_SPARSE).astype(np.float32), CONTEXT_PX),
            float((ndvi[valid] < NDVI_SPARSE).mean()) if valid.any() else 0.0,
        ),
        valid=valid,
    )
    if small:  # no neighbourhood: no texture either
        feats.texture = np.zeros_like(ndvi)
    if swir is not None:
        fill_s = np.array([np.nanmedian(b) if np.isfinite(b).any() else 0.0 for b in swir], np.float32)
        b11 = np.where(valid, swir[0], fill_s[0])
        feats.mndwi = (b3 - b11) / (b3 + b11 + eps)
        feats.ndbi = (b11 - b8) / (b11 + b8 + eps)
        feats.ndsi = feats.mndwi  # NDSI (Hall 1995) is (green − SWIR)/(green + SWIR), the same ratio
    return feats


@dataclass
class OpticalLandCover:
    """Class probabilities (len(CLASSES), H, W), NaN outside the image, and how they were made."""

    probabilities: np.ndarray
    features: OpticalFeatures
    method: str

    @property
    def valid(self) -> np.ndarray:
        return self.features.valid

    @property
    def labels(self) -> np.ndarray:
        """(H, W) class index into :data:`CLASSES`, −1 outside the image."""
        out = np.nan_to_num(self.probabilities, nan=-1.0).argmax(axis=0)
        return np.where(self.valid, out, -1)

    @property
    def confidence(self) -> np.ndarray:
        """(H, W) probability of the chosen class (NaN outside the image)."""
        return np.where(self.valid, np.nan_to_num(self.probabilities, nan=0.0).max(axis=0), np.nan)

    def dynamic_world_probabilities(self) -> np.ndarray:
        """(9, H, W) probabilities over the Dynamic World classes (flooded vegetation never)."""
        out = np.zeros((len(DW_CLASSES),) + self.valid.shape, np.float32)
        for i, c in enumerate(CLASSES):
            out[DW_CLASSES.index(TO_DYNAMIC_WORLD[c])] += np.nan_to_num(self.probabilities[i])
        out[:, ~self.valid] = np.nan
        return out

    def dynamic_world_labels(self) -> np.ndarray:
        """(H, W) Dynamic World class index of each pixel's class, −1 outside the image."""
        lut = np.array([DW_CLASSES.index(TO_DYNAMIC_WORLD[c]) for c in CLASSES] + [-1])
        return lut[self.labels]  # label −1 → the last entry, −1

    def fractions(self) -> dict[str, float]:
        """Share of valid pixels per class (:data:`CLASSES`), rounded; classes absent are left out."""
        lab = self.labels[self.valid]
        if lab.size == 0:
            return {}
        counts = np.bincount(lab, minlength=len(CLASSES)) / lab.size
        return {c: round(float(s), 4) for c, s in zip(CLASSES, counts) if s > 0}

    def dynamic_world_fractions(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for c, s in self.fractions().items():
            dw = TO_DYNAMIC_WORLD[c]
            out[dw] = round(out.get(dw, 0.0) + s, 4)
        return out

    def mean_confidence(self) -> float:
        conf = self.confidence[self.valid]
        return float(conf.mean()) if conf.size else float("nan")


def classify(optical: np.ndarray, swir: np.ndarray | None = None, top_of_atmosphere: bool = False) -> OpticalLandCover:
    """Soft land cover of (4, H, W) B2, B3, B4, B8 reflectance (and optional B11, B12).

    ``top_of_atmosphere``: L1C input; haze is removed first by dark-object subtraction
    (of the SWIR bands too).
    """
    optical = np.asarray(optical, np.float32)
    if optical.ndim != 3 or optical.shape[0] < 4:
        raise ValueError(f"optical must be (4, H, W) B2, B3, B4, B8; got shape {optical.shape}")
    optical = optical[:4]
    if top_of_atmosphere:
        optical = dark_object_subtraction(optical)
        swir = dark_object_subtraction(swir) if swir is not None else None
    f = optical_features(optical, swir)
    dark = _ramp(-f.visible, -VIS_WATER, 0.02) * _ramp(-f.nir, -NIR_WATER, 0.015)
    index = _ramp(f.mndwi, MNDWI_WATER, 0.04) if f.mndwi is not None else _ramp(f.ndwi, NDWI_WATER, 0.04)
    # shallow, turbid or vegetated flood water often has NDWI < 0 but a NIR nearly as dark as open water
    # (water is smooth: dark NIR in a textured area is a shadow between buildings)
    black_nir = (
        _ramp(-f.nir, -NIR_BLACK, 0.01)
        * _ramp(-f.ndvi, -NDVI_SPARSE, 0.03)
        * (1.0 - _ramp(f.texture, TEXTURE_BUILT, 0.03))
    )
    water = (1.0 - (1.0 - index) * (1.0 - black_nir)) * dark
    unveg = _ramp(-f.ndvi, -NDVI_SPARSE, 0.03)  # NDVI below 0.3
    snow = _ramp(f.visible, VIS_SNOW, 0.03) * unveg
    if f.ndsi is not None:
        snow = snow * _ramp(f.ndsi, NDSI_SNOW, 0.05)
    built = unveg * _ramp(f.texture, TEXTURE_BUILT, 0.03) * _ramp(-f.slope, -SLOPE_ROOF, 0.04)
    if f.ndbi is not None:
        built = built * _ramp(f.ndbi, 0.0, 0.04)
    if min(f.valid.shape) >= CONTEXT_MIN_PX:  # in a snowy landscape, texture is snow between tree shadows
        built = built * (1.0 - _ramp(_local_mean(snow, CONTEXT_PX), SNOW_CONTEXT, 0.05))
    green = _ramp(f.ndvi, NDVI_GREEN, 0.03)
    trees = _ramp(f.ndvi, NDVI_TREES, 0.03) * _ramp(-f.visible, -VIS_CANOPY, 0.008)
    parcels = _ramp(f.parcel, PARCEL_NDVI_STD, 0.02)
    dry = _ramp(f.dry_context, DRY_CONTEXT, 0.05)
    cropland = dry  # green among dry land is irrigated
    fields = 1.0 - (1.0 - parcels) * (1.0 - dry)  # unvegetated land among parcels or irrigated fields lies fallow
    sparse = (1.0 - unveg) * (1.0 - green)  # NDVI 0.3–0.45
    leafy = green * (1.0 - trees)
    scores = {
        "water": water,
        "snow_and_ice": (1 - water) * snow,
        "built": (1 - water) * (1 - snow) * built,
        "trees": (1 - water) * green * trees,
        "irrigated_crops": (1 - water) * (leafy + sparse) * cropland,
        "grass": (1 - water) * leafy * (1 - cropland),
        "fallow": (1 - water) * (1 - snow) * (1 - built) * unveg * _ramp(f.ndvi, NDVI_BARE, 0.03) * fields,
        "bare": (1 - water) * (1 - snow) * (1 - built) * unveg * (1 - _ramp(f.ndvi, NDVI_BARE, 0.03) * fields),
        "shrub_and_scrub": (1 - water) * sparse * (1 - cropland),
    }
    probs = np.stack([scores[c] for c in CLASSES]).astype(np.float32) + np.float32(1e-6)
    probs /= probs.sum(axis=0, keepdims=True)
    probs[:, ~f.valid] = np.nan
    return OpticalLandCover(
        probs,
        f,
        METHOD + (" with SWIR" if swir is not None else "") + (", haze removed (L1C)" if top_of_atmosphere else ""),
    )


def confidence_word(confidence: float) -> str:
    """'high' (≥ 0.8), 'moderate' (≥ 0.6) or 'low' mean rule confidence."""
    if not np.isfinite(confidence):
        return "unknown"
    return "high" if confidence >= 0.8 else "moderate" if confidence >= 0.6 else "low"
