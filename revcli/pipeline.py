"""The steps every command shares, as plain functions with no MLflow and no printing.

prepare (a dataset and its split) -> build (a strategy around an estimator) -> fit (under the one
thread policy) -> score (beside the baselines) -> audit and judge (leaks, too-good scores) ->
importance. ``revcli train`` runs them in that order and logs the result; ``tune`` refits its best
trial with them, ``compare strategies`` fits several strategies on one split, ``evaluate`` scores
and judges a loaded model.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from revcli import fetch, leakage, metrics, strategies, threads
from revcli.data import Table, read_parquet
from revcli.data import validate as validate_table
from revcli.errors import ConfigError
from revcli.progress import SILENT, Reporter
from revcli.split import Split
from revcli.workspace import DatasetRecord, Workspace

if TYPE_CHECKING:
    from revcli.model import RevenueModel
    from revcli.settings import Settings
    from revcli.strategies import Strategy

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

    @cached_property
    def X_test(self) -> Any:
        # Read by scoring, the evaluation rows, the plots and the logged sample: one copy.
        # (X_train is used by one fit and is not kept, so its copy is freed after the fit.)
        return self.table.X.iloc[self.split.test]

    @property
    def y_train(self) -> np.ndarray:
        return self.table.y[self.split.train]

    @property
    def y_test(self) -> np.ndarray:
        return self.table.y[self.split.test]

    def check(self, strategy: str, estimator: str | None = None,
              reporter: Reporter = SILENT) -> None:
        """Whether strategy ``strategy`` can learn from this training split (DataError if
        not), before any fit or MLflow run; and a warning when ``estimator`` aims at another
        quantity than the mean on the rows it would fit."""
        from revcli import estimators

        cls = strategies.get(strategy)
        cls.check_data(self.y_train)
        if estimator is None or estimators.spec(estimator).estimates == "mean":
            return
        mask = cls.fit_mask(self.y_train)
        fitted = self.y_train if mask is None else self.y_train[mask]
        zeros = float(np.mean(fitted == 0)) if len(fitted) else 0.0
        if zeros >= 0.5:
            reporter.warn(f"{estimator} estimates the {estimators.spec(estimator).estimates}, "
                          f"and {zeros:.0%} of the sessions {cls.name} fits on earned $0: it "
                          "will predict about $0 for nearly all of them, while every score "
                          "here rewards the mean; use it with a strategy fitted on converters, "
                          "or a mean estimator (xgb, hgb, ridge)")

    def commit(self) -> DatasetRecord:
        """Cache the dataset if it is a ``--data`` file not cached yet (called once the work on
        it succeeded); the current dataset stays as it is."""
        if self.dataset.extra.get("pending") and self.dataset.is_parts:
            self.dataset = fetch.fetch_local_parts(self.workspace, self.dataset.path,
                                                   make_current=False, inspected=self.dataset)
        elif self.dataset.extra.get("pending"):
            record = self.workspace.register_file(self.dataset.path, self.dataset.source,
                                                  sha256=None, make_current=False)
            if record.sha256 != self.dataset.sha256:
                self.workspace.remove_dataset(record.sha256)
                from revcli.errors import DataError

                raise DataError(f"{self.dataset.path} changed while revcli was reading it; run "
                                "the command again")
            self.dataset = record
        return self.dataset

    @property
    def baselines(self) -> metrics.Baselines:
        return metrics.Baselines.of(self.y_train)

    def split_summary(self) -> dict[str, Any]:
        return self.split.summary(self.table.ordered)


def load_dataset(settings: Settings, data: str | Path | None = None,
                 reporter: Reporter = SILENT) -> tuple[Workspace, DatasetRecord, list[str]]:
    """The dataset a command works on, and notes about it: ``data`` if given (validated and
    cached, the current dataset left as it is), else the workspace's current one, else -- in a
    workspace that never had one -- the full-size demo set."""
    workspace = Workspace(settings.workspace).ensure()
    if data is not None:
        return workspace, fetch.inspect_local(data, reporter=reporter), []
    record, note = fetch.current_or_demo(workspace, rows=settings.demo_rows,
                                         seed=settings.demo_seed, reporter=reporter)
    return workspace, record, [note] if note else []


def make(settings: Settings, frame: Any, ordered: np.ndarray) -> Split:
    """The split ``settings`` ask for: random (stratified) or by time (``--split time``)."""
    from revcli import split
    from revcli.errors import ConfigError

    if settings.split == split.RANDOM:
        return split.make_split(ordered, test_size=settings.test_size, seed=settings.seed)
    if settings.split != split.TIME:
        raise ConfigError(f"unknown --split {settings.split!r}; choose random or time")
    column = split.time_column_of(frame, settings.time_column)
    return split.make_time_split(frame[column], ordered, settings.test_size, column,
                                 settings.gap)


def prepare(settings: Settings, data: str | Path | None = None,
            drop_features: Sequence[str] = (), reporter: Reporter = SILENT) -> Prepared:
    workspace, record, notes = load_dataset(settings, data, reporter)
    reporter.step(f"loading {record.short} ({record.rows:,} rows)")
    frame = read_parquet(record.path)
    table = validate_table(frame, drop_features=drop_features)
    for name in table.empty:
        message = (f"column {name!r} is missing on every row: left out of the features")
        reporter.warn(message)
        notes.append(message)
    split = make(settings, frame, table.ordered)
    return Prepared(workspace=workspace, dataset=record, table=table, split=split, notes=notes)


# -- building and fitting --------------------------------------------------------------------------

def hyperparameters(settings: Settings, overrides: Mapping[str, Any] | None = None,
                    estimator: str | None = None) -> dict[str, Any]:
    """Hyperparameters: ``[params.<estimator>]`` from the config file, then ``--param``."""
    return {**settings.estimator_params(estimator or settings.estimator), **(overrides or {})}


def build(settings: Settings, params: Mapping[str, Any], *, n_jobs: int | None = None,
          strategy: str | None = None, estimator: str | None = None,
          external: Any = None) -> RevenueModel:
    """The unfitted model of ``settings`` (or ``strategy`` / ``estimator``): the featurizer
    the estimator needs, then the strategy. Every bad name, parameter or option fails here,
    before any data is read. ``external`` (revcli.tracking.classifier.External): a classifier
    fitted elsewhere as the strategy's classifier stage, fed its own columns as they are."""
    from revcli import estimators, features
    from revcli.model import RevenueModel

    name = estimator or settings.estimator
    chosen = strategy or settings.strategy
    inner = strategies.build(chosen, name, params, seed=settings.seed,
                             n_jobs=settings.n_jobs if n_jobs is None else n_jobs,
                             options=settings.strategy_options())
    featurizer = features.for_estimator(estimators.spec(name).capabilities)
    if external is not None:
        if not strategies.get(chosen).has_classifier:
            raise ConfigError(f"--classifier is the first stage of a strategy with a classifier "
                              f"stage (two_stage), not {chosen!r}")
        inner.set_params(classifier=external.wrapped())
        featurizer.set_params(passthrough=tuple(external.columns))
    return RevenueModel(featurizer=featurizer, strategy=inner)


def validate(settings: Settings, params: Mapping[str, Any], *, strategy: str | None = None,
             estimator: str | None = None) -> RevenueModel:
    """:func:`build`, then a probe fit on synthetic rows (revcli.estimators.probe): a bad name,
    a bad value of a hyperparameter, an option out of range all fail here, in a fraction of a
    second, before any data is read."""
    from revcli import estimators

    label = f"{strategy or settings.strategy} / {estimator or settings.estimator}"
    estimators.check_values(params, label)
    model = build(settings, params, n_jobs=1, strategy=strategy, estimator=estimator)
    estimators.probe(model, label)
    return model


def fit(model: RevenueModel, X: Any, y: np.ndarray, n_threads: int) -> float:
    """Fit ``model`` under the thread cap; returns the seconds it took."""
    start = time.perf_counter()
    try:
        with threads.limit(n_threads):
            model.fit(X, y)
    except ValueError as exc:
        # scikit-learn and XGBoost say "this data cannot be fitted" with ValueError.
        from revcli.errors import DataError, first_line

        raise DataError(f"{strategies.of(model).name} cannot be fitted on these rows: "
                        f"{first_line(exc, 200)}") from None
    return time.perf_counter() - start


@dataclass
class Fitted:
    """A fitted strategy and its holdout scores."""

    model: RevenueModel
    scorecard: metrics.Scorecard
    pred_test: np.ndarray
    proba_test: np.ndarray | None
    fit_seconds: float
    threads: int
    # the order value it predicts for each test session (Strategy.order_value_of), or None
    order_value_test: np.ndarray | None = None

    @property
    def strategy(self) -> type[Strategy]:
        return self.model.strategy_class


def fit_and_score(prepared: Prepared, settings: Settings, params: Mapping[str, Any],
                  reporter: Reporter = SILENT, external: Any = None) -> Fitted:
    """Fit ``settings.strategy`` / ``settings.estimator`` on the training split, with threads
    sized to the rows it fits (revcli.threads), and score it on the holdout."""
    cls = strategies.get(settings.strategy)
    y_train = prepared.y_train
    mask = cls.fit_mask(y_train)
    n_fit = len(y_train) if mask is None else int(mask.sum())
    n_threads = threads.resolve(settings.n_jobs, n_fit)
    model = build(settings, params, n_jobs=n_threads, external=external)
    if external is not None:
        external.check_columns(prepared.table.features)
        n_fit = int((y_train > 0).sum())  # only stage 2 is fitted
    reporter.step(f"fitting {settings.strategy} / {settings.estimator} on {n_fit:,} sessions")
    seconds = fit(model, prepared.X_train, y_train, n_threads)
    reporter.step("scoring the holdout")
    with threads.limit(n_threads):
        parts = model.predict_parts(prepared.X_test)
    pred, proba = parts["prediction"], parts.get("p_order")
    card = metrics.scorecard(cls, prepared.y_test, pred, prepared.baselines, proba_order=proba,
                             order_value=cls.order_value_of(parts))
    return Fitted(model=model, scorecard=card, pred_test=pred, proba_test=proba,
                  fit_seconds=seconds, threads=n_threads,
                  order_value_test=cls.order_value_of(parts))


# -- judging ---------------------------------------------------------------------------------

def audit(prepared: Prepared, reporter: Reporter = SILENT,
          judged_for: Sequence[str] = ()) -> list[leakage.LeakFinding]:
    """The leakage audit on the training rows: ONE warning per finding, before any fit, that
    already says what it means for the strategies ``judged_for`` (the scores rest on it, or it
    cannot inflate them) and the fix; :func:`judge` does not repeat it."""
    train = prepared.split.train
    findings = leakage.audit(prepared.table.X, prepared.table.ordered[train], rows=train)
    warn_findings(findings, judged_for, reporter)
    return findings


def warn_findings(findings: Sequence[leakage.LeakFinding], judged_for: Sequence[str],
                  reporter: Reporter) -> None:
    """One warning per finding, saying what it means for the strategies ``judged_for``."""
    classes = [strategies.get(name) for name in judged_for]
    inflated = [c.name for c in classes if c.leak_can_inflate()]
    spared = [c.name for c in classes if not c.leak_can_inflate()]
    for finding in findings:
        found = f"{finding.feature!r} {finding.detail}"
        if inflated:
            spare = (f" (not {', '.join(spared)}: constant on the converting sessions it is "
                     "scored on)" if spared else "")
            reporter.warn(f"target leak: {found}; the scores of {', '.join(inflated)} rest on "
                          f"it{spare}: re-run with --drop-feature {finding.feature}")
        elif spared:
            reporter.warn(f"possible target leak: {found}; it cannot inflate "
                          f"{', '.join(spared)} (constant on the converting sessions it fits "
                          "and is scored on): drop it for strategies scored on all sessions")
        else:
            reporter.warn(f"possible target leak: {found}")


def judge(fitted: Fitted, findings: Sequence[leakage.LeakFinding], targets: Any,
          reporter: Reporter = SILENT) -> leakage.Honesty:
    """Targets' verdicts and the honesty of ``fitted``'s scores (strategy-aware); a too-good
    score is warned about. The findings themselves were warned about once, by :func:`audit`,
    with what they mean for this strategy."""
    card = fitted.scorecard
    card.verdicts = targets.verdicts(card.metrics, level="all")
    honesty = leakage.judge(fitted.strategy, findings, card)
    if honesty.too_good:
        reporter.warn(honesty.too_good)
    return honesty


def evaluation_data(model_or_cls: Any, X: Any, y: np.ndarray,
                    pred: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
    """The rows a strategy is scored on: (X, y, predictions) restricted to them."""
    cls = model_or_cls if isinstance(model_or_cls, type) else strategies.of(model_or_cls)
    rows = cls.evaluation_rows(y)
    return X.iloc[rows], y[rows], pred[rows]


NATIVE = "native"
PERMUTATION = "permutation"
IMPORTANCE_METHODS = (NATIVE, PERMUTATION)


@dataclass
class Importance:
    """Importance per table column, and how it was measured (the unit differs)."""

    values: dict[str, float]
    method: str

    @property
    def unit(self) -> str:
        if self.method == NATIVE:
            return "share of the model's own importance (gain, impurity or |coefficient|)"
        return "RMSE increase when the column is shuffled ($)"

    @property
    def title(self) -> str:
        return "Model importance" if self.method == NATIVE else "Permutation importance"


def importance(model: RevenueModel, X: Any, y: np.ndarray, seed: int, n_threads: int = 1,
               method: str = PERMUTATION) -> Importance:
    """Per-column importance. ``native``: the fitted estimators' own (free; XGBoost's gain),
    falling back to permutation for estimators without one. ``permutation``: the RMSE increase
    when each column is shuffled, on at most IMPORTANCE_ROWS rows; works for every estimator
    and measures the whole model, at the cost of 3 x columns predictions."""
    if method not in IMPORTANCE_METHODS:
        from revcli.errors import ConfigError

        raise ConfigError(f"importance must be one of {', '.join(IMPORTANCE_METHODS)}, "
                          f"got {method!r}")
    if method == NATIVE:
        native = model.native_importance()
        if native is not None:
            return Importance(native, NATIVE)
    from sklearn.inspection import permutation_importance

    rows = np.arange(len(y))
    if len(rows) > IMPORTANCE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(len(y), IMPORTANCE_ROWS, replace=False))
    with threads.limit(n_threads):
        result = permutation_importance(model, X.iloc[rows], y[rows],
                                        scoring="neg_root_mean_squared_error", n_repeats=3,
                                        random_state=seed, n_jobs=1)
    return Importance({str(c): float(v) for c, v in
                       zip(X.columns, result.importances_mean, strict=True)}, PERMUTATION)
