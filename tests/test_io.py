"""Atomic writes: results appear whole or not at all, with ordinary file permissions."""

import os

import pytest

from tapelab.core.errors import TapelabError
from tapelab.core.io import load_json, save_json, write_atomic


def test_written_files_get_the_mode_a_plain_write_gives(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "table.md", "| a |\n")
    finally:
        os.umask(previous)
    assert path.read_text() == "| a |\n"
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = save_json(tmp_path / "results.json", {"accuracy": 0.5})

    def full_disk(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_json(path, {"accuracy": 0.9})
    assert load_json(path) == {"accuracy": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_corrupt_json_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"accuracy": ')
    with pytest.raises(TapelabError, match=r"results.json is not valid JSON .*delete it and rerun"):
        load_json(path)
