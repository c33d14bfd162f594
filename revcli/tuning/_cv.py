"""The honest objective: K-fold cross-validation on the training split only.

The folds are drawn from ``split.train`` (stratified on is_ordered), so no trial ever fits on, or is
scored on, a holdout row; the holdout is scored once, by the refit best model, after the search.
Each fold is scored on the rows its strategy is judged on (``converting_only``: the fold's
converters; ``all`` / ``two_stage``: every session of the fold), and every fold score is reported
to the pruner so a trial that is clearly worse than the median stops early.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from revcli import metrics, pipeline, strategies
from revcli.errors import ConfigError, DataError

if TYPE_CHECKING:
    from revcli.pipeline import Prepared
    from revcli.settings import Settings
    from revcli.tuning._space import SearchSpace


def metric(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """The function of a metric `revcli tune` can minimise (see revcli.metrics)."""
    fn = metrics.tunable(name).fn
    assert fn is not None
    return fn


@dataclass(frozen=True)
class Fold:
    """Row positions (in the table) a fold fits on and scores on."""

    fit: np.ndarray
    score: np.ndarray


def make_folds(prepared: Prepared, strategy: str, n_folds: int, seed: int) -> list[Fold]:
    """K folds of the training split, in table positions: stratified on is_ordered when both
    classes have at least ``n_folds`` sessions, else plain shuffled folds (a table of converters
    only, where stratifying is impossible and pointless). Each fold fits on the rows its
    strategy learns from and is scored on the rows it is judged on."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if n_folds < 2:
        raise ConfigError(f"cv_folds must be at least 2, got {n_folds}")
    cls = strategies.get(strategy)
    train = prepared.split.train
    if n_folds > len(train):
        raise DataError(f"cannot make {n_folds} folds of a training split of {len(train)} rows; "
                        "lower --folds")
    ordered = prepared.table.ordered[train].astype(bool)
    y = prepared.table.y
    if prepared.split.time_column is not None and prepared.split.kind == "time":
        return _forward_folds(prepared, cls, n_folds)
    smallest = int(min(ordered.sum(), (~ordered).sum()))
    if 0 < smallest < n_folds:
        raise DataError(f"cannot make {n_folds} stratified folds: the training split has "
                        f"only {smallest} sessions of its rarer class; lower --folds")
    # A table of one class (converters only): nothing to stratify on.
    splitter: Any = (StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
                     if smallest else KFold(n_splits=n_folds, shuffle=True, random_state=seed))
    folds = []
    for fit_idx, val_idx in splitter.split(np.zeros(len(train)), ordered):
        fit, val = train[fit_idx], train[val_idx]
        # The strategy fits its own rows anyway; handing it only those is the same model for a
        # fraction of the copying.
        mask = cls.fit_mask(y[fit])
        if mask is not None:
            fit = fit[mask]
        val = val[cls.evaluation_rows(y[val])]
        if not len(fit) or not len(val):
            raise DataError(f"a fold of the training split has no rows {cls.name} can fit on or "
                            "be scored on; lower --folds or add data")
        folds.append(Fold(fit=fit, score=val))
    return folds


def _forward_folds(prepared: Prepared, cls: Any, n_folds: int) -> list[Fold]:
    """A time split's folds look like its holdout: forward windows of the training rows
    (revcli.backtest.windows, the one forward splitter), each fitting on everything before it
    with the holdout's ``--gap`` left out, each about the holdout's size (together at most
    half the training rows), the last ending where the training rows end -- as near the end
    as the holdout is."""
    from revcli import backtest

    split = prepared.split
    column = str(split.time_column)
    if column in prepared.table.X.columns:
        times = prepared.table.X[column]
    else:
        from revcli.data import read_parquet

        times = read_parquet(prepared.dataset.path, columns=[column])[column]
    train = np.sort(split.train)
    share = min(0.5, n_folds * len(split.test) / max(len(train), 1))
    y = prepared.table.y
    folds = []
    for made in backtest.windows(times.iloc[train].reset_index(drop=True),
                                 prepared.table.ordered[train], n_folds, share, column,
                                 split.gap):
        fit, val = train[made.train], train[made.test]
        mask = cls.fit_mask(y[fit])
        if mask is not None:
            fit = fit[mask]
        val = val[cls.evaluation_rows(y[val])]
        if not len(fit) or not len(val):
            raise DataError(f"a forward fold of the training split has no rows {cls.name} can "
                            "fit on or be scored on; lower --folds or add data")
        folds.append(Fold(fit=fit, score=val))
    return folds


def never() -> bool:
    """``aborted`` of an objective that nothing aborts (one that runs on a cluster's worker)."""
    return False


@dataclass
class _FoldData:
    X_fit: Any
    y_fit: np.ndarray
    X_score: Any
    y_score: np.ndarray


class Objective:
    """``objective(trial) -> mean fold score``: suggest, fit each fold, report, maybe prune.

    ``fixed`` holds per-estimator hyperparameters from the config file (``[params.<name>]``) that
    every trial starts from; the space's suggestions override them. ``on_start(trial)`` runs
    first in every trial (the caller records which process runs it). Every fold fit goes
    through :func:`revcli.pipeline.fit`, the one thread policy.
    """

    def __init__(self, prepared: Prepared, settings: Settings, space: SearchSpace,
                 folds: list[Fold], metric_name: str, *, threads: int,
                 fixed: Mapping[str, Mapping[str, Any]] | None = None,
                 on_start: Callable[[Any], None] | None = None,
                 aborted: Callable[[], bool] = never) -> None:
        self.settings = settings
        self.space = space
        self.strategy = space.strategy
        self.metric_name = metric_name
        self.score = metric(metric_name)
        self.threads = threads
        self.fixed = {k: dict(v) for k, v in (fixed or {}).items()}
        self.on_start = on_start
        self.aborted = aborted
        X, y = prepared.table.X, prepared.table.y
        # Sliced once: every trial fits the same folds.
        self.folds = [_FoldData(X.iloc[f.fit], y[f.fit], X.iloc[f.score], y[f.score])
                      for f in folds]

    def params_for(self, estimator: str, suggested: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.fixed.get(estimator, {}), **suggested}

    def __call__(self, trial: Any) -> float:
        import optuna

        if self.on_start is not None:
            self.on_start(trial)
        estimator, suggested = self.space.suggest(trial)
        params = self.params_for(estimator, suggested)
        scores: list[float] = []
        try:
            for k, fold in enumerate(self.folds):
                if self.aborted():
                    raise RuntimeError("aborted by a second Ctrl-C")
                model = pipeline.build(self.settings, params, n_jobs=self.threads,
                                       strategy=self.strategy, estimator=estimator)
                pipeline.fit(model, fold.X_fit, fold.y_fit, self.threads)
                score = self.score(fold.y_score, model.predict(fold.X_score))
                if not math.isfinite(score):
                    raise ValueError(f"fold {k} scored {score}")
                scores.append(score)
                trial.report(score, k)
                if k < len(self.folds) - 1 and trial.should_prune():
                    raise optuna.TrialPruned(f"fold {k} {self.metric_name} {score:.4g} is worse "
                                             "than the median")
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            from revcli.errors import first_line

            trial.set_user_attr("error", f"{type(exc).__name__}: {first_line(exc)}"[:500])
            raise
        return float(np.mean(scores))
