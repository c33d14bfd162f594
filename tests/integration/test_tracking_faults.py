"""A tracking server that dies: a finished fit is never thrown away, and `revcli runs sync`
logs it once the server answers again (a real `mlflow server` behind a proxy that, on demand,
answers every request with 503)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.servers import FaultProxy, MlflowServer

DEAD = 10**9  # "fail the next N requests": all of them


@pytest.fixture
def tracking_proxy(mlflow: MlflowServer, s3_env) -> FaultProxy:
    port = int(mlflow.uri.rsplit(":", 1)[1])
    proxy = FaultProxy(upstream_port=port).start()
    yield proxy
    proxy.close()


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


@pytest.mark.parametrize(("survives", "created"), [
    (2, True),   # dies after the experiment lookup: the run itself cannot be created
    (3, False),  # dies after the run was created: its params, metrics and model are missing
])
def test_a_server_that_dies_after_the_fit_loses_nothing_and_sync_logs_it(
        invoke, small_settings, tracking_proxy, mlflow, monkeypatch, survives, created) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_proxy.endpoint)
    monkeypatch.setenv("REVCLI_EXPERIMENT", f"tracking-faults-{survives}")
    first = invoke("train", "-e", "ridge", "--no-plots", "--json")  # makes the experiment
    assert first.exit_code == 0, first.output

    # train asks for the experiment and for runs left by dead processes, fits, then logs
    tracking_proxy.fail_after = survives
    # another model than the first run's (whose tag would vouch for the very same bytes)
    dead = invoke("train", "-e", "ridge", "-p", "alpha=3", "--json")
    assert dead.exit_code == 2, dead.output
    errors = [line for line in dead.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "revcli runs sync" in errors[0], dead.stderr
    assert "Traceback" not in dead.output
    # --json: stdout is the same error as one JSON object (issue 21), nothing else
    assert json.loads(dead.stdout) == {"error": errors[0].removeprefix("Error: "),
                                       "exit_code": 2}
    models = Path(small_settings.workspace) / "models"
    pending = [p.parent for p in models.glob("*/pending.json")]
    assert len(pending) == 1 and (pending[0] / "model.skops").is_file()
    assert pending[0].name.startswith("unlogged-") is created

    tracking_proxy.fail_after = None
    # No run ever vouched for the file's sha256 when the run could not be created; the file is
    # skops, which loads with the trusted types only (no code runs), so no --trust is needed.
    synced = invoke("runs", "sync", "--json")
    assert synced.exit_code == 0, synced.output
    [done] = json.loads(synced.stdout)["synced"]
    assert done["created"] is created and not list(models.glob("*/pending.json"))
    if not created:
        assert done["run_id"] == pending[0].name  # logged into the run that was made
    run = _client(mlflow.uri).get_run(done["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["revcli.model_sha256"] == json.loads(
        (models / done["run_id"] / "model.json").read_text())["model_sha256"]
    assert run.data.metrics["rmse"] > 0 and "baseline_rmse" in run.data.metrics
    assert run.outputs.model_outputs  # the MLflow model is logged too
    assert (Path(small_settings.workspace) / "plots" / done["run_id"]).is_dir()


def test_a_server_that_dies_during_tune_is_noticed_and_the_best_is_refit_and_saved(
        small_settings, tracking_proxy, mlflow, tmp_path) -> None:
    from tests.tuning.conftest import worker_env

    env = {**worker_env(Path(small_settings.workspace)),
           "MLFLOW_TRACKING_URI": tracking_proxy.endpoint, "REVCLI_EXPERIMENT": "tune-faults"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "revcli", "tune", "-e", "ridge", "-n", "500", "-j", "1",
         "--no-plots"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while tracking_proxy.count("POST", "runs/create") < 4 and time.monotonic() < deadline:
        time.sleep(0.2)  # the parent run and a few trial runs are logged: the search is on
    killed_at = time.monotonic()
    tracking_proxy.fail_next = DEAD
    _, err = proc.communicate(timeout=180)
    noticed = time.monotonic() - killed_at
    assert proc.returncode == 2, err
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "revcli runs sync" in errors[0], err
    assert "stopped answering" in err and "Traceback" not in err
    assert noticed < 60  # bounded retries: seconds, not minutes
    models = Path(small_settings.workspace) / "models"
    [saved] = [p.parent for p in models.glob("*/pending.json")]
    assert (saved / "model.skops").is_file() and (saved / "scorecard.json").is_file()
