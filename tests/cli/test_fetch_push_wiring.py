"""Wiring of `revcli fetch` / `revcli push` that needs no server: sources, flags, exit codes."""

from __future__ import annotations

import json


def test_fetch_accepts_file_uris_and_refuses_other_schemes(invoke, demo_parquet) -> None:
    result = invoke("fetch", demo_parquet.as_uri(), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dataset"]["source"] == str(demo_parquet)

    other = invoke("fetch", "https://example.invalid/t.parquet")
    assert other.exit_code == 2
    assert "give s3://bucket/key, a local parquet path or a file:// URI" in other.stderr


def test_fetch_takes_a_source_or_the_demo_not_both(invoke) -> None:
    result = invoke("fetch", "--demo", "x.parquet")
    assert result.exit_code == 2 and "not both" in result.output


def test_datasets_use_and_export(invoke, demo_parquet, tmp_path, isolated) -> None:
    first = json.loads(invoke("fetch", "--demo", "--rows", "1000", "--json").stdout)["dataset"]
    second = json.loads(invoke("fetch", str(demo_parquet), "--json").stdout)["dataset"]
    exported = tmp_path / "out" / "sessions.parquet"
    result = invoke("datasets", "export", str(exported))
    assert result.exit_code == 0, result.output
    from revcli import atomic

    assert atomic.sha256_file(exported) == second["sha256"]
    assert invoke("datasets", "use", first["sha256"][:8]).exit_code == 0
    listing = json.loads(invoke("datasets", "list", "--json").stdout)
    assert listing["current"] == first["sha256"]
    missing = invoke("datasets", "use", "ffffffff")
    assert missing.exit_code == 2 and "datasets list" in missing.stderr
    bad = invoke("datasets", "export", str(tmp_path / "x.csv"))
    assert bad.exit_code == 2 and ".parquet" in bad.stderr


def test_prune_removes_temp_files_of_killed_downloads_at_once(invoke, isolated) -> None:
    import subprocess
    import sys

    assert invoke("fetch", "--demo", "--rows", "1000").exit_code == 0
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that is gone
    orphan = isolated / "datasets" / f".incoming.{proc.pid}.abc.parquet.tmp"
    orphan.write_bytes(b"x" * 1000)
    import os

    live = isolated / "datasets" / f".incoming.{os.getpid()}.def.parquet.tmp"
    live.write_bytes(b"y" * 10)  # its writer runs: kept
    result = invoke("datasets", "prune", "--json")
    assert result.exit_code == 0, result.output
    pruned = json.loads(result.stdout)
    assert pruned["temp_files"] == 1 and pruned["freed_bytes"] == 1000
    assert not orphan.exists() and live.exists()


def test_prune_keeps_the_current_dataset(invoke, demo_parquet) -> None:
    assert invoke("datasets", "prune").stdout.startswith("nothing to prune")
    first = json.loads(invoke("fetch", "--demo", "--rows", "1000", "--json").stdout)
    current = json.loads(invoke("fetch", str(demo_parquet), "--json").stdout)
    result = invoke("datasets", "prune", "--json")
    assert result.exit_code == 0, result.output
    pruned = json.loads(result.stdout)
    assert [r["sha256"] for r in pruned["removed"]] == [first["dataset"]["sha256"]]
    assert pruned["kept"] == current["dataset"]["sha256"]
    assert pruned["freed_bytes"] == first["dataset"]["bytes"]
    listing = json.loads(invoke("datasets", "list", "--json").stdout)
    assert [d["sha256"] for d in listing["datasets"]] == [current["dataset"]["sha256"]]


def test_push_usage_errors(invoke) -> None:
    assert invoke("push").exit_code == 2  # --run is required
    forced = invoke("push", "--run", "abc", "--force")
    assert forced.exit_code == 2 and "--promote" in forced.output
    missing = invoke("push", "--run", "abc")
    assert missing.exit_code == 2 and "no run 'abc'" in missing.stderr
    bad_uri = invoke("push", "--run", "abc", "--uri", "models/regression_model.pkl")
    assert bad_uri.exit_code == 2 and "is not an S3 URI" in bad_uri.stderr
    metric = invoke("push", "--run", "abc", "--promote", "--metric", "accuracy")
    assert metric.exit_code == 2
    assert "unknown metric 'accuracy' for the promotion gate" in metric.stderr
