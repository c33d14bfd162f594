"""The base of every strategy: a scikit-learn meta-estimator that also says what it means.

A strategy owns every decision that depends on which one it is, so nothing else in revcli asks for
its name: which rows it fits on and is scored on, its baseline, what its prediction means (what
``revcli predict`` writes), whether a leaking feature can inflate its scores, the parts of its
prediction, and how it is built from an estimator name. It is a scikit-learn estimator
(``__init__`` stores parameters, ``fit`` clones and fits the sub-estimators, fitted attributes end
in ``_``), so it clones, pickles, tunes and cross-validates like any other. Predictions are
clipped at $0, as the seed pipeline did at evaluation time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

from revcli.strategies._population import CONVERTERS, ORDER_VALUE, REVENUE, SESSIONS

if TYPE_CHECKING:
    from revcli.metrics import Baselines


def record_features(model: BaseEstimator, X: Any) -> None:
    columns = getattr(X, "columns", None)
    if columns is not None:
        model.feature_names_in_ = np.asarray([str(c) for c in columns], dtype=object)
    model.n_features_in_ = X.shape[1]


def check_fit_input(model: BaseEstimator, X: Any, y: Any) -> tuple[Any, np.ndarray]:
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


def clipped(values: Any) -> np.ndarray:
    return np.clip(np.asarray(values, dtype=np.float64), 0.0, None)


class Strategy(RegressorMixin, BaseEstimator):
    """What every strategy is and says about itself. Subclasses set the class attributes and
    implement ``fit``/``predict`` (and ``from_estimator`` when their stages differ)."""

    #: The name users type (``--strategy``); unique in the registry.
    name: ClassVar[str] = ""
    #: One line for help texts.
    summary: ClassVar[str] = ""
    #: The rows it is scored on: every session (SESSIONS) or the converting ones (CONVERTERS).
    scored_on: ClassVar[str] = SESSIONS
    #: What its prediction estimates: REVENUE (of a session) or ORDER_VALUE (if it orders).
    predicts: ClassVar[str] = REVENUE
    #: Whether it has a classifier stage (takes ``classifier__`` parameters).
    has_classifier: ClassVar[bool] = False
    #: Settings it takes beside its stages (e.g. two_stage's combine rule).
    option_names: ClassVar[tuple[str, ...]] = ()

    # -- populations -------------------------------------------------------------------------

    @classmethod
    def fit_mask(cls, y: np.ndarray) -> np.ndarray | None:
        """Rows ``fit`` learns from (None: all); ``fit`` applies it itself, callers may use it
        to hand over fewer rows."""
        return np.asarray(y) > 0 if cls.scored_on == CONVERTERS else None

    @classmethod
    def evaluation_rows(cls, y: np.ndarray) -> np.ndarray:
        """Positions of the rows it is scored on."""
        y = np.asarray(y)
        return np.flatnonzero(y > 0) if cls.scored_on == CONVERTERS else np.arange(len(y))

    @classmethod
    def population(cls, where: str = "test") -> str:
        """Label of the rows it is scored on, e.g. 'test converters', 'all test sessions'."""
        return f"{where} converters" if cls.scored_on == CONVERTERS else f"all {where} sessions"

    @classmethod
    def baseline_of(cls, baselines: Baselines) -> float:
        """Its baseline among the train means: the mean order value when it is scored on
        converters, else the mean revenue of a session."""
        return baselines.order_value if cls.scored_on == CONVERTERS else baselines.revenue

    @classmethod
    def baseline(cls, y_train: np.ndarray) -> float:
        """The train mean of its target on its own population: the baseline every score sits
        beside."""
        from revcli.metrics import Baselines

        return cls.baseline_of(Baselines.of(y_train))

    @classmethod
    def check_data(cls, y_train: np.ndarray) -> None:
        """Refuse (DataError) a training split this strategy cannot learn from, before any
        fit: it needs converting sessions, and a classifier stage needs sessions without an
        order too."""
        from revcli.errors import DataError

        y_train = np.asarray(y_train)
        ordered = int((y_train > 0).sum())
        if ordered == 0:
            raise DataError(f"{cls.name} needs converting sessions (revenue > 0) in the "
                            "training split, and it has none")
        if cls.has_classifier and ordered == len(y_train):
            raise DataError(f"{cls.name} needs sessions with and without an order to learn "
                            "P(order), and every training session ordered; use a strategy "
                            "without a classifier stage (e.g. converting_only) on this table")

    @classmethod
    def leak_can_inflate(cls) -> bool:
        """Whether a feature that marks the order (engagement_depth == 7) can inflate its scores:
        not when it fits and is scored on converters only, where such a feature is constant."""
        return cls.scored_on != CONVERTERS

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def from_estimator(cls, estimator: str, params: Mapping[str, Any], *, seed: int,
                       n_jobs: int, options: Mapping[str, Any]) -> Strategy:
        """This strategy around estimator ``estimator`` (see revcli.estimators) with
        hyperparameters ``params``; ``options`` holds every strategy option setting, of which it
        takes ``option_names``. The default: one regressor, the ``estimator`` parameter."""
        from revcli import estimators
        from revcli.errors import ConfigError

        regressor_params, classifier_params = estimators.split_params(params)
        if classifier_params:
            raise ConfigError(f"classifier__ parameters apply only to strategies with a "
                              f"classifier stage, not {cls.name!r}")
        regressor = estimators.make_regressor(estimator, regressor_params, seed=seed,
                                              n_jobs=n_jobs)
        return cls(estimator=regressor, **{k: options[k] for k in cls.option_names
                                           if k in options})

    def options(self) -> dict[str, Any]:
        """Its option settings (recorded with every run it makes)."""
        return {name: getattr(self, name) for name in self.option_names}

    # -- predictions -------------------------------------------------------------------------

    def meaning(self) -> str:
        """What ``prediction`` means, in words (written into predict's output)."""
        if self.predicts == ORDER_VALUE:
            return ("order value if the session orders ($), E[revenue | order]; not an expected "
                    "revenue")
        return "expected revenue of the session ($)"

    def output_columns(self) -> list[str]:
        """Names of :meth:`predict_parts`, ``prediction`` first."""
        return ["prediction"]

    def predict_parts(self, X: Any) -> dict[str, np.ndarray]:
        """The prediction and, for strategies with stages, each stage's part; every stage runs
        once."""
        return {"prediction": self.predict(X)}

    def order_probability(self, X: Any) -> np.ndarray | None:
        """P(order) per session when it has a classifier stage, else None."""
        return None

    @classmethod
    def order_value_of(cls, parts: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """The order value it predicts for a session that converts, from
        :meth:`predict_parts`: what every ``conv_*`` score is computed from, so converter
        scores mean one thing for every strategy. A strategy of order values: its prediction;
        one with an order-value stage: that stage (``order_value``, E[revenue | order]); one
        without (``all``): None -- it has no converter scores, never P(order) x value scored
        against the order value."""
        if cls.predicts == ORDER_VALUE:
            return np.asarray(parts["prediction"], dtype=np.float64)
        value = parts.get("order_value")
        return None if value is None else np.asarray(value, dtype=np.float64)

    def native_importance(self) -> np.ndarray | None:
        """The fitted estimators' own importance per encoded column (sums to 1), or None when
        an estimator has none (revcli.estimators.native_importance)."""
        return None

    # -- fitted elsewhere (a cluster) ----------------------------------------------------------

    def stages(self) -> list[Stage]:
        """The estimators ``fit`` fits, each with the rows and the target it fits on: what an
        engine that fits them itself (revcli.engines) needs to know of this strategy."""
        raise NotImplementedError

    def with_stages(self, fitted: Mapping[str, Any], X: Any) -> Strategy:
        """This strategy, fitted: ``fitted`` holds each stage's fitted estimator by name (as
        :meth:`stages` names them), ``X`` the encoded columns (a frame with no rows will do)."""
        for name, estimator in fitted.items():
            setattr(self, f"{name}_", estimator)
        record_features(self, X)
        return self


#: Which rows a stage fits on, and its target (a revenue, or whether the session ordered).
ALL_ROWS, CONVERTING_ROWS = "all", "converters"
REVENUE_TARGET, ORDERED_TARGET = "revenue", "ordered"


@dataclass(frozen=True)
class Stage:
    name: str          # the fitted attribute is ``<name>_``
    estimator: Any     # unfitted
    rows: str          # ALL_ROWS or CONVERTING_ROWS
    target: str        # REVENUE_TARGET or ORDERED_TARGET


class OneRegressor(Strategy):
    """One regressor, fitted on the rows :meth:`fit_mask` keeps."""

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any) -> OneRegressor:
        X, y = check_fit_input(self, X, y)
        mask = self.fit_mask(y)
        base = self.estimator if self.estimator is not None else default_regressor()
        if mask is None:
            self.estimator_ = clone(base).fit(X, y)
        else:
            if not mask.any():
                raise ValueError(f"{type(self).__name__} needs at least one row with "
                                 "revenue > 0")
            self.estimator_ = clone(base).fit(X[mask], y[mask])
        record_features(self, X)
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return clipped(self.estimator_.predict(X))

    def stages(self) -> list[Stage]:
        base = self.estimator if self.estimator is not None else default_regressor()
        rows = ALL_ROWS if self.fit_mask(np.zeros(1)) is None else CONVERTING_ROWS
        return [Stage("estimator", base, rows, REVENUE_TARGET)]

    def native_importance(self) -> np.ndarray | None:
        from revcli import estimators

        check_is_fitted(self, "estimator_")
        return estimators.native_importance(self.estimator_)


def default_regressor() -> Any:
    from revcli import estimators

    return estimators.make_regressor(estimators.DEFAULT)


def default_classifier() -> Any:
    from revcli import estimators

    return estimators.make_classifier(estimators.DEFAULT)
