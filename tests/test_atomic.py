"""atomic_path: complete files or nothing, for every writer that uses it."""

from __future__ import annotations

import stat

import pytest

from sarviz.atomic import atomic_path


def test_success_renames_and_is_world_readable(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("new")
        assert not target.exists()  # nothing visible before the block completes
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert list(target.parent.iterdir()) == [target]


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_dir_swaps_a_complete_folder_and_keeps_the_old_one_on_failure(tmp_path):
    from sarviz.atomic import atomic_dir

    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "weights.bin").write_text("v1")
    assert (target / "weights.bin").read_text() == "v1"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "weights.bin").write_text("half")
            raise RuntimeError("killed mid-write")
    assert (target / "weights.bin").read_text() == "v1"  # the old folder survives
    with atomic_dir(target) as tmp:
        (tmp / "weights.bin").write_text("v2")
    assert (target / "weights.bin").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp or .old folder left
