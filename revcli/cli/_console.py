"""All terminal output of the CLI: data to stdout (tables or JSON), everything else to stderr.

Rich honours ``NO_COLOR`` and drops colours and spinners when the stream is not a terminal, so the
same code serves a person at a terminal and an Airflow log.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.text import Text

from revcli.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    RevcliError,
    Terminated,
    first_line,
)
from revcli.progress import Reporter, Task

# Piped stdout (CI logs, files) is not squeezed into rich's assumed 80 columns unless COLUMNS says
# so; a terminal's width is respected.
PIPE_WIDTH = 220


def wrap_words(text: Text, width: int) -> list[Text]:
    """``text`` as lines of at most ``width`` cells, broken between words only: a word longer
    than ``width`` (a run id, a path, a URL) stays whole on a line of its own."""
    import re

    from rich.cells import cell_len

    lines: list[Text] = []
    for paragraph in text.split("\n", allow_blank=True):
        plain = paragraph.plain
        offsets: list[int] = []
        used = 0
        for match in re.finditer(r"\S+\s*", plain):
            word = cell_len(match.group().rstrip())
            if used and used + word > width:
                offsets.append(match.start())
                used = 0
            used += cell_len(match.group())
        parts = paragraph.divide(offsets) if offsets else [paragraph]
        for part in parts:
            part.rstrip()
            lines.append(part)
    return lines


class _Prose:
    """A renderable of prose wrapped by :func:`wrap_words` at the width it is given."""

    def __init__(self, text: Text) -> None:
        self.text = text

    def __rich_console__(self, console: Console, options: Any) -> Iterator[Any]:
        from rich.segment import Segment

        for line in wrap_words(self.text, options.max_width):
            yield from line.render(console)
            yield Segment.line()


class WrappingConsole(Console):
    """The one layout rule for prose: lines wrap between words at the width -- COLUMNS, else
    the terminal's, else PIPE_WIDTH for a pipe or file -- and a word longer than that (a run id,
    a path, a URL) stays whole on a line of its own instead of being cut where the terminal
    would cut it. Tables are fitted to the same width (:func:`output_width`)."""

    @property
    def size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)  # type: ignore[attr-defined]
        if self._width is not None:  # a width asked for
            return size
        columns = os.environ.get("COLUMNS", "").strip()
        if columns.isdigit() and int(columns) > 0:
            return ConsoleDimensions(int(columns), size.height)
        return size if self.is_terminal else ConsoleDimensions(PIPE_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Strings and Text as wrapped prose; anything else (tables) as rich renders it."""
        if objects and all(isinstance(o, (str, Text)) for o in objects) and not (
                kwargs.get("soft_wrap") or kwargs.get("no_wrap")):
            style = kwargs.pop("style", None)
            text = Text(" ").join(
                o if isinstance(o, Text) else self.render_str(
                    o, markup=kwargs.pop("markup", None) if len(objects) == 1 else None,
                    highlight=kwargs.get("highlight"), emoji=kwargs.pop("emoji", None))
                for o in objects)
            if style:
                text.stylize(style)
            kwargs.pop("markup", None)
            kwargs.pop("emoji", None)
            super().print(_Prose(text), crop=False, **kwargs)
            return
        super().print(*objects, **kwargs)


# file=None: rich looks up sys.stdout / sys.stderr at write time, so test runners that swap them
# see the output.
out = WrappingConsole()
err = WrappingConsole(stderr=True)


def output_width() -> int:
    """The width stdout's tables are laid out for: the terminal's (rich reads COLUMNS), or, when
    stdout is a pipe or file, COLUMNS if set and PIPE_WIDTH otherwise."""
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return out.width if out.is_terminal else PIPE_WIDTH


def sized_console(width: int | None = None) -> Console:
    """A stdout console of ``width`` (default :func:`output_width`) that wraps text at it, so
    titles, captions, warnings and notes stay inside the width the tables were fitted to."""
    return WrappingConsole(width=width or output_width())


# C0 and C1 control characters: ESC starts terminal sequences (clear screen, set the window
# title, ...); none of them belongs in a value printed to a terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """``text`` with control characters shown as escapes (ESC as \\x1b), nothing else
    changed: for values that come from data, MLflow or the user (names, paths, labels)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"),
                        str(text))


def safe(text: object) -> str:
    """:func:`printable`, and escaped for rich markup too (``[red]`` stays literal)."""
    return escape(printable(text))


def error(message: str) -> None:
    # In a log or a pipe (a script, Airflow, grep) the error is one line, never wrapped; at a
    # terminal it wraps between words like any prose.
    err.print(f"[bold red]Error:[/] {safe(message.strip())}", highlight=False,
              soft_wrap=not err.is_terminal)


def warn(message: str) -> None:
    err.print(f"[yellow]Warning:[/] {safe(message)}", highlight=False)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _clean(value: Any) -> Any:
    """JSON has no NaN or Infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


# Whether the running command printed its JSON document (a failure after it -- evaluate's gate,
# doctor's problems -- adds no second one).
_json_printed = threading.local()


def print_json(obj: Any) -> None:
    """Exactly one JSON document on one line of stdout (Airflow pushes the last line to XCom)."""
    _json_printed.done = True
    text = json.dumps(_clean(obj), default=_json_default, allow_nan=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def stdout_to_stderr(active: bool = True) -> Iterator[None]:
    """Send anything libraries print to stdout (MLflow's run links, warnings printed by C code)
    to stderr, so ``--json`` leaves exactly one JSON object on stdout."""
    if not active:
        yield
        return
    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None  # a test runner's in-memory stream: the Python-level redirect is enough
    saved = None
    if fd is not None:
        saved = os.dup(fd)
        os.dup2(sys.stderr.fileno(), fd)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None and fd is not None:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)


class _RichTask(Task):
    def __init__(self, progress: Any, task_id: Any) -> None:
        self._progress = progress
        self._id = task_id

    def advance(self, amount: float = 1.0) -> None:
        self._progress.advance(self._id, amount)

    def update(self, **fields: Any) -> None:
        known = {k: fields.pop(k) for k in ("total", "completed", "description") if k in fields}
        self._progress.update(self._id, **known, **fields)


# Plain progress lines (stderr not a terminal: CI logs) at most this often, and at the end.
PLAIN_EVERY = 10.0
_clock = time.monotonic


class _PlainTask(Task):
    """Progress for logs: a plain line ("trials 12/50 (best rmse 17.70)") when the task starts,
    at most every PLAIN_EVERY seconds while it advances, and when it ends; no bars, no control
    characters. Safe to call from several threads (tune's trials)."""

    def __init__(self, description: str, total: float | None, unit: str, info: str) -> None:
        self.description, self.total, self.unit, self.info = description, total, unit, info
        self.completed = 0.0
        self._lock = threading.Lock()
        self._shown = ""
        self._at = 0.0
        self.emit(force=True)

    def advance(self, amount: float = 1.0) -> None:
        with self._lock:
            self.completed += amount
        self.emit()

    def update(self, **fields: Any) -> None:
        with self._lock:
            self.total = fields.get("total", self.total)
            self.completed = fields.get("completed", self.completed)
            self.description = fields.get("description", self.description)
            self.info = fields.get("info", self.info)
        self.emit()

    def _amount(self, value: float) -> str:
        if self.unit == "bytes":
            from rich.filesize import decimal

            return decimal(int(value))
        return f"{value:,.0f}"

    def line(self) -> str:
        from rich.text import Text

        done = self._amount(self.completed)
        if self.total is not None:
            done += "/" + self._amount(self.total)
        if self.unit and self.unit != "bytes":
            done += f" {self.unit}"
        info = Text.from_markup(str(self.info or "")).plain.strip()
        return printable(f"{self.description} {done}" + (f" ({info})" if info else ""))

    def emit(self, force: bool = False) -> None:
        with self._lock:
            now = _clock()
            if not force and now - self._at < PLAIN_EVERY:
                return
            text = self.line()
            if text == self._shown:
                return
            self._shown, self._at = text, now
        err.print(text, markup=False, highlight=False, emoji=False)


class ConsoleReporter(Reporter):
    """Spinner for steps, progress bars for tasks, one-line notes and warnings; all on stderr.
    When stderr is not a terminal (a CI log), steps are "… step" lines and tasks plain periodic
    lines: nothing a log would garble."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._status: Any = None
        self._step: Any = None

    def step(self, message: str) -> None:
        if self.quiet:
            return
        if not err.is_terminal:
            err.print(f"[dim]… {safe(message)}[/]", highlight=False)
            return
        if self._status is None:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            # A spinner with the elapsed time of the current step: a long fit shows it is alive.
            self._status = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                    TimeElapsedColumn(), console=err, transient=True)
            self._status.start()
            self._step = self._status.add_task(safe(message), total=None)
        else:
            self._status.reset(self._step, description=safe(message), total=None)

    def note(self, message: str) -> None:
        if not self.quiet:
            self._pause()
            err.print(safe(message), highlight=False)

    def warn(self, message: str) -> None:
        self._pause()
        warn(message)

    def _pause(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def close(self) -> None:
        self._pause()

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None, unit: str = "",
             **fields: Any) -> Iterator[Task]:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._pause()
        if self.quiet:
            yield Task()
            return
        if not err.is_terminal:
            plain = _PlainTask(description, total, unit, str(fields.get("info", "")))
            try:
                yield plain
            finally:
                plain.emit(force=True)
            return
        columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
        if unit == "bytes":
            columns += [DownloadColumn(), TransferSpeedColumn()]
        else:
            columns += [MofNCompleteColumn()]
        columns += [TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=err, transient=False) as progress:
            task_id = progress.add_task(description, total=total, info=fields.pop("info", ""),
                                        **fields)
            yield _RichTask(progress, task_id)


def _os_error(exc: OSError) -> str:
    """One line for what the operating system refused, with the fix."""
    where = f" {exc.filename}" if exc.filename else " the workspace"
    cause = exc.strerror or first_line(exc)
    fix = {errno.ENOSPC: "free some space or choose another --workspace",
           errno.EDQUOT: "free some space or choose another --workspace",
           errno.EROFS: "choose a writable --workspace (or REVCLI_WORKSPACE)",
           errno.EACCES: "check its permissions or choose another --workspace",
           errno.EPERM: "check its permissions or choose another --workspace",
           errno.ENOTDIR: "a path on the way is a file, not a directory",
           errno.EISDIR: "give a file, not a directory"}.get(exc.errno or 0, "")
    return f"cannot use{where}: {cause}" + (f"; {fix}" if fix else "")


@contextlib.contextmanager
def cli_errors(reporter: ConsoleReporter | None = None) -> Iterator[None]:
    """Turn every failure into ``Error: ...`` on one line and an exit code: revcli's errors their
    own (2, or 1 for a gate), the operating system's refusals 2, Ctrl-C 130, and anything else --
    a bug -- 3 (``REVCLI_DEBUG=1`` shows its traceback)."""
    _json_printed.done = False
    restore: Callable[[], None] = _nothing
    if threading.current_thread() is threading.main_thread():
        # From here on Ctrl-C raises KeyboardInterrupt, so temp files are cleaned up on the way.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        restore = _terminate_like_interrupt()
    try:
        yield
    except (typer.Exit, typer.Abort, typer.BadParameter):
        raise  # Typer's own: it prints usage errors itself (exit 2)
    except RevcliError as exc:
        _close(reporter)
        _fail(str(exc), exc.exit_code)
    except Terminated as exc:
        _close(reporter)
        _fail(f"terminated ({exc.name})", exc.exit_code)
    except KeyboardInterrupt:
        _close(reporter)
        _fail("interrupted", EXIT_INTERRUPTED)
    except OSError as exc:
        _close(reporter)
        _fail(_os_error(exc), EXIT_BAD_INPUT)
    except Exception as exc:
        if os.environ.get("REVCLI_DEBUG"):
            raise
        _close(reporter)
        _fail(f"unexpected {type(exc).__name__}: {first_line(exc)} (a bug in revcli: "
              "REVCLI_DEBUG=1 shows where)", EXIT_INTERNAL)
    finally:
        _close(reporter)
        restore()


def _nothing() -> None:
    return None


def _fail(message: str, code: int) -> NoReturn:
    """The one ``Error:`` line on stderr, and with ``--json`` the same as one ``{"error": ...}``
    object on stdout (an Airflow XCom reader gets JSON, never an empty stdout); then exit."""
    error(message)
    if _json_requested() and not getattr(_json_printed, "done", False):
        print_json({"error": printable(message), "exit_code": code})
    raise typer.Exit(code=code) from None


def _json_requested() -> bool:
    """Whether the running command was given ``--json``, read from the command's Click
    context, so no command has to pass it. (Typer 0.2x runs its own copy of Click, whose
    context stack is not ``click``'s: both are asked; the matrix's ``decided`` cases check
    this finds the flag.)"""
    import importlib

    for module in ("typer._click.globals", "click.globals"):
        try:
            ctx = importlib.import_module(module).get_current_context(silent=True)
        except (ImportError, AttributeError):
            continue
        if ctx is not None:
            return ctx.params.get("json") is True
    return False


def _terminate_like_interrupt() -> Callable[[], None]:
    """SIGTERM (Airflow, systemd, Kubernetes) and SIGHUP (a closed terminal) raise
    :class:`~revcli.errors.Terminated`, a KeyboardInterrupt, so every path that cleans up
    after Ctrl-C (temp files, RUNNING runs and trials) cleans up after them; a repeated
    signal while that cleanup runs is ignored. Returns what puts the old handlers back."""
    fired: list[int] = []

    def terminate(signum: int, frame: Any) -> None:
        if fired:
            return
        fired.append(signum)
        from revcli import interrupts

        interrupts.deliver(signum)  # raises Terminated now, or when a held step ends

    def unraisable(info: Any) -> None:
        # The signal arrived inside a finalizer or weakref callback, where Python prints the
        # exception and drops it. Raise it again from a normal point a moment later.
        if isinstance(info.exc_value, Terminated) and fired:
            fired.clear()
            timer = threading.Timer(0.05, os.kill, (os.getpid(), info.exc_value.signum))
            timer.daemon = True
            timer.start()
            return
        previous_hook(info)

    previous_hook = sys.unraisablehook
    sys.unraisablehook = unraisable
    saved: dict[int, Any] = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None:
            saved[signum] = signal.signal(signum, terminate)

    def restore() -> None:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        sys.unraisablehook = previous_hook
    return restore


def _close(reporter: ConsoleReporter | None) -> None:
    if reporter is not None:
        reporter.close()
