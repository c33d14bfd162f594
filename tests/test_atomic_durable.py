"""Atomic writes survive a power loss: the file is fsynced before the rename, the directory
after it; sha256 through hashlib.file_digest."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from revcli import atomic


def test_the_file_then_the_directory_reach_the_disk(tmp_path: Path, monkeypatch) -> None:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append(("fsync", kind))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("rename", Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic.write_json(tmp_path / "current.json", {"sha256": "abc"})
    assert events == [("fsync", "file"), ("rename", "current.json"), ("fsync", "dir")]
    assert (tmp_path / "current.json").read_text().strip().startswith("{")


def test_a_failed_write_leaves_the_target_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "model.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert target.read_text() == "old" and sorted(tmp_path.iterdir()) == [target]


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = os.urandom(3 << 20)
    path.write_bytes(data)
    assert atomic.sha256_file(path) == hashlib.sha256(data).hexdigest()
