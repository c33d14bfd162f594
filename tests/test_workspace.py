from __future__ import annotations

from pathlib import Path

import pytest

from revcli import atomic, fetch
from revcli.errors import DataError, NotFoundError
from revcli.workspace import Workspace


def test_datasets_are_content_addressed(tmp_path: Path, small_demo) -> None:
    ws = Workspace(tmp_path / "ws")
    first = ws.write_dataset(small_demo, source="a")
    again = ws.write_dataset(small_demo, source="b")
    assert first.sha256 == again.sha256 and len(ws.datasets()) == 1
    assert first.rows == len(small_demo)
    assert [c["name"] for c in first.columns] == list(small_demo.columns)
    assert atomic.sha256_file(first.path) == first.sha256
    assert ws.current() == again
    assert ws.dataset(first.sha256[:8]).sha256 == first.sha256
    with pytest.raises(NotFoundError):
        ws.dataset("ffffffff")
    assert not [p for p in ws.datasets_dir.iterdir() if p.name.startswith(".")]


def test_fetch_local_validates_before_caching(tmp_path: Path, demo_parquet: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    record = fetch.fetch_local(ws, f"file://{demo_parquet}")
    assert ws.current().sha256 == record.sha256
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError):
        fetch.fetch_local(ws, bad)
    assert ws.current().sha256 == record.sha256
    assert len(ws.datasets()) == 1


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    atomic.write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text().strip().startswith("{")
    assert list(tmp_path.iterdir()) == [target]


def test_current_or_demo_says_so(tmp_path: Path) -> None:
    from revcli.progress import Reporter

    notes: list[str] = []

    class Collect(Reporter):
        def note(self, message: str) -> None:
            notes.append(message)

    ws = Workspace(tmp_path / "ws")
    record = fetch.current_or_demo(ws, rows=2_000, seed=1, reporter=Collect())
    assert record.rows == 2_000 and len(notes) == 1 and "demo" in notes[0]
    fetch.current_or_demo(ws, rows=2_000, seed=1, reporter=Collect())
    assert len(notes) == 1
