"""Files replaced only when complete (`hello_kubeflow.data.files.replacing`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hello_kubeflow.data.files import replacing


def test_a_finished_block_replaces_the_file_readable_by_others(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "record.json"
    with replacing(target) as part:
        part.write_text("new")
        assert not target.exists()  # nothing is seen before the block ends
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["record.json"]


def test_a_failed_block_keeps_the_old_file_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target) as part:
        part.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_two_writers_of_one_file_do_not_share_a_temporary_name(tmp_path: Path) -> None:
    target = tmp_path / "verified-idx.json"
    with replacing(target) as first, replacing(target) as second:
        assert first != second
        first.write_text("first")
        second.write_text("second")
    assert target.read_text() == "first"  # the outer block ends last: its file wins
