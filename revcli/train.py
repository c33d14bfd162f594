"""``revcli train`` as a function: dataset -> split -> audit -> fit -> scorecard -> MLflow run.

:func:`prepare` and :func:`fit_and_score` are the building blocks other commands reuse (tune refits
its best model with them, compare trains several strategies on one split).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from revcli import atomic, estimators, fetch, leakage, metrics, strategies, targets, tracking
from revcli.data import Table, read_parquet, validate
from revcli.progress import SILENT, Reporter
from revcli.split import Split, make_split
from revcli.workspace import DatasetRecord, Workspace

if TYPE_CHECKING:
    from revcli.settings import Settings

IMPORTANCE_ROWS = 3_000


@dataclass
class Prepared:
    """A validated dataset and its split: everything a fit needs."""

    workspace: Workspace
    dataset: DatasetRecord
    table: Table
    split: Split
    # Said on stderr and in --json: e.g. that the demo set was generated for want of a dataset.
    notes: list[str] = field(default_factory=list)

    @property
    def X_train(self) -> Any:
        return self.table.X.iloc[self.split.train]

    @property
    def X_test(self) -> Any:
        return self.table.X.iloc[self.split.test]

    @property
    def y_train(self) -> np.ndarray:
        return self.table.y[self.split.train]

    @property
    def y_test(self) -> np.ndarray:
        return self.table.y[self.split.test]

    def split_summary(self) -> dict[str, Any]:
        return self.split.summary(self.table.ordered)


@dataclass
class Fitted:
    """A fitted strategy and its holdout scores."""

    model: Any
    scorecard: metrics.Scorecard
    pred_test: np.ndarray
    proba_test: np.ndarray | None
    fit_seconds: float


@dataclass
class TrainResult:
    run_id: str
    experiment: str
    tracking_uri: str
    strategy: str
    estimator: str
    params: dict[str, Any]
    dataset: DatasetRecord
    features: list[str]
    dropped: list[str]
    split: dict[str, Any]
    scorecard: metrics.Scorecard
    leakage: list[leakage.LeakFinding]
    too_good: str | None
    model_path: Path
    model_sha256: str
    model_uri: str
    plots: dict[str, Path]
    importance: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment": self.experiment,
            "tracking_uri": self.tracking_uri,
            "strategy": self.strategy,
            "estimator": self.estimator,
            "params": self.params,
            "dataset": {"sha256": self.dataset.sha256, "source": self.dataset.source,
                        "rows": self.dataset.rows, "path": str(self.dataset.path),
                        "demo": "demo" in self.dataset.extra},
            "features": self.features,
            "dropped": self.dropped,
            "split": self.split,
            "scorecard": self.scorecard.to_dict(),
            "leakage": [f.to_dict() for f in self.leakage],
            "too_good": self.too_good,
            "model": {"path": str(self.model_path), "sha256": self.model_sha256,
                      "uri": self.model_uri},
            "plots": {k: str(v) for k, v in self.plots.items()},
            "importance": self.importance,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "notes": self.notes,
        }


def load_dataset(settings: Settings, data: str | Path | None = None,
                 reporter: Reporter = SILENT) -> tuple[Workspace, DatasetRecord, list[str]]:
    """The dataset a command works on, and notes about it: ``data`` if given (validated and
    cached, the current dataset left as it is), else the workspace's current one, else -- in a
    workspace that never had one -- the full-size demo set."""
    workspace = Workspace(settings.workspace).ensure()
    if data is not None:
        record = fetch.fetch_local(workspace, data, reporter=reporter, make_current=False)
        return workspace, record, []
    record, note = fetch.current_or_demo(workspace, rows=settings.demo_rows,
                                         seed=settings.demo_seed, reporter=reporter)
    return workspace, record, [note] if note else []


def prepare(settings: Settings, data: str | Path | None = None,
            drop_features: Sequence[str] = (), reporter: Reporter = SILENT) -> Prepared:
    workspace, record, notes = load_dataset(settings, data, reporter)
    reporter.step(f"loading {record.short} ({record.rows:,} rows)")
    table = validate(read_parquet(record.path), drop_features=drop_features)
    split = make_split(table.ordered, test_size=settings.test_size, seed=settings.seed)
    return Prepared(workspace=workspace, dataset=record, table=table, split=split, notes=notes)


def baseline_value(strategy: str, y_train: np.ndarray) -> float:
    """The train mean of the strategy's target: order value for converting_only, else revenue."""
    if strategies.scores_converters_only(strategy):
        return float(y_train[y_train > 0].mean())
    return float(y_train.mean())


def model_params(settings: Settings, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Hyperparameters: ``[params.<estimator>]`` from the config file, then ``--param``."""
    return {**settings.estimator_params(settings.estimator), **(overrides or {})}


def fit_and_score(prepared: Prepared, settings: Settings, params: Mapping[str, Any],
                  reporter: Reporter = SILENT) -> Fitted:
    y_train = prepared.y_train
    n_fit = (int((y_train > 0).sum()) if strategies.scores_converters_only(settings.strategy)
             else len(y_train))
    # "-1, all cores" means as many as the fit can use: small fits on every core stall on
    # OpenMP barriers whenever another process holds one (see estimators.ROWS_PER_THREAD).
    n_jobs = (settings.n_jobs if settings.n_jobs > 0
              else estimators.fit_threads(n_fit, estimators.cores()))
    model = strategies.build(settings.strategy, settings.estimator, dict(params),
                             seed=settings.seed, n_jobs=n_jobs,
                             combine=settings.combine, threshold=settings.threshold)
    reporter.step(f"fitting {settings.strategy} / {settings.estimator} on {n_fit:,} sessions")
    start = time.perf_counter()
    model.fit(prepared.X_train, y_train)
    fit_seconds = time.perf_counter() - start
    reporter.step("scoring the holdout")
    pred = model.predict(prepared.X_test)
    proba = (model.predict_proba_order(prepared.X_test)
             if isinstance(model, strategies.TwoStage) else None)
    card = metrics.scorecard(settings.strategy, prepared.y_test, pred,
                             baseline_value(settings.strategy, y_train), proba_order=proba)
    return Fitted(model=model, scorecard=card, pred_test=pred, proba_test=proba,
                  fit_seconds=fit_seconds)


def evaluation_rows(strategy: str, y: np.ndarray) -> np.ndarray:
    """Positions of the rows a strategy is scored on."""
    return np.flatnonzero(y > 0) if strategies.scores_converters_only(strategy) else np.arange(
        len(y))


def permutation_importance(model: Any, X: Any, y: np.ndarray, seed: int) -> dict[str, float]:
    """RMSE increase when each feature is shuffled, on at most IMPORTANCE_ROWS rows; works for
    every estimator, unlike tree-only importances."""
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    rows = np.arange(len(y))
    if len(rows) > IMPORTANCE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(len(y), IMPORTANCE_ROWS, replace=False))
    result = sk_permutation_importance(model, X.iloc[rows], y[rows],
                                       scoring="neg_root_mean_squared_error", n_repeats=3,
                                       random_state=seed, n_jobs=1)
    return {str(c): float(v) for c, v in zip(X.columns, result.importances_mean, strict=True)}


def write_plots(directory: Path, strategy: str, y: np.ndarray, pred: np.ndarray,
                 importance: Mapping[str, float], label: str | None = None) -> dict[str, Path]:
    """``label`` names the rows in the titles (default: the strategy's test rows)."""
    from revcli import plots

    label = label or (f"{strategy}: "
                      f"{'test converters' if strategy == 'converting_only' else 'test sessions'}")
    return {
        "residuals": plots.residuals(y, pred, directory / "residuals.png",
                                     title=f"Residuals vs predicted ({label})"),
        "predicted_vs_actual": plots.predicted_vs_actual(
            y, pred, directory / "predicted_vs_actual.png",
            title=f"Predicted vs actual ({label})"),
        "feature_importance": plots.feature_importance(
            list(importance), np.array(list(importance.values())),
            directory / "feature_importance.png",
            title=f"Permutation importance ({label})"),
    }


def save_model(workspace: Workspace, run_id: str, model: Any, meta: dict[str, Any]) -> tuple[
        Path, str]:
    """joblib file + model.json (with its sha256) under ``models/<run_id>/``, both atomic."""
    import joblib

    directory = workspace.model_dir(run_id)
    path = directory / "model.joblib"
    with atomic.atomic_path(path) as tmp:
        joblib.dump(model, tmp)
        sha = atomic.sha256_file(tmp)
    atomic.write_json(directory / "model.json", {**meta, "model_sha256": sha,
                                                 "model_file": path.name})
    return path, sha


def connect(settings: Settings, workspace: Workspace) -> tuple[str, str]:
    """Configure MLflow and resolve the experiment: (tracking URI, experiment id)."""
    uri = tracking.configure(settings, workspace)
    return uri, tracking.ensure_experiment(settings.experiment, uri, workspace)


def audit(prepared: Prepared, reporter: Reporter = SILENT) -> list[leakage.LeakFinding]:
    """The leakage audit on the training rows, each finding warned about."""
    findings = leakage.audit(prepared.X_train, prepared.table.ordered[prepared.split.train])
    for finding in findings:
        reporter.warn(f"possible target leak: {finding.feature!r} {finding.detail}; "
                      f"re-run with --drop-feature {finding.feature}")
    return findings


def record(prepared: Prepared, settings: Settings, fitted: Fitted, hyper: Mapping[str, Any],
           findings: Sequence[leakage.LeakFinding], *, uri: str, experiment_id: str,
           command: str = "train", run_name: str | None = None,
           extra_tags: Mapping[str, str] | None = None,
           extra_params: Mapping[str, Any] | None = None, parent_run_id: str | None = None,
           plots: bool = True, reporter: Reporter = SILENT,
           timings: dict[str, float] | None = None, run_id: str | None = None) -> TrainResult:
    """Judge a fitted model (targets, leaks, importance) and log it as one MLflow run.

    The run holds params, metrics beside ``baseline_*``, tags, the model (MLflow flavour and a
    joblib copy in the workspace with its sha256), ``scorecard.json`` and the plots. ``command``,
    ``extra_tags``/``extra_params`` and ``parent_run_id`` let tune and compare log their models
    the same way (a parent makes it a nested run); ``run_id`` logs into an existing run (tune's
    parent) instead of starting a new one.
    """
    timings = timings if timings is not None else {}
    target_set = targets.load(settings.targets,
                              fallback=settings.source_of("targets") == "default")
    card = fitted.scorecard
    card.verdicts = target_set.verdicts(card.metrics, level="all")
    # converting_only fits and scores converters only, where a feature that marks the order
    # (engagement_depth == 7) is constant: the audit still names it, but it cannot inflate
    # these scores. For all and two_stage it can, and the scorecard says they are not honest.
    card.leaks = ([] if strategies.scores_converters_only(settings.strategy)
                  else [f.feature for f in findings])
    warning = leakage.too_good(card)
    if warning:
        reporter.warn(warning)

    rows = evaluation_rows(settings.strategy, prepared.y_test)
    y_eval, pred_eval = prepared.y_test[rows], fitted.pred_test[rows]
    reporter.step("permutation importance")
    start = time.perf_counter()
    importance = permutation_importance(fitted.model, prepared.X_test.iloc[rows], y_eval,
                                        settings.seed)
    timings["importance"] = time.perf_counter() - start

    reporter.step("logging the MLflow run")
    log_start = time.perf_counter()
    commit = tracking.git_commit()
    split_info = prepared.split_summary()
    versions = tracking.library_versions()
    tags = {
        "revcli.command": command,
        "revcli.strategy": settings.strategy,
        "revcli.estimator": settings.estimator,
        "revcli.dataset_sha256": prepared.dataset.sha256,
        "revcli.dataset_source": prepared.dataset.source,
        "revcli.split_hash": prepared.split.hash,
        "revcli.version": versions["revcli"],
        "revcli.leakage": ",".join(f.feature for f in findings) or "none",
        "revcli.too_good": "true" if warning else "false",
        "revcli.honest": "false" if card.leaks or warning else "true",
        "revcli.population": card.population,
        **({"mlflow.source.git.commit": commit, "revcli.git_commit": commit} if commit else {}),
        **{f"revcli.lib.{k}": v for k, v in versions.items()},
        **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {}),
        **(extra_tags or {}),
    }
    run_params = {
        "strategy": settings.strategy,
        "estimator": settings.estimator,
        "seed": settings.seed,
        "test_size": settings.test_size,
        "train_rows": split_info["train_rows"],
        "test_rows": split_info["test_rows"],
        "train_converters": split_info["train_converters"],
        "test_converters": split_info["test_converters"],
        "features": ",".join(prepared.table.features),
        "dropped_features": ",".join(prepared.table.dropped) or "none",
        **({"combine": settings.combine, "threshold": settings.threshold}
           if settings.strategy == "two_stage" else {}),
        **{f"model.{k}": v for k, v in tracking.flat_params(fitted.model.get_params()).items()},
        **(extra_params or {}),
    }
    with tracking.run(experiment_id, run_name, tags, uri, run_id=run_id) as active:
        import mlflow

        run_id = active.info.run_id
        mlflow.log_params(run_params)
        logged = {k: v for k, v in card.metrics.items() if np.isfinite(v)}
        logged.update({f"baseline_{k}": v for k, v in card.baseline.items() if np.isfinite(v)})
        mlflow.log_metrics(logged)
        meta = {
            "run_id": run_id,
            "strategy": settings.strategy,
            "estimator": settings.estimator,
            "params": dict(hyper),
            "features": prepared.table.features,
            "dropped_features": prepared.table.dropped,
            "dataset_sha256": prepared.dataset.sha256,
            "split_hash": prepared.split.hash,
            "seed": settings.seed,
            "test_size": settings.test_size,
            "combine": settings.combine,
            "threshold": settings.threshold,
            "metrics": card.to_dict()["metrics"],
            "baseline_value": card.baseline_value,
            "leaks": card.leaks,
            "too_good": warning,
            "revcli_version": versions["revcli"],
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        model_path, model_sha = save_model(prepared.workspace, run_id, fitted.model, meta)
        mlflow.set_tag("revcli.model_sha256", model_sha)
        sample = prepared.X_test.iloc[:5]
        model_uri = tracking.log_model(fitted.model, sample, fitted.model.predict(sample))
        timings["log_model"] = time.perf_counter() - log_start
        plot_paths: dict[str, Path] = {}
        if plots:
            plot_paths = write_plots(prepared.workspace.plots_dir / run_id, settings.strategy,
                                      y_eval, pred_eval, importance)
            for path in plot_paths.values():
                mlflow.log_artifact(str(path), artifact_path="plots")
        result = TrainResult(
            run_id=run_id, experiment=settings.experiment, tracking_uri=uri,
            strategy=settings.strategy, estimator=settings.estimator, params=dict(hyper),
            dataset=prepared.dataset, features=prepared.table.features,
            dropped=prepared.table.dropped, split=split_info, scorecard=card,
            leakage=list(findings), too_good=warning, model_path=model_path,
            model_sha256=model_sha, model_uri=model_uri, plots=plot_paths,
            importance=importance, timings=timings, notes=list(prepared.notes))
        mlflow.log_dict(result.to_dict(), "scorecard.json")
    timings["log"] = time.perf_counter() - log_start
    return result


def train(settings: Settings, *, data: str | Path | None = None,
          params: Mapping[str, Any] | None = None, drop_features: Sequence[str] = (),
          run_name: str | None = None, plots: bool = True,
          reporter: Reporter = SILENT) -> TrainResult:
    """Train ``settings.strategy`` / ``settings.estimator``, score it, log one MLflow run."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    hyper = model_params(settings, params)
    # Build once unfitted so a bad name or parameter fails before any data is loaded.
    strategies.build(settings.strategy, settings.estimator, hyper, combine=settings.combine,
                     threshold=settings.threshold)
    targets.load(settings.targets, fallback=settings.source_of("targets") == "default")

    prepared = prepare(settings, data, drop_features, reporter)
    timings["load"] = time.perf_counter() - clock
    # Tracking before fitting: an unreachable server fails before minutes of work, not after.
    reporter.step("opening the MLflow store")
    start = time.perf_counter()
    uri, experiment_id = connect(settings, prepared.workspace)
    timings["tracking"] = time.perf_counter() - start

    findings = audit(prepared, reporter)
    fitted = fit_and_score(prepared, settings, hyper, reporter)
    timings["fit"] = fitted.fit_seconds
    result = record(prepared, settings, fitted, hyper, findings, uri=uri,
                    experiment_id=experiment_id, run_name=run_name, plots=plots,
                    reporter=reporter, timings=timings)
    timings["total"] = time.perf_counter() - clock
    return result
