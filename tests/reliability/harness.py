"""The machinery of the reliability matrix: cases as data, one runner, one set of checks.

A :class:`Case` is a command line plus a ``setup`` that breaks something in a private copy of a
small workspace. :func:`run_case` copies the workspace, runs the setup, takes a sha256
:func:`snapshot` of the case directory, runs the command (in-process through Typer's CliRunner,
or as a real subprocess where only that is faithful: signals, interpreter tracebacks, terminal
bytes), and returns every way the outcome differs from the contract:

* the exit code (2 for bad input or a fault, 1 only for a failed gate, 130 for an interrupt);
* exactly one ``Error:`` line on stderr for a failure, and it is stderr's last line (one line,
  not the first line of a longer message); none for a success;
* no traceback anywhere (in-process: no exception escaped the command);
* for a failure, the case directory (the workspace, its MLflow store ``mlflow.db`` and
  artifacts, the Optuna study database ``studies/optuna.db``, and the input files beside it)
  byte for byte as it was;
* the case's own checks (fragments the error must name, strings that must never be shown, ...).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

WORKTREE = Path(__file__).resolve().parents[2]

# Nothing in the case directory is excluded from the snapshot. Checked on this machine: reading
# commands (`compare runs`, `config`, `fetch --list`, `evaluate --no-track`) leave mlflow.db and
# studies/optuna.db byte for byte the same (sqlite writes nothing on a read, MLflow finds its
# schema current, Optuna its version table), and the sqlite journal (`*-journal`) exists only
# inside a write transaction. If a future library version touches a file on read, name it here
# with the reason rather than weakening the comparison.
SNAPSHOT_EXCLUDE: frozenset[str] = frozenset()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def snapshot(paths: Iterable[Path]) -> dict[str, str]:
    """{path: sha256} of every file under ``paths`` (directories as ``<dir>``, symlinks as
    ``-> target``), so a new empty directory or a left-over temp file counts as a change."""
    listing: dict[str, str] = {}
    for top in paths:
        top = Path(top)
        if not top.exists() and not top.is_symlink():
            continue
        entries = [top] if not top.is_dir() else [top, *sorted(top.rglob("*"))]
        for p in entries:
            if p.name in SNAPSHOT_EXCLUDE:
                continue
            try:
                if p.is_symlink():
                    listing[str(p)] = f"-> {os.readlink(p)}"
                elif p.is_dir():
                    listing[str(p)] = "<dir>"
                else:
                    listing[str(p)] = sha256_file(p)
            except OSError as exc:  # unreadable: record it, a change of that is a change too
                listing[str(p)] = f"<{exc.strerror}>"
    return listing


def diff(before: dict[str, str], after: dict[str, str], root: Path) -> list[str]:
    def rel(p: str) -> str:
        with contextlib.suppress(ValueError):
            return str(Path(p).relative_to(root))
        return p

    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    return ([f"+{rel(p)}" for p in added] + [f"-{rel(p)}" for p in removed]
            + [f"~{rel(p)}" for p in changed])


@dataclass
class Ctx:
    """What a case's setup and checks see: its directory (the cwd), its workspace, the run and
    dataset of the template, extra environment, and cleanups (unmounts, lock holders)."""

    root: Path
    ws: Path
    run: str
    sha: str
    env: dict[str, str] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)
    monkeypatch: Any = None

    def fmt(self, text: str) -> str:
        return text.format(ws=self.ws, root=self.root, run=self.run, sha=self.sha,
                           sha12=self.sha[:12], **self.values)


@dataclass
class Outcome:
    exit_code: int | None
    stdout: str
    stderr: str
    raw: bytes  # stdout + stderr as bytes (what a terminal would receive)
    exception: str | None = None  # an exception that escaped the command, formatted
    seconds: float = 0.0
    timed_out: bool = False
    signal: int | None = None  # the subprocess died of this signal (exit_code is 128 + it)
    signal_sent: bool | None = None  # for a ``signal_when`` case: whether its moment came
    pid: int | None = None  # a subprocess's pid (and its process group's: a session of its own)

    @property
    def output(self) -> str:
        return self.stdout + "\n" + self.stderr + "\n" + (self.exception or "")


@dataclass(frozen=True)
class Case:
    id: str
    klass: str
    argv: tuple[str, ...]
    setup: Callable[[Ctx], None] | None = None
    env: tuple[tuple[str, str], ...] = ()
    exit: int | tuple[int, ...] | None = 2  # None: 0 or 2; a tuple: any of those codes
    subprocess: bool = False
    fresh: bool = False  # a workspace that never had a dataset (only a migrated MLflow store)
    unchanged: bool | None = None  # default: True for failures, False for successes
    says: tuple[str, ...] = ()  # fragments the Error line (or, on success, stderr) must hold
    shows: tuple[str, ...] = ()  # text that must appear literally in stdout + stderr
    never: tuple[str, ...] = ()  # text that must appear nowhere in the output
    check: Callable[[Ctx, Outcome], list[str]] | None = None
    sigint_after: float | None = None
    # Send ``send`` (SIGINT by default) once ``signal_when(ctx)`` holds (polled every 10 ms):
    # in the middle of the work the case names (a RUNNING trial, a temp file), not at a time.
    signal_when: Callable[[Ctx], bool] | None = None
    send: int = signal.SIGINT
    s3: bool = False  # needs the real S3 gateway: ``{s3}`` is its endpoint, ``{bucket}`` fresh
    # A second revcli command line started at the same moment as the case's own (two writers
    # at once); its process is ``ctx.background`` for the check.
    beside: str | None = None
    timeout: float = 60.0

    @property
    def expect_unchanged(self) -> bool:
        if self.unchanged is not None:
            return self.unchanged
        return self.exit not in (0, None)


class CaseTimeout(BaseException):
    pass


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def fire(signum: int, frame: Any) -> None:
        raise CaseTimeout()

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_inprocess(argv: list[str], env: dict[str, str], timeout: float,
                  monkeypatch: pytest.MonkeyPatch) -> Outcome:
    from typer.testing import CliRunner

    from revcli.cli import app

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # tempfile caches the temp directory on first use; forget it so a case's TMPDIR counts.
    monkeypatch.setattr(tempfile, "tempdir", None)
    start = time.perf_counter()
    runner = CliRunner()
    timed_out = False
    try:
        with _alarm(timeout):
            result = runner.invoke(app, argv, catch_exceptions=True)
    except CaseTimeout:
        timed_out = True
        result = None
    seconds = time.perf_counter() - start
    if result is None:
        return Outcome(None, "", "", b"", None, seconds, timed_out)
    exc_text = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        exc = result.exception
        name = type(exc).__qualname__
        if type(exc).__module__ != "builtins":
            name = f"{type(exc).__module__}.{name}"
        message = str(exc).strip().splitlines()
        # the whole traceback, then the line a terminal would end with, for reports
        exc_text = ("".join(traceback.format_exception(*result.exc_info))  # type: ignore[misc]
                    + f"\n{name}: {message[0] if message else ''}".rstrip(": "))
    return Outcome(result.exit_code, result.stdout, result.stderr,
                   result.stdout_bytes + result.stderr_bytes, exc_text, seconds, timed_out)


def cli_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REVCLI_", "MLFLOW_", "AWS_", "PYTEST_"))}
    env.update({"PYTHONPATH": str(WORKTREE), "MLFLOW_DISABLE_TELEMETRY": "true"})
    env.update(extra)
    return env


def run_subprocess(argv: list[str], env: dict[str, str], cwd: Path, timeout: float,
                   sigint_after: float | None = None, send: int = signal.SIGINT,
                   when: Callable[[], bool] | None = None) -> Outcome:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "revcli", *argv], cwd=cwd, env=cli_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    timed_out = False
    sent = None
    if sigint_after is not None:
        time.sleep(max(0.0, sigint_after - (time.perf_counter() - start)))
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(send)
    if when is not None:
        # Pipes are drained by threads meanwhile, so a chatty command never blocks on them.
        sent, out, err, timed_out = _signal_when(proc, when, send, start + timeout)
    else:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
    seconds = time.perf_counter() - start
    code = proc.returncode
    died_of = None
    if code is not None and code < 0:
        died_of = -code
        code = 128 - code  # killed by a signal: report it the way a shell does
    return Outcome(None if timed_out else code, out.decode("utf-8", "replace"),
                   err.decode("utf-8", "replace"), out + err, None, seconds, timed_out,
                   died_of, sent, proc.pid)


def _signal_when(proc: subprocess.Popen, when: Callable[[], bool], send: int,
                 deadline: float) -> tuple[bool, bytes, bytes, bool]:
    """Poll ``when()`` every 10 ms while ``proc`` runs and send ``send`` the moment it holds;
    then wait for the end. (sent, stdout, stderr, timed out)."""
    import threading

    chunks: dict[str, list[bytes]] = {"out": [], "err": []}

    def drain(stream: Any, into: list[bytes]) -> None:
        while data := stream.read1(65536):
            into.append(data)

    threads = [threading.Thread(target=drain, args=(proc.stdout, chunks["out"]), daemon=True),
               threading.Thread(target=drain, args=(proc.stderr, chunks["err"]), daemon=True)]
    for t in threads:
        t.start()
    sent = False
    while proc.poll() is None and time.perf_counter() < deadline:
        try:
            ready = when()
        except Exception:  # e.g. a database in the middle of a write: ask again
            ready = False
        if ready:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(send)
            sent = True
            break
        time.sleep(0.01)
    timed_out = False
    try:
        proc.wait(max(0.1, deadline - time.perf_counter()))
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for t in threads:
        t.join(timeout=5)
    return sent, b"".join(chunks["out"]), b"".join(chunks["err"]), timed_out


def relocate_store(db: Path, old: str, new: str) -> None:
    """Rewrite absolute paths (artifact locations) inside a copied MLflow sqlite store, so the
    copy's runs point at the copy's artifacts and not the template's."""
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for _, col, kind, *_ in con.execute(f'PRAGMA table_info("{table}")'):
                if "CHAR" in kind.upper() or "TEXT" in kind.upper():
                    con.execute(f'UPDATE "{table}" SET "{col}" = replace("{col}", ?, ?) '
                                f'WHERE "{col}" LIKE ?', (old, new, f"%{old}%"))
        con.commit()
    finally:
        con.close()


def first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def judge(case: Case, ctx: Ctx, outcome: Outcome, before: dict[str, str],
          after: dict[str, str]) -> list[str]:
    """Every way ``outcome`` breaks the contract (an empty list: the case passes)."""
    problems: list[str] = []
    if outcome.timed_out:
        problems.append(f"hung: no exit within {case.timeout:.0f} s")
    elif case.exit is None and outcome.exit_code not in (0, 2):
        problems.append(f"exit {outcome.exit_code} (want 0 or 2)")
    elif isinstance(case.exit, tuple):
        if outcome.exit_code not in case.exit:
            problems.append(f"exit {outcome.exit_code} (want one of {case.exit})")
    elif case.exit is not None and outcome.exit_code != case.exit:
        problems.append(f"exit {outcome.exit_code} (want {case.exit})")
    if outcome.signal is not None:
        problems.append(f"killed by signal {outcome.signal}: the interrupt was not handled")
    if case.signal_when is not None and outcome.signal_sent is False:
        problems.append("the moment to send the signal never came (the command ended first)")
    if outcome.exception:
        problems.append(f"uncaught {last_line(outcome.exception)}")
    if "Traceback" in outcome.stdout or "Traceback" in outcome.stderr:
        tb_source = outcome.stderr if "Traceback" in outcome.stderr else outcome.stdout
        problems.append(f"traceback printed: {exception_line(tb_source)[:160]}")
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("Error:")]
    failed = (case.exit != 0 if isinstance(case.exit, int) else outcome.exit_code != 0)
    if failed:
        if len(errors) != 1:
            problems.append(f"{len(errors)} 'Error:' lines on stderr (want 1)")
        elif last_line(outcome.stderr) != errors[0]:
            tail = last_line(outcome.stderr)[:120]
            problems.append(f"'Error:' line is not stderr's last: {tail!r}")
    elif errors:
        problems.append(f"success with an 'Error:' line: {errors[0][:160]}")
    said = errors[0] if (failed and errors) else outcome.stderr
    for fragment in case.says:
        frag = ctx.fmt(fragment)
        if frag not in said:
            problems.append(f"{'error' if failed else 'stderr'} does not say {frag!r}")
    for text in case.shows:
        if text not in outcome.stdout + outcome.stderr:
            problems.append(f"output does not show {text!r} literally")
    raw = outcome.raw.decode("utf-8", "replace")
    for text in case.never:
        if text in raw or text in (outcome.exception or ""):
            problems.append(f"output contains {text!r}")
    if case.expect_unchanged:
        changes = diff(before, after, ctx.root)
        if changes:
            shown = ", ".join(changes[:6]) + (f" (+{len(changes) - 6} more)"
                                              if len(changes) > 6 else "")
            problems.append(f"case dir changed: {shown}")
    if case.check is not None:
        problems.extend(case.check(ctx, outcome))
    return problems


def show(outcome: Outcome) -> None:
    """With RELIABILITY_DEBUG set, everything the command printed (pytest -s shows it)."""
    if os.environ.get("RELIABILITY_DEBUG"):
        print(f"--- stdout\n{outcome.stdout}\n--- stderr\n{outcome.stderr}\n--- exception\n"
              f"{outcome.exception}")


def fail_on(case: Case, outcome: Outcome, problems: list[str]) -> None:
    """Fail the test with every problem :func:`judge` found, if any."""
    if problems:
        pytest.fail(f"[{case.klass}] {case.id}: exit {outcome.exit_code} in "
                    f"{outcome.seconds:.1f} s; first line: {describe(outcome)[:240]!r}\n  - "
                    + "\n  - ".join(problems), pytrace=False)


def exception_line(text: str) -> str:
    """The ``Type: message`` line of the last traceback in ``text`` (plain or rich-boxed)."""
    lines = text.splitlines()
    files = [i for i, line in enumerate(lines) if line.startswith("  File ")]
    if files:
        j = files[-1] + 1
        while j < len(lines) and lines[j].startswith("    "):
            j += 1
        if j < len(lines):
            return lines[j]
    for line in reversed(lines):  # rich's boxed traceback: the line after the box
        if line.strip() and not line.startswith(("│", "╰", "╭", "(Background", " ")):
            return line
    return last_line(text)


def describe(outcome: Outcome) -> str:
    """The first line a person would look at: an escaped exception's ``Type: message``, else
    the Error line, else a printed traceback's exception line, else stderr's last line."""
    if outcome.exception:
        return last_line(outcome.exception)
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("Error:")]
    if errors:
        return errors[0]
    if "Traceback" in outcome.stderr:
        return exception_line(outcome.stderr)
    return last_line(outcome.stderr) or last_line(outcome.stdout)


def copy_template(template: Path, root: Path) -> None:
    shutil.copytree(template, root, symlinks=True)
    db = root / "ws" / "mlflow.db"
    if db.is_file():
        relocate_store(db, str(template), str(root))
