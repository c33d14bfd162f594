"""Faults injected into a real Dask cluster at a chosen moment of revcli's work (issue 16).

Two Dask worker plugins, registered on a cluster for one case:

* :class:`KillWhen` watches each worker's own threads (``sys._current_frames``, every 2 ms) for
  a frame of the function that marks the moment -- ``update`` in ``xgboost/core.py`` (a boosting
  round: the fit is under way) or ``_predict_part`` (a part is being scored) -- and then SIGKILLs
  the worker itself or another process (the scheduler): once cluster-wide (a flag file taken
  with ``O_EXCL``, so a worker the nanny restarts does not do it again) or on every try;
* :class:`UnlinkBefore` deletes a part in the worker's own transition of a task to
  ``executing``, before the task's code runs: the part vanishes between the listing and the
  read, every time, whatever the machine's load.

Nothing is mocked: the worker, the scheduler and the file are real and really die or vanish, in
the middle of the real work; the watcher only chooses the moment without a sleep.

:class:`SubprocessCluster` is a scheduler and workers as processes of their own (``dask
scheduler`` / ``dask worker``), so a test can SIGKILL the scheduler too; it restarts whatever
died when asked (:meth:`SubprocessCluster.ensure`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

#: ``(function name, file name suffix)`` of the frames that mark the moments.
BOOSTING = ("update", "xgboost/core.py")
SCORING = ("_predict_part", "revcli/engines/_dask.py")


def _in_flight(name: str, suffix: str) -> bool:
    """A thread of this process is inside function ``name`` of a file ending in ``suffix``."""
    for frame in sys._current_frames().values():
        while frame is not None:
            code = frame.f_code
            if code.co_name == name and code.co_filename.endswith(suffix):
                return True
            frame = frame.f_back
    return False


class KillWhen(WorkerPlugin):
    """SIGKILL ``pid`` (None: the worker itself) the first time a worker is inside ``when``;
    with a ``flag`` file only once cluster-wide, without one on every try (the retries too)."""

    name = "revcli-fault"

    def __init__(self, when: tuple[str, str], flag: str | None, pid: int | None = None,
                 every: float = 0.002) -> None:
        self.when = when
        self.flag = flag
        self.pid = pid
        self.every = every
        self._stop: threading.Event | None = None  # made on the worker (a lock: no pickle)

    def setup(self, worker: Any) -> None:
        self._stop = threading.Event()
        threading.Thread(target=self._watch, name="revcli-fault", daemon=True).start()

    def teardown(self, worker: Any) -> None:
        if self._stop is not None:
            self._stop.set()

    def _watch(self) -> None:
        assert self._stop is not None
        while not self._stop.wait(self.every):
            if not _in_flight(*self.when):
                continue
            if self.flag is not None:
                try:
                    os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    return  # done once already (by this worker before a restart, or another)
            os.kill(self.pid if self.pid is not None else os.getpid(), signal.SIGKILL)
            return


class UnlinkBefore(WorkerPlugin):
    """Delete ``path`` the moment a task of ``function`` starts on a worker (in the worker's
    transition to ``executing``, before the task's code runs); with ``reading``, only the task
    whose arguments name ``path`` (the task that is about to read it)."""

    name = "revcli-fault"

    def __init__(self, function: str, path: str, reading: bool = False) -> None:
        self.function = function
        self.path = path
        self.reading = reading
        self.worker: Any = None

    def setup(self, worker: Any) -> None:
        self.worker = worker

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        name = str(key[0] if isinstance(key, tuple) else key)
        if finish != "executing" or not name.startswith(f"{self.function}-"):
            return
        if self.reading:
            task = self.worker.state.tasks.get(key)
            if self.path not in getattr(getattr(task, "run_spec", None), "args", ()):
                return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def process_group_gone(pgid: int, seconds: float = 10.0) -> list[int]:
    """The pids still alive (not zombies) in process group ``pgid`` after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        left = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    left.append(int(entry.name))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


class SubprocessCluster:
    """A scheduler and ``workers`` single-threaded worker processes, each a process of its own
    (in one new process group), on a free port; ``ensure()`` (re)starts what is not running."""

    def __init__(self, workers: int = 2, memory: str = "1.5GB") -> None:
        self.n = workers
        self.memory = memory
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: subprocess.Popen[bytes] | None = None
        self.address = ""

    def _env(self) -> dict[str, str]:
        root = str(Path(__file__).resolve().parents[2])
        path = os.environ.get("PYTHONPATH", "")
        return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else ""),
                "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "error",
                # a task that killed its worker is tried once more, not three times (faster)
                "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}

    def ensure(self, timeout: float = 60.0) -> str:
        import distributed

        from tests.integration.servers import free_port

        if self.scheduler is None or self.scheduler.poll() is not None:
            self.stop()
            port = free_port()
            self.address = f"tcp://127.0.0.1:{port}"
            self.scheduler = subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                 "--port", str(port), "--dashboard-address", ":0"],
                env=self._env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
        if self.workers is None or self.workers.poll() is not None:
            self.workers = subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", self.address,
                 "--nworkers", str(self.n), "--nthreads", "1", "--memory-limit", self.memory,
                 "--no-dashboard", "--death-timeout", "30", "--host", "127.0.0.1"],
                env=self._env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
        with distributed.Client(self.address, timeout=timeout) as client:
            client.wait_for_workers(self.n, timeout=timeout)
        return self.address

    @contextlib.contextmanager
    def client(self) -> Any:
        import distributed

        with distributed.Client(self.address, timeout=30) as client:
            yield client

    def scheduler_pid(self) -> int:
        assert self.scheduler is not None
        return self.scheduler.pid

    def stop(self) -> None:
        for proc in (self.workers, self.scheduler):
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.workers = self.scheduler = None
