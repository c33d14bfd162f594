"""`revcli tune` wiring: output, exit codes, one-line errors, and a study bad input leaves alone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest

from revcli import atomic
from revcli.tuning import _study
from revcli.workspace import Workspace
from tests.cli.test_train import _one_line_error
from tests.integration.servers import free_port
from tests.tuning.conftest import CHEAP_SPACE
from tests.workspaces import seed_store


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "spaces.toml"
    path.write_text(CHEAP_SPACE)
    return path


@pytest.fixture
def ws(small_settings) -> Path:
    """The small demo workspace with a migrated MLflow store."""
    seed_store(small_settings.workspace)
    return small_settings.workspace


@pytest.fixture
def existing_study(small_settings) -> Path:
    """The default study storage holding one study with one trial."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    workspace = Workspace(small_settings.workspace)
    storage = _study.open_storage(_study.default_url(workspace), workspace)
    study = optuna.create_study(storage=storage, study_name="existing")
    study.add_trial(optuna.trial.create_trial(value=1.0))
    return workspace.studies_dir / _study.STUDY_DB


def test_tune_json_is_one_object_with_the_holdout_scorecard(invoke, ws, space_file) -> None:
    result = invoke("tune", "--space", str(space_file), "-n", "3", "-j", "1", "--no-plots",
                    "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["trials"]["new"]["completed"] == 3
    assert payload["space"]["source"] == str(space_file) and not payload["space"]["builtin"]
    assert payload["sampler"] == {"name": "TPE", "seed": 42, "per_trial_seed":
                                  "seed + trial number"}
    assert payload["best"]["estimator"] == "xgb" and len(payload["best"]["fold_scores"]) == 3
    card = payload["refit"]["scorecard"]
    assert card["population"] == "test converters"
    assert set(card["metrics"]) == set(card["baseline"]) == {"rmse", "mae", "r2", "mape"}
    assert payload["versions"]["optuna"] == optuna.__version__
    # --json keeps the plain progress lines on stderr (an Airflow log), stdout to the JSON
    lines = [line for line in result.stderr.splitlines() if line]
    assert any(line.startswith("trials ") for line in lines), lines
    assert any(line.startswith("… ") for line in lines) and not any(
        line.startswith("Error:") for line in lines)
    quiet = invoke("tune", "--space", str(space_file), "-n", "1", "-j", "1", "--no-plots",
                   "--json", "-q")
    assert not any(line.startswith(("… ", "trials ")) for line in quiet.stderr.splitlines())


def test_tune_tables_show_top_trials_and_the_holdout_once(invoke, ws, space_file) -> None:
    result = invoke("tune", "--space", str(space_file), "-n", "2", "-j", "1", "--no-plots",
                    "--drop-feature", "engagement_depth", "--top", "2")
    assert result.exit_code == 0, result.output
    assert "top trials of converting_only-xgb-rmse-cv3-" in result.stdout
    # the best trial, or the defaults when the folds do not rate it clearly above them
    assert re.search(r"holdout, scored once: (best trial|the defaults \(trial)", result.stdout)
    assert "vs the defaults (trial 0)" in result.stdout and "gain" in result.stdout
    assert "RMSE ($)" in result.stdout and "baseline" in result.stdout
    assert "2 new completed" in result.stdout
    assert "engagement_depth" not in result.stderr  # dropped: no leak warning


def test_the_builtin_spaces_are_used_outside_the_repository(invoke, ws) -> None:
    # the autouse fixture runs every test in an empty directory: no configs/ here
    assert not Path("configs").exists()
    result = invoke("tune", "--estimator", "ridge", "-n", "1", "-j", "1", "--no-plots")
    assert result.exit_code == 0, result.output
    assert "search space: built-in default spaces (no configs/spaces.toml here)" in (
        result.stderr)
    assert "new study converting_only-ridge-rmse-cv3-" in result.stderr


BAD_SPACES = {
    "unknown_type": '[xgb]\nmax_depth = { type = "normal", low = 1, high = 3 }\n',
    "low_above_high": '[xgb]\nmax_depth = { type = "int", low = 9, high = 3 }\n',
    "unknown_param": '[hgb]\nmax_depth_x = { type = "int", low = 1, high = 3 }\n',
    "not_toml": '[xgb\n',
}


@pytest.mark.parametrize(("args", "fragment"), [
    (["--estimator", "svm"], "unknown estimator 'svm'"),
    (["--estimator", "mean"], "declares no search space for 'mean'"),
    (["--metric", "r2"], "unknown tune metric 'r2'; choose one of rmse, mae, tweedie_deviance"),
    (["--n-trials", "0"], "--n-trials must be at least 1, got 0"),
    (["--n-trials", "-3"], "--n-trials must be at least 1, got -3"),
    (["--timeout", "0"], "--timeout must be a positive number"),
    (["--folds", "1"], "--folds must be at least 2"),
    (["--n-jobs", "0"], "--n-jobs must be -1"),
    (["--strategy", "nope"], "unknown strategy 'nope'"),
    (["--space", "unknown_type"], "[xgb].max_depth: unknown distribution type 'normal'"),
    (["--space", "low_above_high"], "[xgb].max_depth: low 9 > high 3"),
    (["--space", "unknown_param"], "the estimator of 'hgb' takes no parameter 'max_depth_x'"),
    (["--space", "not_toml"], "is not valid TOML"),
    (["--space", "missing.toml"], "spaces file missing.toml does not exist"),
    (["--storage", "not-a-url"], "'not-a-url' is not a database URL"),
    (["--storage", "postgresql://revcli:s3cret@127.0.0.1:{port}/optuna"],
     "cannot open the Optuna storage postgresql://revcli:***@127.0.0.1:"),
    (["--storage", "sqlite:////nonexistent-dir/x/optuna.db"],
     "cannot open the Optuna storage sqlite:////nonexistent-dir/x/optuna.db"),
    (["--fresh", "--metric", "mape"], "unknown tune metric 'mape'"),
])
def test_bad_input_is_one_line_exit_2_and_leaves_the_study_alone(
        invoke, existing_study, tmp_path, args, fragment) -> None:
    args = list(args)
    if args[0] == "--space" and args[1] in BAD_SPACES:
        path = tmp_path / f"{args[1]}.toml"
        path.write_text(BAD_SPACES[args[1]])
        args[1] = str(path)
    args = [a.replace("{port}", str(free_port())) for a in args]
    before = atomic.sha256_file(existing_study)

    result = invoke("tune", "-n", "2", "--no-plots", *args)

    _one_line_error(result, fragment)
    assert "s3cret" not in result.output
    assert result.stdout == ""
    assert atomic.sha256_file(existing_study) == before
    assert optuna.get_all_study_names(f"sqlite:///{existing_study}") == ["existing"]
