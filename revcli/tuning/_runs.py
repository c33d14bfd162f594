"""MLflow for a tune: one parent run per invocation, one nested run per trial.

The parent is created before the first trial (so a crash leaves a visible run), carries the
study's name and the search settings, and at the end becomes the refit best model's run through
:func:`revcli.train.record`: metrics on the holdout beside ``baseline_*``, the dataset and split
tags, the model and its scorecard. It therefore compares like a ``revcli train`` run.

Trial runs are written by one background thread with three calls each (create, one batch of
params/metrics/tags, terminate), so MLflow's latency overlaps the next trial instead of adding to
it. Trial runs carry ``cv_<metric>`` and per-fold ``fold_<metric>`` (step = fold), never the
holdout metric names, and the tag ``revcli.command=tune-trial``.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli import tracking
from revcli.tuning import _study

if TYPE_CHECKING:
    import optuna

    from revcli.tuning._space import SearchSpace

STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def _ms(value: Any) -> int | None:
    return int(value.timestamp() * 1000) if value is not None else None


def create_parent(uri: str, experiment_id: str, name: str, tags: Mapping[str, str],
                  params: Mapping[str, Any]) -> str:
    """The RUNNING parent run of this invocation; returns its id."""
    from mlflow.entities import Param
    from mlflow.exceptions import MlflowException

    from revcli.errors import TrackingError

    try:
        client = tracking.client(uri)
        run = client.create_run(experiment_id, run_name=name, tags=dict(tags))
        client.log_batch(run.info.run_id,
                         params=[Param(k, str(v)) for k, v in params.items()])
    except MlflowException as exc:
        raise TrackingError(f"MLflow tracking at {uri} failed: "
                            f"{str(exc).strip().splitlines()[0][:300]}") from None
    return str(run.info.run_id)


def worker_tags() -> dict[str, str]:
    me = _study.worker()
    return {f"revcli.worker.{k}": str(v) for k, v in me.items() if v is not None}


def close_dead_parents(uri: str, experiment_id: str, study: str) -> list[str]:
    """Mark KILLED the parent runs of this study left RUNNING by a process that is gone."""
    client = tracking.client(uri)
    escaped = study.replace("'", "\\'")
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`revcli.study` = '{escaped}' and attributes.status = 'RUNNING'",
        max_results=200)
    closed = []
    for run in runs:
        prefix = "revcli.worker."
        who: dict[str, Any] = {k.removeprefix(prefix): v for k, v in run.data.tags.items()
                               if k.startswith(prefix)}
        for key in ("pid", "start", "pidns"):  # tags are strings; the identity has numbers
            who[key] = int(who[key]) if str(who.get(key, "")).isdigit() else None
        if _study.process_gone(who):
            client.set_tag(run.info.run_id, "revcli.killed_because", "its process died")
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
    return closed


def end_parent(uri: str, run_id: str, status: str) -> None:
    with contextlib.suppress(Exception):
        tracking.client(uri).set_terminated(run_id, status)


class TrialRuns:
    """Logs each finished trial as a nested run, off the trials' critical path."""

    def __init__(self, uri: str, experiment_id: str, parent_id: str, study: str,
                 space: SearchSpace, metric: str) -> None:
        self.uri = uri
        self.experiment_id = experiment_id
        self.parent_id = parent_id
        self.study = study
        self.space = space
        self.metric = metric
        self.logged = 0
        self.seconds = 0.0
        self.errors: list[str] = []
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="revcli-mlflow-trials",
                                        daemon=True)
        self._thread.start()

    def submit(self, trial: optuna.trial.FrozenTrial) -> None:
        self._queue.put(trial)

    def close(self) -> None:
        """Wait until every submitted trial is logged."""
        self._queue.put(None)
        self._thread.join()

    @property
    def ms_per_trial(self) -> float | None:
        return 1000.0 * self.seconds / self.logged if self.logged else None

    def _work(self) -> None:
        client = tracking.client(self.uri)
        while (trial := self._queue.get()) is not None:
            start = time.perf_counter()
            try:
                self._log(client, trial)
                self.logged += 1
            except Exception as exc:  # tracking must never stop the search
                text = str(exc).strip().splitlines()
                self.errors.append(text[0][:300] if text else type(exc).__name__)
            self.seconds += time.perf_counter() - start

    def _log(self, client: Any, trial: optuna.trial.FrozenTrial) -> None:
        from mlflow.entities import Metric, Param

        estimator, params = self.space.decode(trial.params)
        state = trial.state.name
        tags = {
            "mlflow.parentRunId": self.parent_id,
            "revcli.command": "tune-trial",
            "revcli.study": self.study,
            "revcli.trial": str(trial.number),
            "revcli.trial_state": state,
            "revcli.strategy": self.space.strategy,
            "revcli.estimator": estimator,
        }
        if "failed_trial" in trial.system_attrs:
            tags["revcli.retry_of"] = str(trial.system_attrs["failed_trial"])
        if trial.user_attrs.get("error"):
            tags["revcli.error"] = str(trial.user_attrs["error"])[:500]
        run = client.create_run(self.experiment_id, start_time=_ms(trial.datetime_start),
                                tags=tags, run_name=f"trial {trial.number}")
        now = _ms(trial.datetime_complete) or int(time.time() * 1000)
        metrics = [Metric(f"fold_{self.metric}", float(v), now, int(step))
                   for step, v in sorted(trial.intermediate_values.items())]
        if trial.value is not None:
            metrics.append(Metric(f"cv_{self.metric}", float(trial.value), now, 0))
        if trial.duration is not None:
            metrics.append(Metric("duration_s", trial.duration.total_seconds(), now, 0))
        logged_params = [Param("estimator", estimator)]
        logged_params += [Param(k, str(v)) for k, v in params.items()]
        client.log_batch(run.info.run_id, metrics=metrics, params=logged_params)
        client.set_terminated(run.info.run_id, STATUS.get(state, "FAILED"), end_time=now)


def study_plots(study: optuna.Study, directory: Path) -> tuple[dict[str, Path], list[str]]:
    """Optimization history and parameter importances as PNGs; (paths, what was skipped)."""
    import warnings

    import matplotlib

    from revcli import plots

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as ovm

    made: dict[str, Path] = {}
    skipped: list[str] = []
    for name, draw in (("optimization_history", ovm.plot_optimization_history),
                       ("param_importances", ovm.plot_param_importances)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = draw(study)
            fig = ax.figure if hasattr(ax, "figure") else ax[0].figure
            fig.set_size_inches(8, 5)
            made[name] = plots.save_figure(fig, directory / f"{name}.png")
        except Exception as exc:  # e.g. importances need two completed trials
            text = str(exc).strip().splitlines()
            skipped.append(f"{name}: {text[0][:200] if text else type(exc).__name__}")
    return made, skipped
