"""Looking after runs: a run left RUNNING by a killed process is closed by the next command,
`runs delete` and `gc` clean the workspace, `runs sync` logs what a dead store left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from revcli import runs, tracking, train
from revcli.errors import NotFoundError, TrackingError
from revcli.workspace import Workspace
from tests.integration.servers import free_port
from tests.workspaces import seed_store


def _dead_worker_tags() -> dict[str, str]:
    from revcli import processes

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    me = processes.identity()
    who = {**me, "pid": proc.pid, "start": None}
    return {f"revcli.worker.{k}": str(v) for k, v in who.items() if v is not None}


def test_a_run_left_running_by_a_dead_process_is_closed_by_the_next_train(small_settings):
    seed_store(small_settings.workspace)
    tracker, experiment_id = tracking.connect(small_settings, Workspace(small_settings.workspace))
    orphan = tracker.create_run(experiment_id, "killed mid-logging",
                                {"revcli.command": "train", **_dead_worker_tags()})
    alive = tracker.create_run(experiment_id, "someone else's, still running",
                               {"revcli.command": "train"})
    train.train(small_settings.replace(estimator="mean"), plots=False)
    assert tracker.get_run(orphan).status == "KILLED"
    assert tracker.get_run(orphan).record.extra["killed_because"] == "its process died"
    assert tracker.get_run(alive).status == "RUNNING"  # no worker recorded: not provably dead


def test_an_unreachable_store_keeps_the_fit_and_sync_logs_it_later(small_settings) -> None:
    dead = small_settings.replace(tracking_uri=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TrackingError, match="unreachable"):
        train.train(dead.replace(estimator="mean"), plots=False)  # before the fit: fast fail
    ws = Workspace(small_settings.workspace)
    assert runs.pending_runs(ws) == []  # nothing was fitted, nothing is kept


def test_delete_and_gc(small_settings, monkeypatch) -> None:
    seed_store(small_settings.workspace)
    s = small_settings.replace(estimator="mean")
    kept, gone, orphan = (train.train(s) for _ in range(3))
    ws = Workspace(s.workspace)
    cleanup = runs.delete(s, [gone.run_id[:10]])
    assert cleanup.runs == [gone.run_id] and cleanup.freed > 0
    assert not ws.model_dir(gone.run_id).exists()
    assert not (ws.plots_dir / gone.run_id).exists()
    tracker, _ = tracking.connect(s, ws)
    assert tracker.get_run(gone.run_id).raw.info.lifecycle_stage == "deleted"
    with pytest.raises(NotFoundError):
        runs.delete(s, ["no-such-run-name"])
    # deleted in MLflow by someone else: gc removes what the workspace still holds of it
    tracker.client.delete_run(orphan.run_id)
    stale = ws.root / ".incoming.999999999.x.parquet.tmp"
    stale.write_bytes(b"x")
    collected = runs.gc(s)
    assert ws.model_dir(kept.run_id).is_dir()
    assert not ws.model_dir(orphan.run_id).exists() and not stale.exists()
    assert Path(ws.model_dir(orphan.run_id)) in collected.directories


def test_sync_with_nothing_pending_does_nothing(small_settings) -> None:
    assert runs.sync(small_settings) == []



def test_a_claimed_directory_is_skipped_and_a_dead_claim_taken_over(small_settings,
                                                                   tmp_path) -> None:
    import json

    from revcli import processes

    directory = tmp_path / "models" / "unlogged-x"
    directory.mkdir(parents=True)
    with runs._claim(directory) as first:
        assert first is not None and first.path.is_file()
        with runs._claim(directory) as second:
            assert second is None  # held by a live process: this one
    assert not (directory / runs.CLAIM_FILE).exists()
    dead = {**processes.identity(), "pid": _dead_pid(), "start": None}
    (directory / runs.CLAIM_FILE).write_text(json.dumps(dead))
    with runs._claim(directory) as taken:
        assert taken is not None
        assert json.loads(taken.path.read_text())["pid"] == processes.identity()["pid"]


def test_sync_skips_a_pending_run_another_sync_holds(small_settings) -> None:
    seed_store(small_settings.workspace)
    directory = Workspace(small_settings.workspace).models_dir / ("unlogged-" + "a" * 32)
    directory.mkdir(parents=True)
    (directory / runs.PENDING_FILE).write_text("{}")
    with runs._claim(directory):
        assert runs.sync(small_settings) == []  # not loaded, not logged, not an error
    assert (directory / runs.PENDING_FILE).is_file()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_gc_leaves_the_plots_a_live_train_is_staging(small_settings) -> None:
    """runs.finish draws a run's plots under a temporary name (with its pid) before the run
    exists: gc keeps them while that process lives, and removes a dead one's."""
    import os

    seed_store(small_settings.workspace)
    s = small_settings.replace(estimator="mean")
    train.train(s, plots=False)
    ws = Workspace(s.workspace)
    live = ws.plots_dir / f".incoming.{os.getpid()}.abc.tmp"
    dead = ws.plots_dir / f".incoming.{_dead_pid()}.abc.tmp"
    for staged in (live, dead):
        staged.mkdir(parents=True)
        (staged / "residuals.png").write_bytes(b"png")
    collected = runs.gc(s)
    assert live.is_dir() and not dead.exists()
    assert dead in collected.directories
