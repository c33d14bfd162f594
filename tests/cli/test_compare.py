"""revcli compare runs / strategies: formats that parse, warnings above the table, hints and
one-line errors."""

from __future__ import annotations

import csv
import io
import json
import socket

import pytest

from revcli import settings
from tests.cli.test_train import _one_line_error
from tests.test_compare import Store
from tests.workspaces import seed_store


@pytest.fixture
def store(isolated) -> Store:
    s = Store(settings.resolve(flags={"workspace": str(isolated)}, env={}))
    s.log(metrics={"rmse": 2.0, "mae": 1.0}, params={"model.max_depth": "6"}, name="deep")
    s.log(metrics={"rmse": 1.0, "mae": 1.5}, params={"model.max_depth": "3"}, name="shallow",
          dataset="c" * 64)
    return s


def test_table_leads_and_one_line_says_not_comparable(invoke, store) -> None:
    result = invoke("compare", "runs")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("runs of Revenue_Prediction")
    assert out.index("shallow") < out.index("deep")  # rmse 1.0 first
    tail = out.strip().splitlines()[-1]
    assert tail.startswith("Caveats: these runs were trained on 2 different datasets")
    assert "--verbose" in tail and "not comparable" not in out
    verbose = invoke("compare", "runs", "--verbose").stdout
    assert verbose.index("shallow") < verbose.index("2 different datasets")
    assert "their scores are not comparable" in verbose


def test_formats_parse(invoke, store) -> None:
    as_json = invoke("compare", "runs", "--format", "json", "--only-changed")
    assert as_json.exit_code == 0, as_json.output
    payload = json.loads(as_json.stdout)
    assert [r["name"] for r in payload["runs"]] == ["shallow", "deep"]
    assert payload["params"] == ["model.max_depth"]
    assert "not comparable" in payload["warnings"][0]

    as_csv = invoke("compare", "runs", "--format", "csv", "--sort", "mae")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["name"] for r in rows] == ["deep", "shallow"]
    assert float(rows[0]["mae"]) == 1.0 and len(rows[0]["run_id"]) == 32
    assert "not comparable" in as_csv.stderr  # never inside the CSV

    as_md = invoke("compare", "runs", "--format", "md", "--only-changed")
    lines = as_md.stdout.splitlines()
    assert lines[0].startswith("> **Warning:**") and "not comparable" in lines[0]
    table = [line for line in lines if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[:3] == ["run_id", "name", "started"] and header[-1] == "param max_depth"
    assert set(table[1]) <= {"|", "-"}
    body = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    assert [r[1] for r in body] == ["shallow", "deep"]
    assert body[0][header.index("rmse")] == "1.00"


def test_side_by_side_and_baseline_deltas(invoke, store) -> None:
    runs = json.loads(invoke("compare", "runs", "--json").stdout)["runs"]
    shallow, deep = runs[0]["run_id"], runs[1]["run_id"]
    result = invoke("compare", "runs", deep, shallow)
    assert result.exit_code == 0, result.output
    assert "2 runs side by side" in result.stdout and "param max_depth" in result.stdout
    pinned = invoke("compare", "runs", "--baseline", deep, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(pinned.stdout)))
    assert rows[0]["run_id"] == deep and rows[0]["rmse_delta"] == ""
    assert float(rows[1]["rmse_delta"]) == -1.0


def test_no_runs_is_a_hint_and_exit_0(invoke, isolated) -> None:
    seed_store(isolated)
    result = invoke("compare", "runs")
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and "revcli train" in result.stderr


def test_errors_are_one_line(invoke, store, monkeypatch) -> None:
    _one_line_error(invoke("compare", "runs", "--sort", "accuracy"), "unknown metric")
    _one_line_error(invoke("compare", "runs", "--format", "xml"), "unknown --format")
    _one_line_error(invoke("compare", "runs", "--experiment", "nope"), "no experiment 'nope'")
    _one_line_error(invoke("compare", "runs", "--since", "soon"), "give a duration")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    _one_line_error(invoke("compare", "runs", "--tracking-uri", f"http://127.0.0.1:{port}"),
                    "is unreachable")


def test_subcommands_have_help_with_an_example(invoke) -> None:
    for command in ("runs", "strategies"):
        result = invoke("compare", command, "--help")
        assert result.exit_code == 0 and "Example" in result.output


def test_compare_strategies_csv(invoke, small_settings) -> None:
    seed_store(small_settings.workspace)
    result = invoke("compare", "strategies", "-e", "mean", "-s", "all,two_stage",
                    "--drop-feature", "engagement_depth", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["strategy"] for r in rows] == ["all", "two_stage", "-", "-"]
    # the mean estimator is the baseline: all / mean scores what the baseline row scores
    assert float(rows[0]["rmse"]) == pytest.approx(float(rows[2]["rmse"]))
