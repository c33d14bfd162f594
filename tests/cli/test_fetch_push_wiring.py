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


def test_fetch_actions_exclude_each_other(invoke) -> None:
    assert invoke("fetch", "--list", "--prune").exit_code == 2
    assert invoke("fetch", "--prune", "x.parquet").exit_code == 2


def test_prune_keeps_the_current_dataset(invoke, demo_parquet) -> None:
    assert invoke("fetch", "--prune").stdout.startswith("nothing to prune")
    first = json.loads(invoke("fetch", "--demo", "--rows", "1000", "--json").stdout)
    current = json.loads(invoke("fetch", str(demo_parquet), "--json").stdout)
    result = invoke("fetch", "--prune", "--json")
    assert result.exit_code == 0, result.output
    pruned = json.loads(result.stdout)
    assert [r["sha256"] for r in pruned["removed"]] == [first["dataset"]["sha256"]]
    assert pruned["kept"] == current["dataset"]["sha256"]
    assert pruned["freed_bytes"] == first["dataset"]["bytes"]
    listing = json.loads(invoke("fetch", "--list", "--json").stdout)
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
