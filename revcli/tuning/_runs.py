"""MLflow for a tune: one parent run per invocation, one nested run per trial.

The parent is created before the first trial (so a crash leaves a visible run), carries the
study's name and the search settings, and at the end becomes the refit best model's run through
:func:`revcli.runs.finish`: metrics on the holdout beside ``baseline_*``, the dataset and split
tags, the model and its scorecard. It therefore compares like a ``revcli train`` run.

Trial runs are written by one background thread with three calls each (create, one batch of
params/metrics/tags, terminate), so MLflow's latency overlaps the next trial instead of adding to
it. Trial runs carry ``cv_<metric>`` and per-fold ``fold_<metric>`` (step = fold), never the
holdout metric names, and the tag ``revcli.command=tune-trial``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli import tracking
from revcli.errors import first_line
from revcli.tracking import record

if TYPE_CHECKING:
    import optuna

    from revcli.tuning._space import SearchSpace

# A pruned trial finished as the pruner meant it to (tagged revcli.trial_state=PRUNED and
# revcli.pruned=true): it is no KILLED run in MLflow's UI, which means a process was stopped.
STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}
DEAD_AFTER = 2


def _ms(value: Any) -> int | None:
    return int(value.timestamp() * 1000) if value is not None else None


def create_parent(tracker: tracking.Tracker, experiment_id: str, name: str,
                  tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
    """The RUNNING parent run of this invocation; returns its id."""
    return tracker.create_run(experiment_id, name, tags, params)


def end_parent(tracker: tracking.Tracker, run_id: str, status: str) -> None:
    tracking.fail(tracker, run_id, status)


class TrialRuns:
    """Logs each finished trial as a nested run, off the trials' critical path."""

    def __init__(self, tracker: tracking.Tracker, experiment_id: str, parent_id: str, study: str,
                 space: SearchSpace, metric: str) -> None:
        self.tracker = tracker
        self.experiment_id = experiment_id
        self.parent_id = parent_id
        self.study = study
        self.space = space
        self.metric = metric
        self.logged = 0
        self.seconds = 0.0
        self.errors: list[str] = []
        self.failing = 0  # trial runs in a row that could not be logged
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
    def dead(self) -> bool:
        """The tracking store failed DEAD_AFTER trial runs in a row (each after its bounded
        retries): the search should stop, refit, save and report."""
        return self.failing >= DEAD_AFTER

    @property
    def ms_per_trial(self) -> float | None:
        return 1000.0 * self.seconds / self.logged if self.logged else None

    def _work(self) -> None:
        while (trial := self._queue.get()) is not None:
            start = time.perf_counter()
            if self.dead:
                continue  # the store is gone: no point waiting on it for every trial
            try:
                self._log(trial)
                self.logged += 1
                self.failing = 0
            except Exception as exc:  # the search goes on; `dead` tells it to stop soon
                self.errors.append(first_line(exc))
                self.failing += 1
            self.seconds += time.perf_counter() - start

    def _log(self, trial: optuna.trial.FrozenTrial) -> None:
        estimator, params = self.space.decode(trial.params)
        state = trial.state.name
        extra = {"study": self.study, "trial": str(trial.number), "trial_state": state}
        if state == "PRUNED":
            extra["pruned"] = "true"
        if "failed_trial" in trial.system_attrs:
            extra["retry_of"] = str(trial.system_attrs["failed_trial"])
        if trial.user_attrs.get("error"):
            extra["error"] = str(trial.user_attrs["error"])[:500]
        tags = record.RunRecord(command=record.TUNE_TRIAL, strategy=self.space.strategy,
                                estimator=estimator, extra=extra).to_tags()
        tags[record.PARENT_TAG] = self.parent_id
        # Three requests per trial: create, one batch, terminate.
        run_id = self.tracker.create_run(self.experiment_id, f"trial {trial.number}", tags,
                                         start_time=_ms(trial.datetime_start))
        scores = {f"cv_{self.metric}": trial.value,
                  "duration_s": trial.duration.total_seconds() if trial.duration else None}
        self.tracker.log(run_id, params={"estimator": estimator, **params},
                         metrics={k: v for k, v in scores.items() if v is not None},
                         series={f"fold_{self.metric}": [
                             (int(k), v) for k, v in sorted(trial.intermediate_values.items())]})
        self.tracker.end_run(run_id, STATUS.get(state, "FAILED"),
                             _ms(trial.datetime_complete) or int(time.time() * 1000))


def study_plots(study: optuna.Study, directory: Path, metric: str = "rmse",
                default: float | None = None) -> tuple[dict[str, Path], list[str]]:
    """Optimization history and parameter importances as PNGs; (paths, what was skipped).
    The history's y axis says what it is (``cv <metric>``, in $ for money metrics) and, with
    ``default`` (the default trial's CV score), a line at it and the best's relative gain in
    the title, so a 0.08 % gain is not magnified into a cliff."""
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
            if name == "optimization_history":
                _label_history(ax, study, metric, default)
            made[name] = plots.save_figure(fig, directory / f"{name}.png")
        except Exception as exc:  # e.g. importances need two completed trials
            skipped.append(f"{name}: {first_line(exc, 200)}")
    return made, skipped


def _label_history(ax: Any, study: optuna.Study, metric: str, default: float | None) -> None:
    from revcli import metrics

    unit = " ($)" if metrics.METRICS.get(metric) and metrics.METRICS[metric].kind == "money" \
        else ""
    ax.set_ylabel(f"cross-validated {metric}{unit}, lower is better")
    try:
        best = study.best_value
    except ValueError:
        return
    if default is not None and default > 0:
        ax.axhline(default, color="grey", linestyle="--", linewidth=0.8,
                   label=f"the defaults ({default:.4f})")
        ax.legend()
        gain = (default - best) / default * 100
        ax.set_title(f"best {metric} {best:.4f} vs the defaults' {default:.4f}: "
                     f"{gain:+.2f} % ({'better' if gain > 0 else 'not better'})")
