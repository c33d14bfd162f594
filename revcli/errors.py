"""One exception tree for every user-facing failure, and the exit codes they map to.

Each message says what is wrong and, where there is one, how to fix it; the CLI prints it on one
line as ``Error: <message>`` and exits with ``exit_code``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3  # a bug: an exception revcli did not expect
EXIT_INTERRUPTED = 130


class RevcliError(Exception):
    """A failure the user can act on (bad usage, bad data, unreachable service)."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(RevcliError):
    """A setting, flag or configuration file is invalid."""


class DataError(RevcliError):
    """A table breaks the data contract (see revcli.data)."""


class NotFoundError(RevcliError):
    """A dataset, run, model or file that was asked for does not exist."""


class StorageError(RevcliError):
    """Object storage (S3) or the local file system refused an operation."""


class TrackingError(RevcliError):
    """MLflow tracking or registry refused an operation."""


class ClusterError(RevcliError):
    """The Dask cluster cannot be reached or started, or lost a worker mid-task."""


class GateFailed(RevcliError):
    """A quality gate or promotion check did not pass: exit 1 so CI and Airflow stop."""

    exit_code = EXIT_GATE_FAILED


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (what Airflow, systemd, Kubernetes and a closed terminal send), raised
    in the main thread like Ctrl-C's KeyboardInterrupt, so every path that cleans up after
    Ctrl-C cleans up after these too; the process then exits 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        import signal

        return signal.Signals(self.signum).name


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type's name when it has none), at most
    ``limit`` characters: how a library's long error becomes part of one line."""
    lines = str(exc).strip().splitlines()
    if not lines or not lines[0].strip():
        return type(exc).__name__
    line = lines[0].rstrip()
    # a cut says so, and never ends the line in the middle of blanks (a cut after a space left
    # "Error: ... An error occurred " with a trailing blank)
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"
