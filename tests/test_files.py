"""The one atomic writer: whole files or none, no temp file left behind, the usual permissions."""

from __future__ import annotations

import os

import pytest

from slimbench.core import files
from slimbench.core.errors import SlimbenchError
from slimbench.data import synthetic
from slimbench.model import checkpoint
from slimbench.pruning import pipeline
from slimbench.runtimes.export import store_in_cache


def test_writes_replaces_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "sub" / "out.json"
    assert files.atomic_write_bytes(target, b"first") == target
    files.atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not a private temp file's 0600


def test_a_failed_rename_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    target.write_bytes(b"old")

    def fail(*_a):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        files.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_copy(tmp_path):
    src = tmp_path / "a.pt"
    src.write_bytes(b"weights")
    assert files.atomic_copy(src, tmp_path / "b" / "a.pt").read_bytes() == b"weights"


def test_every_writer_uses_it():
    """No second writer creeps back: the modules that write files all hold this very function."""
    for module in (checkpoint, synthetic, pipeline):
        assert module.atomic_write_bytes is files.atomic_write_bytes, module.__name__
    assert store_in_cache.__globals__["atomic_write_bytes"] is files.atomic_write_bytes


def test_read_text_says_what_is_wrong_in_one_line(tmp_path):
    (tmp_path / "ok.toml").write_text("a = 1\n", encoding="utf-8")
    assert files.read_text(tmp_path / "ok.toml", "variants file") == "a = 1\n"
    (tmp_path / "latin.toml").write_bytes(b"caf\xe9")
    for path, expected in [
        (tmp_path / "none.toml", "none.toml: variants file not found"),
        (tmp_path, ": variants file is not a file"),
        (tmp_path / "latin.toml", "latin.toml: variants file is not UTF-8 text ("),
    ]:
        with pytest.raises(SlimbenchError) as e:
            files.read_text(path, "variants file")
        assert expected in str(e.value) and "\n" not in str(e.value)
