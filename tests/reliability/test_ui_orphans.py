"""Issue 20 item 8 / issue 21 class 7: `kill -9` of `revcli ui` orphans no server, and a `ui`
finds (and offers to stop) servers a killed `ui` of the same workspace left running.

Real processes and real signals: `revcli ui` runs MLflow's UI (and optuna-dashboard) as real
child processes; the test kills `revcli ui` with SIGKILL, which it cannot catch, and watches
the children.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.harness import cli_env
from tests.workspaces import seed_store

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _ui(ws: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "revcli", "ui", "--port", "0", *args],
                            cwd=ws.parent, env=cli_env({"REVCLI_WORKSPACE": str(ws)}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_kill_9_of_ui_takes_its_servers_with_it(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    seed_store(ws)
    (ws / "studies").mkdir()
    import optuna

    optuna.create_study(study_name="s", storage=f"sqlite:///{ws / 'studies' / 'optuna.db'}")
    optuna_args = ("--optuna", "--optuna-port", "0")
    import importlib.util

    if importlib.util.find_spec("optuna_dashboard") is None:
        optuna_args = ()
    proc = _ui(ws, "--json", *optuna_args)
    pids: list[int] = []
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # once every server answers
        assert line, proc.stderr.read() if proc.stderr else ""
        data = json.loads(line)
        pids = [p for p in (data["mlflow_pid"], data["optuna_pid"]) if p]
        assert pids and all(_alive(p) for p in pids)
        proc.send_signal(signal.SIGKILL)  # what no handler can see
        proc.wait(10)
        left = _wait_gone(pids, 20)
        assert not left, f"servers outlived a killed `revcli ui`: pids {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in pids:  # never leave a server behind, whatever the outcome
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)


def test_ui_stops_servers_a_killed_ui_left_behind(tmp_path: Path) -> None:
    """A server recorded in ``<workspace>/ui/servers.json`` by a `ui` that died (a dead pid of
    this host) and still running is named, and stopped with --stop-stale. (A stand-in server:
    a process in its own session, as `ui` starts them; the kernel cleanup above makes a real
    orphan rare, but an older revcli or another OS leaves them.)"""
    from revcli import processes

    ws = tmp_path / "ws"
    seed_store(ws)
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                              start_new_session=True, stdin=subprocess.DEVNULL)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    parent = {**processes.identity(), "pid": dead.pid, "start": 1}
    (ws / "ui").mkdir()
    (ws / "ui" / "servers.json").write_text(json.dumps({"parent": parent, "servers": [
        {"name": "MLflow's UI", "url": "http://127.0.0.1:5999", "pid": orphan.pid,
         "start": processes._start_ticks(orphan.pid)}]}))
    try:
        kept = _ui(ws, "--keep-stale", "--tracking-uri", "http://127.0.0.1:5999")
        _out, err = kept.communicate(timeout=60)
        assert kept.returncode == 0, err
        assert f"pid {orphan.pid}" in err and "--stop-stale" in err
        assert _alive(orphan.pid)

        stopped = _ui(ws, "--stop-stale", "--tracking-uri", "http://127.0.0.1:5999")
        _out, err = stopped.communicate(timeout=60)
        assert stopped.returncode == 0, err
        assert f"pid {orphan.pid}" in err and "stopped" in err
        orphan.wait(10)
        assert not (ws / "ui" / "servers.json").exists()
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


def test_a_live_ui_is_not_stale(tmp_path: Path) -> None:
    """Servers of a `ui` that still runs (this test process, as their recorded parent) are
    never offered for stopping."""
    from revcli import processes

    ws = tmp_path / "ws"
    seed_store(ws)
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                              start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        (ws / "ui").mkdir()
        (ws / "ui" / "servers.json").write_text(json.dumps({
            "parent": processes.identity(), "servers": [
                {"name": "x", "url": "u", "pid": server.pid,
                 "start": processes._start_ticks(server.pid)}]}))
        stopped = _ui(ws, "--stop-stale", "--tracking-uri", "http://127.0.0.1:5999")
        _out, err = stopped.communicate(timeout=60)
        assert stopped.returncode == 0, err
        assert "stopped what" not in err and "left" not in err
        assert server.poll() is None
    finally:
        server.kill()
        server.wait()
