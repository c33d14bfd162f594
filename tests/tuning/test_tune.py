"""tune() in-process: the study, the resume, the seed, the refit and what MLflow records."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from revcli import processes
from revcli.errors import ConfigError, RevcliError
from revcli.tuning import _study, tune
from revcli.workspace import Workspace


def _load(result) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    url = result.storage
    return optuna.load_study(study_name=result.study, storage=url)


def test_tune_refits_the_best_and_logs_parent_and_trial_runs(tune_settings) -> None:
    result = tune(tune_settings(n_trials=5))
    assert result.new["completed"] == 5 and not result.resumed
    assert result.stop_reason == "n_trials" and not result.interrupted
    assert result.best is not None and result.best.value == min(t.value for t in result.top)
    assert len(result.best.fold_scores) == 3
    card = result.refit.scorecard
    assert card.population == "test converters" and set(card.baseline) >= {"rmse", "mae"}

    client = MlflowClient(tracking_uri=result.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    tags, metrics, params = parent.data.tags, parent.data.metrics, parent.data.params
    assert parent.info.status == "FINISHED"
    assert tags["revcli.command"] == "tune" and tags["revcli.study"] == result.study
    assert tags["revcli.dataset_sha256"] == result.key["dataset_sha256"]
    assert tags["revcli.split_hash"] == result.refit.split["hash"]
    assert tags["revcli.strategy"] == "converting_only" and tags["revcli.estimator"] == "xgb"
    assert tags["revcli.lib.optuna"] == optuna.__version__
    # it compares like a train run: holdout metrics beside the baseline
    for key in ("rmse", "mae", "r2", "mape", "baseline_rmse", "baseline_mae"):
        assert key in metrics
    assert metrics["rmse"] == pytest.approx(card.metrics["rmse"])
    assert metrics["best_cv_rmse"] == pytest.approx(result.best.value)
    assert metrics["trials_completed"] == 5
    assert params["tune.sampler_seed"] == "7" and params["tune.cv_folds"] == "3"
    artifacts = {a.path for a in client.list_artifacts(result.parent_run_id, "plots")}
    assert {"plots/optimization_history.png", "plots/param_importances.png"} <= artifacts

    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'")
    assert len(children) == result.totals["total"]
    by_trial = {int(r.data.tags["revcli.trial"]): r for r in children}
    best_run = by_trial[result.best.number]
    assert best_run.data.tags["revcli.study"] == result.study
    assert best_run.data.metrics["cv_rmse"] == pytest.approx(result.best.value)
    history = client.get_metric_history(best_run.info.run_id, "fold_rmse")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2]
    assert "rmse" not in best_run.data.metrics  # trial runs never look like holdout scores
    assert best_run.data.params["max_depth"] == str(result.best.params["max_depth"])


def test_the_same_command_resumes_and_counts_new_completed_trials(tune_settings) -> None:
    first = tune(tune_settings(n_trials=3), plots=False)
    second = tune(tune_settings(n_trials=4), plots=False)
    assert second.study == first.study and second.resumed
    assert second.new["completed"] == 4
    study = _load(second)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3 + 4 == second.totals["complete"]
    assert second.best.value <= first.best.value
    client = MlflowClient(tracking_uri=second.tracking_uri)
    parents = client.search_runs(
        [client.get_run(second.parent_run_id).info.experiment_id],
        filter_string=f"tags.`revcli.study` = '{second.study}' and "
                      "tags.`revcli.command` = 'tune'")
    assert {r.info.run_id for r in parents} == {first.parent_run_id, second.parent_run_id}


def test_a_seeded_sequential_search_is_reproducible(tune_settings, tmp_path, tiny_demo) -> None:
    first = tune(tune_settings(n_trials=5), plots=False)
    other = tmp_path / "other-ws"
    Workspace(other).write_dataset(tiny_demo, source="demo:tiny")
    again = tune(tune_settings(n_trials=5, workspace=str(other)), plots=False)
    assert again.study == first.study and not again.resumed
    assert [t.params for t in again.top] == [t.params for t in first.top]
    assert again.best.value == first.best.value
    assert again.refit.scorecard.metrics == first.refit.scorecard.metrics


def test_all_estimators_on_two_stage_refits_the_winner(tune_settings) -> None:
    result = tune(tune_settings(n_trials=6, strategy="two_stage", estimator="all"), plots=False)
    assert result.new["failed"] == 0  # Tweedie and Poisson objectives (with the power) work
    tweedie = [t for t in _load(result).get_trials(states=(TrialState.COMPLETE,))
               if t.params.get("xgb.objective") == "reg:tweedie"]
    assert all(1.1 <= t.params["xgb.tweedie_variance_power"] <= 1.9 for t in tweedie)
    assert result.key["estimator"] == "all"
    assert result.refit.estimator == result.best.estimator in {"xgb", "ridge"}
    assert result.refit.scorecard.population == "all test sessions"
    assert "auc" in result.refit.scorecard.metrics
    client = MlflowClient(tracking_uri=result.tracking_uri)
    tags = client.get_run(result.parent_run_id).data.tags
    assert tags["revcli.tune_estimator"] == "all"
    assert tags["revcli.estimator"] == result.best.estimator


def test_a_named_study_of_another_setup_is_refused(tune_settings) -> None:
    tune(tune_settings(n_trials=2), study_name="nightly", plots=False)
    with pytest.raises(ConfigError, match="study 'nightly' was made for another setup"):
        tune(tune_settings(n_trials=2, tune_metric="mae"), study_name="nightly", plots=False)
    # --fresh replaces it
    replaced = tune(tune_settings(n_trials=2, tune_metric="mae"), study_name="nightly",
                    fresh=True, plots=False)
    assert replaced.totals["complete"] == 2 and replaced.metric == "mae"


def test_a_timeout_alone_searches_until_the_time_is_up(tune_settings) -> None:
    result = tune(tune_settings(n_trials=None, timeout=3), plots=False)
    assert result.requested is None and result.stop_reason == "timeout"
    assert result.new["completed"] >= 1
    assert result.timings["search"] < 3 + 10  # the running trial finishes, no new one starts


def test_a_space_whose_every_trial_fails_stops_with_the_reason(tune_settings, tmp_path) -> None:
    space = tmp_path / "broken.toml"
    space.write_text('[xgb]\nobjective = { type = "categorical", choices = ["reg:nonsense"] }\n')
    with pytest.raises(RevcliError, match=r"5 trials in a row failed, the last with .*nonsense"):
        tune(tune_settings(n_trials=3, spaces=str(space)), plots=False)
    client = MlflowClient(tracking_uri=f"sqlite:///{tune_settings().workspace / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("Revenue_Prediction_Regression").experiment_id],
        filter_string="tags.`revcli.command` = 'tune'")
    assert [r.info.status for r in runs] == ["FAILED"]


# -- recovering the trials of dead workers ---------------------------------------------------------


def _exited(reap: bool = True) -> tuple[dict, subprocess.Popen]:
    """The identity of a process that has exited: reaped, or a zombie not waited for yet."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    who = {**_study.worker(), "pid": proc.pid, "start": processes._start_ticks(proc.pid)}
    if reap:
        proc.wait()
    else:
        while processes._proc_stat(proc.pid)[0] != "Z":
            time.sleep(0.02)
    return who, proc


def _dead_pid() -> dict:
    return _exited()[0]


def test_process_gone_only_when_it_is_certain() -> None:
    me = _study.worker()
    assert not _study.process_gone(me)
    assert not _study.process_gone(None)
    assert not _study.process_gone({**me, "host": "another-host"})
    assert not _study.process_gone({**me, "boot": "another-boot"})
    assert _study.process_gone(_dead_pid())
    zombie, proc = _exited(reap=False)
    assert _study.process_gone(zombie)  # it has exited, even if its parent has not waited yet
    proc.wait()
    assert not _study.process_gone({**_dead_pid(), "pidns": -1})  # another container's pid
    # the pid lives on, but it is a younger process: the recorded one is gone
    if me["start"] is not None:
        assert _study.process_gone({**me, "pid": 1, "start": -5})


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_running_trials_of_dead_workers_are_failed_and_retried_once(tmp_path) -> None:
    storage = _study.open_storage(f"sqlite:///{tmp_path / 'o.db'}")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(storage=storage, study_name="s")
    dead, alive = study.ask(), study.ask()
    dead.suggest_int("x", 1, 9)
    dead.set_user_attr(_study.WORKER_ATTR, _dead_pid())
    alive.set_user_attr(_study.WORKER_ATTR, _study.worker())
    assert _study.reap_dead_trials(study, storage) == [dead.number]
    states = {t.number: t for t in study.trials}
    assert states[dead.number].state == TrialState.FAIL
    assert states[dead.number].user_attrs["error"] == "its worker process died"
    assert states[alive.number].state == TrialState.RUNNING
    retry = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(retry) == 1 and retry[0].params == states[dead.number].params
    assert retry[0].system_attrs["failed_trial"] == dead.number
    assert _study.WORKER_ATTR not in retry[0].user_attrs
    # the retry dies too: failed again, not retried a second time
    trial = study.ask()
    assert trial.number == retry[0].number
    trial.set_user_attr(_study.WORKER_ATTR, _dead_pid())
    assert _study.reap_dead_trials(study, storage) == [trial.number]
    assert not [t for t in study.trials if t.state == TrialState.WAITING]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_a_trial_orphaned_before_it_recorded_a_worker_is_recovered(tmp_path,
                                                                   monkeypatch) -> None:
    """Killed between Optuna creating the trial and revcli recording its worker: no worker, no
    heartbeat row -- once older than the grace period it is failed and retried like the rest."""
    storage = _study.open_storage(f"sqlite:///{tmp_path / 'o.db'}")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(storage=storage, study_name="s")
    orphan = study.ask()
    orphan.suggest_int("x", 1, 9)
    assert _study.reap_dead_trials(study, storage) == []  # young: it may still be starting
    import time as time_module

    later = time_module.time() + _study.GRACE_PERIOD + 5
    monkeypatch.setattr(_study.time, "time", lambda: later)
    assert _study.reap_dead_trials(study, storage) == [orphan.number]
    failed = study.trials[orphan.number]
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["error"] == "its worker died before the trial began"
    assert [t.params for t in study.trials if t.state == TrialState.WAITING] == [failed.params]


def test_the_study_key_is_stored_with_the_study(tune_settings) -> None:
    result = tune(tune_settings(n_trials=1), plots=False)
    stored = _load(result).user_attrs[_study.KEY_ATTR]
    assert stored == json.loads(json.dumps(result.key))
    assert stored["setup"]["split_hash"] == result.refit.split["hash"]
    assert result.study.startswith("converting_only-xgb-rmse-cv3-data")


def test_parallel_trials_run_the_queued_defaults_once(tune_settings) -> None:
    # Two threads popping the one queued trial from sqlite at once used to run it twice and
    # fail the search with "Cannot tell a COMPLETE trial" (optuna#4002); the queue now runs
    # alone, then the search goes parallel.
    for attempt in range(3):
        result = tune(tune_settings(n_trials=4, n_jobs=2, estimator="all"), plots=False,
                      fresh=True, study_name=f"parallel-{attempt}")
        assert result.stop_reason == "n_trials"
        study = _load(result)
        queued = [t.user_attrs["revcli.defaults_of"] for t in study.trials
                  if "revcli.defaults_of" in t.user_attrs]
        assert sorted(queued) == sorted(set(queued)) and queued
        assert result.parallel == 2


def test_tune_works_on_a_table_of_converters_only(tune_settings, tiny_demo, tmp_path) -> None:
    """Every row ordered (an orders table): nothing to stratify on, so plain folds, as train
    does it; not 'lower --folds', which could never help."""
    orders = tiny_demo[tiny_demo.revenue > 0].reset_index(drop=True)
    path = tmp_path / "orders.parquet"
    orders.to_parquet(path)
    result = tune(tune_settings(n_trials=2), data=path)
    assert result.new["completed"] == 2
    assert result.refit.scorecard.population == "test converters"
    assert result.refit.split["test_rows"] == pytest.approx(0.2 * len(orders), abs=1)
