"""A regressor of log1p(revenue) whose predictions are the mean in dollars, not the geometric mean.

Fitting on log1p(y) and taking expm1 of the prediction estimates exp(E[log(1+y)]) - 1, the
geometric mean, which sits far below the mean on a skewed target: on all sessions (93 % zeros) a
plain back-transform predicted 8 % of the actual revenue. Duan's smearing estimator corrects it:
E[1 + y | x] ~= exp(f(x)) * mean(exp(residuals)), with the residuals of the training fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted


class LogTargetRegressor(RegressorMixin, BaseEstimator):
    """``regressor`` fitted on log1p(y); predictions exp(f(x)) x smearing factor - 1, clipped at
    0 (``smearing=False``: the plain, biased back-transform)."""

    def __init__(self, regressor: Any = None, smearing: bool = True) -> None:
        self.regressor = regressor
        self.smearing = smearing

    def fit(self, X: Any, y: Any) -> LogTargetRegressor:
        y = np.asarray(y, dtype=np.float64)
        if (y < 0).any():
            raise ValueError("LogTargetRegressor needs y >= 0 (log1p of a revenue)")
        target = np.log1p(y)
        self.regressor_ = clone(self.regressor).fit(X, target)
        residuals = target - np.asarray(self.regressor_.predict(X), dtype=np.float64)
        self.smearing_factor_ = float(np.mean(np.exp(residuals))) if self.smearing else 1.0
        if hasattr(self.regressor_, "n_features_in_"):
            self.n_features_in_ = self.regressor_.n_features_in_
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "regressor_")
        log_pred = np.asarray(self.regressor_.predict(X), dtype=np.float64)
        return np.clip(np.exp(log_pred) * self.smearing_factor_ - 1.0, 0.0, None)
