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


def test_current_or_demo_says_so_as_a_warning(tmp_path: Path) -> None:
    from revcli.progress import Reporter

    warnings: list[str] = []

    class Collect(Reporter):
        def warn(self, message: str) -> None:
            warnings.append(message)

    ws = Workspace(tmp_path / "ws")
    record, note = fetch.current_or_demo(ws, rows=2_000, seed=1, reporter=Collect())
    assert record.rows == 2_000 and warnings == [note] and "demo" in note
    again, note = fetch.current_or_demo(ws, rows=2_000, seed=1, reporter=Collect())
    assert again.sha256 == record.sha256 and note is None and len(warnings) == 1


def _broken(ws: Workspace, how: str) -> None:
    current = ws.current()
    assert current is not None
    if how == "pointer":
        ws.current_file.write_text("{not json")
    elif how == "manifest":
        (ws.datasets_dir / f"{current.sha256}.json").write_text("garbage")
    elif how == "deleted":
        current.path.unlink()
    elif how == "truncated":
        current.path.write_bytes(current.path.read_bytes()[:-10])
    elif how == "same-size":  # modified in place, size kept: only the hash tells
        data = bytearray(current.path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        current.path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["pointer", "manifest", "deleted", "truncated", "same-size"])
def test_a_broken_current_dataset_is_an_error_never_a_substitute(tmp_path: Path, small_demo,
                                                                 how: str) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.write_dataset(small_demo.head(3_000), source="demo:test")
    _broken(ws, how)
    with pytest.raises(DataError, match="revcli fetch"):
        fetch.current_or_demo(ws, rows=2_000, seed=1)
    assert ws.current(strict=False) is None
    # Nothing was generated in its place.
    assert len(list(ws.datasets_dir.glob("*.parquet"))) == (0 if how == "deleted" else 1)


def test_a_touched_but_whole_dataset_is_rehashed_and_kept(tmp_path: Path, small_demo) -> None:
    import os

    ws = Workspace(tmp_path / "ws")
    record = ws.write_dataset(small_demo.head(3_000), source="demo:test")
    os.utime(record.path, ns=(1, 1))
    again = ws.current()
    assert again is not None and again.sha256 == record.sha256


def test_fetch_local_without_make_current_keeps_the_current_dataset(
        tmp_path: Path, small_demo, demo_parquet: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    first = ws.write_dataset(small_demo.head(3_000), source="demo:test")
    other = fetch.fetch_local(ws, demo_parquet, make_current=False)
    assert other.sha256 != first.sha256
    assert ws.current().sha256 == first.sha256
