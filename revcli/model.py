"""The fitted thing revcli trains, saves, logs and loads: a table's columns -> a strategy.

:class:`RevenueModel` is a scikit-learn meta-estimator of two parts: the
:class:`~revcli.features.Featurizer` that turns the table's columns (numbers, flags, categories,
timestamps, gaps) into what the estimator learns from, and the strategy (revcli.strategies) that
turns that into a revenue prediction. Both are fitted together, so ``predict`` applies exactly
the encoding training learned, and the model accepts a table as revcli reads it -- which is also
what MLflow's pyfunc flavour hands it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from revcli.features import Featurizer

if TYPE_CHECKING:
    from revcli.strategies import Strategy


class RevenueModel(RegressorMixin, BaseEstimator):
    """``featurizer`` then ``strategy``; everything a strategy says about itself is asked of
    the strategy (``strategy_class``)."""

    def __init__(self, featurizer: Featurizer | None = None, strategy: Any = None) -> None:
        self.featurizer = featurizer
        self.strategy = strategy

    @property
    def strategy_class(self) -> type[Strategy]:
        return type(self.strategy_ if hasattr(self, "strategy_") else self.strategy)

    def fit(self, X: Any, y: Any) -> RevenueModel:
        self.featurizer_ = clone(self.featurizer if self.featurizer is not None
                                 else Featurizer()).fit(X)
        # The encoding is learned from every row; only the rows the strategy fits on are
        # encoded (the converters, for a strategy of order values): the same model, without
        # a float32 copy of the sessions it would drop anyway.
        mask = type(self.strategy).fit_mask(np.asarray(y))
        if mask is not None and not mask.all():
            X, y = X[mask], np.asarray(y)[mask]
        self.strategy_ = clone(self.strategy).fit(self.featurizer_.transform(X), y)
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def fitted_from(self, featurizer: Featurizer, strategy: Strategy,
                    columns: list[str]) -> RevenueModel:
        """This model, fitted elsewhere (a cluster: revcli.engines): the fitted encoding and
        the fitted strategy, on the table's feature ``columns``."""
        self.featurizer_ = featurizer
        self.strategy_ = strategy
        self.feature_names_in_ = np.asarray([str(c) for c in columns], dtype=object)
        self.n_features_in_ = len(columns)
        return self

    def encode(self, X: Any) -> Any:
        """The table's columns as the strategy sees them."""
        check_is_fitted(self, "featurizer_")
        return self.featurizer_.transform(X)

    def predict(self, X: Any) -> np.ndarray:
        return self.strategy_.predict(self.encode(X))

    def predict_parts(self, X: Any) -> dict[str, np.ndarray]:
        return self.strategy_.predict_parts(self.encode(X))

    def order_probability(self, X: Any) -> np.ndarray | None:
        return self.strategy_.order_probability(self.encode(X))

    def native_importance(self) -> dict[str, float] | None:
        """The estimators' own importance per table column (sums to 1), or None when the
        estimator has none (revcli.estimators.native_importance)."""
        check_is_fitted(self, "strategy_")
        values = self.strategy_.native_importance()
        return None if values is None else self.featurizer_.by_source(values)

    def output_columns(self) -> list[str]:
        return (self.strategy_ if hasattr(self, "strategy_") else self.strategy).output_columns()

    def meaning(self) -> str:
        return (self.strategy_ if hasattr(self, "strategy_") else self.strategy).meaning()

    def options(self) -> dict[str, Any]:
        return (self.strategy_ if hasattr(self, "strategy_") else self.strategy).options()
