"""``revcli tune --cluster`` on a real Dask cluster (issue 16): trials run as tasks in the
workers' processes against the workspace's study, a seeded search on one worker is the in-process
search, the study resumes, and Ctrl-C finishes the running trials and refits the best."""

from __future__ import annotations

import json
import os
import signal

import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from revcli.tuning import tune
from tests.tuning.conftest import spawn
from tests.tuning.test_workers import _default_url, _finish, _mid_trial, _study_of, _wait_for

pytest.importorskip("distributed")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster():
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  memory_limit="1.5GB", dashboard_address=":0",
                                  silence_logs=40) as local, distributed.Client(local) as client:
        yield local.scheduler_address, set(client.run(os.getpid).values())


def test_trials_run_in_the_workers_processes_and_the_study_resumes(cluster, tune_settings,
                                                                    tiny_ws) -> None:
    address, worker_pids = cluster
    first = tune(tune_settings(cluster=address, n_trials=4))
    assert first.engine["kind"] == "dask" and first.engine["workers"] == 2
    assert first.engine["cluster"] == "external" and first.engine["scheduler"] == address
    assert (first.parallel, first.threads_per_trial) == (2, 1)
    assert first.new["completed"] == 4 and first.stop_reason == "n_trials"
    trials = _study_of(_default_url(tiny_ws), first.study).get_trials()
    pids = {t.user_attrs["revcli.worker"]["pid"] for t in trials}
    assert pids <= worker_pids and os.getpid() not in pids
    assert len({t.number for t in trials if t.state == TrialState.COMPLETE}) == 4
    # the refit is an ordinary run of this process, tagged with where its trials ran
    run = MlflowClient(tracking_uri=first.tracking_uri).get_run(first.parent_run_id)
    assert run.data.tags["revcli.engine"] == "dask"
    assert run.data.tags["revcli.dask.scheduler"] == address
    assert first.refit is not None and first.refit.scorecard.metrics["rmse"] > 0

    again = tune(tune_settings(cluster=address, n_trials=2))
    assert again.resumed and again.study == first.study
    assert again.new["completed"] == 2
    assert again.totals["complete"] == 6


def test_a_seeded_search_on_one_worker_is_the_in_process_search(tune_settings,
                                                                 tmp_path) -> None:
    """One worker runs the trials one at a time, as --n-jobs 1 does here: TPE, seeded by trial
    number, sees the same history, so the trials are the same (parameters and CV scores)."""
    here = tune(tune_settings(n_trials=4))
    there = tune(tune_settings(n_trials=4, cluster="local", cluster_workers=1,
                               storage=f"sqlite:///{tmp_path / 'other.db'}"))
    assert here.study == there.study and here.storage != there.storage
    assert there.engine["kind"] == "dask" and there.engine["cluster"] == "local"
    assert [(t.number, t.params) for t in here.top] == [(t.number, t.params) for t in there.top]
    assert [t.value for t in here.top] == pytest.approx([t.value for t in there.top],
                                                        rel=1e-9)
    assert here.refit.scorecard.metrics == pytest.approx(there.refit.scorecard.metrics, rel=1e-9)


def test_ctrl_c_finishes_the_running_trials_and_refits_the_best(cluster, tiny_ws, slow_space,
                                                               tmp_path) -> None:
    address, _ = cluster
    worker = spawn(["tune", "--cluster", address, "--space", str(slow_space), "-n", "100",
                    "--no-plots", "--json"], tiny_ws, tmp_path)
    _, running = _wait_for(worker, _mid_trial(tiny_ws, 1), "a completed and a running trial")
    worker.send_signal(signal.SIGINT)
    code, out, err = _finish(worker)
    assert code == 130, err
    assert "finishing the running trial" in err
    result = json.loads(out)
    assert result["interrupted"] and result["engine"]["kind"] == "dask"
    assert result["refit"]["run_id"] == result["parent_run_id"]
    trials = {t.number: t for t in _study_of(_default_url(tiny_ws)).get_trials()}
    assert trials[running.number].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert not [t for t in trials.values() if t.state in (TrialState.RUNNING,
                                                          TrialState.FAIL)]


def test_a_worker_killed_mid_trial_costs_that_trial_only(tiny_ws, slow_space, tmp_path) -> None:
    """SIGKILL of the worker process running a trial: Dask runs the task again elsewhere, the
    search ends with the trials asked for, and the dead worker's trial is recovered (failed and
    queued again) by the next tune of the study."""
    worker = spawn(["tune", "--cluster", "local", "--cluster-workers", "2", "--space",
                    str(slow_space), "-n", "3", "--no-plots", "--json"], tiny_ws, tmp_path)
    _, running = _wait_for(worker, _mid_trial(tiny_ws, 1), "a completed and a running trial")
    os.kill(running.user_attrs["revcli.worker"]["pid"], signal.SIGKILL)
    code, out, err = _finish(worker)
    assert code == 0, err
    result = json.loads(out)
    assert result["trials"]["new"]["completed"] == 3
    trials = {t.number: t for t in _study_of(_default_url(tiny_ws)).get_trials()}
    assert trials[running.number].state == TrialState.RUNNING  # nobody told Optuna yet

    again = spawn(["tune", "--cluster", "local", "--space", str(slow_space), "-n", "1",
                   "--no-plots", "--json"], tiny_ws, tmp_path)
    code, out, err = _finish(again)
    assert code == 0, err
    assert json.loads(out)["trials"]["recovered"] == [running.number]
    assert _study_of(_default_url(tiny_ws)).get_trials()[running.number].state == TrialState.FAIL
