"""How core functions report progress without printing: a Reporter the caller passes in.

The core calls ``reporter.step(...)`` before long work, ``note``/``warn`` for one-line messages, and
``task(...)`` for measurable work (bytes downloaded, trials run). The CLI passes a rich-backed
reporter (see ``revcli.cli._console``); Python and Airflow callers get the silent default.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class Task:
    """Handle of one measurable piece of work; the silent default ignores everything."""

    def advance(self, amount: float = 1.0) -> None:
        """Record ``amount`` more units done."""

    def update(self, **fields: Any) -> None:
        """Change ``total``, ``completed``, ``description`` or custom display fields."""


class Reporter:
    """Silent reporter: the default for library callers."""

    def step(self, message: str) -> None:
        """Long work is starting (shown as a spinner line)."""

    def note(self, message: str) -> None:
        """One line of information."""

    def warn(self, message: str) -> None:
        """One line the user should act on (shown even when the output is JSON)."""

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None, unit: str = "",
             **fields: Any) -> Iterator[Task]:
        """Measurable work with a progress bar; ``unit="bytes"`` shows sizes and speed."""
        yield Task()


SILENT = Reporter()
