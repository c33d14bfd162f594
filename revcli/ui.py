"""``revcli ui``: MLflow's UI on the workspace's tracking store (and optuna-dashboard on the study
storage), as child processes.

:func:`start` checks everything it can before it starts anything (the store exists and is one, the
ports are free, optuna-dashboard is installed), starts each server in its own process group with
its log in ``<workspace>/ui/``, waits until it answers and returns a :class:`UiHandle`;
:func:`stop` ends the process groups. The caller decides what happens in between (the CLI stays
in the foreground until Ctrl-C). A tracking URI that is already a server (http/https) starts
nothing: its URL is the answer. A command that only shows never creates a store.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from revcli.errors import ConfigError, NotFoundError, StorageError, TrackingError
from revcli.progress import SILENT, Reporter
from revcli.urls import mask

if TYPE_CHECKING:
    from revcli.settings import Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
DEFAULT_OPTUNA_PORT = 8080
# MLflow's UI imports a lot before it listens: 3-5 s on a quiet machine, 10-30 s on a busy one.
READY_TIMEOUT = 120.0
STOP_GRACE = 10.0
POLL = 0.25
UI_DIR = "ui"
INSTALL_HINT = "pip install 'revcli[ui]'"
# SQLAlchemy database schemes MLflow's server can use as a backend store.
_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
# optuna-dashboard has no ``python -m`` entry: run its console script's function in this
# interpreter. The storage URL comes through the environment, so a password never shows in `ps`.
_DASHBOARD_MAIN = (
    "import importlib.metadata as m, os, sys; "
    "sys.argv = ['optuna-dashboard', os.environ.pop('REVCLI_DASHBOARD_STORAGE'), *sys.argv[1:]]; "
    "ep = next(iter(m.entry_points(group='console_scripts', name='optuna-dashboard'))); "
    "sys.exit(ep.load()())"
)


@dataclass
class Server:
    """One UI: where it answers and, when revcli started it, its process and log."""

    name: str
    url: str
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def started(self) -> bool:
        return self.process is not None

    def exit_code(self) -> int | None:
        """None while it runs (or when revcli did not start it)."""
        return self.process.poll() if self.process is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "pid": self.pid, "started": self.started,
                "log": str(self.log) if self.log else None}


@dataclass
class UiHandle:
    """What :func:`start` started (or found already served)."""

    tracking_uri: str  # masked
    mlflow: Server
    optuna: Server | None = None
    study_storage: str | None = None  # masked

    @property
    def servers(self) -> list[Server]:
        return [s for s in (self.mlflow, self.optuna) if s is not None]

    @property
    def running(self) -> list[Server]:
        """The servers revcli started (and must stop)."""
        return [s for s in self.servers if s.started]

    def exited(self) -> Server | None:
        """The first started server whose process has ended, if any."""
        return next((s for s in self.running if s.exit_code() is not None), None)

    def to_dict(self) -> dict[str, Any]:
        return {"tracking_uri": self.tracking_uri, "mlflow_url": self.mlflow.url,
                "mlflow_pid": self.mlflow.pid, "mlflow_started": self.mlflow.started,
                "mlflow_log": str(self.mlflow.log) if self.mlflow.log else None,
                "optuna_url": self.optuna.url if self.optuna else None,
                "optuna_pid": self.optuna.pid if self.optuna else None,
                "optuna_log": str(self.optuna.log) if self.optuna and self.optuna.log else None,
                "study_storage": self.study_storage}


# -- checks before anything starts -------------------------------------------------------------


def _scheme(uri: str) -> str:
    return uri.partition("://")[0].split("+")[0].lower() if "://" in uri else ""


def _sqlite_path(uri: str) -> Path:
    return Path(uri.removeprefix("sqlite:///").split("?")[0])


def _backend(settings: Settings, workspace: Any) -> tuple[str, str]:
    """(tracking URI, masked) of the store to serve; refuses a store that does not exist."""
    from revcli.tracking._client import check_sqlite, tracking_uri

    uri = tracking_uri(settings, workspace)
    shown = mask(uri)
    scheme = _scheme(uri)
    if scheme in ("http", "https"):
        return uri, shown
    if scheme not in _DB_SCHEMES:
        raise ConfigError(f"revcli ui serves a database tracking store (sqlite, postgresql, "
                          f"mysql); {shown} is not one: open its own UI, or point "
                          "--tracking-uri at the database")
    if scheme == "sqlite":
        if not uri.startswith("sqlite:///"):
            raise ConfigError(f"{shown} names no sqlite file; write sqlite:///path/to/mlflow.db")
        path = _sqlite_path(uri)
        if not path.exists():
            if uri == workspace.tracking_uri():
                raise NotFoundError(f"no MLflow store in {workspace.root} yet; `revcli train` "
                                    "makes one")
            raise NotFoundError(f"no MLflow store at {shown}; `revcli train` makes one, or "
                                "point --tracking-uri at an existing store")
        check_sqlite(path, shown)
    return uri, shown


def _study_storage(settings: Settings, workspace: Any) -> tuple[str, str]:
    """(storage URL for optuna-dashboard, masked); refuses when there is nothing to show."""
    import importlib.util

    from revcli.tuning._study import default_url, normalize

    if importlib.util.find_spec("optuna_dashboard") is None:
        raise ConfigError(f"--optuna needs optuna-dashboard, which is not installed: "
                          f"{INSTALL_HINT}")
    url = settings.storage or default_url(workspace)
    shown = mask(url)
    if "://" not in url:
        raise ConfigError(f"--storage {shown!r} is not a database URL; use e.g. "
                          "sqlite:///studies.db or postgresql://user@host/db")
    if url.startswith("sqlite:///"):
        path = _sqlite_path(url)
        if not path.is_file():
            raise NotFoundError(f"no Optuna studies at {shown} yet; `revcli tune` makes them "
                                "(or leave out --optuna)")
        with open(path, "rb") as fh:
            head = fh.read(16)
        if head and head != b"SQLite format 3\x00":
            raise StorageError(f"the Optuna storage {shown} is not an sqlite database; move it "
                               "aside or choose another --storage")
    return normalize(url), shown


def _bindable(host: str, port: int, option: str) -> int:
    """``port`` if nothing listens on it at ``host`` (a free one for 0), else a ConfigError that
    says how to choose another."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"{option} {port} is not a port number (1-65535, or 0 for a free one)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        raise ConfigError(f"--host {host!r} is not an address of this machine; use "
                          "127.0.0.1 (this machine only) or 0.0.0.0 (every interface)") from None
    with socket.socket(family, kind, proto) as probe:
        # The servers set SO_REUSEADDR too: a port left in TIME_WAIT by a stopped UI is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is taken (another UI or server is "
                                  f"running there); choose another with {option} N, or "
                                  f"{option} 0 for a free one") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise ConfigError(f"port {port} needs more privileges on this machine; choose "
                                  f"one above 1023 with {option} N") from None
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); check --host "
                              f"and {option}") from None
        return int(probe.getsockname()[1])


def _url(host: str, port: int) -> str:
    """The URL to open: a wildcard address is reached on this machine's loopback."""
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def _log_dir(workspace: Any, name: str = UI_DIR) -> Path:
    """``<workspace>/<name>`` (``ui``) for the servers' logs; a temp directory when the
    workspace is read-only (showing must not fail for want of a log file)."""
    directory = workspace.root / name
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if os.access(directory, os.W_OK):
            return directory
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="revcli-ui-"))


# -- starting and stopping ---------------------------------------------------------------------


# Run first in each server's process (Linux): ask the kernel to SIGTERM it when revcli dies,
# even by kill -9 (PR_SET_PDEATHSIG survives the exec), then become the server. A revcli that
# died before the prctl is caught by comparing the parent pid.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys; "
    "libc = ctypes.CDLL(None, use_errno=True); "
    "libc.prctl(1, int(signal.SIGTERM), 0, 0, 0); "  # 1 = PR_SET_PDEATHSIG
    "os.getppid() == int(os.environ.pop('REVCLI_UI_PARENT')) or sys.exit(143); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)
STATE_FILE = "servers.json"


def _launch(server: Server, command: list[str], env: dict[str, str], cwd: Path) -> None:
    assert server.log is not None
    if sys.platform.startswith("linux"):
        command = [sys.executable, "-c", _DIE_WITH_PARENT, *command]
        env = {**env, "REVCLI_UI_PARENT": str(os.getpid())}
    server._log_file = open(server.log, "wb")  # noqa: SIM115 (closed by stop)
    server.process = subprocess.Popen(command, env=env, cwd=cwd, stdout=server._log_file,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)


# -- servers a killed `revcli ui` left behind ----------------------------------------------------


@dataclass
class StaleServer:
    """A server a `revcli ui` of this workspace started and that outlived it (kill -9 where the
    kernel cannot stop children with their parent, or an older revcli)."""

    name: str
    url: str
    pid: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "pid": self.pid}


def _record(handle: UiHandle, logs: Path) -> None:
    """Write who started which server (``<workspace>/ui/servers.json``), so the next `ui`
    can tell servers whose `ui` is gone."""
    from revcli import atomic, processes

    servers = [{"name": s.name, "url": s.url, "pid": s.pid,
                "start": processes._start_ticks(s.pid) if s.pid else None}
               for s in handle.running]
    with contextlib.suppress(OSError):
        atomic.write_json(logs / STATE_FILE, {"parent": processes.identity(),
                                              "servers": servers})


def _forget(logs: Path | None) -> None:
    if logs is not None:
        with contextlib.suppress(OSError):
            (logs / STATE_FILE).unlink(missing_ok=True)


def stale_servers(settings: Settings) -> list[StaleServer]:
    """Servers recorded in this workspace's ``ui/servers.json`` whose `revcli ui` provably
    died and that still run (the same process: its start time matches). Only reads."""
    import json

    from revcli import processes
    from revcli.workspace import Workspace

    state = Workspace(settings.workspace).root / UI_DIR / STATE_FILE
    try:
        data = json.loads(state.read_text())
        parent, servers = data["parent"], data["servers"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if not processes.gone(parent):
        return []  # its `ui` still serves them: not ours to stop
    stale = []
    for entry in servers if isinstance(servers, list) else []:
        try:
            pid = int(entry["pid"])
        except (KeyError, TypeError, ValueError):
            continue
        if not processes.pid_gone(pid) and processes._start_ticks(pid) == entry.get("start"):
            stale.append(StaleServer(str(entry.get("name")), str(entry.get("url")), pid))
    return stale


def stop_stale(settings: Settings, stale: list[StaleServer], grace: float = STOP_GRACE) -> None:
    """Stop the process groups of ``stale`` (SIGTERM, SIGKILL after ``grace``) and forget them."""
    from revcli import processes
    from revcli.workspace import Workspace

    for server in stale:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not all(processes.pid_gone(s.pid) for s in stale):
        time.sleep(0.1)
    for server in stale:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, signal.SIGKILL)
    _forget(Workspace(settings.workspace).root / UI_DIR)


def _last_line(log: Path | None) -> str:
    """The last telling line of a server's log (its error, usually)."""
    if log is None:
        return ""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    for line in reversed(lines):
        if "Error" in line or "error" in line or "address already in use" in line:
            return mask(line)[:300]
    return mask(lines[-1])[:300] if lines else ""


def _answers(url: str, need_ok: bool) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200 or not need_ok
    except urllib.error.HTTPError:
        return not need_ok  # it answered, with an error status: up, for a dashboard
    except (OSError, ValueError):
        return False


def _wait_ready(server: Server, probe: str, need_ok: bool, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code = server.exit_code()
        if code is not None:
            cause = _last_line(server.log)
            raise TrackingError(f"{server.name} exited with code {code} before it answered"
                                + (f": {cause}" if cause else "") + f"; full log: {server.log}")
        if _answers(probe, need_ok):
            return
        if time.monotonic() > deadline:
            raise TrackingError(f"{server.name} did not answer at {probe} within "
                                f"{timeout:.0f} s; see its log: {server.log}")
        time.sleep(POLL)


def start(settings: Settings, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          optuna: bool = False, optuna_port: int = DEFAULT_OPTUNA_PORT,
          reporter: Reporter = SILENT, timeout: float = READY_TIMEOUT) -> UiHandle:
    """Start MLflow's UI on the effective tracking store (and optuna-dashboard on the study
    storage with ``optuna``), wait until each answers, and return the handle; :func:`stop`
    ends them. A tracking URI that is an http(s) server starts no MLflow UI (its URL is
    returned as is). Anything that fails after a start stops what was started."""
    from revcli.workspace import Workspace

    workspace = Workspace(settings.workspace).check_readable()
    uri, shown = _backend(settings, workspace)
    serve_mlflow = _scheme(uri) not in ("http", "https")
    storage, storage_shown = _study_storage(settings, workspace) if optuna else (None, None)
    if serve_mlflow:
        port = _bindable(host, port, "--port")
    if optuna:
        if serve_mlflow and optuna_port == port:
            raise ConfigError(f"--optuna-port {optuna_port} is the MLflow UI's --port; choose "
                              "another")
        optuna_port = _bindable(host, optuna_port, "--optuna-port")

    handle = UiHandle(tracking_uri=shown, mlflow=Server("MLflow's UI", shown),
                      study_storage=storage_shown)
    if not serve_mlflow and not optuna:
        return handle
    logs = _log_dir(workspace)
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_STORE_URI")}
    env["MLFLOW_DISABLE_TELEMETRY"] = env.get("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        if serve_mlflow:
            handle.mlflow = Server("MLflow's UI", _url(host, port), log=logs / "mlflow.log")
            command = [sys.executable, "-m", "mlflow", "ui", "--host", host, "--port",
                       str(port), "--workers", "1"]
            mlflow_env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
            if shown == uri:
                command += ["--backend-store-uri", uri]
            else:  # a password: through the environment, never on a command line `ps` shows
                mlflow_env["MLFLOW_BACKEND_STORE_URI"] = uri
            if uri == workspace.tracking_uri():
                # New experiments made in the UI keep their artifacts in the workspace too.
                command += ["--artifacts-destination", str(workspace.artifacts_dir)]
            _launch(handle.mlflow, command, mlflow_env, logs)
        if optuna:
            assert storage is not None
            handle.optuna = Server("optuna-dashboard", _url(host, optuna_port),
                                   log=logs / "optuna-dashboard.log")
            _launch(handle.optuna, [sys.executable, "-c", _DASHBOARD_MAIN, "--host", host,
                                    "--port", str(optuna_port), "--server", "wsgiref"],
                    {**env, "REVCLI_DASHBOARD_STORAGE": storage}, logs)
        _record(handle, logs)
        if serve_mlflow:
            reporter.step(f"starting MLflow's UI on {shown} (10-30 s on a busy machine)")
            _wait_ready(handle.mlflow, f"{handle.mlflow.url}/health", True, timeout)
        if handle.optuna is not None:
            reporter.step(f"starting optuna-dashboard on {storage_shown}")
            _wait_ready(handle.optuna, f"{handle.optuna.url}/", False, timeout)
    except BaseException:
        stop(handle)
        raise
    return handle


def _stop_one(server: Server, grace: float) -> None:
    process = server.process
    if process is not None and process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_GRACE)
    if process is not None:
        # Children that outlived the leader (a uvicorn worker): the group goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    if server._log_file is not None:
        server._log_file.close()
        server._log_file = None


def stop(handle: UiHandle, grace: float = STOP_GRACE) -> None:
    """End every server :func:`start` started: SIGTERM to its process group, SIGKILL after
    ``grace`` seconds. Safe to call twice."""
    for server in handle.running:
        _stop_one(server, grace)
    logs = next((s.log.parent for s in handle.running if s.log is not None), None)
    _forget(logs)


def wait(handle: UiHandle, interval: float = 0.5) -> Server | None:
    """Block until a started server exits on its own; returns it (None when nothing was
    started). Ctrl-C interrupts the wait (KeyboardInterrupt)."""
    if not handle.running:
        return None
    while (gone := handle.exited()) is None:
        time.sleep(interval)
    return gone
