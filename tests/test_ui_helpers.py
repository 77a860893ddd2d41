"""Small UI helpers: the fetch report about the scene on screen, local web assets, the Generate blocker."""

from __future__ import annotations

import folium
import pytest

from conftest import make_scene
from sarviz.ui import webassets
from sarviz.ui.fetch import report_lines
from sarviz.ui.generate import embedding_blocker


def test_fetch_report_does_not_deny_the_scene_on_screen():
    lines = [
        "Scene for 38.1, -0.76 in 3 s",
        "MISSING AlphaEarth embedding:",
        "  - local: no scene in /x covers this patch",
        "  - public: connection refused",
    ]
    scene = make_scene(size=(8, 8), scene_id="sen1floods11_Spain_7370579", layers=("optical",))
    out = report_lines(lines, scene)
    assert not any("no scene" in line for line in out)
    assert "  - local: the scene on screen (sen1floods11_Spain_7370579) has no such layer for this patch" in out
    assert out[-1] == lines[-1] and report_lines(lines, None) == lines


def test_webassets_install_and_localize(tmp_path):
    cache, static = tmp_path / "cache", tmp_path / "static"
    assert set(webassets.install(cache, static)) == set(webassets.PACKAGES)  # nothing fetched yet
    fmap = folium.Map(tiles=None)
    assert not webassets.localize(fmap, static)  # no local Leaflet: the CDN links stay
    assert any("cdn.jsdelivr.net" in url for _, url in fmap.default_js)
    for name, (_, files) in webassets.PACKAGES.items():
        for f in files:
            (cache / name / "package" / f).parent.mkdir(parents=True, exist_ok=True)
            (cache / name / "package" / f).write_text(f"/* {name} {f} */")
    assert webassets.install(cache, static) == []
    assert (static / "leaflet" / "dist" / "leaflet.js").read_text() == "/* leaflet dist/leaflet.js */"
    assert webassets.localize(fmap, static)
    urls = [url for _, url in fmap.default_js + fmap.default_css]
    assert "/app/static/vendor/leaflet/dist/leaflet.js" in urls
    assert all(u.startswith("/app/static/vendor/") for u in urls)  # icon fonts etc. dropped


def test_generate_blocker_says_why_and_the_way_out():
    with_optical = make_scene(size=(8, 8), scene_id="a", layers=("optical", "vv_db"))
    text = embedding_blocker(with_optical)
    assert "no AlphaEarth embedding" in text and "Fetch this place" in text and "add-proxy-embedding" in text
    assert "no proxy can be made" in embedding_blocker(make_scene(size=(8, 8), layers=("vv_db",)))
    assert embedding_blocker(make_scene(size=(8, 8))) is None


def test_missing_weights_message_is_short_with_details_on_demand(capsys):
    """`sarviz models`: one short line for a model without weights; `--details` has the paths and how-to."""
    from sarviz.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    problems = [line for line in out.splitlines() if "weights are missing" in line]
    if not problems:
        pytest.skip("every model's weights are on this machine")
    problem = problems[0]
    assert len(problem) < 160 and "ControlNet folder" in problem
    assert "`sarviz models --details`" in out
    assert main(["models", "--details"]) == 0
    assert "How to get them" in capsys.readouterr().out
