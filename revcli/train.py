"""``revcli train`` as a function: dataset -> split -> audit -> fit -> scorecard -> MLflow run.

The steps are :mod:`revcli.pipeline`'s; the run is :mod:`revcli.runs`'. This module is only the
command: it checks everything that can be checked without data first, then runs them in order.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli import pipeline, runs, targets, tracking
from revcli.progress import SILENT, Reporter
from revcli.runs import RunSpec, TrainResult

if TYPE_CHECKING:
    from revcli.settings import Settings

__all__ = ["TrainResult", "train"]


def train(settings: Settings, *, data: str | Path | None = None,
          params: Mapping[str, Any] | None = None, drop_features: Sequence[str] = (),
          run_name: str | None = None, plots: bool = True, note: str | None = None,
          tags: Mapping[str, str] | None = None, reporter: Reporter = SILENT) -> TrainResult:
    """Train ``settings.strategy`` / ``settings.estimator``, score it, log one MLflow run.

    ``note`` becomes the run's description, ``tags`` its user tags (``--note``, ``--tag``).
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    hyper = pipeline.hyperparameters(settings, params)
    # A bad name or parameter value fails here, before any data is loaded.
    pipeline.validate(settings, hyper)
    targets.load(settings.targets, fallback=settings.source_of("targets") == "default")

    prepared = pipeline.prepare(settings, data, drop_features, reporter)
    prepared.check(settings.strategy)
    timings["load"] = time.perf_counter() - clock
    # Tracking before fitting: an unreachable server fails before minutes of work, not after.
    reporter.step("opening the MLflow store")
    start = time.perf_counter()
    tracker, experiment_id = tracking.connect(settings, prepared.workspace)
    assert experiment_id is not None
    runs.close_dead_runs(tracker, experiment_id)
    timings["tracking"] = time.perf_counter() - start

    findings = pipeline.audit(prepared, reporter)
    fitted = pipeline.fit_and_score(prepared, settings, hyper, reporter)
    timings["fit"] = fitted.fit_seconds
    result = runs.finish(prepared, settings, fitted, hyper, findings, tracker, experiment_id,
                         RunSpec(run_name=run_name, plots=plots, note=note,
                                 user_tags=dict(tags or {})),
                         reporter=reporter, timings=timings)
    timings["total"] = time.perf_counter() - clock
    return result
