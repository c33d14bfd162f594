from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from revcli.strategies._base import (
    ALL_ROWS,
    CONVERTING_ROWS,
    ORDERED_TARGET,
    REVENUE_TARGET,
    Stage,
    Strategy,
    check_fit_input,
    clipped,
    default_classifier,
    default_regressor,
    record_features,
)

COMBINE_MODES = ("expected", "threshold")
#: Prefix of the table columns a fitted-elsewhere classifier reads as they are: the featurizer
#: passes them beside its encoding (revcli.features.Featurizer ``passthrough``).
RAW = "raw:"


class ExternalClassifier(ClassifierMixin, BaseEstimator):
    """A binary classifier fitted elsewhere (the classification team's conversion model), used
    as two_stage's P(order) stage as it is: never refitted, fed the table's own ``columns``.
    ``source`` records where it came from (URI, version, run id, sha256)."""

    def __init__(self, model: Any = None, columns: tuple[str, ...] = (),
                 source: dict[str, Any] | None = None) -> None:
        self.model = model
        self.columns = columns
        self.source = source

    def __sklearn_clone__(self) -> ExternalClassifier:
        # Cloning must not reset the fitted model it wraps (clone would refit-from-scratch it).
        return ExternalClassifier(self.model, tuple(self.columns), dict(self.source or {}))

    def fit(self, X: Any, y: Any = None) -> ExternalClassifier:
        """Nothing is learned: it is fitted already."""
        self.classes_ = np.asarray(self.model.classes_)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.model.predict_proba(X[list(self.columns)]))

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.model.predict(X[list(self.columns)]))


def _is_external(classifier: Any) -> bool:
    return isinstance(classifier, ExternalClassifier)


def combine(p_order: np.ndarray, order_value: np.ndarray, mode: str = "expected",
            threshold: float = 0.5) -> np.ndarray:
    """The two-stage rule, its only copy: ``expected`` is P(order) x E[revenue | order] (the
    expected revenue); ``threshold`` is the order value where P(order) >= ``threshold``, else 0
    (the seed's hard variant)."""
    if mode == "threshold":
        return np.where(p_order >= threshold, order_value, 0.0)
    return p_order * order_value


class TwoStage(Strategy):
    """P(order) from a classifier times E[revenue | order] from a regressor of converters."""

    name = "two_stage"
    summary = "P(order) x E[revenue | order]"
    has_classifier = True
    option_names = ("combine", "threshold")

    def __init__(self, classifier: Any = None, regressor: Any = None,
                 combine: str = "expected", threshold: float = 0.5) -> None:
        self.classifier = classifier
        self.regressor = regressor
        self.combine = combine
        self.threshold = threshold

    @classmethod
    def from_estimator(cls, estimator: str, params: Mapping[str, Any], *, seed: int,
                       n_jobs: int, options: Mapping[str, Any]) -> TwoStage:
        from revcli import estimators
        from revcli.errors import ConfigError

        mode = options.get("combine", "expected")
        threshold = options.get("threshold", 0.5)
        if mode not in COMBINE_MODES:
            raise ConfigError(f"unknown --combine {mode!r}; choose one of "
                              f"{', '.join(COMBINE_MODES)}")
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"--threshold must be between 0 and 1, got {threshold}")
        regressor_params, classifier_params = estimators.split_params(params)
        return cls(
            classifier=estimators.make_classifier(estimator, classifier_params, seed=seed,
                                                  n_jobs=n_jobs),
            regressor=estimators.make_regressor(estimator, regressor_params, seed=seed,
                                                n_jobs=n_jobs),
            combine=mode, threshold=threshold)

    def fit(self, X: Any, y: Any) -> TwoStage:
        if self.combine not in COMBINE_MODES:
            raise ValueError(f"combine must be one of {COMBINE_MODES}, got {self.combine!r}")
        X, y = check_fit_input(self, X, y)
        ordered = (y > 0).astype(np.int64)
        if ordered.min() == ordered.max():
            raise ValueError("TwoStage needs both converting and non-converting rows "
                             "(revenue > 0 and == 0); got 1 class")
        clf = self.classifier if self.classifier is not None else default_classifier()
        reg = self.regressor if self.regressor is not None else default_regressor()
        for_classifier, for_regressor = self._inputs(X)
        self.classifier_ = clone(clf).fit(for_classifier, ordered)
        if _is_external(clf) and 1 not in list(self.classifier_.classes_):
            raise ValueError(f"the classifier's classes are {list(self.classifier_.classes_)}, "
                             "not a binary order / no order (0/1)")
        self.regressor_ = clone(reg).fit(for_regressor[ordered == 1], y[ordered == 1])
        record_features(self, X)
        return self

    def stages(self) -> list[Stage]:
        clf = self.classifier if self.classifier is not None else default_classifier()
        reg = self.regressor if self.regressor is not None else default_regressor()
        return [Stage("classifier", clf, ALL_ROWS, ORDERED_TARGET),
                Stage("regressor", reg, CONVERTING_ROWS, REVENUE_TARGET)]

    def _inputs(self, X: Any) -> tuple[Any, Any]:
        """(the classifier's input, the regressor's): a fitted-elsewhere classifier reads the
        table's own columns (passed as ``raw:<column>``), the regressor revcli's encoding."""
        raw = [c for c in getattr(X, "columns", []) if str(c).startswith(RAW)]
        if not raw:
            return X, X
        rest = X.drop(columns=raw)
        original = X[raw].rename(columns=lambda c: str(c).removeprefix(RAW))
        clf = getattr(self, "classifier_", self.classifier)
        return (original if _is_external(clf) else rest), rest

    def predict_proba_order(self, X: Any) -> np.ndarray:
        """P(order) per session."""
        check_is_fitted(self, "classifier_")
        proba = self.classifier_.predict_proba(self._inputs(X)[0])
        classes = list(self.classifier_.classes_)
        return np.asarray(proba[:, classes.index(1)], dtype=np.float64)

    def predict_order_value(self, X: Any) -> np.ndarray:
        """E[revenue | order] per session, in dollars."""
        check_is_fitted(self, "regressor_")
        return clipped(self.regressor_.predict(self._inputs(X)[1]))

    def order_probability(self, X: Any) -> np.ndarray:
        return self.predict_proba_order(X)

    def predict_parts(self, X: Any) -> dict[str, np.ndarray]:
        p, value = self.predict_proba_order(X), self.predict_order_value(X)
        return {"prediction": combine(p, value, self.combine, self.threshold), "p_order": p,
                "order_value": value}

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_parts(X)["prediction"]

    def output_columns(self) -> list[str]:
        return ["prediction", "p_order", "order_value"]

    def native_importance(self) -> np.ndarray | None:
        """The mean of the two stages' importances: expected revenue is P(order) x order value,
        and either factor moves it as much as the other."""
        from revcli import estimators

        check_is_fitted(self, "regressor_")
        if _is_external(self.classifier_):  # its inputs are not revcli's encoded columns
            return estimators.native_importance(self.regressor_)
        parts = [estimators.native_importance(self.classifier_),
                 estimators.native_importance(self.regressor_)]
        if any(p is None for p in parts):
            return None
        return (parts[0] + parts[1]) / 2

    def meaning(self) -> str:
        if self.combine == "threshold":
            return (f"order value where P(order) >= {self.threshold:g}, else 0 ($); "
                    "p_order and order_value beside it")
        return "expected revenue of the session ($): p_order x order_value"
