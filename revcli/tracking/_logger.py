"""MLflow in a process of its own: imported and opened on the other core while the data loads and
the model fits, then handed the finished run.

``import mlflow`` (~1 s: its GenAI, gateway and FastAPI modules) and opening its SQLAlchemy store
(~0.5 s) are CPU-bound Python that holds the GIL: in a thread beside the load they slowed it
down and were still waited for (issue 19). :class:`Logger` starts this module's :func:`main` in
a child process at once; the child imports MLflow, connects, runs ``then`` (closing dead runs)
and waits. :meth:`Logger.result` returns a :class:`RemoteTracker`, which has
the :class:`Tracker` methods a run's logging uses (``create_run``, ``log``, ``log_model``,
``end_run``, ...) and runs each in the child, raising there what the Tracker raised here.

Nothing about the guarantees changes: the caller still saves the model and ``pending.json``
before it sends anything, a failure of the store is the same one-line error (``runs sync``), and
a run left RUNNING by a parent killed mid-log is closed by the next command (its worker tags name
the parent). The child ignores Ctrl-C (the parent decides), writes its protocol on a private
copy of stdout (MLflow's prints go to stderr), and exits when its stdin closes.

Before it imports MLflow the child sends a cheap verdict ("probe"): the sqlite file's header, or
whether the server's port accepts a connection. When that fails the caller waits for the real
error before it fits anything, so a dead server still fails before minutes of work.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from revcli.errors import RevcliError, TrackingError, first_line

if TYPE_CHECKING:
    from revcli.settings import Settings
    from revcli.tracking._client import Tracker
    from revcli.workspace import Workspace

PROBE, READY, OK, ERROR = "probe", "ready", "ok", "error"
# The Tracker methods a finished run's logging calls (runs.finish, log_training, Pending.log).
_SERVING = threading.Event()  # the store is open and calls are being served
REMOTE_METHODS = frozenset({"describe", "create_run", "log", "set_tag", "end_run", "log_artifact",
                            "log_artifacts", "log_dict", "log_text", "log_model",
                            "log_dataset"})


class LoggerDied(TrackingError):
    """The logger process is gone (killed, out of memory)."""


def _send(stream: IO[bytes], message: Any) -> None:
    pickle.dump(message, stream, protocol=pickle.HIGHEST_PROTOCOL)
    stream.flush()


def _portable(exc: BaseException) -> BaseException:
    """An exception the other side can unpickle without MLflow: revcli's own pass as they are,
    anything else as one TrackingError line."""
    if isinstance(exc, RevcliError):
        try:
            pickle.loads(pickle.dumps(exc))
            return exc
        except Exception:
            return TrackingError(str(exc))
    return TrackingError(f"MLflow logging failed: {first_line(exc, 200)}")


class RemoteTracker:
    """A :class:`Tracker` in the logger process: the same attributes, and the logging methods
    (:data:`REMOTE_METHODS`) run there. Anything else is not available here on purpose."""

    def __init__(self, logger: Logger, uri: str, shown: str, workspace: Workspace | None):
        self._logger = logger
        self.uri = uri
        self.shown = shown
        self.workspace = workspace

    def __repr__(self) -> str:
        return f"RemoteTracker({self.shown!r})"

    @property
    def is_workspace_store(self) -> bool:
        return self.workspace is not None and self.uri == self.workspace.tracking_uri()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in REMOTE_METHODS:
            raise AttributeError(f"{name!r} is not a logging call of the MLflow logger process")

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._logger.call(name, args, kwargs)

        return call


class Logger:
    """The logger process: started at construction, ``result()`` waits until its store is open,
    ``close()`` ends it (called by the command in ``finally``)."""

    def __init__(self, settings: Settings, workspace: Workspace,
                 then: Callable[[Tracker, str], Any] | None = None) -> None:
        self.seconds = 0.0       # the child's import + opening, as it measured them
        self._lock = threading.Lock()
        self._broken: BaseException | None = None
        self._probe: BaseException | bool | None = False  # False: not heard yet
        self._ready: tuple[RemoteTracker, str] | None = None
        self._error: BaseException | None = None
        self._workspace = workspace
        self._proc = _take_prestarted() or _spawn()
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in, self._out = self._proc.stdin, self._proc.stdout
        try:
            _send(self._in, (settings, workspace, then))
        except OSError as exc:
            self._broken = LoggerDied(f"the MLflow logger process did not start: {exc}")

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        self.close(kill=kind is not None)

    # -- the start -------------------------------------------------------------------------

    def _receive(self) -> tuple[str, Any]:
        try:
            return pickle.load(self._out)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            code = self._proc.poll()
            self._broken = LoggerDied(
                "the MLflow logger process ended unexpectedly"
                + (f" (exit {code})" if code is not None else "") + f": {first_line(exc, 80)}")
            raise self._broken from None

    def _read_probe(self) -> None:
        if self._probe is False and self._broken is None:
            kind, value = self._receive()
            assert kind == PROBE
            self._probe = value

    def check(self) -> None:
        """Before a long step: when the cheap check failed (a dead server, a file that is no
        sqlite store), wait for MLflow's own verdict and raise it."""
        if self._broken is not None:
            raise self._broken
        self._read_probe()
        if self._probe is not None:
            self.result()

    def result(self) -> tuple[RemoteTracker, str]:
        """The tracker and the experiment's id once the store is open; raises what opening it
        raised."""
        if self._ready is not None:
            return self._ready
        if self._error is not None:
            raise self._error
        if self._broken is not None:
            raise self._broken
        self._read_probe()
        kind, value = self._receive()
        if kind == ERROR:
            self._error = value
            raise value
        uri, shown, experiment_id, self.seconds = value
        self._ready = (RemoteTracker(self, uri, shown, self._workspace), experiment_id)
        return self._ready

    # -- calls -----------------------------------------------------------------------------

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            if self._broken is not None:
                raise self._broken
            try:
                _send(self._in, (method, args, kwargs))
                kind, value = self._receive()
            except BaseException as exc:
                # A half-sent request or an unread reply (Ctrl-C): the stream is out of step.
                if self._broken is None:
                    self._broken = LoggerDied(f"the MLflow logger process stopped answering "
                                              f"({type(exc).__name__})")
                self.close(kill=True)
                if isinstance(exc, OSError):
                    raise self._broken from None
                raise
        if kind == ERROR:
            raise value
        return value

    def close(self, kill: bool = False) -> None:
        """End the child: its stdin closes and it exits; killed if it does not within 5 s (or at
        once with ``kill``: a command that failed or was interrupted)."""
        proc = self._proc
        if proc.returncode is not None:
            return
        for stream in (self._in, self._out):
            with contextlib.suppress(OSError):
                stream.close()
        if kill:
            proc.terminate()  # SIGTERM: the child's temp files are removed on its way out
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_prestarted: subprocess.Popen[bytes] | None = None


def _spawn() -> subprocess.Popen[bytes]:
    import revcli

    # -P and the parent's own revcli first: a revcli checkout in the working directory must not
    # stand in for the one running
    root = os.path.dirname(os.path.dirname(os.path.abspath(revcli.__file__)))
    return subprocess.Popen(
        [sys.executable, "-P", "-c", f"import sys; sys.path.insert(0, {root!r}); "
         "from revcli.tracking._logger import main; main()"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        # The parent handles Ctrl-C and ends the child itself: a process group of its own keeps
        # the terminal's Ctrl-C away from it. Not a session of its own: the kernel's autogroup
        # scheduling would give a new session a CPU share equal to the command's, whatever
        # the child's nice value (main).
        **({"process_group": 0} if os.name == "posix" else {}))


def prestart() -> None:
    """Start the logger process before the CLI's own imports (``revcli train`` and ``compare
    strategies``): it imports MLflow meanwhile. It touches nothing until a :class:`Logger` sends
    it the settings, and exits when this process does without one."""
    global _prestarted
    try:
        _prestarted = _spawn()
    except OSError:
        _prestarted = None


def _take_prestarted() -> subprocess.Popen[bytes] | None:
    global _prestarted
    proc, _prestarted = _prestarted, None
    return proc if proc is not None and proc.poll() is None else None


# -- the child ------------------------------------------------------------------------------

def _probe(settings: Settings, workspace: Workspace) -> BaseException | None:
    """What can be checked without MLflow: a sqlite file's header, a server's port."""
    import socket
    from urllib.parse import urlsplit

    from revcli.tracking._client import check_sqlite, tracking_uri

    uri = tracking_uri(settings, workspace)
    try:
        if uri.startswith("sqlite:///"):
            from pathlib import Path

            check_sqlite(Path(uri.removeprefix("sqlite:///").split("?")[0]), uri)
        elif uri.startswith(("http://", "https://")):
            parts = urlsplit(uri)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            with socket.create_connection((parts.hostname or "localhost", port), timeout=3):
                pass
    except (OSError, RevcliError) as exc:
        return TrackingError(f"probe: {first_line(exc, 80)}")
    return None


# What logging a model imports. Never the model's own libraries (scikit-learn, XGBoost, skops):
# the model arrives as its skops file, written by the command (revcli.tracking._model.log_model).
PRELOAD = ("mlflow.models", "mlflow.pyfunc", "mlflow.sklearn")


def _preload(proto_in: IO[bytes]) -> None:
    """What logging a model imports, while the parent still fits: MLflow's pyfunc and sklearn
    flavours and signature. A request that arrives meanwhile is served first (the run's
    creation needs none of them)."""
    import importlib

    for name in PRELOAD:
        if os.name == "posix":
            import select

            if select.select([proto_in], [], [], 0)[0]:
                return
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _serve(proto_in: IO[bytes], proto_out: IO[bytes], start: float) -> None:
    def import_mlflow() -> None:
        # a failed import fails again, and is reported, in connect
        with contextlib.suppress(BaseException):
            import mlflow  # noqa: F401

    # MLflow is needed whatever the settings say: imported at once, beside the wait for them;
    # the probe needs no MLflow, so the caller's check before its fit never waits for the
    # import (it did: ~0.8 s of train, issue 19).
    importing = threading.Thread(target=import_mlflow, name="revcli-import-mlflow",
                                 daemon=True)
    importing.start()
    settings, workspace, then = pickle.load(proto_in)
    _send(proto_out, (PROBE, _probe(settings, workspace)))
    importing.join()
    try:
        from revcli.tracking._client import connect

        tracker, experiment_id = connect(settings, workspace)
        assert experiment_id is not None
        if then is not None:
            then(tracker, experiment_id)
    except BaseException as exc:
        _send(proto_out, (ERROR, _portable(exc)))
        return
    _send(proto_out, (READY, (tracker.uri, tracker.shown, experiment_id,
                              time.perf_counter() - start)))
    # Runs this process created and no call ended yet: when the parent goes away mid-run (it
    # was interrupted, or terminated while waiting for a reply, so the stream is out of step
    # and it cannot end them itself), they are ended KILLED here, never left RUNNING.
    started: set[str] = set()
    _SERVING.set()
    try:
        while True:
            _preload(proto_in)
            try:
                method, args, kwargs = pickle.load(proto_in)
            except (EOFError, OSError):
                return
            try:
                value = getattr(tracker, method)(*args, **kwargs) if method in REMOTE_METHODS \
                    else None
                reply: tuple[str, Any] = (OK, value)
                if method == "create_run":
                    started.add(str(value))
                elif method == "end_run" and args:
                    started.discard(str(args[0]))
            except BaseException as exc:
                reply = (ERROR, _portable(exc))
            _send(proto_out, reply)
    finally:
        for run_id in started:
            with contextlib.suppress(BaseException):
                tracker.end_run(run_id, "KILLED")


def main() -> None:
    start = time.perf_counter()
    import signal

    # The lowest CPU priority: MLflow's imports take the core the command leaves idle, never
    # one that XGBoost's threads wait on (beside them at equal priority, a fit on 2 cores ran
    # 5-10x slower: OpenMP threads wait at each barrier for the one that was descheduled).
    with contextlib.suppress(OSError, AttributeError):
        os.nice(19)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGTERM"):
        def stop(*_: Any) -> None:
            # While the store opens, unwind (temp files of a store being created are removed);
            # once it serves, the parent's closed stdin ends the loop, and the runs it left
            # are ended KILLED (_serve) without a SystemExit cutting that in two.
            if not _SERVING.is_set():
                raise SystemExit(143)

        signal.signal(signal.SIGTERM, stop)
    # The protocol gets a private copy of stdout; whatever a library prints goes to stderr.
    proto_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    proto_in = sys.stdin.buffer
    try:
        _serve(proto_in, proto_out, start)
    except (BrokenPipeError, EOFError):
        pass
    finally:
        with contextlib.suppress(OSError):
            proto_out.close()
    sys.stderr.flush()
    os._exit(0)  # no interpreter teardown of MLflow's modules: the parent is waiting


if __name__ == "__main__":
    main()
