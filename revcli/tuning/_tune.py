"""``revcli tune`` as a function: plan -> data -> study -> search -> refit the best -> MLflow.

Order matters for "bad input leaves the study untouched": everything that can be checked without
data (metric, counts, the space file, fixed parameters) is checked first, then the data, then the
storage and MLflow are opened, and only then is the study created, loaded or (``fresh``) deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from revcli import engines, estimators, metrics, pipeline, runs, targets, threads, tracking
from revcli.errors import ConfigError, RevcliError, Terminated
from revcli.progress import SILENT, Reporter
from revcli.tuning import _cluster, _cv, _runs, _space, _study

if TYPE_CHECKING:
    import optuna

    from revcli.settings import Settings

# A search stops when this many trials in a row fail: a space or data problem, not bad luck.
MAX_FAILURES_IN_A_ROW = 5


@dataclass(frozen=True)
class Plan:
    """What a tune will do, checked before any data is read."""

    space_file: _space.SpaceFile
    space: _space.SearchSpace
    metric: str
    n_trials: int | None
    timeout: float | None
    folds: int
    parallel: int
    threads: int
    fixed: dict[str, dict[str, Any]]


def plan(settings: Settings) -> Plan:
    """Validate the settings of a tune; every problem is one ConfigError line."""
    metrics.tunable(settings.tune_metric)
    if settings.n_trials < 1:
        raise ConfigError(f"--n-trials must be at least 1, got {settings.n_trials}")
    if settings.timeout is not None and not (math.isfinite(settings.timeout)
                                             and settings.timeout > 0):
        raise ConfigError(f"--timeout must be a positive number of seconds, got "
                          f"{settings.timeout}")
    if settings.cv_folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {settings.cv_folds}")
    # n_jobs is "trials at a time", each on cores/n_jobs threads; -1 (the default) is one trial
    # per core on one thread each. Measured on 2 cores (benchmarks/bench_tune.py): 169 trials a
    # minute that way against 122 for one trial at a time on 2 threads on a quiet machine, and
    # 86 against 18 when other processes keep the cores busy (multi-threaded fits of a few
    # thousand rows stall on OpenMP barriers). One at a time (--n-jobs 1) is what a
    # reproducible search needs.
    cores = threads.cores()
    if settings.n_jobs == -1:
        parallel = cores
    elif settings.n_jobs >= 1:
        parallel = settings.n_jobs
    else:
        raise ConfigError(f"--n-jobs must be -1 (one trial per core) or the number of trials "
                          f"at a time, got {settings.n_jobs}")
    # A timeout alone means "search until the time is up"; --n-trials given with it caps it.
    n_trials: int | None = settings.n_trials
    if settings.timeout is not None and settings.source_of("n_trials") == "default":
        n_trials = None
    space_file = _space.load(settings.spaces, fallback=settings.source_of("spaces") == "default")
    space = space_file.search(settings.estimator, settings.strategy)
    fixed = {name: settings.estimator_params(name) for name in space.estimators}
    for name, params in fixed.items():
        pipeline.validate(settings, params, estimator=name)
    targets.load(settings.targets, fallback=settings.source_of("targets") == "default")
    return Plan(space_file=space_file, space=space, metric=settings.tune_metric,
                n_trials=n_trials, timeout=settings.timeout, folds=settings.cv_folds,
                parallel=parallel, threads=max(1, cores // parallel), fixed=fixed)


@dataclass
class TrialSummary:
    number: int
    state: str
    value: float | None
    estimator: str
    params: dict[str, Any]
    fold_scores: list[float]
    retry_of: int | None = None
    seconds: float | None = None

    @classmethod
    def of(cls, trial: optuna.trial.FrozenTrial, space: _space.SearchSpace) -> TrialSummary:
        estimator, params = space.decode(trial.params)
        return cls(number=trial.number, state=trial.state.name, value=trial.value,
                   estimator=estimator, params=params,
                   fold_scores=[float(v) for _, v in sorted(trial.intermediate_values.items())],
                   retry_of=trial.system_attrs.get("failed_trial"),
                   seconds=trial.duration.total_seconds() if trial.duration else None)

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "state": self.state, "value": self.value,
                "estimator": self.estimator, "params": self.params,
                "fold_scores": self.fold_scores, "retry_of": self.retry_of,
                "seconds": None if self.seconds is None else round(self.seconds, 3)}


@dataclass
class TuneResult:
    study: str
    storage: str
    resumed: bool
    key: dict[str, Any]
    space_source: str
    space_builtin: bool
    metric: str
    folds: int
    parallel: int
    threads_per_trial: int
    seed: int
    requested: int | None
    timeout: float | None
    stop_reason: str
    new: dict[str, int]
    totals: dict[str, int]
    recovered: list[int]
    best: TrialSummary | None
    top: list[TrialSummary]
    parent_run_id: str
    experiment: str
    tracking_uri: str
    refit: runs.TrainResult | None
    plots: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    # where the trials ran (revcli.engines); the refit runs in this process either way
    engine: dict[str, Any] = field(default_factory=lambda: {"kind": "in-process"})
    # the best trial against the default trial it started from, fold by fold (see
    # against_default); which of the two was refit ("best" or "default")
    versus_default: dict[str, Any] | None = None

    @property
    def interrupted(self) -> bool:
        return self.stop_reason == "interrupted"

    @property
    def scorecard(self) -> Any:
        return self.refit.scorecard if self.refit else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "storage": self.storage,
            "resumed": self.resumed,
            "key": self.key,
            "space": {"source": self.space_source, "builtin": self.space_builtin,
                      "hash": self.key.get("space_hash")},
            "metric": self.metric,
            "folds": self.folds,
            "n_jobs": self.parallel,
            "threads_per_trial": self.threads_per_trial,
            "sampler": {"name": "TPE", "seed": self.seed,
                        "per_trial_seed": "seed + trial number"},
            "requested_trials": self.requested,
            "timeout": self.timeout,
            "stop_reason": self.stop_reason,
            "interrupted": self.interrupted,
            "trials": {"new": self.new, "study": self.totals, "recovered": self.recovered},
            "best": self.best.to_dict() if self.best else None,
            "top": [t.to_dict() for t in self.top],
            "parent_run_id": self.parent_run_id,
            "experiment": self.experiment,
            "tracking_uri": self.tracking_uri,
            "refit": self.refit.to_dict() if self.refit else None,
            "plots": {k: str(v) for k, v in self.plots.items()},
            "notes": self.notes,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "versions": self.versions,
            "versus_default": self.versus_default,
            "engine": self.engine,
        }


def against_default(best: TrialSummary, default: TrialSummary | None,
                    level: float = 0.95) -> dict[str, Any] | None:
    """The best trial against the default trial, on the same folds: the mean gain of its fold
    scores (default - best; positive: better), their spread, and whether the gain is clear of
    it -- a one-sided paired t-test over the folds at ``level``. The best of many noisy trials
    is partly luck (issue 17: 194 trials in 60 s ended worse forward than the defaults): tune
    hands back the best only when its folds rate it clearly above the defaults."""
    if default is None:
        return None
    base = {"default_trial": default.number, "default_cv": default.value,
            "best_trial": best.number, "best_cv": best.value,
            "default_folds": default.fold_scores, "best_folds": best.fold_scores}
    if best.number == default.number or best.value is None or default.value is None:
        return {**base, "gain": 0.0, "gain_pct": 0.0, "fold_sd": None, "margin": None,
                "clear": False, "chosen": "default"}
    k = min(len(best.fold_scores), len(default.fold_scores))
    diffs = np.asarray(default.fold_scores[:k]) - np.asarray(best.fold_scores[:k])
    gain = float(default.value - best.value)
    if k >= 2:
        from scipy import stats

        sd = float(diffs.std(ddof=1))
        margin = float(stats.t.ppf(level, k - 1)) * sd / math.sqrt(k)
    else:
        sd, margin = math.nan, math.inf
    clear = bool(gain > 0 and gain > margin)
    return {**base, "gain": gain, "gain_pct": gain / default.value * 100 if default.value else
            None, "fold_sd": sd if math.isfinite(sd) else None,
            "margin": margin if math.isfinite(margin) else None, "clear": clear,
            "chosen": "best" if clear else "default"}


def _default_trial(study: optuna.Study, space: _space.SearchSpace,
                   estimator: str) -> TrialSummary | None:
    """The completed trial at the defaults of ``estimator`` (else the best default trial)."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and DEFAULTS_ATTR in t.user_attrs]
    if not done:
        return None
    same = [t for t in done if t.user_attrs[DEFAULTS_ATTR] == estimator]
    chosen = min(same or done, key=lambda t: (t.value, t.number))
    return TrialSummary.of(chosen, space)


# -- the search loop ------------------------------------------------------------------------------


class _StopRequest:
    """First Ctrl-C: finish the running trial(s), then stop. Second: abort them now."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.requested = False
        # Second Ctrl-C: trials running in other threads cannot be interrupted mid-fit; they
        # see this before their next fold and fail.
        self.aborted = False
        # SIGTERM / SIGHUP (Airflow, systemd, a closed terminal): abort the running trials at
        # their next fold, refit nothing, and raise Terminated once the search has stopped --
        # not from inside Optuna, where an exception between creating a trial and its heartbeat
        # leaves the trial RUNNING and the heartbeat thread alive.
        self.terminated: int | None = None
        self._previous: Any = None
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
            for name in ("SIGTERM", "SIGHUP"):
                signum = getattr(signal, name, None)
                if signum is not None:
                    self._saved[signum] = signal.signal(signum, self._terminate)
        return self

    def _terminate(self, signum: int, frame: Any) -> None:
        if self.terminated is None:
            self.terminated = signum
            self.requested = self.aborted = True

    def raise_if_terminated(self) -> None:
        if self.terminated is not None:
            raise Terminated(self.terminated)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            self.aborted = True
            raise KeyboardInterrupt
        self.requested = True
        self.reporter.warn("interrupted: finishing the running trial, then refitting the best "
                           "so far; Ctrl-C again to abort the trial")

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)


class _Tally:
    """Optuna callback: counts this process's trials, keeps the best, feeds the progress bar and
    the MLflow logger, and stops the study when asked to."""

    def __init__(self, task: Any, runs: _runs.TrialRuns | None, stop: _StopRequest,
                 best: float | None, metric: str, reporter: Reporter) -> None:
        self.task = task
        self.runs = runs
        self.stop = stop
        self.best = best
        self.metric = metric
        self.reporter = reporter
        self.completed = self.pruned = self.failed = 0
        self.failed_in_a_row = 0
        self.last_error: str | None = None
        self.deadline: float | None = None  # time.monotonic() when no new trial may start
        self._lock = threading.Lock()

    def info(self) -> str:
        best = "-" if self.best is None else f"{self.best:.4g}"
        text = f"best {self.metric} {best} · pruned {self.pruned}"
        if self.failed:
            text += f" · [red]failed {self.failed}[/]"
        if self.deadline is not None:
            text += f" · budget left {max(0.0, self.deadline - time.monotonic()):.0f}s"
        return text

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.record(trial)
        if self.should_stop:
            study.stop()

    @property
    def should_stop(self) -> bool:
        return bool(self.stop.requested or self.failed_in_a_row >= MAX_FAILURES_IN_A_ROW
                    or (self.runs is not None and self.runs.dead))

    def record(self, trial: optuna.trial.FrozenTrial) -> None:
        """Count a finished trial (this process's or a cluster worker's)."""
        from optuna.trial import TrialState

        with self._lock:
            if trial.state == TrialState.COMPLETE:
                self.completed += 1
                self.failed_in_a_row = 0
                if trial.value is not None and (self.best is None or trial.value < self.best):
                    self.best = trial.value
                self.task.advance(1)
            elif trial.state == TrialState.PRUNED:
                self.pruned += 1
                self.failed_in_a_row = 0
            elif trial.state == TrialState.FAIL:
                self.failed += 1
                self.failed_in_a_row += 1
                self.last_error = str(trial.user_attrs.get("error", "unknown error"))
                self.reporter.warn(f"trial {trial.number} failed: {self.last_error}")
            self.task.update(info=self.info())
            if self.runs is not None:
                self.runs.submit(trial)


class Budget:
    """When a search stops, whichever process runs its trials: the reasons in the order they
    are checked, and how many more trials may start."""

    def __init__(self, p: Plan, tally: _Tally, stop: _StopRequest) -> None:
        self.plan, self.tally, self.stop = p, tally, stop
        self.start = time.monotonic()
        if p.timeout is not None:
            tally.deadline = self.start + p.timeout

    def left(self) -> int | None:
        """New completed trials still wanted (pruned and failed ones do not count)."""
        return None if self.plan.n_trials is None else self.plan.n_trials - self.tally.completed

    def remaining(self) -> float | None:
        return (None if self.plan.timeout is None
                else self.plan.timeout - (time.monotonic() - self.start))

    def reason(self) -> str | None:
        """Why the search stops now, or None to go on."""
        if self.stop.requested:
            return "interrupted"
        if self.tally.failed_in_a_row >= MAX_FAILURES_IN_A_ROW:
            return "failures"
        if self.tally.runs is not None and self.tally.runs.dead:
            return "tracking"
        left = self.left()
        if left is not None and left <= 0:
            return "n_trials"
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            return "timeout"
        return None


def search_in_process(study: optuna.Study, objective: _cv.Objective, budget: Budget,
                      stop: _StopRequest) -> str:
    """Run trials in this process until ``n_trials`` new ones completed, the time is up,
    failures pile up, or the user interrupts; returns which. Pruned and failed trials do not
    count, so the rounds repeat ``optimize`` for the missing ones (never more than are
    missing)."""
    from optuna.trial import TrialState

    p, tally = budget.plan, budget.tally
    while True:
        reason = budget.reason()
        if reason is not None:
            return reason
        left, remaining = budget.left(), budget.remaining()
        # Queued trials (the defaults) run one at a time: two threads can pop the same queued
        # trial from an sqlite storage, which ignores SELECT FOR UPDATE, and the second to
        # finish fails the whole search with "Cannot tell a COMPLETE trial" (optuna#4002).
        queued = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        jobs, count = (1, min(queued, left or queued)) if queued else (p.parallel, left)
        try:
            study.optimize(objective, n_trials=count, timeout=remaining, n_jobs=jobs,
                           catch=(Exception,), callbacks=[tally])
        except KeyboardInterrupt as exc:
            stop.requested = True
            if isinstance(exc, Terminated):  # SIGTERM/SIGHUP: stop now, refit nothing
                stop.aborted = True
                raise
            return "interrupted"


@contextlib.contextmanager
def _optuna_quiet() -> Iterator[None]:
    import warnings

    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


def _counts(study: optuna.Study) -> dict[str, int]:
    from collections import Counter

    counts = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    names = ("complete", "pruned", "fail", "running", "waiting")
    return {**{n: counts.get(n, 0) for n in names}, "total": sum(counts.values())}


def _best_value(study: optuna.Study) -> float | None:
    from optuna.trial import TrialState

    values = [t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.value is not None]
    return min(values) if values else None


def _top(study: optuna.Study, space: _space.SearchSpace, n: int) -> list[TrialSummary]:
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None]
    done.sort(key=lambda t: (t.value, t.number))
    return [TrialSummary.of(t, space) for t in done[:n]]


# -- the command ----------------------------------------------------------------------------------


@dataclass
class _Session:
    """Everything one tune invocation has opened, passed from setup to search to refit."""

    settings: Settings
    plan: Plan
    prepared: pipeline.Prepared
    folds: list[_cv.Fold]
    key: _study.StudyKey
    name: str
    url: str          # the study storage's URL, as the workers open it
    storage: str      # the same, password masked, as shown
    engine: Any       # where the trials run (revcli.engines)
    study: optuna.Study
    resumed: bool
    recovered: list[int]
    tracker: tracking.Tracker
    experiment_id: str
    parent_id: str
    findings: list[Any]
    best_before: float | None
    versions: dict[str, str]
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def result(self, reason: str, new: dict[str, int], top: list[TrialSummary],
               refit: runs.TrainResult | None, plots: dict[str, Path]) -> TuneResult:
        p, s = self.plan, self.settings
        return TuneResult(
            study=self.name, storage=self.storage, resumed=self.resumed,
            key=self.key.to_dict(), space_source=p.space_file.source,
            space_builtin=p.space_file.builtin, metric=p.metric, folds=p.folds,
            parallel=p.parallel, threads_per_trial=p.threads, seed=s.seed, requested=p.n_trials,
            timeout=p.timeout, stop_reason=reason, new=new, totals=_counts(self.study),
            recovered=self.recovered, best=top[0] if top else None, top=top,
            parent_run_id=self.parent_id, experiment=s.experiment,
            tracking_uri=self.tracker.shown,
            refit=refit, plots=plots, notes=self.notes, timings=self.timings,
            versions=self.versions, engine=self.engine.describe())


def tune(settings: Settings, *, data: str | Path | None = None,
         drop_features: Sequence[str] = (), study_name: str | None = None, fresh: bool = False,
         top: int = 5, plots: bool = True, note: str | None = None,
         tags: Mapping[str, str] | None = None, reporter: Reporter = SILENT) -> TuneResult:
    """Search hyperparameters of ``settings.strategy`` / ``settings.estimator`` (or ``all``)
    by cross-validation on the training split, refit the best on it, score the holdout once,
    and log everything to MLflow. Resumes the study of the same setup if there is one.
    ``note`` and ``tags`` describe the parent run (``--note``, ``--tag``)."""
    clock = time.perf_counter()
    plan(settings)  # a bad setting is refused before a cluster is started
    with engines.open_engine(settings, reporter) as engine:
        session = _open(settings, data, drop_features, study_name, fresh, reporter,
                        {**(tags or {}), **({tracking.record.NOTE_TAG: note} if note else {})},
                        engine)
        try:
            result = _search_and_refit(session, top=top, plots=plots, reporter=reporter)
        except BaseException as exc:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            _runs.end_parent(session.tracker, session.parent_id, status)
            runs.close_own_runs(session.tracker, session.experiment_id, status)
            raise
    result.timings["total"] = time.perf_counter() - clock
    return result


def _open(settings: Settings, data: str | Path | None, drop_features: Sequence[str],
          study_name: str | None, fresh: bool, reporter: Reporter,
          user_tags: Mapping[str, str], engine: Any) -> _Session:
    """Check everything, then open data, storage, MLflow and the study, in that order."""
    clock = time.perf_counter()
    p = plan(settings)
    where = ("built-in default spaces (no configs/spaces.toml here)" if p.space_file.builtin
             else p.space_file.source)
    reporter.note(f"search space: {where} · {p.space.label} · hash {p.space.hash}")
    on_cluster = engine.kind == engines.DASK
    if on_cluster:  # the workers import what a trial needs while this process loads the data
        _cluster.warm(engine, p.space.estimators)

    prepared = pipeline.prepare(settings, data, drop_features, reporter)
    prepared.check(settings.strategy)
    for name in p.space.estimators:
        prepared.check(settings.strategy, name, reporter)
    folds = _cv.make_folds(prepared, settings.strategy, p.folds, settings.seed)
    p = dataclasses.replace(
        p, threads=threads.for_rows(max(len(f.fit) for f in folds), p.threads))
    if on_cluster:
        p = _cluster.plan_for(engine, p)
    options = pipeline.build(settings, {}, estimator=p.space.estimators[0]).options()
    setup = {
        "seed": settings.seed, "test_size": settings.test_size,
        "split_hash": prepared.split.hash, "features": prepared.table.features,
        "fixed_params": p.fixed, **options,
        **({"split": prepared.split.describe()} if prepared.split.kind != "random" else {}),
        **({"tweedie_power": metrics.TWEEDIE_POWER} if p.metric == "tweedie_deviance" else {}),
    }
    key = _study.StudyKey(strategy=settings.strategy, estimator=p.space.label, metric=p.metric,
                          folds=p.folds, dataset_sha256=prepared.dataset.sha256,
                          space_hash=p.space.hash, setup=setup)
    name = study_name or key.name()
    url = settings.storage or _study.default_url(prepared.workspace)
    shown = _study.mask(url)

    findings = pipeline.audit(prepared, reporter, judged_for=[settings.strategy])
    # Workers started together on a fresh workspace would race to create the sqlite schemas
    # (Optuna's and MLflow's): the set-up is serialised by a lock file in the workspace.
    with _workspace_lock(prepared.workspace.root):
        reporter.step(f"opening the study storage {shown}")
        storage = _study.open_storage(url, prepared.workspace)
        reporter.step("opening the MLflow store")
        tracker, experiment_id = tracking.connect(settings, prepared.workspace)
        assert experiment_id is not None
        if not fresh:
            _study.check_key(storage, name, key)
        with _optuna_quiet():
            study, resumed = _study.open_study(storage, name, key,
                                               _study.make_sampler(settings.seed),
                                               _study.make_pruner(), fresh)
            recovered = _study.reap_dead_trials(study, storage)
            queued = _enqueue_defaults(study, p)
    if queued:
        reporter.note(f"the defaults of {', '.join(queued)} are tried first")
    if recovered:
        reporter.warn(f"trial(s) {', '.join(f'#{n}' for n in recovered)} were left running by a "
                      "worker that is gone: marked failed and queued again once")
    counts = _counts(study)
    best_before = _best_value(study)
    if resumed:
        best = "none yet" if best_before is None else f"{best_before:.4g}"
        reporter.note(f"resuming study {name} ({counts['complete']} completed trials, best "
                      f"{p.metric} {best})")
    else:
        reporter.note(f"new study {name} in {shown}")
    where = (f"on {p.parallel} Dask worker(s)" if engine.kind == engines.DASK
             else "in this process")
    reporter.note(f"sampler TPE, seed {settings.seed} + trial number · {p.parallel} trial(s) at a "
                  f"time x {p.threads} thread(s) {where} · {p.folds}-fold CV on the training "
                  "split")
    notes = list(prepared.notes)
    if p.parallel > 1:
        serial = ("--cluster-workers 1 (or no --cluster)" if engine.kind == engines.DASK
                  else "--n-jobs 1")
        notes.append(f"{p.parallel} trials ran at a time, so the result depends on their "
                     f"timing; {serial} makes a seeded search reproducible")
        reporter.note(notes[-1])

    runs.close_dead_runs(tracker, experiment_id)
    versions = tracking.library_versions()
    parent_tags = tracking.RunRecord(
        command=tracking.record.TUNE, strategy=settings.strategy, estimator=p.space.label,
        dataset_sha256=prepared.dataset.sha256, split_hash=prepared.split.hash,
        split=prepared.split.kind, version=versions["revcli"],
        extra={"study": name, "tune_estimator": p.space.label, "storage": shown}).to_tags()
    parent_id = _runs.create_parent(
        tracker, experiment_id, f"tune {settings.strategy}/{p.space.label}",
        tags={**parent_tags, **{f"revcli.{k}": v for k, v in {
            **runs.worker_tags(), **engine.tags()}.items()}, **user_tags},
        params={"tune.study": name, "tune.storage": shown, "tune.metric": p.metric,
                "tune.cv_folds": p.folds, "tune.n_trials": p.n_trials or "until timeout",
                "tune.timeout": p.timeout, "tune.n_jobs": p.parallel,
                "tune.threads_per_trial": p.threads, "tune.sampler": "TPE (seed + trial number)",
                "tune.sampler_seed": settings.seed, "tune.pruner": "median after each fold",
                "tune.space_source": p.space_file.source, "tune.space_hash": p.space.hash,
                "tune.estimator": p.space.label, "tune.resumed": resumed})
    return _Session(settings=settings, plan=p, prepared=prepared, folds=folds, key=key,
                    name=name, url=url, storage=shown, engine=engine, study=study,
                    resumed=resumed, recovered=recovered,
                    tracker=tracker, experiment_id=experiment_id, parent_id=parent_id,
                    findings=findings, best_before=best_before, versions=versions, notes=notes,
                    timings={"prepare": time.perf_counter() - clock})


DEFAULTS_ATTR = "revcli.defaults_of"


def _known_params(name: str, fixed: Mapping[str, Any]) -> dict[str, Any]:
    """The parameter values estimator ``name`` starts from, by the names a space uses: its
    regressor's (also without a ``regressor__`` wrapper prefix), its classifier's as
    ``classifier__*``, then the config file's fixed ones."""
    regressor = estimators.make_regressor(name, n_jobs=1).get_params(deep=True)
    classifier = estimators.make_classifier(name, n_jobs=1).get_params(deep=True)
    known = {k.removeprefix("regressor__"): v for k, v in regressor.items()}
    known.update(regressor)
    known.update({f"classifier__{k}": v for k, v in classifier.items()})
    known.update(fixed)
    return known


def _enqueue_defaults(study: optuna.Study, p: Plan) -> list[str]:
    """Queue one trial per estimator at its defaults, once per study: a short search still
    knows how the defaults do (issue: a 5-trial search never tried ridge, whose defaults beat
    every sampled trial)."""
    done = {t.user_attrs.get(DEFAULTS_ATTR) for t in study.get_trials(deepcopy=False)}
    known = {name: _known_params(name, p.fixed.get(name, {})) for name in p.space.estimators}
    queued = []
    for name, params in zip(p.space.estimators, p.space.default_trials(known), strict=True):
        if name in done:
            continue
        study.enqueue_trial(params, user_attrs={DEFAULTS_ATTR: name}, skip_if_exists=True)
        queued.append(name)
    return queued


def _search_and_refit(session: _Session, *, top: int, plots: bool,
                      reporter: Reporter) -> TuneResult:
    s, p, timings = session.settings, session.plan, session.timings
    stop = _StopRequest(reporter)
    # On a cluster the objective travels to the workers: it cannot hold this process's stop
    # request (a worker's trial is abandoned by cancelling its task instead).
    in_process = session.engine.kind != engines.DASK
    objective = _cv.Objective(session.prepared, s, p.space, session.folds, p.metric,
                              threads=p.threads, fixed=p.fixed, on_start=_study.record_worker,
                              aborted=(lambda: stop.aborted) if in_process else _cv.never)
    trial_runs = _runs.TrialRuns(session.tracker, session.experiment_id, session.parent_id,
                                 session.name, p.space, p.metric)
    search_start = time.perf_counter()
    with stop, reporter.task(
            "trials", total=p.n_trials, info="") as task:
        tally = _Tally(task, trial_runs, stop, session.best_before, p.metric, reporter)
        task.update(info=tally.info())
        try:
            with _optuna_quiet():
                reason = session.engine.search_trials(
                    session.study, objective, Budget(p, tally, stop), stop, url=session.url,
                    seed=s.seed)
        finally:
            trial_runs.close()
    stop.raise_if_terminated()
    timings["search"] = time.perf_counter() - search_start
    finished = tally.completed + tally.pruned + tally.failed
    timings["trials_per_minute"] = 60.0 * finished / max(timings["search"], 1e-9)
    if trial_runs.ms_per_trial is not None:
        timings["mlflow_ms_per_trial"] = trial_runs.ms_per_trial
    if trial_runs.errors:
        session.notes.append(f"{len(trial_runs.errors)} trial run(s) could not be logged to "
                             f"MLflow: {trial_runs.errors[0]}")
        reporter.warn(session.notes[-1])

    new = {"completed": tally.completed, "pruned": tally.pruned, "failed": tally.failed}
    best_trials = _top(session.study, p.space, max(top, 1))
    best = best_trials[0] if best_trials else None
    tracker = session.tracker
    summary = {f"best_cv_{p.metric}": best.value if best else None,
               "trials_completed": tally.completed, "trials_pruned": tally.pruned,
               "trials_failed": tally.failed,
               "study_trials_complete": _counts(session.study)["complete"],
               "trials_per_minute": timings["trials_per_minute"]}
    if reason == "tracking":
        session.notes.append("the tracking store stopped answering during the search: the "
                             "search stopped early; the best trial is refit and saved")
        reporter.warn(session.notes[-1])
    else:
        with contextlib.suppress(RevcliError):  # the refit's logging reports a dead store
            tracker.log(session.parent_id,
                        metrics={k: v for k, v in summary.items() if v is not None})

    if reason == "failures":
        raise RevcliError(f"{MAX_FAILURES_IN_A_ROW} trials in a row failed, the last with "
                          f"{tally.last_error}; check the space file and the data")
    if best is None:
        if reason == "interrupted":
            _runs.end_parent(session.tracker, session.parent_id, "KILLED")
            return session.result(reason, new, [], None, {})
        raise RevcliError(f"no trial completed ({reason}); raise --timeout or check the space")

    plot_paths: dict[str, Path] = {}
    if plots:
        reporter.step("plotting the study")
        with _optuna_quiet():
            default = _default_trial(session.study, p.space, best.estimator)
            plot_paths, skipped = _runs.study_plots(
                session.study, session.prepared.workspace.plots_dir / session.parent_id,
                p.metric, None if default is None else default.value)
        if reason != "tracking":
            with contextlib.suppress(RevcliError):  # the refit's logging reports a dead store
                for path in plot_paths.values():
                    tracker.log_artifact(session.parent_id, path, "plots")
        session.notes.extend(f"plot skipped: {text}" for text in skipped)

    versus = against_default(best, _default_trial(session.study, p.space, best.estimator))
    if versus is not None and versus["chosen"] == "default" and best.number != versus[
            "default_trial"]:
        default = _default_trial(session.study, p.space, best.estimator)
        assert default is not None
        session.notes.append(
            f"the best trial {best.number} (cv {p.metric} {best.value:.4f}) is not clearly "
            f"better than the defaults (trial {default.number}, {default.value:.4f}): a gain "
            f"of {versus['gain']:+.4f} against a margin of "
            f"{'n/a' if versus['margin'] is None else format(versus['margin'], '.4f')} from "
            f"the fold-to-fold spread; the defaults are refit")
        reporter.warn(session.notes[-1])
        best = default
    reporter.step(f"refitting trial {best.number} ({best.estimator}) on the training split")
    # n_jobs=-1: fit_and_score gives the refit as many threads as its rows can use.
    best_settings = s.replace(estimator=best.estimator, n_jobs=-1)
    hyper = objective.params_for(best.estimator, best.params)
    refit_start = time.perf_counter()
    fitted = pipeline.fit_and_score(session.prepared, best_settings, hyper, reporter)
    timings["refit"] = time.perf_counter() - refit_start
    refit = runs.finish(
        session.prepared, best_settings, fitted, hyper, session.findings,
        (tracker, session.experiment_id), runs.RunSpec(
            command=tracking.record.TUNE, run_id=session.parent_id, plots=plots,
            tags={"study": session.name, "tune_estimator": p.space.label,
                  "best_trial": str(best.number), "stop_reason": reason,
                  "refit": "default" if versus and versus["chosen"] == "default" else "best",
                  "interrupted": str(reason == "interrupted").lower(),
                  "sampler_seed": str(s.seed), "storage": session.storage},
            params={f"best.{k}": v for k, v in best.params.items()}),
        reporter=reporter)
    if versus is not None:
        with contextlib.suppress(RevcliError):
            tracker.log(session.parent_id, metrics={
                f"default_cv_{p.metric}": versus["default_cv"],
                f"gain_vs_default_cv_{p.metric}": versus["gain"]})
    result = session.result(reason, new, best_trials[:top], refit, plot_paths)
    result.versus_default = versus
    return result


@contextlib.contextmanager
def _workspace_lock(root: Path) -> Iterator[None]:
    """An exclusive lock on ``<workspace>/.tune.lock`` (a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: one worker per workspace at a time is the user's job
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".tune.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
