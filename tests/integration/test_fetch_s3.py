"""`revcli fetch` against a real S3 server: download, cache hit, change, faults, credentials."""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path

import pytest

from revcli import fetch as core
from revcli.storage import Connection, S3Storage
from revcli.workspace import Workspace
from tests.integration.servers import FaultProxy, S3Server


def _upload(s3: S3Server, bucket: str, key: str, path: Path) -> str:
    s3.client().upload_file(str(path), bucket, key)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(workspace: Path) -> dict[str, bytes]:
    """Every file of the workspace's dataset cache and its current pointer, byte for byte."""
    files = sorted((workspace / "datasets").iterdir()) if (workspace / "datasets").is_dir() else []
    snap = {p.name: p.read_bytes() for p in files}
    current = workspace / "current.json"
    if current.is_file():
        snap["current.json"] = current.read_bytes()
    return snap


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def other_parquet(tmp_path: Path, small_demo) -> Path:
    """A second valid table with other bytes (the object "changes" to this)."""
    path = tmp_path / "other.parquet"
    small_demo.iloc[: len(small_demo) // 2].to_parquet(path, index=False)
    return path


def test_first_download_then_a_cache_hit_costs_one_head_and_no_get(
        invoke, s3_env, bucket, proxy: FaultProxy, demo_parquet, isolated) -> None:
    sha = _upload(s3_env, bucket, "training_data.parquet", demo_parquet)
    uri = f"s3://{bucket}/training_data.parquet"

    first = invoke("fetch", uri, "--endpoint-url", proxy.endpoint, "--json")
    assert first.exit_code == 0, first.output
    body = json.loads(first.stdout)
    assert body["up_to_date"] is False
    assert body["downloaded_bytes"] == demo_parquet.stat().st_size
    record = body["dataset"]
    assert record["sha256"] == sha and record["source"] == uri
    assert Path(record["path"]).read_bytes() == demo_parquet.read_bytes()
    s3_meta = record["extra"]["s3"]
    head = s3_env.client().head_object(Bucket=bucket, Key="training_data.parquet")
    assert s3_meta == {"bucket": bucket, "key": "training_data.parquet",
                       "endpoint": proxy.endpoint, "etag": head["ETag"],
                       "size": head["ContentLength"],
                       "last_modified": head["LastModified"].isoformat()}
    assert (proxy.count("HEAD", bucket), proxy.count("GET", bucket)) == (1, 1)

    proxy.reset()
    second = invoke("fetch", uri, "--endpoint-url", proxy.endpoint)
    assert second.exit_code == 0, second.output
    assert "up to date" in second.stdout and sha[:12] in second.stdout
    # The server saw exactly one request: the HEAD.
    assert proxy.requests == [("HEAD", f"/{bucket}/training_data.parquet")]
    assert Workspace(isolated).current().sha256 == sha
    assert len(Workspace(isolated).datasets()) == 1


def test_core_fetch_counts_operations_with_a_botocore_hook(s3_env, bucket, demo_parquet,
                                                           isolated) -> None:
    _upload(s3_env, bucket, "t.parquet", demo_parquet)
    client = s3_env.client()
    calls: list[str] = []
    client.meta.events.register("before-call.s3.*",
                                lambda model, **_: calls.append(model.name))
    storage = S3Storage(client)
    ws = Workspace(isolated)

    result = core.fetch_s3(ws, f"s3://{bucket}/t.parquet", storage)
    assert calls == ["HeadObject", "GetObject"] and not result.up_to_date
    calls.clear()
    again = core.fetch_s3(ws, f"s3://{bucket}/t.parquet", storage)
    assert calls == ["HeadObject"] and again.up_to_date and again.downloaded == 0
    assert again.record.sha256 == result.record.sha256
    calls.clear()
    forced = core.fetch_s3(ws, f"s3://{bucket}/t.parquet", storage, force=True)
    assert calls == ["HeadObject", "GetObject"] and forced.downloaded > 0
    assert forced.record.sha256 == result.record.sha256


def test_a_changed_object_is_downloaded_again_and_prune_frees_the_old_one(
        invoke, s3_env, bucket, demo_parquet, other_parquet, isolated) -> None:
    uri = f"s3://{bucket}/data.parquet"
    old_sha = _upload(s3_env, bucket, "data.parquet", demo_parquet)
    assert invoke("fetch", uri, "--endpoint-url", s3_env.endpoint).exit_code == 0

    new_sha = _upload(s3_env, bucket, "data.parquet", other_parquet)
    result = invoke("fetch", uri, "--endpoint-url", s3_env.endpoint, "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["up_to_date"] is False and body["dataset"]["sha256"] == new_sha
    ws = Workspace(isolated)
    assert ws.current().sha256 == new_sha
    assert {r.sha256 for r in ws.datasets()} == {old_sha, new_sha}

    # Putting the old bytes back is a cache hit on the dataset that already holds them.
    _upload(s3_env, bucket, "data.parquet", demo_parquet)
    back = invoke("fetch", uri, "--endpoint-url", s3_env.endpoint, "--json")
    assert json.loads(back.stdout)["up_to_date"] is True
    assert ws.current().sha256 == old_sha

    pruned = invoke("datasets", "prune")
    assert pruned.exit_code == 0, pruned.output
    assert f"removed {new_sha[:12]}" in pruned.stdout and "freed" in pruned.stdout
    assert [r.sha256 for r in ws.datasets()] == [old_sha]
    assert invoke("datasets", "prune").stdout.startswith("nothing to prune")


def test_a_download_cut_half_way_is_resumed(s3_env, bucket, proxy, demo_parquet,
                                            isolated) -> None:
    sha = _upload(s3_env, bucket, "d.parquet", demo_parquet)
    proxy.cut_gets = 1  # the first GET dies after 20 kB; the retry must resume, not restart
    storage = S3Storage(connection=Connection(endpoint_url=proxy.endpoint))
    result = core.fetch_s3(Workspace(isolated), f"s3://{bucket}/d.parquet", storage)
    assert result.record.sha256 == sha
    assert result.record.path.read_bytes() == demo_parquet.read_bytes()
    assert proxy.count("GET", bucket) == 2


def test_a_download_that_keeps_failing_changes_nothing(invoke, s3_env, bucket, proxy,
                                                       demo_parquet, other_parquet,
                                                       isolated) -> None:
    uri = f"s3://{bucket}/d.parquet"
    old_sha = _upload(s3_env, bucket, "d.parquet", demo_parquet)
    assert invoke("fetch", uri, "--endpoint-url", proxy.endpoint).exit_code == 0
    before = _snapshot(isolated)

    _upload(s3_env, bucket, "d.parquet", other_parquet)
    proxy.reset()
    proxy.cut_gets, proxy.cut_after = 100, 2_000  # every GET is cut off after 2 kB
    result = invoke("fetch", uri, "--endpoint-url", proxy.endpoint)
    assert result.exit_code == 2, result.output
    line = _one_error_line(result)
    assert uri in line and "cut off after" in line and "nothing was changed" in line
    assert proxy.count("GET", bucket) == 4  # the first try and three resumes
    assert _snapshot(isolated) == before  # no temp file, same manifest, same current
    assert Workspace(isolated).current().sha256 == old_sha


def test_transient_server_errors_are_retried(s3_env, bucket, proxy, demo_parquet,
                                             isolated) -> None:
    sha = _upload(s3_env, bucket, "d.parquet", demo_parquet)
    proxy.fail_next = 2  # two 503 SlowDown answers, then the server is fine again
    storage = S3Storage(connection=Connection(endpoint_url=proxy.endpoint))
    result = core.fetch_s3(Workspace(isolated), f"s3://{bucket}/d.parquet", storage)
    assert result.record.sha256 == sha
    assert proxy.count("HEAD", bucket) == 3


@pytest.mark.parametrize(("content", "expected"), [
    (b"PAR1 this is not a parquet file", "is not a readable parquet file"),
    ("no_revenue", "breaks the data contract: no 'revenue' column"),
])
def test_a_bad_table_is_refused_and_changes_nothing(invoke, s3_env, bucket, demo_parquet,
                                                    small_demo, tmp_path, isolated, content,
                                                    expected) -> None:
    _upload(s3_env, bucket, "good.parquet", demo_parquet)
    assert invoke("fetch", f"s3://{bucket}/good.parquet", "--endpoint-url",
                  s3_env.endpoint).exit_code == 0
    before = _snapshot(isolated)
    bad = tmp_path / "bad.parquet"
    if content == "no_revenue":
        small_demo.drop(columns=["revenue"]).to_parquet(bad, index=False)
    else:
        bad.write_bytes(content)
    _upload(s3_env, bucket, "bad.parquet", bad)

    result = invoke("fetch", f"s3://{bucket}/bad.parquet", "--endpoint-url", s3_env.endpoint)
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert f"s3://{bucket}/bad.parquet" in line and expected in line
    assert _snapshot(isolated) == before


def test_a_full_disk_changes_nothing(invoke, s3_env, bucket, demo_parquet, other_parquet,
                                     isolated, monkeypatch) -> None:
    uri = f"s3://{bucket}/d.parquet"
    _upload(s3_env, bucket, "d.parquet", demo_parquet)
    assert invoke("fetch", uri, "--endpoint-url", s3_env.endpoint).exit_code == 0
    before = _snapshot(isolated)
    _upload(s3_env, bucket, "d.parquet", other_parquet)

    written = []

    def full_disk(self, chunk: bytes) -> int:  # the disk fills up after the first chunk
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(len(chunk))
        return self.fh.write(chunk)

    monkeypatch.setattr(core._HashingWriter, "write", full_disk)
    monkeypatch.setattr("revcli.storage.CHUNK", 8192)
    result = invoke("fetch", uri, "--endpoint-url", s3_env.endpoint)
    assert result.exit_code == 2, result.output
    line = _one_error_line(result)
    assert uri in line and "no space left on device" in line
    assert _snapshot(isolated) == before


def test_failures_name_the_object_and_never_the_credentials(invoke, s3_env, bucket, demo_parquet,
                                                            monkeypatch, capfd) -> None:
    _upload(s3_env, bucket, "d.parquet", demo_parquet)
    good = f"s3://{bucket}/d.parquet"
    cases = [
        ({}, f"s3://{bucket}/missing.parquet", "no such key"),
        ({}, "s3://no-such-bucket-here/d.parquet", "bucket 'no-such-bucket-here' does not exist"),
        ({"AWS_SECRET_ACCESS_KEY": "wrong-" + s3_env.secret_key}, good,
         "secret key is wrong (SignatureDoesNotMatch)"),
        ({"AWS_ACCESS_KEY_ID": "nobody"}, good, "access key id is not known"),
    ]
    for env, uri, expected in cases:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        result = invoke("fetch", uri, "--endpoint-url", s3_env.endpoint)
        for key in env:
            monkeypatch.setenv(key, s3_env.env()[key])
        assert result.exit_code == 2, (uri, result.output)
        line = _one_error_line(result)
        assert uri in line and expected in line, line
        assert s3_env.secret_key not in result.output
        assert "Traceback" not in result.output

    from tests.integration.servers import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    result = invoke("fetch", good, "--endpoint-url", dead)
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert f"cannot reach the S3 endpoint {dead} for {good}" in line
    captured = capfd.readouterr()
    assert s3_env.secret_key not in captured.out + captured.err


def test_settings_from_the_aws_environment_and_profiles(invoke, s3_env, bucket, demo_parquet,
                                                        tmp_path, monkeypatch) -> None:
    _upload(s3_env, bucket, "d.parquet", demo_parquet)
    uri = f"s3://{bucket}/d.parquet"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_env.endpoint)
    assert invoke("fetch", uri).exit_code == 0
    config = {r["name"]: r for r in json.loads(invoke("config", "--json").stdout)["settings"]}
    assert config["endpoint_url"]["source"] == "env:AWS_ENDPOINT_URL_S3"

    # A named profile in a credentials file, credentials absent from the environment.
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(f"[minio]\naws_access_key_id = {s3_env.access_key}\n"
                           f"aws_secret_access_key = {s3_env.secret_key}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = invoke("fetch", uri, "--profile", "minio", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["up_to_date"] is True

    missing = invoke("fetch", uri, "--profile", "nope")
    assert missing.exit_code == 2
    assert "AWS profile 'nope' is not in" in _one_error_line(missing)


def test_the_default_source_comes_from_the_config_file(invoke, s3_env, bucket, demo_parquet,
                                                       tmp_path) -> None:
    sha = _upload(s3_env, bucket, "training_data.parquet", demo_parquet)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "revcli.toml").write_text(
        f'source = "s3://{bucket}/training_data.parquet"\n'
        f'endpoint_url = "{s3_env.endpoint}"\n')
    result = invoke("fetch", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dataset"]["sha256"] == sha
