"""Reading many runs: page through a search, keeping what a command wants."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from revcli.tracking._client import Tracker
from revcli.tracking.record import LoggedRun

PAGE = 1_000
MAX_RUNS = 5_000


def quote(value: str) -> str:
    """A string literal for an MLflow search filter."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def runs(tracker: Tracker, experiment_ids: Sequence[str], filter_string: str, *,
         enough: int | None = None,
         keep: Callable[[LoggedRun], bool] = lambda run: True) -> tuple[list[LoggedRun], bool]:
    """Runs newest first, page by page, kept by ``keep``; stops at ``enough`` kept runs or
    MAX_RUNS read. Returns (runs, whether MAX_RUNS cut the search short)."""
    found: list[LoggedRun] = []
    token, read = None, 0
    while True:
        page, token = tracker.search(experiment_ids, filter_string, max_results=PAGE,
                                     page_token=token)
        read += len(page)
        found.extend(r for r in page if keep(r))
        if not token or (enough is not None and len(found) >= enough):
            return found, False
        if read >= MAX_RUNS:
            return found, True


def by_ids(tracker: Tracker, run_ids: Sequence[str]) -> dict[str, LoggedRun]:
    """The runs with these ids, in any experiment, by id."""
    ids = list(dict.fromkeys(run_ids))
    experiments = [e.experiment_id for e in tracker.experiments()]
    if not ids or not experiments:
        return {}
    found, _ = tracker.search(experiments, "attributes.run_id IN ("
                              + ", ".join(quote(i) for i in ids) + ")", max_results=len(ids))
    return {r.run_id: r for r in found}
