"""Real `revcli tune` processes: killed, interrupted, side by side, and on PostgreSQL."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from revcli import settings
from revcli.errors import ConfigError
from revcli.tuning import _study, tune
from revcli.workspace import Workspace
from tests.tuning.conftest import spawn, stop_group

pytestmark = pytest.mark.slow

WAIT = 120  # seconds a worker may take on a loaded 2-core machine


def _study_of(url: str, name: str | None = None) -> optuna.Study | None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.RDBStorage(_study.normalize(url), skip_table_creation=True)
    names = [name] if name else optuna.get_all_study_names(storage)
    if not names or (name and not _study.study_exists(storage, name)):
        return None
    return optuna.load_study(study_name=names[0], storage=storage)


def _default_url(ws: Path) -> str:
    return _study.default_url(Workspace(ws))


def _wait_for(proc, predicate, what: str):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(f"worker exited ({proc.returncode}) before {what}: {err[-2000:]}")
        time.sleep(0.05)
    stop_group(proc)
    pytest.fail(f"timed out waiting for {what}")


def _finish(proc) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=WAIT)
    except Exception:
        stop_group(proc)
        raise
    return proc.returncode, out, err


def _mid_trial(ws: Path, completed: int):
    """(study, running trial) once ``completed`` trials are done and one is running."""
    def check():
        if not (ws / "studies" / _study.STUDY_DB).exists():
            return None
        try:
            study = _study_of(_default_url(ws))
        except Exception:  # the worker is still creating the schema
            return None
        if study is None:
            return None
        trials = study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        running = [t for t in trials if t.state == TrialState.RUNNING
                   and _study.WORKER_ATTR in t.user_attrs]
        return (study, running[0]) if len(done) >= completed and running else None

    return check


def test_a_worker_killed_mid_trial_is_recovered_on_resume(tiny_ws, slow_space, tmp_path) -> None:
    args = ["tune", "--strategy", "all", "--space", str(slow_space), "-j", "1", "--no-plots"]
    for _attempt in range(3):
        worker = spawn([*args, "-n", "100"], tiny_ws, tmp_path)
        _wait_for(worker, _mid_trial(tiny_ws, 2), "two trials and a running one")
        stop_group(worker, signal.SIGKILL)  # kill -9, reaped
        study = _study_of(_default_url(tiny_ws))
        zombies = study.get_trials(states=(TrialState.RUNNING,))
        if zombies:  # (else the trial finished in the instant before the kill: go again)
            break
    assert len(zombies) == 1
    zombie = zombies[0]
    complete_before = len(study.get_trials(states=(TrialState.COMPLETE,)))

    code, out, err = _finish(spawn([*args, "-n", "2", "--json"], tiny_ws, tmp_path))
    assert code == 0, err
    assert f"trial(s) #{zombie.number} were left running by a worker that is gone" in err
    result = json.loads(out)
    assert result["trials"]["recovered"] == [zombie.number] and result["resumed"]

    study = _study_of(_default_url(tiny_ws))
    trials = {t.number: t for t in study.get_trials()}
    assert not [t for t in trials.values() if t.state in (TrialState.RUNNING,
                                                          TrialState.WAITING)]
    assert trials[zombie.number].state == TrialState.FAIL
    assert trials[zombie.number].user_attrs["error"] == "its worker process died"
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == zombie.number]
    # (the zombie may have died before suggesting all its parameters)
    assert len(retries) == 1 and zombie.params.items() <= retries[0].params.items()
    assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == complete_before + 2
    assert sorted(trials) == list(range(len(trials)))

    # the killed worker's MLflow parent run is closed as KILLED, the new one FINISHED
    client = MlflowClient(tracking_uri=result["tracking_uri"])
    runs = client.search_runs(
        [client.get_experiment_by_name(result["experiment"]).experiment_id],
        filter_string=f"tags.`revcli.study` = '{result['study']}' and "
                      "tags.`revcli.command` = 'tune'")
    states = sorted(r.info.status for r in runs)
    assert states[-1] == "KILLED" and "RUNNING" not in states
    assert client.get_run(result["parent_run_id"]).info.status == "FINISHED"


def test_two_concurrent_workers_share_one_study(tiny_ws, cheap_space, tmp_path) -> None:
    args = ["tune", "--space", str(cheap_space), "-n", "3", "-j", "1", "--no-plots", "--json"]
    workers = [spawn(args, tiny_ws, tmp_path) for _ in range(2)]
    results = []
    for worker in workers:
        code, out, err = _finish(worker)
        assert code == 0, err
        results.append(json.loads(out))
    assert results[0]["study"] == results[1]["study"]
    assert [r["trials"]["new"]["completed"] for r in results] == [3, 3]

    study = _study_of(_default_url(tiny_ws))
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials)))  # none duplicated, none lost
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 6
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING,
                                                 TrialState.FAIL)]
    # both workers' trials are in MLflow, each under its own parent
    client = MlflowClient(tracking_uri=results[0]["tracking_uri"])
    experiment = client.get_experiment_by_name(results[0]["experiment"]).experiment_id
    logged = client.search_runs([experiment], filter_string=(
        f"tags.`revcli.study` = '{results[0]['study']}' and "
        "tags.`revcli.command` = 'tune-trial'"))
    assert sorted(int(r.data.tags["revcli.trial"]) for r in logged) == numbers
    assert {r.data.tags["mlflow.parentRunId"] for r in logged} == {
        r["parent_run_id"] for r in results}


def test_ctrl_c_finishes_the_trial_refits_the_best_and_exits_130(tiny_ws, slow_space,
                                                                 tmp_path) -> None:
    worker = spawn(["tune", "--strategy", "all", "--space", str(slow_space), "-n", "100",
                    "-j", "1", "--no-plots", "--json"], tiny_ws, tmp_path)
    _, running = _wait_for(worker, _mid_trial(tiny_ws, 1), "a completed and a running trial")
    worker.send_signal(signal.SIGINT)
    code, out, err = _finish(worker)
    assert code == 130, err
    assert "finishing the running trial" in err
    result = json.loads(out)  # stdout is still exactly one JSON object
    assert result["interrupted"] and result["stop_reason"] == "interrupted"
    assert result["refit"]["run_id"] == result["parent_run_id"]
    study = _study_of(_default_url(tiny_ws))
    trials = {t.number: t for t in study.get_trials()}
    assert trials[running.number].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert not [t for t in trials.values() if t.state in (TrialState.RUNNING,
                                                          TrialState.FAIL)]
    run = MlflowClient(tracking_uri=result["tracking_uri"]).get_run(result["parent_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["revcli.interrupted"] == "true"
    assert "rmse" in run.data.metrics


@pytest.mark.integration
def test_postgresql_storage_takes_several_workers(postgres_url, tiny_ws, cheap_space,
                                                  tmp_path) -> None:
    args = ["tune", "--space", str(cheap_space), "--storage", postgres_url, "--study",
            "shared", "-n", "3", "-j", "1", "--no-plots", "--json"]
    workers = [spawn(args, tiny_ws, tmp_path) for _ in range(2)]
    for worker in workers:
        code, out, err = _finish(worker)
        assert code == 0, err
        assert json.loads(out)["storage"] == postgres_url
    study = _study_of(postgres_url, "shared")
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 6
    assert not (tiny_ws / "studies" / _study.STUDY_DB).exists()

    # a worker with another setup is refused and leaves the study as it was
    s = settings.resolve(flags={"workspace": str(tiny_ws), "spaces": str(cheap_space),
                                "storage": postgres_url, "tune_metric": "mae"}, env={})
    with pytest.raises(ConfigError, match="study 'shared' was made for another setup"):
        tune(s, study_name="shared")
    assert len(_study_of(postgres_url, "shared").get_trials()) == len(trials)
