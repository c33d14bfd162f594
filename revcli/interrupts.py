"""SIGTERM / SIGHUP delivered at a point where revcli can clean up after them.

The CLI turns SIGTERM and SIGHUP into :class:`~revcli.errors.Terminated` (``cli_errors``), raised
wherever the main thread is. A few steps must not be cut in two -- creating an MLflow run, whose
id the caller needs to end the run again -- so they run inside :func:`deferred`: a signal that
arrives meanwhile is held and raised as soon as the step is done. Only the standard library.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_state = threading.local()


def deliver(signum: int) -> None:
    """Raise Terminated(signum) now, or when the current :func:`deferred` block ends."""
    from revcli.errors import Terminated

    if getattr(_state, "depth", 0):
        _state.pending = signum
        return
    raise Terminated(signum)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGTERM / SIGHUP (as delivered by :func:`deliver`) until the block ends."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
        pending = getattr(_state, "pending", None)
        if not _state.depth and pending is not None:
            _state.pending = None
            from revcli.errors import Terminated

            raise Terminated(pending)
