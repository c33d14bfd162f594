"""``revcli train`` as a function: dataset -> split -> audit -> fit -> scorecard -> MLflow run.

The steps are :mod:`revcli.pipeline`'s; the run is :mod:`revcli.runs`'. This module is only the
command: it checks everything that can be checked without data first, then runs them in order.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli import engines, pipeline, runs, targets, tracking
from revcli.errors import ConfigError
from revcli.progress import SILENT, Reporter
from revcli.runs import RunSpec, TrainResult
from revcli.workspace import Workspace

if TYPE_CHECKING:
    from revcli.settings import Settings

__all__ = ["TrainResult", "train"]


def start_from(settings: Settings, *, from_run: str | None = None,
               from_study: str | None = None) -> tuple[Settings, dict[str, Any], str]:
    """The strategy, estimator and hyperparameters of a run or of a study's best trial (flags
    given on the command line win over them): (settings, hyperparameters, where from)."""
    from revcli import split as split_mod
    from revcli.errors import ConfigError, NotFoundError
    from revcli.estimators import parse_param
    from revcli.workspace import Workspace

    if from_run and from_study:
        raise ConfigError("give --from-run or --from-study, not both")
    flagged = {name for name in ("strategy", "estimator", "combine", "threshold")
               if settings.source_of(name) == "flag"}
    workspace = Workspace(settings.workspace)
    if from_run:
        tracker, _ = tracking.connect(settings, workspace, experiment=False, create=False)
        if tracker.is_workspace_store and not workspace.mlflow_db.is_file():
            raise NotFoundError(f"no MLflow store in {workspace.root}, so no run {from_run!r}")
        run = tracker.get_run(tracking.resolve(tracker, from_run, settings.registry_model).run_id)
        meta = run.model_meta()
        deleted = getattr(getattr(run.raw, "info", None), "lifecycle_stage", "") == "deleted"
        hyper = {k.removeprefix("hyper."): parse_param(f"x={v}")[1]
                 for k, v in run.params.items() if k.startswith("hyper.")}
        found = {"strategy": meta.get("strategy"), "estimator": meta.get("estimator"),
                 **(meta.get("options") or {})}
        # A deleted run's recipe is still read (MLflow keeps it, restorable): said, not refused.
        where = f"run {run.run_id}" + (" (deleted in MLflow)" if deleted else "")
    else:
        from revcli.tuning import _study

        url = settings.storage or _study.default_url(workspace)
        if url == _study.default_url(workspace) and not (
                workspace.studies_dir / _study.STUDY_DB).is_file():
            raise NotFoundError(f"no study {from_study!r}: workspace {workspace.root} has no "
                                "studies (it never ran `revcli tune`; give --storage for "
                                "studies kept elsewhere)")
        storage = _study.open_storage(url, None)
        from_study = _study.resolve_name(storage, str(from_study), _study.mask(url))
        import optuna

        study = optuna.load_study(study_name=str(from_study), storage=storage)
        done = [t for t in study.get_trials(deepcopy=False)
                if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
        if not done:
            raise NotFoundError(f"study {from_study!r} has no completed trial yet")
        best = min(done, key=lambda t: (t.value, t.number))
        key = study.user_attrs.get(_study.KEY_ATTR, {})
        estimator = str(best.params.get("estimator") or key.get("estimator"))
        prefix = f"{estimator}."
        hyper = {**key.get("setup", {}).get("fixed_params", {}).get(estimator, {}),
                 **{k.removeprefix(prefix): v for k, v in best.params.items()
                    if k != "estimator" and (k.startswith(prefix) or "." not in k)}}
        setup = key.get("setup", {})
        found = {"strategy": key.get("strategy"), "estimator": estimator,
                 **{k: setup[k] for k in ("combine", "threshold") if k in setup}}
        if isinstance(setup.get("split"), dict) and setup["split"].get("kind") == split_mod.TIME:
            found.update(split=split_mod.TIME, time_column=setup["split"].get("time_column"),
                         gap=setup["split"].get("gap"))
        where = f"study {from_study} (trial {best.number})"
    changes = {k: v for k, v in found.items() if v is not None and k not in flagged}
    return settings.replace(**changes), hyper, where


def train(settings: Settings, *, data: str | Path | None = None,
          params: Mapping[str, Any] | None = None, drop_features: Sequence[str] = (),
          run_name: str | None = None, plots: bool = True,
          importance: str = pipeline.NATIVE, note: str | None = None,
          tags: Mapping[str, str] | None = None, from_run: str | None = None,
          from_study: str | None = None, backtest: int = 0,
          classifier: str | None = None, trust: bool = False,
          reporter: Reporter = SILENT) -> TrainResult:
    """Train ``settings.strategy`` / ``settings.estimator``, score it, log one MLflow run.

    ``note`` becomes the run's description, ``tags`` its user tags (``--note``, ``--tag``);
    ``from_run`` / ``from_study`` start from a run's or a study's best trial's strategy,
    estimator and hyperparameters (``params`` and explicit settings override them).
    ``importance``: ``native`` (the estimator's own, free) or ``permutation`` (any estimator).
    ``timings`` of the result: seconds per step (``--timings``). ``backtest`` (with
    ``--split time``): refit the recipe at that many forward cut-offs (revcli.backtest) and log
    the windows with the run. ``classifier``: a reference to a classifier fitted elsewhere
    (revcli.tracking.classifier) as two_stage's P(order) stage; only stage 2 is fitted (a
    pickled one needs ``trust``).
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    origin: dict[str, str] = {}
    if from_run or from_study:
        settings, found, where = start_from(settings, from_run=from_run,
                                            from_study=from_study)
        params = {**found, **(params or {})}
        origin = {"from": where}
        reporter.note(f"starting from {where}: {settings.strategy} / {settings.estimator}"
                      + (f", {found}" if found else ""))
    hyper = pipeline.hyperparameters(settings, params)
    # A bad name or parameter value fails here, before any data is loaded.
    pipeline.validate(settings, hyper)
    engines.check(settings)  # what a cluster cannot run, before it is started
    if importance not in pipeline.IMPORTANCE_METHODS:
        raise ConfigError(f"--importance must be one of {', '.join(pipeline.IMPORTANCE_METHODS)}"
                          f", not {importance!r}")
    targets.load(settings.targets, fallback=settings.source_of("targets") == "default")
    if backtest and settings.split != "time":
        raise ConfigError("--backtest needs --split time: its windows go forward in time")

    with engines.open_engine(settings, reporter) as engine:
        # MLflow's import and the store's opening run in a process of their own (the other
        # core) while the data loads and the model fits; a store that fails its cheap check (a
        # dead server, a file that is no sqlite store) still fails before the fit.
        logger = tracking.Logger(settings, Workspace(settings.workspace).ensure(),
                                 then=runs.close_dead_runs)
        try:
            result = _train_steps(engine, logger, settings, data, drop_features, hyper,
                                  classifier, trust, backtest, plots, timings, clock,
                                  RunSpec(run_name=run_name, plots=plots, importance=importance,
                                          note=note, tags=origin, user_tags=dict(tags or {}),
                                          engine=engine.describe()), reporter)
        except BaseException:
            logger.close(kill=True)
            raise
        logger.close()
    timings["total"] = time.perf_counter() - clock
    return result


def _times(prepared: pipeline.Prepared) -> Any:
    """The time split's column when it is not a feature (dropped): read from the file."""
    from revcli.data import read_parquet

    column = str(prepared.split.time_column)
    return read_parquet(prepared.dataset.path, columns=[column])[column]


def _train_steps(engine: Any, logger: Any, settings: Settings, data: str | Path | None,
                 drop_features: Sequence[str], hyper: Mapping[str, Any],
                 classifier: str | None, trust: bool, backtest: int, plots: bool,
                 timings: dict[str, float], clock: float, spec: RunSpec,
                 reporter: Reporter) -> TrainResult:
    """The engine's steps, then the run through the logger process: load, audit, fit, score
    (and backtest), and only then wait for the store."""
    prepared = engine.prepare(settings, data, drop_features, reporter)
    prepared.check(settings.strategy, settings.estimator, reporter)
    timings["load"] = time.perf_counter() - clock
    logger.check()

    external = None
    if classifier is not None:
        from revcli import strategies
        from revcli.tracking import classifier as classifier_mod

        if not strategies.get(settings.strategy).has_classifier:
            raise ConfigError(f"--classifier is the first stage of two_stage; strategy "
                              f"{settings.strategy!r} has no classifier stage")
        reporter.step(f"loading the classifier {classifier}")
        # the classifier is read with MLflow here (the logger process only logs)
        local, _ = tracking.connect(settings, prepared.workspace, experiment=False,
                                    create=False)
        external = classifier_mod.load(local, classifier, trust=trust, reporter=reporter)
        external.check_columns(prepared.table.features)
        spec.tags.update(external.tags())
        spec.params.update(external.params())
        spec.classifier = external.source()
    spec.tags.update(engine.tags())
    start = time.perf_counter()
    findings = engine.audit(prepared, reporter, judged_for=[settings.strategy])
    timings["audit"] = time.perf_counter() - start
    # No imports in a thread beside the fit (matplotlib's and skops' were, until issue 19):
    # beside its OpenMP threads and the logger process on 2 cores they made the command slower
    # (median of 5: 3.37 s with them, 3.11 s without).
    start = time.perf_counter()
    fitted = engine.fit_and_score(prepared, settings, hyper, reporter, external=external)
    timings["fit"] = fitted.fit_seconds
    timings["score"] = time.perf_counter() - start - fitted.fit_seconds
    if backtest:
        from revcli import backtest as backtests

        split = prepared.split
        spec.backtest = backtests.run(
            backtests.unfitted(fitted.model), prepared.table.X, prepared.table.y,
            prepared.table.X[split.time_column] if split.time_column in prepared.table.X
            else _times(prepared), backtest, test_size=settings.test_size,
            column=str(split.time_column), gap=settings.gap, n_jobs=settings.n_jobs,
            reporter=reporter)

    def store() -> runs.Store:
        """The logger's store, asked for by runs.finish once its own work is done."""
        start = time.perf_counter()
        opened = logger.result()
        timings["tracking"] = logger.seconds
        timings["tracking_wait"] = time.perf_counter() - start
        return opened

    return runs.finish(prepared, settings, fitted, hyper, findings, store, spec,
                       reporter=reporter, timings=timings)
