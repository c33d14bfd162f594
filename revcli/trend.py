"""Trees boosted from a linear trend in time: a default that carries a trend forward.

Trees cannot extrapolate: forward in time, a model of a rising conversion or basket size
predicts the last level it saw in training (on the demo's drifting table the default xgb
predicted ~88-95 % of a later window's revenue), while a linear model's month index carries the
trend on, and over-shoots where the trend bends (the real orders: ridge predicted 108 %).

:class:`TrendXGBRegressor` and :class:`TrendXGBClassifier` are XGBoost's own estimators that
first fit a linear model of the target on the table's month index (``<timestamp>__month``, the
calendar feature revcli.features makes) and then boost the trees *from* it, as XGBoost's
``base_margin`` (for the classifier: the logistic model's logit). Inside the training window the
trees fit what the line misses -- including its bend near the end, which the last leaves carry
forward as a level -- and beyond it the line carries the slope on. The line is part of the fitted
estimator, so ``predict``, MLflow's pyfunc and every refit apply it; without a month column
(no timestamp in the table) they are plain XGBoost.

The line is kept only where it carries forward inside the training window
(:func:`carries_forward`: fitted on its earliest 80 %, its slope must predict the latest 20 %'s
total better than their recent level, which is what trees alone would carry); where the trend bends
or steps (order values by product era), the trees stay as they were. ``trend_checked_`` records
the verdict.

Why a line in the month index only, fitted with a ridge penalty: it is the one direction
trees cannot follow past the training window; every other feature (source, device, hour) keeps
its level in the future and the trees handle it, interactions included.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xgboost import XGBClassifier, XGBRegressor

# The encoded column that holds a timestamp's month index (revcli.features.calendar).
MONTH_SUFFIX = "__month"
# Objectives whose margin is the log of the prediction (XGBoost's log link).
LOG_LINK = ("reg:tweedie", "count:poisson", "reg:gamma")


def month_columns(X: Any) -> list[str]:
    return [str(c) for c in getattr(X, "columns", []) if str(c).endswith(MONTH_SUFFIX)]


# The forward check: the line is kept only when, fitted on the earliest FORWARD_FIT of the
# training rows, its slope predicts the total of the rest better than the level of the last
# RECENT of them does (which is what trees alone carry forward). Cheap: one linear fit.
FORWARD_FIT = 0.8
RECENT = 0.2


def carries_forward(months: np.ndarray, y: np.ndarray, fit_line: Any,
                    link: Any = None, inverse: Any = None) -> bool:
    """Whether a line in the month index, fitted on the earliest rows, predicts the latest
    rows better than the recent level does (``link``/``inverse``: the logit for P(order))."""
    order = np.argsort(months[:, 0], kind="stable")
    n = len(order)
    cut = int(n * FORWARD_FIT)
    early, late = order[:cut], order[cut:]
    recent = early[int(len(early) * (1 - RECENT)):]
    if len(late) < 50 or len(recent) < 50 or np.ptp(months[early, 0]) == 0:
        return False
    try:
        line = fit_line(months[early], y[early])
    except ValueError:
        return False
    level = float(np.mean(y[recent]))
    if link is None:
        slope = line(months[late]) - float(np.mean(line(months[recent])))
        with_line = level + slope
    else:
        level = float(np.clip(level, 1e-6, 1 - 1e-6))
        slope = line(months[late]) - float(np.mean(line(months[recent])))
        with_line = inverse(link(level) + slope)
    # judged on the late rows' total (their mean), what a trend moves: per-row errors of a
    # 0/1 target would drown a shift of a point of conversion in noise
    actual = float(np.mean(y[late]))
    return abs(float(np.mean(with_line)) - actual) < abs(level - actual)


def _months(X: Any, columns: list[str]) -> np.ndarray:
    return X[columns].to_numpy(dtype=np.float64, na_value=np.nan)


def _filled(values: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Months centred on the training median (a gap at the median), so a penalised line's
    penalty bears on its slope and the solver sees numbers near 0, not near 500."""
    return np.where(np.isnan(values), 0.0, values - centre)


class TrendXGBRegressor(XGBRegressor):
    """XGBoost regression boosted from a ridge line in the month index (``trend=True``);
    plain XGBoost with ``trend=False`` or without a month column."""

    def __init__(self, *, trend: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trend = trend

    def get_xgb_params(self) -> dict[str, Any]:
        params = super().get_xgb_params()
        params.pop("trend", None)  # ours, not the booster's
        return params

    def _margin(self, X: Any) -> np.ndarray | None:
        line = getattr(self, "trend_line_", None)
        if line is None:
            return None
        values = line.predict(_filled(_months(X, self.trend_columns_), self.trend_fill_))
        if self.objective in LOG_LINK:
            return np.log(np.clip(values, self.trend_floor_, None))
        return values

    def fit(self, X: Any, y: Any, **kwargs: Any) -> TrendXGBRegressor:
        from sklearn.linear_model import Ridge

        self.trend_columns_ = month_columns(X) if self.trend else []
        self.trend_line_ = None
        if self.trend_columns_ and "base_margin" not in kwargs:
            months = _months(X, self.trend_columns_)
            self.trend_fill_ = np.nanmedian(months, axis=0)
            y_arr = np.asarray(y, dtype=np.float64)
            filled = _filled(months, self.trend_fill_)
            self.trend_checked_ = carries_forward(
                filled, y_arr, lambda m, t: Ridge(alpha=1.0).fit(m, t).predict)
            if not self.trend_checked_:
                return super().fit(X, y, **kwargs)
            self.trend_line_ = Ridge(alpha=1.0).fit(filled, y_arr,
                                                   sample_weight=kwargs.get("sample_weight"))
            positive = y_arr[y_arr > 0]
            self.trend_floor_ = float(positive.min()) / 10 if len(positive) else 1e-6
            kwargs["base_margin"] = self._margin(X)
        return super().fit(X, y, **kwargs)

    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:
        if getattr(self, "trend_line_", None) is not None and "base_margin" not in kwargs:
            kwargs["base_margin"] = self._margin(X)
        return super().predict(X, **kwargs)


class TrendXGBClassifier(XGBClassifier):
    """XGBoost classification boosted from a logistic line in the month index (its logit as
    ``base_margin``)."""

    def __init__(self, *, trend: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trend = trend

    def get_xgb_params(self) -> dict[str, Any]:
        params = super().get_xgb_params()
        params.pop("trend", None)  # ours, not the booster's
        return params

    def _margin(self, X: Any) -> np.ndarray | None:
        line = getattr(self, "trend_line_", None)
        if line is None:
            return None
        return line.decision_function(_filled(_months(X, self.trend_columns_),
                                              self.trend_fill_))

    def fit(self, X: Any, y: Any, **kwargs: Any) -> TrendXGBClassifier:
        from sklearn.linear_model import LogisticRegression

        self.trend_columns_ = month_columns(X) if self.trend else []
        self.trend_line_ = None
        y_arr = np.asarray(y)
        if (self.trend_columns_ and "base_margin" not in kwargs
                and len(np.unique(y_arr)) == 2):
            months = _months(X, self.trend_columns_)
            self.trend_fill_ = np.nanmedian(months, axis=0)
            filled = _filled(months, self.trend_fill_)
            from scipy.special import expit, logit

            self.trend_checked_ = carries_forward(
                filled, y_arr.astype(np.float64),
                lambda m, t: LogisticRegression(C=1.0, max_iter=1000).fit(
                    m, t.astype(int)).decision_function, link=logit, inverse=expit)
            if not self.trend_checked_:
                return super().fit(X, y, **kwargs)
            self.trend_line_ = LogisticRegression(C=1.0, max_iter=1000).fit(
                filled, y_arr, sample_weight=kwargs.get("sample_weight"))
            kwargs["base_margin"] = self._margin(X)
        return super().fit(X, y, **kwargs)

    def predict_proba(self, X: Any, **kwargs: Any) -> np.ndarray:
        if getattr(self, "trend_line_", None) is not None and "base_margin" not in kwargs:
            kwargs["base_margin"] = self._margin(X)
        return super().predict_proba(X, **kwargs)

    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:
        if getattr(self, "trend_line_", None) is not None and "base_margin" not in kwargs:
            kwargs["base_margin"] = self._margin(X)
        return super().predict(X, **kwargs)
