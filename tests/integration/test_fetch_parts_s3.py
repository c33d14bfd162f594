"""`revcli fetch s3://bucket/prefix/` against the real S3 server (JuiceFS gateway): a prefix of
parquet parts is listed, downloaded, checked part by part and cached; an unchanged prefix costs
one LIST and no GET (counted with botocore's event hooks and the logging proxy, not mocks); a
changed part is downloaded again, the unchanged ones copied from the cache; a bad part is named
and nothing is cached."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from revcli import data, fetch, parts
from revcli.errors import DataError, StorageError
from revcli.storage import S3Storage
from revcli.workspace import Workspace
from tests.integration.servers import FaultProxy, S3Server

DAYS = ("2015-03-01", "2015-03-02", "2015-03-03")
PREFIX = "sessions/"


def _keys() -> list[str]:
    return [f"{PREFIX}dt={day}/part-00000.parquet" for day in DAYS]


@pytest.fixture
def local_parts(tmp_path: Path, small_demo) -> dict[str, Path]:
    """Three parts of the small demo set, one per day, by their S3 key."""
    out = {}
    for key, rows in zip(_keys(), np.array_split(np.arange(len(small_demo)), 3), strict=True):
        path = tmp_path / "parts" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        small_demo.iloc[rows].to_parquet(path, index=False)
        out[key] = path
    return out


def _upload_parts(s3: S3Server, bucket: str, local: dict[str, Path]) -> None:
    client = s3.client()
    for key, path in local.items():
        client.upload_file(str(path), bucket, key)
    client.put_object(Bucket=bucket, Key=f"{PREFIX}_SUCCESS", Body=b"")


def _counting(s3: S3Server) -> tuple[S3Storage, list[str]]:
    """Storage on a client whose every S3 operation is recorded (botocore's before-call hook)."""
    client = s3.client()
    calls: list[str] = []
    client.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    return S3Storage(client), calls


def _snapshot(workspace: Path) -> dict[str, bytes]:
    return {str(p.relative_to(workspace)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(workspace.rglob("*"))} if workspace.exists() else {}


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_prefix_is_fetched_cached_and_changed_parts_alone_are_downloaded_again(
        s3_env, bucket, local_parts, small_demo, tmp_path, isolated) -> None:
    _upload_parts(s3_env, bucket, local_parts)
    storage, calls = _counting(s3_env)
    ws = Workspace(isolated)
    uri = f"s3://{bucket}/{PREFIX}"

    first = fetch.fetch(ws, uri, storage)
    assert calls == ["ListObjectsV2", "GetObject", "GetObject", "GetObject"]
    record = first.record
    assert record.is_parts and not first.up_to_date and first.downloaded_parts == 3
    assert first.downloaded == sum(p.stat().st_size for p in local_parts.values())
    assert record.path == ws.datasets_dir / record.sha256 and ws.current().sha256 == record.sha256
    listing = s3_env.client().list_objects_v2(Bucket=bucket, Prefix=PREFIX)["Contents"]
    etags = {o["Key"]: o["ETag"] for o in listing}
    assert [(p["path"], p["key"], p["etag"], p["bytes"]) for p in record.parts] == [
        (k.removeprefix(PREFIX), k, etags[k], local_parts[k].stat().st_size) for k in _keys()]
    assert [p["rows"] for p in record.parts] == [len(r) for r in np.array_split(
        np.arange(len(small_demo)), 3)]
    assert record.sha256 == parts.dataset_sha256(
        (k.removeprefix(PREFIX), parts.hash_local(v.parent, [v.name])[0][1])
        for k, v in local_parts.items())
    frame = data.read_parquet(record.path)
    expected = small_demo.reset_index(drop=True).assign(
        dt=np.repeat(DAYS, [len(r) for r in np.array_split(np.arange(len(small_demo)), 3)]))
    pd.testing.assert_frame_equal(frame.astype({"dt": object}), expected.astype({"dt": object}))

    # Unchanged: one LIST, no GET, the same dataset.
    calls.clear()
    again = fetch.fetch(ws, uri, storage)
    assert calls == ["ListObjectsV2"]
    assert again.up_to_date and again.record.sha256 == record.sha256 and again.downloaded == 0

    # One part changes: one GET, the two others copied from the cache.
    changed = tmp_path / "changed.parquet"
    pd.read_parquet(local_parts[_keys()[1]]).iloc[:100].to_parquet(changed, index=False)
    s3_env.client().upload_file(str(changed), bucket, _keys()[1])
    calls.clear()
    third = fetch.fetch(ws, uri, storage)
    assert calls == ["ListObjectsV2", "GetObject"]
    assert (third.downloaded_parts, third.reused_parts) == (1, 2)
    assert third.downloaded == changed.stat().st_size
    assert third.record.sha256 != record.sha256 and ws.current().sha256 == third.record.sha256
    assert third.record.rows == record.rows - record.parts[1]["rows"] + 100
    assert {r.sha256 for r in ws.datasets()} == {record.sha256, third.record.sha256}

    # A part added and one removed: fetched again; --force downloads every part.
    s3_env.client().delete_object(Bucket=bucket, Key=_keys()[0])
    s3_env.client().upload_file(str(changed), bucket, f"{PREFIX}dt=2015-03-04/part-00000.parquet")
    calls.clear()
    fourth = fetch.fetch(ws, uri, storage)
    assert calls == ["ListObjectsV2", "GetObject"] and fourth.reused_parts == 2
    assert [p["path"] for p in fourth.record.parts] == [
        "dt=2015-03-02/part-00000.parquet", "dt=2015-03-03/part-00000.parquet",
        "dt=2015-03-04/part-00000.parquet"]
    calls.clear()
    forced = fetch.fetch(ws, uri, storage, force=True)
    assert calls == ["ListObjectsV2", "GetObject", "GetObject", "GetObject"]
    assert forced.record.sha256 == fourth.record.sha256 and forced.reused_parts == 0
    assert not [p for p in ws.datasets_dir.iterdir() if p.name.startswith(".")]


def test_cli_fetch_of_a_prefix_then_train_and_a_cache_hit_seen_by_the_server(
        invoke, s3_env, bucket, proxy: FaultProxy, local_parts, isolated) -> None:
    _upload_parts(s3_env, bucket, local_parts)
    uri = f"s3://{bucket}/{PREFIX}"
    first = invoke("fetch", uri, "--endpoint-url", proxy.endpoint, "--json")
    assert first.exit_code == 0, first.output
    body = json.loads(first.stdout)
    assert body["parts"] == 3 and body["downloaded_parts"] == 3 and not body["up_to_date"]
    assert body["dataset"]["source"] == uri
    assert body["dataset"]["extra"]["s3"] == {"bucket": bucket, "prefix": PREFIX,
                                              "endpoint": proxy.endpoint}
    assert proxy.count("GET", f"/{bucket}/{PREFIX}") == 3

    proxy.reset()
    second = invoke("fetch", uri, "--endpoint-url", proxy.endpoint)
    assert second.exit_code == 0, second.output
    assert "up to date" in second.stdout and "3 parts" in second.stdout
    # The server saw one request: the LIST of the prefix.
    assert len(proxy.requests) == 1 and proxy.requests[0][0] == "GET"
    assert "list-type=2" in proxy.requests[0][1] and "prefix=sessions" in proxy.requests[0][1]

    # Without the trailing slash: a HEAD finds no such object, the prefix is listed instead.
    proxy.reset()
    third = invoke("fetch", f"s3://{bucket}/sessions", "--endpoint-url", proxy.endpoint, "--json")
    assert third.exit_code == 0, third.output
    assert json.loads(third.stdout)["up_to_date"] is True
    assert proxy.count("GET", f"/{bucket}/{PREFIX}") == 0

    trained = invoke("train", "-s", "converting_only", "-e", "ridge", "--no-plots", "--json")
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["dataset"]["sha256"] == body["dataset"]["sha256"]


@pytest.mark.parametrize(("breakage", "expected"), [
    ("not_parquet", "is not a readable parquet file"),
    ("contract", "breaks the data contract: 'revenue' has"),
    ("schema", "has another schema than s3://{bucket}/sessions/dt=2015-03-01/part-00000.parquet"),
])
def test_a_bad_part_is_named_and_nothing_is_cached(invoke, s3_env, bucket, local_parts,
                                                   demo_parquet, isolated, breakage,
                                                   expected) -> None:
    assert invoke("fetch", str(demo_parquet)).exit_code == 0
    before = _snapshot(isolated)
    bad = local_parts[_keys()[1]]
    if breakage == "not_parquet":
        bad.write_bytes(b"PAR1 this is not parquet")
    elif breakage == "contract":
        pd.read_parquet(bad).assign(revenue=np.inf).to_parquet(bad, index=False)
    else:
        frame = pd.read_parquet(bad)
        frame.assign(is_weekend=frame["is_weekend"].astype(int)).to_parquet(bad, index=False)
    _upload_parts(s3_env, bucket, local_parts)
    result = invoke("fetch", f"s3://{bucket}/{PREFIX}", "--endpoint-url", s3_env.endpoint)
    assert result.exit_code == 2, result.output
    line = _one_error_line(result)
    assert f"part s3://{bucket}/{_keys()[1]}" in line and expected.format(bucket=bucket) in line
    assert "nothing was cached" in line and "Traceback" not in result.output
    assert _snapshot(isolated) == before


def test_a_part_replaced_or_removed_mid_fetch_fails_and_changes_nothing(
        s3_env, bucket, local_parts, demo_parquet, isolated) -> None:
    ws = Workspace(isolated)
    fetch.fetch_local(ws, demo_parquet)
    before = _snapshot(isolated)
    _upload_parts(s3_env, bucket, local_parts)
    client = s3_env.client()
    storage = S3Storage(client)
    other = local_parts[_keys()[0]]
    replaced: list[str] = []

    def replace_second(params, **_) -> None:  # between the LIST and the second part's GET
        if params["Key"] == _keys()[1] and not replaced:
            replaced.append(params["Key"])
            s3_env.client().upload_file(str(other), bucket, _keys()[1])

    client.meta.events.register("before-parameter-build.s3.GetObject", replace_second)
    with pytest.raises(StorageError, match=r"sessions/dt=2015-03-02/part-00000\.parquet.*"
                                           r"changed while it was being read"):
        fetch.fetch(ws, f"s3://{bucket}/{PREFIX}", storage)
    assert _snapshot(isolated) == before

    client.meta.events.unregister("before-parameter-build.s3.GetObject", replace_second)
    s3_env.client().upload_file(str(local_parts[_keys()[1]]), bucket, _keys()[1])

    def remove_third(params, **_) -> None:
        if params["Key"] == _keys()[2]:
            s3_env.client().delete_object(Bucket=bucket, Key=_keys()[2])

    client.meta.events.register("before-parameter-build.s3.GetObject", remove_third)
    with pytest.raises(StorageError, match=r"sessions/dt=2015-03-03/part-00000\.parquet.*"
                                           r"no such key"):
        fetch.fetch(ws, f"s3://{bucket}/{PREFIX}", storage)
    assert _snapshot(isolated) == before


def test_an_empty_prefix_and_a_missing_bucket_are_one_line(invoke, s3_env, bucket,
                                                           isolated) -> None:
    s3_env.client().put_object(Bucket=bucket, Key="sessions/_SUCCESS", Body=b"")
    empty = invoke("fetch", f"s3://{bucket}/sessions/", "--endpoint-url", s3_env.endpoint)
    assert empty.exit_code == 2
    line = _one_error_line(empty)
    assert f"no parquet parts under s3://{bucket}/sessions/" in line and "1 objects" in line
    missing = invoke("fetch", "s3://no-such-bucket-here/sessions/", "--endpoint-url",
                     s3_env.endpoint)
    assert missing.exit_code == 2
    assert "bucket 'no-such-bucket-here' does not exist" in _one_error_line(missing)
    gone = invoke("fetch", f"s3://{bucket}/nothing-here", "--endpoint-url", s3_env.endpoint)
    assert gone.exit_code == 2 and "no such key" in _one_error_line(gone)
    assert not (isolated / "current.json").exists()
    assert DataError is not None


def test_a_cut_part_is_resumed_and_one_that_keeps_failing_changes_nothing(
        invoke, s3_env, bucket, proxy: FaultProxy, local_parts, demo_parquet, isolated) -> None:
    assert invoke("fetch", str(demo_parquet)).exit_code == 0
    before = _snapshot(isolated)
    _upload_parts(s3_env, bucket, local_parts)
    uri = f"s3://{bucket}/{PREFIX}"
    proxy.cut_gets, proxy.cut_after = 100, 2_000  # every GET is cut off after 2 kB
    result = invoke("fetch", uri, "--endpoint-url", proxy.endpoint)
    assert result.exit_code == 2, result.output
    line = _one_error_line(result)
    assert f"s3://{bucket}/{PREFIX}dt=" in line and "cut off after" in line
    assert _snapshot(isolated) == before  # no temp directory, the same current dataset

    proxy.reset()
    # The LIST is a GET too (its answer is shorter than 20 kB: not cut); the next GET, of a
    # part, dies after 20 kB, and that part resumes from its last byte.
    proxy.cut_gets, proxy.cut_after = 2, 20_000
    resumed = invoke("fetch", uri, "--endpoint-url", proxy.endpoint, "--json")
    assert resumed.exit_code == 0, resumed.output
    body = json.loads(resumed.stdout)
    assert body["downloaded_bytes"] == sum(p.stat().st_size for p in local_parts.values())
    assert proxy.count("GET", f"/{bucket}/{PREFIX}") == 4


def test_an_interrupt_mid_download_stops_every_part_and_leaves_nothing(
        s3_env, bucket, local_parts, demo_parquet, isolated) -> None:
    ws = Workspace(isolated)
    fetch.fetch_local(ws, demo_parquet)
    before = _snapshot(isolated)
    _upload_parts(s3_env, bucket, local_parts)
    client = s3_env.client()

    def interrupt(params, **_) -> None:  # as Ctrl-C would, while other parts are downloading
        if params["Key"] == _keys()[2]:
            raise KeyboardInterrupt

    client.meta.events.register("before-parameter-build.s3.GetObject", interrupt)
    with pytest.raises(KeyboardInterrupt):
        fetch.fetch(ws, f"s3://{bucket}/{PREFIX}", S3Storage(client))
    assert _snapshot(isolated) == before  # every worker stopped before the temp dir went
