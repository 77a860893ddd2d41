"""`--place NAME` on the command line and the `place` column of points files: one gazetteer,
the resolved place printed, ambiguous names refused with their candidates."""

from __future__ import annotations

import pytest

from sarviz import cli
from sarviz.commands.fetch import read_points


def test_generate_place_almoradi_runs_on_the_samples_and_says_where(sample_scenes, tmp_path, capsys):
    out = tmp_path / "almoradi.tif"
    assert (
        cli.main(
            [
                "generate",
                "--place",
                "Almoradí",
                "--model",
                "emulator",
                "--scenes",
                str(sample_scenes),
                "--size",
                "64",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "--place 'Almoradí' → Almoradí, Spain — town" in err
    # the town's centre lies 2.9 km off the Spain chip: the nearest scene is used, and said so
    assert "using the nearest scene sen1floods11_Spain_7370579" in err and out.is_file()


def test_generate_place_refuses_ambiguous_names_and_both_kinds_of_point(sample_scenes, tmp_path, capsys):
    base = ["generate", "--model", "emulator", "--scenes", str(sample_scenes), "--out", str(tmp_path / "x.tif")]
    assert cli.main(base + ["--place", "Punjab"]) == 2
    err = capsys.readouterr().err
    assert "Several places are named 'Punjab'" in err and "Punjab, Pakistan" in err and "Punjab, India" in err
    assert cli.main(base + ["--place", "Murica"]) == 2  # a typo is listed, not guessed
    assert "Murcia, Spain" in capsys.readouterr().err
    assert cli.main(base + ["--place", "Almoradí", "--lat", "38.1", "--lon", "-0.7"]) == 2
    assert "either --place or --lat/--lon" in capsys.readouterr().err
    assert not (tmp_path / "x.tif").exists()


def test_fetch_place_is_exclusive_with_lat_lon(tmp_path, capsys):
    assert cli.main(["fetch", "--place", "Almoradí", "--lat", "1", "--lon", "2", "--out", str(tmp_path / "s")]) == 2
    assert "one of --place, --lat/--lon or --points" in capsys.readouterr().err


def test_points_file_place_column(tmp_path, capsys):
    path = tmp_path / "points.csv"
    path.write_text(
        'id,place,lat,lon\nspain,Almoradí,,\npk,"Punjab, Pakistan",,\ncoords,,38.1,-0.76\n', encoding="utf-8"
    )
    points = read_points(path)
    assert [p["id"] for p in points] == ["spain", "pk", "coords"]
    assert points[0]["lat"] == pytest.approx(38.10879, abs=1e-3) and points[2]["lat"] == "38.1"
    err = capsys.readouterr().err
    assert "line 2: place 'Almoradí' → Almoradí, Spain — town" in err and "Punjab, Pakistan — region" in err
    path.write_text("id,place\nx,Punjab\n", encoding="utf-8")
    with pytest.raises(Exception, match="line 2: place: Several places are named 'Punjab'"):
        read_points(path)


def test_batch_points_accept_a_place_column(tmp_path):
    from sarviz.batch.points import points_from_file

    path = tmp_path / "points.csv"
    path.write_text("id,place,class\na,Almoradí,crops\n", encoding="utf-8")
    (point,) = points_from_file(path)
    assert (point.id, point.cls) == ("a", "crops") and point.lat == pytest.approx(38.10879, abs=1e-3)
