"""One thread policy for every fit: how many threads a fit gets, and the cap that holds them to it.

Two rules, both measured on 2 cores (benchmarks/bench_tune.py, the two_stage hgb fit in issue 10):

- **Threads follow rows**: one thread per ``ROWS_PER_THREAD`` rows, at most the cores this
  process may use. A fold of the full demo set's converters (17k rows) fits 1.8x faster on 2
  threads than on 1, but a fit of a few thousand rows gains nothing from a second thread and
  stalls on OpenMP barriers whenever another process holds a core (one fold fit took 59 s
  instead of 1 s).
- **Every fit runs under a cap** (:func:`limit`): estimators with an ``n_jobs`` parameter get the
  number, and OpenMP and BLAS thread pools are capped with threadpoolctl around the fit, because
  some estimators have no ``n_jobs`` at all (scikit-learn's histogram gradient boosting starts one
  OpenMP thread per core: one two_stage hgb fit took 32-71 s instead of 4 s on a busy machine).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Any

ROWS_PER_THREAD = 10_000


def cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def for_rows(rows: int, available: int | None = None) -> int:
    """Threads for one fit of ``rows`` rows: one per ROWS_PER_THREAD, at most ``available``
    (default: every core)."""
    available = cores() if available is None or available < 1 else available
    return max(1, min(available, -(-rows // ROWS_PER_THREAD)))


def resolve(n_jobs: int | None, rows: int) -> int:
    """``n_jobs`` as given (>= 1), or for -1 / None as many threads as ``rows`` can use."""
    if n_jobs is not None and n_jobs >= 1:
        return n_jobs
    return for_rows(rows)


@functools.cache
def _controller() -> Any:
    # Inspecting the loaded libraries costs ~10-50 ms: once per process.
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def limit(threads: int) -> Iterator[None]:
    """Cap OpenMP and BLAS thread pools at ``threads`` for the block, in the calling thread
    (OpenMP's limit is per thread, so parallel tuning trials each keep their own)."""
    with _controller().limit(limits=max(1, threads)):
        yield
