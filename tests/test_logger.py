"""The logger process (revcli.tracking._logger): MLflow beside the load and fit, and the run
handed to it, with the guarantees of the safety work unchanged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from revcli import runs, train
from revcli.errors import TrackingError
from revcli.tracking import Tracker, _logger
from revcli.workspace import Workspace
from tests.workspaces import train_in


def test_a_run_logged_through_the_logger_is_whole(tmp_path: Path, small_demo) -> None:
    _, result = train_in(tmp_path, small_demo, estimator="ridge", strategy="converting_only")
    run = Tracker(f"sqlite:///{tmp_path / 'ws' / 'mlflow.db'}").get_run(result.run_id)
    assert run.status == "FINISHED"
    assert run.record.model_sha256 == result.model_sha256
    assert run.params["estimator"] == "ridge" and "rmse" in run.metrics
    assert result.model_uri and result.model_uri.startswith("models:/")
    assert not (result.model_path.parent / runs.PENDING_FILE).exists()
    assert result.timings["tracking"] > 0


def test_a_logger_that_dies_loses_no_fit_and_sync_logs_it(tmp_path: Path, small_demo,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    s, first = train_in(tmp_path / "a", small_demo, estimator="ridge")
    ready = _logger.Logger.result

    def then_dies(self: _logger.Logger) -> tuple[_logger.RemoteTracker, str]:
        value = ready(self)
        self._proc.kill()  # killed (out of memory, kill -9) once the store was open
        self._proc.wait()
        return value

    monkeypatch.setattr(_logger.Logger, "result", then_dies)
    with pytest.raises(TrackingError, match="revcli runs sync") as caught:
        train.train(s, plots=False)
    assert "\n" not in str(caught.value)
    monkeypatch.undo()
    pending = runs.pending_runs(Workspace(s.workspace))
    assert len(pending) == 1
    assert json.loads((pending[0] / runs.PENDING_FILE).read_text())["metrics"]["rmse"] > 0
    synced = runs.sync(s)
    assert len(synced) == 1 and synced[0].created
    tracker = Tracker(f"sqlite:///{Path(s.workspace) / 'mlflow.db'}")
    assert tracker.get_run(synced[0].run_id).status == "FINISHED"
    assert tracker.get_run(first.run_id).status == "FINISHED"


def test_a_remote_tracker_offers_only_the_logging_calls(tmp_path: Path, small_demo) -> None:
    s, _ = train_in(tmp_path, small_demo, estimator="ridge")
    with _logger.Logger(s, Workspace(s.workspace)) as logger:
        tracker, experiment_id = logger.result()
        assert tracker.is_workspace_store and experiment_id
        with pytest.raises(AttributeError):
            tracker.client  # noqa: B018 - the MLflow client stays in the logger process
    assert logger._proc.returncode is not None  # ended, not left behind


def test_a_dead_server_fails_before_the_fit(tmp_path: Path, small_demo,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from revcli import pipeline

    s, _ = train_in(tmp_path, small_demo, estimator="ridge")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    fits: list[int] = []
    monkeypatch.setattr(pipeline, "fit_and_score",
                        lambda *a, **k: fits.append(1) or pytest.fail("fitted"))
    with pytest.raises(TrackingError, match="unreachable"):
        train.train(s.replace(tracking_uri=f"http://127.0.0.1:{port}"), plots=False)
    assert not fits


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX priorities")
def test_the_logger_takes_only_the_cpu_the_command_leaves(tmp_path: Path, small_demo) -> None:
    # Beside XGBoost's threads at equal priority (or in a session of its own, which the
    # kernel's autogroup scheduling weighs like the command's) a fit on 2 cores ran 5-10x slower.
    s, _ = train_in(tmp_path, small_demo, estimator="ridge")
    with _logger.Logger(s, Workspace(s.workspace)) as logger:
        logger.result()
        child = logger._proc.pid
        assert os.getpriority(os.PRIO_PROCESS, child) == 19
        assert os.getsid(child) == os.getsid(0)
        assert os.getpgid(child) != os.getpgid(0)  # the terminal's Ctrl-C is the parent's


def test_the_check_that_mlflow_can_describe_the_model_runs_in_the_logger(
        tmp_path: Path, small_demo) -> None:

    from revcli import modelref
    from revcli.errors import DataError

    s, result = train_in(tmp_path, small_demo, estimator="ridge")
    model = modelref.load_file(result.model_path).model
    sample = small_demo.drop(columns=["revenue"]).head(5)
    with _logger.Logger(s, Workspace(s.workspace)) as logger:
        tracker, _ = logger.result()
        predictions = model.predict(sample)
        assert tracker.describe(sample, predictions) is None  # described: nothing raised
        with pytest.raises(DataError, match="MLflow cannot describe"):
            tracker.describe(sample.assign(session_start=[{"a": 1}] * 5), predictions)


def test_a_pending_pickle_of_an_older_revcli_is_logged_as_a_skops_model(
        tmp_path: Path, small_demo, monkeypatch: pytest.MonkeyPatch) -> None:
    """The logger takes the model as its skops file; a pending model.joblib (an older revcli's)
    is written as a temporary skops file for it, and nothing of that is left behind."""
    import joblib
    from mlflow import MlflowClient

    from revcli import serialization

    s, _ = train_in(tmp_path, small_demo, estimator="ridge")
    ready = _logger.Logger.result

    def then_dies(self: _logger.Logger) -> tuple[_logger.RemoteTracker, str]:
        value = ready(self)
        self._proc.kill()
        self._proc.wait()
        return value

    monkeypatch.setattr(_logger.Logger, "result", then_dies)
    with pytest.raises(TrackingError, match="revcli runs sync"):
        train.train(s, plots=False)
    monkeypatch.undo()
    (directory,) = runs.pending_runs(Workspace(s.workspace))
    model = serialization.load(directory / runs.MODEL_FILE)
    joblib.dump(model, directory / runs.LEGACY_MODEL_FILE)
    (directory / runs.MODEL_FILE).unlink()
    (synced,) = runs.sync(s, trust=True)  # an unvouched pickle: trusted by the caller
    store = f"sqlite:///{Path(s.workspace) / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store)
    (output,) = client.get_run(synced.run_id).outputs.model_outputs
    local = Path(client.get_logged_model(output.model_id).artifact_location
                 .removeprefix("file://"))
    logged = serialization.load(local / serialization.SKOPS_FILE)
    sample = small_demo.drop(columns=["revenue"]).head(20)
    assert Tracker(store).get_run(synced.run_id).status == "FINISHED"
    assert (logged.predict(sample) == model.predict(sample)).all()
    assert sorted(p.name for p in synced.directory.iterdir()
                  if p.name.startswith(".")) == []  # no temporary skops file left
