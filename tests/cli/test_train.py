from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest


def test_train_json_prints_exactly_one_object(invoke, small_settings) -> None:
    result = invoke("train", "--strategy", "two_stage", "--estimator", "xgb", "-p",
                    "n_estimators=20", "--drop-feature", "engagement_depth", "--no-plots",
                    "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert payload["strategy"] == "two_stage"
    assert payload["dropped"] == ["engagement_depth"]
    assert payload["split"]["test_rows"] == 4_000
    assert set(payload["scorecard"]["metrics"]) >= {"rmse", "mae", "r2", "mape", "gini", "auc"}
    assert payload["run_id"] and Path(payload["model"]["path"]).is_file()


def test_train_table_output_names_the_leak(invoke, small_settings) -> None:
    result = invoke("train", "--no-plots", "--estimator", "ridge")
    assert result.exit_code == 0, result.output
    assert "RMSE" in result.stdout and "baseline" in result.stdout
    assert "MAPE (%, converters only)" in result.stdout
    assert "engagement_depth" in result.stdout
    assert "Warning: possible target leak: 'engagement_depth'" in result.stderr


def test_train_without_a_dataset_makes_the_demo_and_says_so(invoke, monkeypatch) -> None:
    monkeypatch.setenv("REVCLI_DEMO_ROWS", "3000")
    result = invoke("train", "--estimator", "mean", "--no-plots", "-q", "--json")
    assert result.exit_code == 0, result.output
    # said even with -q --json: on stderr, and in the result
    assert "generated the demo set (3,000 rows" in result.stderr
    body = json.loads(result.stdout)
    assert body["dataset"]["demo"] is True
    assert any("generated the demo set" in note for note in body["notes"])


def test_train_on_a_broken_current_dataset_is_an_error(invoke, monkeypatch, isolated) -> None:
    monkeypatch.setenv("REVCLI_DEMO_ROWS", "3000")
    assert invoke("fetch", "--demo").exit_code == 0
    (isolated / "current.json").write_text("{")
    result = invoke("train", "--estimator", "mean", "--no-plots", "-q", "--json")
    _one_line_error(result, "revcli fetch")
    # with --json, stdout holds the same error as one JSON object (issue 21): nothing else
    payload = json.loads(result.stdout)
    assert payload["exit_code"] == 2 and "revcli fetch" in payload["error"]


def _one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    # progress lines may precede it; the error itself is one line, and the last
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert fragment in errors[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("frame", "fragment"), [
    (pd.DataFrame({"revenue": [1.0, 0.0], "z": pd.to_timedelta([1, 2], "s")}),
     "column 'z' holds durations"),
    (pd.DataFrame({"revenue": [1.0, float("nan")], "x": [1, 2]}), "missing values"),
    (pd.DataFrame({"revenue": [1.0, -2.0], "x": [1, 2]}), "negative"),
    (pd.DataFrame({"revenue": pd.Series([], dtype=float), "x": pd.Series([], dtype=int)}),
     "empty"),
    (pd.DataFrame({"revenue": [0.0, 0.0], "x": [1, 2]}), "no converting sessions"),
    (pd.DataFrame({"sales": [1.0, 0.0], "x": [1, 2]}), "no 'revenue' column"),
])
def test_bad_data_is_one_line_and_exit_2(invoke, tmp_path, frame, fragment) -> None:
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path)
    _one_line_error(invoke("train", "--data", str(path)), fragment)


@pytest.mark.parametrize(("args", "fragment"), [
    (["--strategy", "nope"], "unknown strategy 'nope'"),
    (["--estimator", "svm"], "unknown estimator 'svm'"),
    (["--param", "depth"], "is not key=value"),
    (["--param", "nope=1"], "takes no parameter 'nope'"),
    (["--data", "missing.parquet"], "missing.parquet does not exist"),
    (["--drop-feature", "nope"], "'nope' is not a feature"),
    (["--test-size", "2"], "test_size must be between 0 and 1"),
    (["--importance", "shap"], "--importance must be one of native, permutation"),
])
def test_bad_usage_is_one_line_and_exit_2(invoke, small_settings, args, fragment) -> None:
    _one_line_error(invoke("train", *args), fragment)


def test_bad_env_value_is_one_line(invoke, monkeypatch) -> None:
    monkeypatch.setenv("REVCLI_SEED", "abc")
    _one_line_error(invoke("train"), "$REVCLI_SEED must be int")


def test_train_timings_prints_each_step_and_its_share(invoke, small_settings) -> None:
    result = invoke("train", "-q", "--no-plots", "--timings", "-p", "n_estimators=20")
    assert result.exit_code == 0, result.output
    block = result.stdout[result.stdout.index("seconds per step"):]
    for step in ("load", "tracking", "audit", "fit", "score", "importance", "log", "total"):
        assert f"│ {step} " in block
    assert "100%" in block
