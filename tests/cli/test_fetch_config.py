from __future__ import annotations

import json


def test_fetch_demo_list_and_local(invoke, demo_parquet) -> None:
    result = invoke("fetch", "--demo", "--rows", "1500", "--seed", "2", "--json")
    assert result.exit_code == 0, result.output
    demo = json.loads(result.stdout)["dataset"]
    assert demo["rows"] == 1500 and demo["source"] == "demo:rows=1500,seed=2"

    result = invoke("fetch", str(demo_parquet))
    assert result.exit_code == 0, result.output
    assert "is now current" in result.stdout

    listing = json.loads(invoke("datasets", "list", "--json").stdout)
    assert len(listing["datasets"]) == 2
    assert listing["current"] != demo["sha256"]
    table = invoke("datasets", "list").stdout
    assert demo["sha256"][:12] in table


def test_fetch_rejects_a_non_parquet_file(invoke, tmp_path) -> None:
    junk = tmp_path / "x.parquet"
    junk.write_text("hello")
    result = invoke("fetch", str(junk))
    assert result.exit_code == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error:") and "not a readable parquet" in last


def test_config_shows_value_and_source(invoke, monkeypatch, tmp_path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "revcli.toml").write_text('estimator = "rf"\n')
    monkeypatch.setenv("REVCLI_SEED", "11")
    rows = {r["name"]: r for r in json.loads(invoke("config", "--json").stdout)["settings"]}
    assert rows["estimator"]["value"] == "rf"
    assert rows["estimator"]["source"] == "file:configs/revcli.toml"
    assert (rows["seed"]["value"], rows["seed"]["source"]) == (11, "env:REVCLI_SEED")
    assert rows["strategy"]["source"] == "default"
    assert rows["workspace"]["source"] == "env:REVCLI_WORKSPACE"
    table = invoke("config").stdout
    assert "env:REVCLI_SEED" in table
