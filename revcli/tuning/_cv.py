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

from revcli import metrics, strategies
from revcli.errors import ConfigError, DataError

if TYPE_CHECKING:
    from revcli.train import Prepared
    from revcli.tuning._space import SearchSpace

# Tweedie deviance with power 1.5: a compound Poisson-gamma, the usual model of a target that is
# exactly 0 most of the time and a positive amount otherwise. Predictions are clipped to at least
# TWEEDIE_FLOOR dollars because the deviance is undefined at 0.
TWEEDIE_POWER = 1.5
TWEEDIE_FLOOR = 1e-6


def _tweedie_deviance(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import mean_tweedie_deviance

    return float(mean_tweedie_deviance(y, np.clip(p, TWEEDIE_FLOOR, None), power=TWEEDIE_POWER))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "rmse": metrics.rmse,
    "mae": metrics.mae,
    "tweedie_deviance": _tweedie_deviance,
}


def metric(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    try:
        return METRICS[name]
    except KeyError:
        raise ConfigError(f"unknown tune metric {name!r}; choose one of "
                          f"{', '.join(METRICS)}") from None


@dataclass(frozen=True)
class Fold:
    """Row positions (in the table) a fold fits on and scores on."""

    fit: np.ndarray
    score: np.ndarray


def make_folds(prepared: Prepared, strategy: str, n_folds: int, seed: int) -> list[Fold]:
    """Stratified K folds of the training split, in table positions."""
    from sklearn.model_selection import StratifiedKFold

    if n_folds < 2:
        raise ConfigError(f"cv_folds must be at least 2, got {n_folds}")
    train = prepared.split.train
    ordered = prepared.table.ordered[train].astype(bool)
    smallest = int(min(ordered.sum(), (~ordered).sum()))
    if n_folds > smallest:
        raise DataError(f"cannot make {n_folds} stratified folds: the training split has only "
                        f"{smallest} sessions of its rarer class; lower --folds")
    y = prepared.table.y
    folds = []
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for fit_idx, val_idx in splitter.split(np.zeros(len(train)), ordered):
        fit, val = train[fit_idx], train[val_idx]
        if strategies.scores_converters_only(strategy):
            # ConvertingOnly.fit keeps the converters itself; handing it only those rows is the
            # same model for a fraction of the copying.
            fit = fit[y[fit] > 0]
            val = val[y[val] > 0]
        folds.append(Fold(fit=fit, score=val))
    return folds


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
    first in every trial (the caller records which process runs it).
    """

    def __init__(self, prepared: Prepared, space: SearchSpace, folds: list[Fold],
                 metric_name: str, *, seed: int, threads: int, combine: str, threshold: float,
                 fixed: Mapping[str, Mapping[str, Any]] | None = None,
                 on_start: Callable[[Any], None] | None = None) -> None:
        self.space = space
        self.strategy = space.strategy
        self.metric_name = metric_name
        self.score = metric(metric_name)
        self.seed = seed
        self.threads = threads
        self.combine = combine
        self.threshold = threshold
        self.fixed = {k: dict(v) for k, v in (fixed or {}).items()}
        self.on_start = on_start
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
                model = strategies.build(self.strategy, estimator, params, seed=self.seed,
                                         n_jobs=self.threads, combine=self.combine,
                                         threshold=self.threshold)
                model.fit(fold.X_fit, fold.y_fit)
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
            text = str(exc).strip().splitlines()
            trial.set_user_attr("error", f"{type(exc).__name__}: {text[0] if text else ''}"[:500])
            raise
        return float(np.mean(scores))
