"""`revcli ui` and `revcli doctor` from the command line: exit codes, one Error line, no secret,
and a real `mlflow ui` started, used and stopped with Ctrl-C."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.servers import free_port

SECRET = "s3cr3t"
ROOT = Path(__file__).resolve().parents[2]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


@pytest.fixture(autouse=True)
def no_aws_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))


def _empty_sqlite(path: Path) -> None:
    """A real (empty) sqlite file: enough for the checks that run before anything starts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t (x INTEGER)")
    connection.commit()
    connection.close()


# -- doctor ---------------------------------------------------------------------------------


def test_doctor_on_a_fresh_workspace_exits_0(invoke, isolated: Path) -> None:
    result = invoke("doctor")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 9
    assert all(line.split()[0] in ("ok", "warn") for line in lines)
    assert not _error_lines(result.stderr)
    data = json.loads(invoke("doctor", "--json").stdout)
    assert data["ok"] is True and data["problems"] == 0
    assert {c["name"] for c in data["checks"]} >= {"workspace", "tracking", "study storage"}
    assert not isolated.exists()


def test_doctor_garbage_store_exits_2_with_one_error_line(invoke, isolated: Path) -> None:
    isolated.mkdir()
    (isolated / "mlflow.db").write_text("garbage " * 100)
    result = invoke("doctor")
    assert result.exit_code == 2
    tracking = next(line for line in result.stdout.splitlines() if " tracking " in line)
    assert tracking.startswith("problem") and "fix:" in tracking
    assert _error_lines(result.stderr) == ["Error: 1 problem(s): tracking"]
    assert result.stderr.strip().splitlines()[-1] == "Error: 1 problem(s): tracking"


def test_doctor_postgres_storage_never_prints_the_password(invoke, monkeypatch) -> None:
    monkeypatch.setenv("REVCLI_STORAGE", f"postgresql://u:{SECRET}@127.0.0.1:{free_port()}/db")
    for args in (("doctor",), ("doctor", "--json")):
        result = invoke(*args)
        assert result.exit_code == 2
        assert SECRET not in result.stdout + result.stderr
        assert _error_lines(result.stderr) == ["Error: 1 problem(s): study storage"]
    data = json.loads(result.stdout)
    storage = next(c for c in data["checks"] if c["name"] == "study storage")
    assert storage["status"] == "problem" and "u:***@" in storage["detail"]


def test_doctor_dead_tracking_server(invoke) -> None:
    port = free_port()
    result = invoke("doctor", "--tracking-uri", f"http://127.0.0.1:{port}")
    assert result.exit_code == 2
    assert f"http://127.0.0.1:{port} does not answer" in result.stdout
    assert _error_lines(result.stderr) == ["Error: 1 problem(s): tracking"]


# -- ui: everything refused before anything starts ---------------------------------------------


def test_ui_without_a_store_exits_2_and_creates_nothing(invoke, isolated: Path) -> None:
    result = invoke("ui")
    assert result.exit_code == 2
    assert _error_lines(result.stderr) == [
        f"Error: no MLflow store in {isolated} yet; `revcli train` makes one"]
    assert not isolated.exists()


def test_ui_refuses_a_garbage_store(invoke, isolated: Path) -> None:
    isolated.mkdir()
    (isolated / "mlflow.db").write_text("garbage " * 100)
    result = invoke("ui")
    assert result.exit_code == 2
    assert "is not an sqlite database" in result.stderr
    assert not (isolated / "ui").exists()


def test_ui_on_a_tracking_server_prints_its_url_and_starts_nothing(invoke) -> None:
    result = invoke("ui", "--tracking-uri", f"http://u:{SECRET}@mlflow.example:5000", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["mlflow_url"] == "http://u:***@mlflow.example:5000"
    assert data["mlflow_started"] is False and data["mlflow_pid"] is None
    assert SECRET not in result.stdout + result.stderr
    result = invoke("ui", "--tracking-uri", "https://mlflow.example")
    assert result.exit_code == 0 and "https://mlflow.example" in result.stdout


def test_ui_port_taken_suggests_another(invoke, isolated: Path) -> None:
    _empty_sqlite(isolated / "mlflow.db")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = invoke("ui", "--port", str(port))
    assert result.exit_code == 2
    (line,) = _error_lines(result.stderr)
    assert f"port {port} on 127.0.0.1 is taken" in line and "--port 0" in line


def test_ui_optuna_without_the_extra_says_how_to_install_it(invoke, isolated: Path,
                                                            monkeypatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:  # as on a machine without the extra
        return None if name == "optuna_dashboard" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    _empty_sqlite(isolated / "mlflow.db")
    result = invoke("ui", "--optuna", "--port", "0")
    assert result.exit_code == 2
    assert "pip install 'revcli[ui]'" in result.stderr


# -- ui: a real MLflow server ----------------------------------------------------------------


def _workspace_with_a_run(root: Path) -> None:
    from mlflow import MlflowClient

    from tests.workspaces import seed_store

    seed_store(root)
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.create_experiment("Revenue_Prediction_Regression",
                                          artifact_location=(root / "mlartifacts").as_uri())
    run = client.create_run(experiment, run_name="ui-test")
    client.log_metric(run.info.run_id, "rmse", 17.5)
    client.set_terminated(run.info.run_id)


def _get(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split(")")[-1].split()[0] == "Z"


@pytest.mark.integration
def test_ui_serves_the_workspace_store_until_ctrl_c(isolated: Path, tmp_path: Path) -> None:
    _workspace_with_a_run(isolated)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from revcli._entry import main; main()", "ui", "--port", "0",
         "--json"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once MLflow answers /health
        assert line, proc.stderr.read() if proc.stderr else ""
        data = json.loads(line)
        url = data["mlflow_url"]
        assert data["mlflow_started"] and data["optuna_url"] is None
        assert data["mlflow_log"] == str(isolated / "ui" / "mlflow.log")

        assert _get(f"{url}/health") == (200, b"OK")
        status, body = _get(f"{url}/ajax-api/2.0/mlflow/experiments/search",
                            json.dumps({"max_results": 10}).encode())
        names = {e["name"] for e in json.loads(body)["experiments"]}
        assert status == 200 and "Revenue_Prediction_Regression" in names
        status, body = _get(f"{url}/ajax-api/2.0/mlflow/runs/search", json.dumps(
            {"experiment_ids": ["1"], "max_results": 5}).encode())
        assert [r["info"]["run_name"] for r in json.loads(body)["runs"]] == ["ui-test"]

        # doctor sees the same store through the server
        from typer.testing import CliRunner

        from revcli.cli import app

        result = CliRunner().invoke(app, ["doctor", "--tracking-uri", url, "--json"])
        tracking = next(c for c in json.loads(result.stdout)["checks"]
                        if c["name"] == "tracking")
        assert tracking["status"] == "ok", tracking

        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert not _error_lines(proc.stderr.read() if proc.stderr else "")
        assert proc.stdout.read() == ""  # --json: the one object, nothing after it
        deadline = time.monotonic() + 10
        while not _gone(data["mlflow_pid"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _gone(data["mlflow_pid"])
        with pytest.raises(OSError):
            _get(f"{url}/health")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.integration
def test_start_stops_what_it_started_when_it_fails(small_settings, isolated: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that does not answer in time is stopped before the error is raised."""
    from revcli import ui
    from revcli.errors import TrackingError

    _empty_sqlite(isolated / "mlflow.db")
    launched: list[ui.Server] = []
    real_launch = ui._launch

    def launch(server: ui.Server, *args, **kwargs) -> None:
        real_launch(server, *args, **kwargs)
        launched.append(server)

    monkeypatch.setattr(ui, "_launch", launch)
    with pytest.raises(TrackingError, match="did not answer"):
        ui.start(small_settings, port=0, timeout=0.2)
    (server,) = launched
    assert server.exit_code() is not None


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("optuna_dashboard") is None,
                    reason="needs optuna-dashboard (pip install 'revcli[ui]')")
def test_optuna_dashboard_beside_mlflow(small_settings, isolated: Path) -> None:
    import optuna

    from revcli import ui

    _workspace_with_a_run(isolated)
    (isolated / "studies").mkdir()
    study = optuna.create_study(storage=f"sqlite:///{isolated / 'studies' / 'optuna.db'}",
                                study_name="demo")
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=3)
    handle = ui.start(small_settings, port=0, optuna=True, optuna_port=0)
    try:
        assert handle.optuna is not None
        status, body = _get(f"{handle.optuna.url}/api/studies")
        assert status == 200 and "demo" in body.decode()
        assert _get(f"{handle.mlflow.url}/health")[0] == 200
    finally:
        ui.stop(handle)
    assert all(s.exit_code() is not None for s in handle.running)
