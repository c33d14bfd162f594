"""Datasets made of parts from a local directory: fetch, cache, read, train, export, predict,
evaluate, and every way a bad part is refused (the S3 prefix is in tests/integration)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from revcli import atomic, data, fetch, parts, settings
from revcli.errors import DataError, NotFoundError
from revcli.workspace import Workspace

DAYS = ("2015-03-01", "2015-03-02", "2015-03-03")


def write_parts(directory: Path, frame: pd.DataFrame, days=DAYS, hive: bool = True) -> list[str]:
    """``frame`` cut into one part per day (Hive ``dt=<day>/`` directories when ``hive``),
    with the files a Spark export leaves beside them; returns the parts' relative paths."""
    relatives = []
    for day, chunk in zip(days, np.array_split(np.arange(len(frame)), len(days)), strict=True):
        relative = f"dt={day}/part-00000.snappy.parquet" if hive else f"part-{day}.parquet"
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        frame.iloc[chunk].to_parquet(directory / relative, index=False)
        relatives.append(relative)
    (directory / "_SUCCESS").write_text("")
    (directory / "_temporary" / "0").mkdir(parents=True)
    (directory / "_temporary" / "0" / "part-x.parquet").write_bytes(b"half-written")
    (directory / ".part-00000.parquet.crc").write_bytes(b"crc")
    return sorted(relatives)


@pytest.fixture
def invoke():
    """Run the CLI in-process, as tests/cli/conftest.py's fixture does."""
    from typer.testing import CliRunner

    from revcli.cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


@pytest.fixture
def parts_dir(tmp_path: Path, small_demo) -> Path:
    directory = tmp_path / "sessions"
    write_parts(directory, small_demo)
    return directory


def concatenated(directory: Path, relatives: list[str]) -> pd.DataFrame:
    """The parts read one by one and concatenated in sorted order, the Hive key appended."""
    frames = []
    for relative in sorted(relatives):
        frame = pd.read_parquet(directory / relative)
        day = relative.split("/")[0].removeprefix("dt=")
        frames.append(frame.assign(dt=day))
    out = pd.concat(frames, ignore_index=True)
    return out.assign(dt=out["dt"].astype(pd.StringDtype(na_value=np.nan)))


def no_temp_left(ws: Workspace) -> bool:
    return not any(p.name.startswith(".") for p in ws.datasets_dir.iterdir()) \
        if ws.datasets_dir.is_dir() else True


# -- what a part is, and the dataset's sha256 -------------------------------------------------

def test_a_part_is_a_parquet_file_outside_underscore_and_dot_names(parts_dir: Path) -> None:
    assert parts.is_part("dt=2015-03-01/part-0.parquet")
    assert parts.is_part("PART.PARQUET")
    for other in ("_SUCCESS", "_common_metadata", "_metadata", "_temporary/0/part.parquet",
                  ".part.parquet.crc", ".hidden/p.parquet", "dt=1/part.csv", "x/",
                  # S3 keys that would not stay inside the dataset's directory
                  "/etc/x.parquet", "../x.parquet", "a//b.parquet", "a/./b.parquet", ""):
        assert not parts.is_part(other), other
    found, skipped = parts.list_local(parts_dir)
    assert found == [f"dt={d}/part-00000.snappy.parquet" for d in DAYS]
    assert skipped == [".part-00000.parquet.crc", "_SUCCESS", "_temporary/0/part-x.parquet"]


def test_the_dataset_sha256_is_sha256sum_of_the_sorted_parts(parts_dir: Path) -> None:
    relatives, _ = parts.list_local(parts_dir)
    listing = "".join(f"{hashlib.sha256((parts_dir / r).read_bytes()).hexdigest()}  {r}\n"
                      for r in sorted(relatives))
    expected = hashlib.sha256(listing.encode()).hexdigest()
    assert parts.dataset_sha256(parts.hash_local(parts_dir, relatives)) == expected
    # the order the pairs come in does not matter; a renamed part changes it
    pairs = parts.hash_local(parts_dir, relatives)
    assert parts.dataset_sha256(reversed(pairs)) == expected
    assert parts.dataset_sha256([("x/" + pairs[0][0], pairs[0][1]), *pairs[1:]]) != expected
    # the same as the shell's: sha256sum of the sorted parts, hashed
    shell = subprocess.run(
        "find . -name '*.parquet' -not -path './_*' -not -name '.*' -printf '%P\\n' | "
        "LC_ALL=C sort | xargs sha256sum | sha256sum", shell=True, cwd=parts_dir,
        capture_output=True, text=True, check=True)
    assert shell.stdout.split()[0] == expected


# -- fetch, cache, read, train ----------------------------------------------------------------

def test_fetch_a_directory_of_hive_parts_caches_it_as_a_directory(parts_dir: Path,
                                                                   isolated: Path) -> None:
    ws = Workspace(isolated)
    record = fetch.fetch_local(ws, f"{parts_dir}/")
    assert record.is_parts and record.path == ws.datasets_dir / record.sha256
    assert record.path.is_dir() and ws.current().sha256 == record.sha256
    relatives, _ = parts.list_local(parts_dir)
    assert [p["path"] for p in record.parts] == relatives
    assert parts.list_local(record.path) == (relatives, [])  # only the parts were cached
    assert record.sha256 == parts.dataset_sha256(parts.hash_local(parts_dir, relatives))
    assert record.rows == sum(p["rows"] for p in record.parts) == 20_000
    assert record.source == f"{parts_dir.resolve()}/"
    assert {"name": "dt", "dtype": "string"} in record.columns
    for p in record.parts:
        assert p["sha256"] == atomic.sha256_file(parts_dir / p["path"])
        assert p["bytes"] == (parts_dir / p["path"]).stat().st_size
    assert no_temp_left(ws)

    # read in sorted part order, the Hive key a string column (a category to the contract)
    frame = data.read_parquet(record.path)
    pd.testing.assert_frame_equal(frame, concatenated(parts_dir, relatives))
    data.validate(frame)
    # what the Dask engine and other readers see: the same rows, the key as a column
    table = ds.dataset(record.path, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 20_000 and "dt" in table.schema.names
    assert sorted(pd.read_parquet(record.path)["dt"].astype(str).unique()) == list(DAYS)

    # the manifest on disk says the same
    manifest = json.loads((ws.datasets_dir / f"{record.sha256}.json").read_text())
    assert manifest["parts"] == record.parts and manifest["sha256"] == record.sha256

    # again: the same dataset, nothing new cached
    again = fetch.fetch_local(ws, parts_dir)
    assert again.sha256 == record.sha256 and len(ws.datasets()) == 1


def test_parts_without_hive_keys_and_an_integer_key(tmp_path: Path, small_demo,
                                                    isolated: Path) -> None:
    flat = tmp_path / "flat"
    write_parts(flat, small_demo, hive=False)
    record = fetch.fetch_local(Workspace(isolated), flat)
    frame = data.read_parquet(record.path)
    assert list(frame.columns) == list(small_demo.columns)
    pd.testing.assert_frame_equal(frame, small_demo.reset_index(drop=True))

    hours = tmp_path / "hours"
    for hour in (2, 10):  # sorted as text: hour=10 before hour=2
        (hours / f"hour={hour}").mkdir(parents=True)
        rows = small_demo.iloc[hour * 100: hour * 100 + 500]
        rows.to_parquet(hours / f"hour={hour}" / "p.parquet", index=False)
    frame = data.read_parquet(fetch.fetch_local(Workspace(isolated), hours).path)
    assert frame["hour"].dtype == np.int32 and list(frame["hour"].unique()) == [10, 2]
    data.validate(frame)


def test_train_in_process_on_a_fetched_directory(parts_dir: Path, isolated: Path) -> None:
    from revcli import train

    record = fetch.fetch_local(Workspace(isolated), parts_dir)
    config = isolated.parent / "empty.toml"
    config.write_text("")
    s = settings.resolve(flags={"workspace": str(isolated), "estimator": "ridge",
                                "strategy": "converting_only"}, config_file=config, env={})
    result = train.train(s, plots=False)
    body = result.to_dict()
    assert body["dataset"]["sha256"] == record.sha256
    assert body["dataset"]["rows"] == 20_000
    rmse = body["scorecard"]["metrics"]["rmse"]
    assert np.isfinite(rmse) and rmse < body["scorecard"]["baseline"]["rmse"] * 1.5
    # the run's holdout is recomputed from the directory: evaluate reproduces the split
    from revcli import evaluate

    evaluated = evaluate.evaluate(s, run=result.run_id, plots=False, track=False)
    assert evaluated.data["holdout"] is True
    assert evaluated.scorecard.metrics["rmse"] == pytest.approx(rmse)


def test_train_data_directory_is_validated_and_cached_not_made_current(
        invoke, parts_dir: Path, demo_parquet: Path, isolated: Path) -> None:
    assert invoke("fetch", str(demo_parquet)).exit_code == 0
    current = Workspace(isolated).current().sha256
    result = invoke("train", "-e", "ridge", "--no-plots", "--data", str(parts_dir), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    ws = Workspace(isolated)
    cached = ws.dataset(body["dataset"]["sha256"])
    assert cached.is_parts and cached.path.parent == ws.datasets_dir
    assert ws.current().sha256 == current
    assert no_temp_left(ws)


def test_export_predict_and_evaluate_take_a_directory(invoke, parts_dir: Path, tmp_path: Path,
                                                      isolated: Path) -> None:
    assert invoke("fetch", str(parts_dir)).exit_code == 0
    record = Workspace(isolated).current()
    one = tmp_path / "one.parquet"
    exported = invoke("datasets", "export", str(one))
    assert exported.exit_code == 0, exported.output
    pd.testing.assert_frame_equal(pd.read_parquet(one).astype({"dt": "str"}),
                                  data.read_parquet(record.path).astype({"dt": "str"}))

    trained = invoke("train", "-e", "ridge", "--no-plots", "--json")
    assert trained.exit_code == 0, trained.output
    run = json.loads(trained.stdout)["run_id"]
    from_dir = invoke("predict", "--run", run, "--data", str(parts_dir), "--out",
                      str(tmp_path / "a.parquet"), "--batch-rows", "3000")
    assert from_dir.exit_code == 0, from_dir.output
    from_file = invoke("predict", "--run", run, "--data", str(one), "--out",
                       str(tmp_path / "b.parquet"))
    assert from_file.exit_code == 0, from_file.output
    a, b = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    assert len(a) == 20_000
    pd.testing.assert_frame_equal(a, b)

    inside = invoke("predict", "--run", run, "--data", str(parts_dir), "--out",
                    str(parts_dir / "scored.parquet"))
    assert inside.exit_code == 2 and "inside the input directory" in inside.stderr
    assert not (parts_dir / "scored.parquet").exists()

    evaluated = invoke("evaluate", "--run", run, "--data", str(parts_dir), "--no-plots",
                       "--no-track", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    # the directory holds the very parts of the model's dataset: its holdout is scored
    assert json.loads(evaluated.stdout)["data"]["holdout"] is True


# -- faults -----------------------------------------------------------------------------------

def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(root.rglob("*"))} if root.exists() else {}


@pytest.mark.parametrize(("breakage", "expected"), [
    ("not_parquet", "part {dir}/dt=2015-03-02/part-00000.snappy.parquet (nothing was cached) "
                    "is not a readable parquet file"),
    ("contract", "part {dir}/dt=2015-03-02/part-00000.snappy.parquet breaks the data contract: "
                 "'revenue' has"),
    ("schema", "part {dir}/dt=2015-03-02/part-00000.snappy.parquet has another schema than "
               "{dir}/dt=2015-03-01/part-00000.snappy.parquet: column 'hour_of_day' is double"),
    ("missing_column", "part {dir}/dt=2015-03-02/part-00000.snappy.parquet has another schema "
                       "than {dir}/dt=2015-03-01/part-00000.snappy.parquet: it lacks column "
                       "'hour_of_day'"),
    ("key_clash", "the directory key 'revenue'"),
    ("no_converters", "no converting sessions (revenue > 0) in any of its 3 parts"),
    ("empty", "holds no parquet parts"),
])
def test_a_bad_part_is_named_exit_2_and_nothing_is_cached(invoke, parts_dir: Path, small_demo,
                                                          demo_parquet: Path, isolated: Path,
                                                          breakage: str, expected: str) -> None:
    assert invoke("fetch", str(demo_parquet)).exit_code == 0
    before = _snapshot(isolated)
    bad = parts_dir / "dt=2015-03-02" / "part-00000.snappy.parquet"
    if breakage == "not_parquet":
        bad.write_bytes(b"PAR1 not a parquet file at all")
    elif breakage == "contract":
        pd.read_parquet(bad).assign(revenue=-1.0).to_parquet(bad, index=False)
    elif breakage == "schema":
        frame = pd.read_parquet(bad)
        frame.assign(hour_of_day=frame["hour_of_day"].astype(float)).to_parquet(bad, index=False)
    elif breakage == "missing_column":
        pd.read_parquet(bad).drop(columns="hour_of_day").to_parquet(bad, index=False)
    elif breakage == "key_clash":
        (parts_dir / "revenue=1").mkdir()
        small_demo.iloc[:10].to_parquet(parts_dir / "revenue=1" / "p.parquet", index=False)
    elif breakage == "no_converters":
        for p in parts_dir.glob("dt=*/*.parquet"):
            pd.read_parquet(p).assign(revenue=0.0, is_ordered=0).to_parquet(p, index=False)
    elif breakage == "empty":
        for p in parts_dir.glob("dt=*/*.parquet"):
            p.unlink()
    result = invoke("fetch", f"{parts_dir}/")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert expected.format(dir=parts_dir) in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.output
    assert _snapshot(isolated) == before

    # train --data on it: the same refusal, nothing cached either (the dataset cache and the
    # current pointer; train opens its MLflow store in a thread of its own)
    trained = invoke("train", "-e", "ridge", "--no-plots", "--data", str(parts_dir))
    assert trained.exit_code == 2, trained.output
    assert expected.format(dir=parts_dir) in " ".join(trained.stderr.split()), trained.stderr
    assert _snapshot(isolated / "datasets") == {k.removeprefix("datasets/"): v
                                                for k, v in before.items()
                                                if k.startswith("datasets/")}
    assert (isolated / "current.json").read_bytes() == before["current.json"]


def test_a_part_without_orders_or_without_rows_is_fine(parts_dir: Path, isolated: Path) -> None:
    day = parts_dir / "dt=2015-03-02" / "part-00000.snappy.parquet"
    frame = pd.read_parquet(day)
    frame.assign(revenue=0.0, is_ordered=0).to_parquet(day, index=False)
    frame.iloc[:0].to_parquet(parts_dir / "dt=2015-03-02" / "part-00001.snappy.parquet",
                              index=False)
    record = fetch.fetch_local(Workspace(isolated), parts_dir)
    assert [p["rows"] for p in record.parts][1:3] == [len(frame), 0]


def test_a_cached_directory_changed_in_place_is_an_error(parts_dir: Path, small_demo,
                                                         isolated: Path) -> None:
    ws = Workspace(isolated)
    record = fetch.fetch_local(ws, parts_dir)
    part = record.path / record.parts[0]["path"]
    os.utime(part)  # touched, not changed: re-hashed and kept
    assert ws.current().sha256 == record.sha256
    extra = record.path / "dt=2015-03-04" / "p.parquet"
    extra.parent.mkdir()
    small_demo.iloc[:10].to_parquet(extra, index=False)
    with pytest.raises(DataError, match=r"a part dt=2015-03-04/p\.parquet was added"):
        ws.current()
    extra.unlink()
    raw = bytearray(part.read_bytes())
    raw[100] ^= 0xFF
    part.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="its sha256 no longer matches"):
        ws.current()
    part.unlink()
    with pytest.raises(DataError, match="is missing"):
        ws.current()
    # fetching it again repairs the cache
    assert fetch.fetch_local(ws, parts_dir).sha256 == record.sha256
    assert ws.current().sha256 == record.sha256


def test_a_failed_copy_leaves_no_temp_directory(parts_dir: Path, isolated: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    ws = Workspace(isolated).ensure()
    calls = []

    def full_disk(self, chunk: bytes) -> int:
        if calls:
            raise OSError(errno.ENOSPC, "No space left on device")
        calls.append(1)
        return self.fh.write(chunk)

    monkeypatch.setattr(fetch._HashingWriter, "write", full_disk)
    with pytest.raises(Exception, match="no space left on device"):
        fetch.fetch_local(ws, parts_dir)
    assert list(ws.datasets_dir.iterdir()) == [] and ws.current(strict=False) is None


def test_prune_removes_the_temp_directory_of_a_killed_fetch(invoke, parts_dir: Path,
                                                            isolated: Path) -> None:
    assert invoke("fetch", str(parts_dir)).exit_code == 0
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that is gone
    orphan = isolated / "datasets" / f".incoming.{proc.pid}.abc.parts.tmp"
    (orphan / "dt=2015-03-01").mkdir(parents=True)
    (orphan / "dt=2015-03-01" / "part-0.parquet").write_bytes(b"x" * 1000)
    result = invoke("datasets", "prune", "--json")
    assert result.exit_code == 0, result.output
    pruned = json.loads(result.stdout)
    assert pruned["temp_files"] == 1 and pruned["freed_bytes"] == 1000
    assert not orphan.exists() and Workspace(isolated).current().is_parts


def test_datasets_list_shows_the_part_count(invoke, parts_dir: Path, demo_parquet: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert invoke("fetch", str(demo_parquet)).exit_code == 0
    plain = invoke("datasets", "list")
    assert "parts" not in plain.stdout
    assert invoke("fetch", str(parts_dir)).exit_code == 0
    monkeypatch.setenv("COLUMNS", "120")
    listed = invoke("datasets", "list")
    assert listed.exit_code == 0
    row = next(line for line in listed.stdout.splitlines() if "20,000" in line and "*" in line)
    assert "│     3 │" in row
    body = json.loads(invoke("datasets", "list", "--json").stdout)
    assert sorted(len(d["parts"]) for d in body["datasets"]) == [0, 3]


def test_errors_name_a_missing_directory_and_an_empty_one(tmp_path: Path, isolated: Path) -> None:
    ws = Workspace(isolated)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFoundError, match="holds no parquet parts"):
        fetch.fetch_local(ws, tmp_path / "empty")
    with pytest.raises(NotFoundError, match="holds no parquet parts"):
        data.read_parquet(tmp_path / "empty")
    assert pa is not None


def test_a_refetch_reads_only_the_parts_it_has_not_checked_before(
        parts_dir: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace(isolated)
    first = fetch.fetch_local(ws, parts_dir)
    assert [p["converters"] for p in first.parts] == [
        int((pd.read_parquet(parts_dir / p["path"])["revenue"] > 0).sum()) for p in first.parts]
    changed = parts_dir / "dt=2015-03-02" / "part-00000.snappy.parquet"
    pd.read_parquet(changed).iloc[:50].to_parquet(changed, index=False)
    read: list[Path] = []
    original = data.read_parquet
    monkeypatch.setattr(data, "read_parquet", lambda path, *a, **k: read.append(Path(path))
                        or original(path, *a, **k))
    second = fetch.fetch_local(ws, parts_dir)
    assert [p.parent.name for p in read] == ["dt=2015-03-02"]
    assert second.rows == first.rows - first.parts[1]["rows"] + 50


def test_categorical_parts_with_different_level_counts_share_one_schema(
        tmp_path: Path, small_demo, isolated: Path) -> None:
    """pandas writes a categorical's codes as int8 or int16 by its number of levels: parts of
    one export differ there, and are one schema all the same."""
    directory = tmp_path / "cats"
    directory.mkdir()
    few = small_demo.iloc[:10_000].assign(channel=pd.Categorical(
        np.resize(["ads", "mail", "seo"], 10_000)))
    many = small_demo.iloc[10_000:].assign(channel=pd.Categorical(
        [f"c{i % 300}" for i in range(10_000)]))
    few.to_parquet(directory / "a.parquet", index=False)
    many.to_parquet(directory / "b.parquet", index=False)
    record = fetch.fetch_local(Workspace(isolated), directory)
    frame = data.read_parquet(record.path)
    assert isinstance(frame["channel"].dtype, pd.CategoricalDtype)
    assert frame["channel"].astype(str).tolist() == (
        few["channel"].astype(str).tolist() + many["channel"].astype(str).tolist())
    data.validate(frame)


def test_a_directory_already_cached_is_not_copied_again(parts_dir: Path, demo_parquet: Path,
                                                         isolated: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace(isolated)
    record = fetch.fetch_local(ws, parts_dir)
    fetch.fetch_local(ws, demo_parquet)
    assert ws.current().sha256 != record.sha256

    def no_copy(*args, **kwargs):
        raise AssertionError("copied a part of a dataset that is cached whole")

    monkeypatch.setattr(fetch, "_copy_hashing", no_copy)
    again = fetch.fetch_local(ws, parts_dir)
    assert again.sha256 == record.sha256 and ws.current().sha256 == record.sha256
