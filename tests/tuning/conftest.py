"""Fixtures for the tune tests: a tiny workspace, a cheap space, worker processes, PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from revcli import demo, settings
from tests.integration.servers import free_port, stop
from tests.workspaces import seed_store

TINY_ROWS = 8_000

# Trials of a few milliseconds: enough to exercise the search, cheap enough for the test suite.
CHEAP_SPACE = """
[xgb]
n_estimators = { type = "int", low = 10, high = 30, step = 10 }
max_depth = { type = "int", low = 2, high = 4 }
learning_rate = { type = "float", low = 0.05, high = 0.3, log = true }
classifier__max_depth = { type = "int", low = 2, high = 3 }

[xgb.objective]
type = "categorical"
choices = ["reg:tweedie", "count:poisson"]
when = { strategy = ["all", "two_stage"] }

[xgb.tweedie_variance_power]
type = "float"
low = 1.1
high = 1.9
when = { objective = "reg:tweedie" }

[ridge]
alpha = { type = "float", low = 0.01, high = 100.0, log = true }
"""

# Trials of about a second on the tiny set, so a worker can be caught mid-trial.
SLOW_SPACE = """
[xgb]
n_estimators = { type = "categorical", choices = [150] }
max_depth = { type = "int", low = 5, high = 6 }
learning_rate = { type = "float", low = 0.05, high = 0.1 }
"""


@pytest.fixture(scope="session")
def tiny_demo():
    return demo.generate(rows=TINY_ROWS, seed=0)


@pytest.fixture
def tiny_ws(isolated: Path, tiny_demo) -> Path:
    """The autouse workspace, holding the tiny demo set as its current dataset and an empty,
    migrated MLflow store."""
    from revcli.workspace import Workspace

    seed_store(isolated)
    Workspace(isolated).write_dataset(tiny_demo, source="demo:tiny")
    return isolated


@pytest.fixture
def cheap_space(tmp_path: Path) -> Path:
    path = tmp_path / "cheap_spaces.toml"
    path.write_text(CHEAP_SPACE)
    return path


@pytest.fixture
def slow_space(tmp_path: Path) -> Path:
    path = tmp_path / "slow_spaces.toml"
    path.write_text(SLOW_SPACE)
    return path


@pytest.fixture
def tune_settings(tiny_ws: Path, cheap_space: Path):
    """Settings for a cheap, sequential, seeded tune of converting_only / xgb."""

    def make(**flags):
        base = {"workspace": str(tiny_ws), "spaces": str(cheap_space), "n_trials": 4,
                "n_jobs": 1, "seed": 7}
        return settings.resolve(flags={**base, **flags}, env={})

    return make


def worker_env(workspace: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REVCLI_", "MLFLOW_", "AWS_"))}
    env.update(REVCLI_WORKSPACE=str(workspace), MLFLOW_DISABLE_TELEMETRY="true",
               NO_COLOR="1", PYTHONUNBUFFERED="1")
    return env


def spawn(args: list[str], workspace: Path, cwd: Path) -> subprocess.Popen[str]:
    """A `revcli` worker process in its own process group (killed as a group)."""
    return subprocess.Popen([sys.executable, "-m", "revcli", *args], cwd=cwd,
                            env=worker_env(workspace), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def stop_group(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


# -- a real PostgreSQL server ----------------------------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL cluster of our own on 127.0.0.1 (initdb refuses root: run as nobody)."""
    pytest.importorskip("psycopg")
    bindir = _pg_bin()
    if bindir is None:
        pytest.fail("PostgreSQL server binaries not found; `.ci/run` installs them "
                    "(apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="revcli-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("nobody")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "nobody", "--"]
    data = root / "data"
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                    "-A", "trust", "--no-sync"], check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen(
        [*as_user, str(bindir / "postgres"), "-D", str(data), "-k", str(root), "-h", "127.0.0.1",
         "-p", str(port), "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres",
                                     autocommit=True, connect_timeout=2) as conn:
                    conn.execute("CREATE DATABASE optuna")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    finally:
        stop(server)
        shutil.rmtree(root, ignore_errors=True)
