"""Strategies for the zeros: three ways to turn a regressor into a session-revenue model.

93 % of sessions earn $0. Each strategy is a scikit-learn meta-estimator (``__init__`` stores
parameters, ``fit`` clones and fits the sub-estimators, fitted attributes end in ``_``), so they
clone, pickle, tune and cross-validate like any other estimator. All predictions are clipped at
$0, as the seed pipeline did at evaluation time.

- ``all``: one regressor on every session.
- ``converting_only``: a regressor of the order value, fitted on converting sessions only; its
  prediction is E[revenue | order] and it is scored on converters (the seed pipeline's setup).
- ``two_stage``: a classifier of P(order) times a regressor of E[revenue | order]. ``combine=
  "expected"`` returns the product (the expected revenue); ``"threshold"`` returns the order value
  where P(order) >= ``threshold`` and 0 elsewhere (the seed's hard variant).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

from revcli import estimators
from revcli.errors import ConfigError

STRATEGIES: dict[str, str] = {
    "all": "one regressor on every session",
    "converting_only": "order value of converting sessions, scored on converters",
    "two_stage": "P(order) x E[revenue | order]",
}
COMBINE_MODES = ("expected", "threshold")


def _record_features(model: BaseEstimator, X: Any) -> None:
    columns = getattr(X, "columns", None)
    if columns is not None:
        model.feature_names_in_ = np.asarray([str(c) for c in columns], dtype=object)
    model.n_features_in_ = X.shape[1]


def _check_fit_input(model: BaseEstimator, X: Any, y: Any) -> tuple[Any, np.ndarray]:
    """Validate fit input the scikit-learn way; DataFrames pass through so sub-estimators keep
    their column names. NaN is left to the sub-estimators (XGBoost and HGB handle it)."""
    if y is None:
        raise ValueError(f"{type(model).__name__} requires y to be passed, but the target y is "
                         "None")
    if not hasattr(X, "iloc"):
        X = check_array(X, accept_sparse=False, ensure_all_finite="allow-nan",
                        estimator=model)
    y = column_or_1d(y, warn=True).astype(np.float64)
    if not np.isfinite(y).all():
        raise ValueError("Input y contains NaN or infinity.")
    if len(y) != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} samples but y has {len(y)}")
    return X, y


def _default_regressor() -> Any:
    return estimators.make_regressor("xgb")


class _OneRegressor(RegressorMixin, BaseEstimator):
    """One regressor fitted on the rows :meth:`_fit_rows` keeps."""

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def _fit_rows(self, y: np.ndarray) -> np.ndarray | None:
        """Boolean mask of the rows to fit on; None means all of them."""
        return None

    def fit(self, X: Any, y: Any) -> Any:
        X, y = _check_fit_input(self, X, y)
        mask = self._fit_rows(y)
        base = self.estimator if self.estimator is not None else _default_regressor()
        if mask is None:
            self.estimator_ = clone(base).fit(X, y)
        else:
            self.estimator_ = clone(base).fit(X[mask], y[mask])
        _record_features(self, X)
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return np.clip(np.asarray(self.estimator_.predict(X), dtype=np.float64), 0.0, None)


class AllSessions(_OneRegressor):
    """One regressor fitted on every session, zeros included."""


class ConvertingOnly(_OneRegressor):
    """A regressor of the order value, fitted on the rows with revenue > 0.

    ``fit`` accepts all sessions and keeps the converters itself, so it can be cross-validated on
    the same folds as the other strategies.
    """

    def _fit_rows(self, y: np.ndarray) -> np.ndarray:
        mask = y > 0
        if not mask.any():
            raise ValueError("ConvertingOnly needs at least one row with revenue > 0")
        return mask


class TwoStage(RegressorMixin, BaseEstimator):
    """P(order) from a classifier times E[revenue | order] from a regressor."""

    def __init__(self, classifier: Any = None, regressor: Any = None,
                 combine: str = "expected", threshold: float = 0.5) -> None:
        self.classifier = classifier
        self.regressor = regressor
        self.combine = combine
        self.threshold = threshold

    def fit(self, X: Any, y: Any) -> TwoStage:
        if self.combine not in COMBINE_MODES:
            raise ValueError(f"combine must be one of {COMBINE_MODES}, got {self.combine!r}")
        X, y = _check_fit_input(self, X, y)
        ordered = (y > 0).astype(np.int64)
        if ordered.min() == ordered.max():
            raise ValueError("TwoStage needs both converting and non-converting rows "
                             "(revenue > 0 and == 0); got 1 class")
        clf = self.classifier if self.classifier is not None else estimators.make_classifier("xgb")
        reg = self.regressor if self.regressor is not None else _default_regressor()
        self.classifier_ = clone(clf).fit(X, ordered)
        self.regressor_ = clone(reg).fit(X[ordered == 1], y[ordered == 1])
        _record_features(self, X)
        return self

    def predict_proba_order(self, X: Any) -> np.ndarray:
        """P(order) per session."""
        check_is_fitted(self, "classifier_")
        proba = self.classifier_.predict_proba(X)
        classes = list(self.classifier_.classes_)
        return np.asarray(proba[:, classes.index(1)], dtype=np.float64)

    def predict_order_value(self, X: Any) -> np.ndarray:
        """E[revenue | order] per session, in dollars."""
        check_is_fitted(self, "regressor_")
        return np.clip(np.asarray(self.regressor_.predict(X), dtype=np.float64), 0.0, None)

    def predict(self, X: Any) -> np.ndarray:
        p = self.predict_proba_order(X)
        value = self.predict_order_value(X)
        if self.combine == "threshold":
            return np.where(p >= self.threshold, value, 0.0)
        return p * value


def scores_converters_only(strategy: str) -> bool:
    """Whether a strategy is evaluated on converting sessions only (as the seed did)."""
    return strategy == "converting_only"


def build(strategy: str, estimator: str, params: dict[str, Any] | None = None, seed: int = 42,
          n_jobs: int = -1, combine: str = "expected", threshold: float = 0.5) -> Any:
    """The unfitted strategy estimator for names from the command line."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if combine not in COMBINE_MODES:
        raise ConfigError(f"unknown --combine {combine!r}; choose one of "
                          f"{', '.join(COMBINE_MODES)}")
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"--threshold must be between 0 and 1, got {threshold}")
    reg_params, clf_params = estimators.split_params(params or {})
    regressor = estimators.make_regressor(estimator, reg_params, seed=seed, n_jobs=n_jobs)
    if strategy == "two_stage":
        classifier = estimators.make_classifier(estimator, clf_params, seed=seed, n_jobs=n_jobs)
        return TwoStage(classifier=classifier, regressor=regressor, combine=combine,
                        threshold=threshold)
    if clf_params:
        raise ConfigError(f"classifier__ parameters apply to two_stage only, not {strategy!r}")
    if strategy == "all":
        return AllSessions(estimator=regressor)
    return ConvertingOnly(estimator=regressor)
