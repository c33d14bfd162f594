"""revcli evaluate: tables, JSON, and the exit codes a CI job or an Airflow task stops on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli.test_train import _one_line_error
from tests.workspaces import seed_store, train_in


@pytest.fixture
def ws_args(trained) -> list[str]:
    """The session's trained workspace, read-only: no evaluation run, no plots."""
    return ["--workspace", str(trained.model_path.parents[2]), "--no-track", "--no-plots"]


@pytest.fixture
def lenient(tmp_path: Path) -> Path:
    path = tmp_path / "lenient.toml"
    path.write_text('default_level = "minimum"\n[minimum]\nrmse = "< 1000"\nmae = "< 1000"\n')
    return path


def test_shown_targets_do_not_fail_the_command(invoke, trained, ws_args) -> None:
    result = invoke("evaluate", "--run", trained.run_id, *ws_args)
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())  # captions wrap at the table's width
    assert "RMSE ($)" in out and "own training rows" in out
    assert "errors by segment" in out and "bsearch or direct/organic" in out
    assert "shown, not enforced" in out and "gate minimum: FAIL" in out
    assert "permutation importance" in out


@pytest.fixture(scope="module")
def leaky(tmp_path_factory, small_demo) -> tuple[list[str], str]:
    """(workspace args, run id) of an all-sessions model whose scores rest on the leak."""
    s, result = train_in(tmp_path_factory.mktemp("leaky-cli"), small_demo, strategy="all",
                         estimator="ridge")
    return ["--workspace", str(s.workspace), "--no-track", "--no-plots"], result.run_id


def test_gate_exit_codes_and_the_leak_rule(invoke, trained, ws_args, leaky, lenient) -> None:
    args, run_id = leaky
    leak = invoke("evaluate", "--run", run_id, *args, "--gate", str(lenient))
    assert leak.exit_code == 1, leak.output
    last = leak.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: gate 'minimum'") and "engagement_depth" in last
    assert "pass (leak)" in leak.stdout
    allowed = invoke("evaluate", "--run", run_id, *args, "--gate", str(lenient),
                     "--allow-leak")
    assert allowed.exit_code == 0, allowed.output
    assert "gate minimum: pass" in allowed.stdout
    # converting_only is scored on converters, where the leak is constant: it passes
    honest = invoke("evaluate", "--run", trained.run_id, *ws_args, "--gate", str(lenient))
    assert honest.exit_code == 0, honest.output
    # the seed's R² target is out of reach on this data: the gate fails, as it should
    seed = invoke("evaluate", "--run", trained.run_id, *ws_args, "--level", "good")
    assert seed.exit_code == 1
    assert "r2" in seed.stderr and "is not > 0.5" in seed.stderr


def test_json_has_the_verdicts_even_when_the_gate_fails(invoke, leaky, lenient) -> None:
    args, run_id = leaky
    result = invoke("evaluate", "--run", run_id[:10], *args, "--gate", str(lenient), "--json")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    gate = payload["gate"]
    assert gate["enforced"] and not gate["passed"] and gate["leaks"] == ["engagement_depth"]
    assert [v["metric"] for v in gate["verdicts"]] == ["rmse", "mae"]
    assert all(v["passed"] for v in gate["verdicts"])
    assert payload["scorecard"]["population"] == "all test sessions"
    assert payload["segments"] and payload["calibration"]
    assert payload["model"]["run_id"] == run_id


def test_an_honest_model_passes_and_is_logged(invoke, small_settings, lenient) -> None:
    seed_store(small_settings.workspace)
    trained = invoke("train", "--strategy", "all", "--estimator", "ridge", "--drop-feature",
                     "engagement_depth", "--no-plots", "--json")
    run_id = json.loads(trained.stdout)["run_id"]
    result = invoke("evaluate", "--run", run_id, "--gate", str(lenient))
    assert result.exit_code == 0, result.output
    assert "gate minimum: pass" in result.stdout
    assert "evaluation run" in result.stdout and "plots " in result.stdout


def test_bad_input_is_one_line_and_exit_2(invoke, trained, ws_args, tmp_path) -> None:
    _one_line_error(invoke("evaluate", "--run", "0" * 32, *ws_args), "no MLflow run")
    _one_line_error(invoke("evaluate", *ws_args), "exactly one of --run")
    # a pickle no run vouches for (a skops copy would load: it runs no code)
    import joblib

    from revcli import serialization

    tampered = tmp_path / "m" / "model.joblib"
    tampered.parent.mkdir()
    joblib.dump(serialization.load(trained.model_path), tampered)
    shutil.copy(trained.model_path.parent / "model.json", tampered.parent / "model.json")
    with open(tampered, "ab") as fh:
        fh.write(b"x")
    _one_line_error(invoke("evaluate", "--model", str(tampered), *ws_args),
                    "refusing to unpickle")
    foreign = tmp_path / "foreign.joblib"
    foreign.write_bytes(b"not a model")
    _one_line_error(invoke("evaluate", "--model", str(foreign), "--trust", *ws_args),
                    "is not a revcli model")
    import pandas as pd

    data = tmp_path / "cut.parquet"
    pd.read_parquet(trained.dataset.path).drop(columns=["hour_of_day"]).to_parquet(data)
    _one_line_error(invoke("evaluate", "--run", trained.run_id, "--data", str(data), *ws_args),
                    "lacks 1 feature(s) the model needs: hour_of_day")
    _one_line_error(invoke("evaluate", "--run", trained.run_id, "--level", "great", *ws_args),
                    "no targets level 'great'")
