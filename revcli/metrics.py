"""Metrics and the scorecard: every score beside the train-mean baseline on the same rows.

Conventions (the seed pipeline's): predictions are clipped at $0 by the strategies; MAPE is in
percent and computed on converting sessions only (revenue > 0), because it is undefined on the 93 %
of sessions with revenue 0 -- the label says so wherever it is shown.

Population: each strategy says which rows it is scored on (revcli.strategies). Those scored on the
converters get the four main metrics there; those scored on every test session also get the
zero-aware metrics (total revenue ratio, normalized Gini, share of revenue in the top decile) and
the four main metrics again on the converters among them, beside the mean order value.

:data:`METRICS` is the one registry of metrics (key, label, direction, function, format): the
scorecard, tune's cross-validation, the gates, compare's sorting and every renderer read it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from revcli.errors import ConfigError

if TYPE_CHECKING:
    from revcli.strategies import Strategy

LOWER = "lower"
HIGHER = "higher"
ONE = "closer to 1"

def rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y) - np.asarray(p)) ** 2))) if len(y) else math.nan


def mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(p)))) if len(y) else math.nan


def r2(y: np.ndarray, p: np.ndarray) -> float:
    y = np.asarray(y, dtype=np.float64)
    if len(y) < 2:
        return math.nan
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0.0:
        return math.nan
    return 1.0 - float(np.sum((y - np.asarray(p)) ** 2)) / ss_tot


def mape(y: np.ndarray, p: np.ndarray) -> float:
    """Mean absolute percentage error in percent, on the rows with y > 0 only."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    mask = y > 0
    if not mask.any():
        return math.nan
    return float(np.mean(np.abs(y[mask] - p[mask]) / y[mask]) * 100.0)


def lorenz_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative share of sessions vs of actual revenue, ranked by prediction (highest first).

    Sessions with equal predictions form one straight segment, so a constant predictor gives the
    diagonal whatever the row order.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(-p, kind="stable")
    ys, ps = y[order], p[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ps)) + 1]
    total = ys.sum()
    cum_y = np.add.reduceat(ys, starts).cumsum() / (total if total > 0 else 1.0)
    cum_n = np.r_[starts[1:], len(ys)] / len(ys)
    return np.r_[0.0, cum_n], np.r_[0.0, cum_y]


def _gini(y: np.ndarray, p: np.ndarray) -> float:
    x, c = lorenz_curve(y, p)
    return 2.0 * float(np.sum((x[1:] - x[:-1]) * (c[1:] + c[:-1]) / 2.0)) - 1.0


def normalized_gini(y: np.ndarray, p: np.ndarray) -> float:
    """Gini of the ranking by ``p`` divided by the Gini of the perfect ranking (1 = perfect)."""
    y = np.asarray(y, dtype=np.float64)
    if len(y) < 2 or y.sum() <= 0:
        return math.nan
    best = _gini(y, y)
    return _gini(y, p) / best if best > 0 else math.nan


def top_share(y: np.ndarray, p: np.ndarray, fraction: float = 0.1) -> float:
    """Share of actual revenue in the ``fraction`` of sessions with the highest predictions."""
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0 or y.sum() <= 0:
        return math.nan
    x, c = lorenz_curve(y, p)
    return float(np.interp(fraction, x, c))


def total_ratio(y: np.ndarray, p: np.ndarray) -> float:
    total = float(np.sum(y))
    return float(np.sum(p)) / total if total > 0 else math.nan


def roc_auc(ordered: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    ordered = np.asarray(ordered).astype(bool)
    if ordered.all() or not ordered.any():
        return math.nan
    return float(roc_auc_score(ordered, score))


def tweedie_deviance(y: np.ndarray, p: np.ndarray) -> float:
    """Mean Tweedie deviance with power TWEEDIE_POWER (a compound Poisson-gamma: the usual model
    of a target that is 0 most of the time and a positive amount otherwise); predictions are
    clipped to at least TWEEDIE_FLOOR dollars because the deviance is undefined at 0."""
    from sklearn.metrics import mean_tweedie_deviance

    if not len(y):
        return math.nan
    return float(mean_tweedie_deviance(y, np.clip(p, TWEEDIE_FLOOR, None), power=TWEEDIE_POWER))


TWEEDIE_POWER = 1.5
TWEEDIE_FLOOR = 1e-6


# -- the registry ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Metric:
    """One metric: its key (as logged to MLflow), label, which direction is better, how it is
    computed and how it is shown. Read by the scorecard, tune's CV, the gates, compare's sorting
    and every renderer."""

    key: str
    label: str
    direction: str
    fn: Callable[[np.ndarray, np.ndarray], float] | None = None
    kind: str = "number"  # money | ratio | percent (already in %) | share (0-1 shown as %)
    tunable: bool = False  # an objective `revcli tune --metric` can minimise

    def gain(self, value: float | None, base: float | None) -> float:
        """How much better ``value`` is than ``base`` (positive: better; NaN if either is)."""
        if value is None or base is None or not (math.isfinite(value) and math.isfinite(base)):
            return math.nan
        if self.direction == ONE:
            return abs(base - 1.0) - abs(value - 1.0)
        return (value - base) if self.direction == HIGHER else (base - value)

    def better(self, new: float | None, old: float | None) -> bool:
        """Strictly better by its own direction."""
        return self.gain(new, old) > 0

    def sort_value(self, value: float | None) -> tuple[int, float]:
        """Sort key, best first; missing values last."""
        if value is None or not math.isfinite(value):
            return (1, 0.0)
        if self.direction == LOWER:
            return (0, value)
        if self.direction == HIGHER:
            return (0, -value)
        return (0, abs(value - 1.0))

    def format(self, value: float | None) -> str:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "n/a"
        if self.kind == "money":
            return f"{value:.2f}"
        if self.kind == "percent":
            return f"{value:.1f} %"
        if self.kind == "share":
            return f"{value * 100:.1f} %"
        if self.kind == "ratio":
            return f"{value:.3f}"
        return f"{value:.4g}"


def _main(key: str, label: str, direction: str, fn: Any, kind: str,
          tunable: bool = False) -> tuple[Metric, Metric]:
    return (Metric(key, label, direction, fn, kind, tunable),
            Metric(f"conv_{key}", f"converters: {label}", direction, fn, kind))


_RMSE, _CONV_RMSE = _main("rmse", "RMSE ($)", LOWER, rmse, "money", tunable=True)
_MAE, _CONV_MAE = _main("mae", "MAE ($)", LOWER, mae, "money", tunable=True)
_R2, _CONV_R2 = _main("r2", "R²", HIGHER, r2, "ratio")
_MAPE, _CONV_MAPE = _main("mape", "MAPE (%, converters only)", LOWER, mape, "percent")

METRICS: dict[str, Metric] = {m.key: m for m in (
    _RMSE, _MAE, _R2, _MAPE,
    Metric("total_ratio", "predicted ÷ actual total", ONE, total_ratio, "ratio"),
    Metric("gini", "normalized Gini", HIGHER, normalized_gini, "ratio"),
    Metric("top10_share", "revenue in top 10 % predicted", HIGHER, top_share, "share"),
    _CONV_RMSE, _CONV_MAE, _CONV_R2,
    Metric("conv_mape", "converters: MAPE (%)", LOWER, mape, "percent"),
    Metric("auc", "stage 1: ROC AUC", HIGHER, None, "ratio"),
    Metric("tweedie_deviance", f"Tweedie deviance (power {TWEEDIE_POWER})", LOWER,
           tweedie_deviance, "number", tunable=True),
)}
#: The seed's four metrics, on a strategy's own rows.
MAIN_METRICS = ("rmse", "mae", "r2", "mape")
#: Metrics that only mean something on all sessions, zeros included.
ZERO_AWARE = ("total_ratio", "gini", "top10_share")
CONVERTER_OF = {key: f"conv_{key}" for key in MAIN_METRICS}


def get(key: str, purpose: str = "") -> Metric:
    """The metric ``key``, or a ConfigError listing the known ones (``purpose`` says what it
    was asked for, e.g. "--sort")."""
    try:
        return METRICS[key]
    except KeyError:
        raise ConfigError(f"unknown metric {key!r}{' for ' + purpose if purpose else ''}; "
                          f"choose one of {', '.join(METRICS)}") from None


def tunable(key: str) -> Metric:
    """A metric `revcli tune` can minimise, or a ConfigError listing them."""
    metric = METRICS.get(key)
    if metric is None or not metric.tunable:
        raise ConfigError(f"unknown tune metric {key!r}; choose one of "
                          f"{', '.join(k for k, m in METRICS.items() if m.tunable)}")
    return metric


def format_value(key: str, value: float | None) -> str:
    """``value`` as the metric ``key`` shows it (any other key: 4 significant digits)."""
    metric = METRICS.get(key) or Metric(key, key, LOWER)
    return metric.format(value)


def main_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {k: METRICS[k].fn(y, p) for k in MAIN_METRICS}  # type: ignore[misc]


def zero_aware_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The metrics that only mean something on all sessions, zeros included."""
    return {k: METRICS[k].fn(y, p) for k in ZERO_AWARE}  # type: ignore[misc]


def ratio(value: float, base: float, floor: float = 1e-9) -> float:
    """``value / base`` where it means something: NaN (shown ``n/a``) when ``base`` is zero or
    not finite -- a ratio of two zeros (an RMSE of $0.00 beside a baseline of $0.00) is no
    number, never 236223201.000 from rounding noise."""
    if not (math.isfinite(value) and math.isfinite(base)) or abs(base) <= floor:
        return math.nan
    return value / base


def same(metric: Metric, value: float | None, base: float | None) -> bool:
    """Whether two scores are the same as shown (equal to the digits the metric prints): the
    scorecard then says ``same``, never ``better`` or ``worse`` by rounding noise."""
    if value is None or base is None or not (math.isfinite(value) and math.isfinite(base)):
        return False
    return value == base or metric.format(value) == metric.format(base)


@dataclass(frozen=True)
class PairedDifference:
    """``metric(a) - metric(b)`` of two models scored on the same rows, with the half-width of
    its 95 % interval from the rows' own spread (paired: each row's error under both)."""

    key: str
    a: float
    b: float
    difference: float
    half_width: float
    rows: int
    method: str

    @property
    def low(self) -> float:
        return self.difference - self.half_width

    @property
    def high(self) -> float:
        return self.difference + self.half_width

    def gain_interval(self) -> tuple[float, float]:
        """How much better a is than b (positive: better), low and high, by the metric's
        direction."""
        metric = get(self.key)
        if metric.direction == HIGHER:
            return self.low, self.high
        return -self.high, -self.low

    def clear(self) -> bool:
        """Whether a is better than b beyond the noise (the whole interval is a gain)."""
        return self.gain_interval()[0] > 0

    def text(self, digits: int = 4) -> str:
        """'-0.0101 ± 0.0800' (a - b), with a true minus sign (U+2212)."""
        return (f"{self.difference:+.{digits}f} ± {self.half_width:.{digits}f}"
                .replace("-", "\u2212"))

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.key, "a": self.a, "b": self.b, "difference": self.difference,
                "half_width": self.half_width, "low": self.low, "high": self.high,
                "rows": self.rows, "method": self.method, "clear": self.clear()}


Z95 = 1.959963984540054


def paired_difference(key: str, y: np.ndarray, a: np.ndarray, b: np.ndarray,
                      resamples: int = 400, seed: int = 0) -> PairedDifference:
    """``key`` of predictions ``a`` minus that of ``b`` on the same rows ``y``, with a 95 %
    interval. RMSE and MAE: a paired test of the rows' squared (absolute) errors -- the
    difference of mean squared errors has the standard error sd(e_a² - e_b²)/√n, carried to
    RMSE by the delta method (÷ (RMSE_a + RMSE_b)). Any other metric: a paired bootstrap of
    the rows (``resamples``, fixed seed). The main metrics' ``conv_*`` twins take the
    converters' rows and order values as given."""
    base_key = key.removeprefix("conv_")
    metric = get(key)
    y = np.asarray(y, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = len(y)
    fn = metric.fn
    if fn is None:
        raise ConfigError(f"{key} cannot be compared row by row")
    value_a, value_b = fn(y, a), fn(y, b)
    if n < 2:
        return PairedDifference(key, value_a, value_b, value_a - value_b, math.nan, n, "none")
    if base_key in ("rmse", "mae"):
        err_a, err_b = (y - a), (y - b)
        if base_key == "rmse":
            d = err_a ** 2 - err_b ** 2
            scale = value_a + value_b
            half = Z95 * float(d.std(ddof=1)) / math.sqrt(n) / scale if scale > 0 else 0.0
        else:
            d = np.abs(err_a) - np.abs(err_b)
            half = Z95 * float(d.std(ddof=1)) / math.sqrt(n)
        return PairedDifference(key, value_a, value_b, value_a - value_b, half, n,
                                "paired test of the rows' errors")
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    for i in range(resamples):
        rows = rng.integers(0, n, n)
        diffs[i] = fn(y[rows], a[rows]) - fn(y[rows], b[rows])
    half = float(np.nanpercentile(diffs, 97.5) - np.nanpercentile(diffs, 2.5)) / 2
    return PairedDifference(key, value_a, value_b, value_a - value_b, half, n,
                            "paired bootstrap of the rows")


def _clean(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


@dataclass(frozen=True)
class Baselines:
    """The train means every score is judged against: a session's revenue, and an order's
    value. Each population gets its own (converters' scores beside the mean order value, never
    beside the all-sessions mean, which any order-value guess beats)."""

    revenue: float
    order_value: float

    @classmethod
    def of(cls, y_train: np.ndarray) -> Baselines:
        y_train = np.asarray(y_train, dtype=np.float64)
        return cls.from_sums(float(y_train.sum()), len(y_train), int((y_train > 0).sum()))

    @classmethod
    def from_sums(cls, revenue: float, sessions: int, converters: int) -> Baselines:
        """From the training rows' total revenue, sessions and converting sessions (all a
        cluster needs to add up; every revenue is a converter's)."""
        return cls(revenue=revenue / sessions if sessions else math.nan,
                   order_value=revenue / converters if converters else math.nan)


@dataclass
class Scorecard:
    """Scores of one model on one population, beside the train-mean baseline on the same rows."""

    strategy: str
    population: str
    scored_on: str
    rows: int
    converters: int
    baseline_value: float
    metrics: dict[str, float]
    baseline: dict[str, float]
    conv_baseline_value: float | None = None
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    # Features the leakage audit flagged that the scores rest on: they are not honest, and
    # renderers and gates say so.
    leaks: list[str] = field(default_factory=list)

    def rows_for_display(self) -> list[tuple[Metric, float, float]]:
        """(metric, value, baseline) for every metric present, in display order."""
        return [(m, self.metrics[k], self.baseline.get(k, math.nan))
                for k, m in METRICS.items() if k in self.metrics]

    def converter_score(self, key: str = "rmse") -> float:
        """A main metric of the order value predicted for converting sessions, whichever
        population the scorecard has (NaN for a model without one, e.g. ``all``)."""
        from revcli.strategies import CONVERTERS

        if self.scored_on == CONVERTERS:
            return self.metrics.get(key, math.nan)
        return self.metrics.get(CONVERTER_OF[key], math.nan)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "population": self.population,
            "scored_on": self.scored_on,
            "rows": self.rows,
            "converters": self.converters,
            "baseline_value": self.baseline_value,
            "conv_baseline_value": self.conv_baseline_value,
            "metrics": {k: _clean(v) for k, v in self.metrics.items()},
            "baseline": {k: _clean(v) for k, v in self.baseline.items()},
            "verdicts": self.verdicts,
            "leaks": self.leaks,
        }


def scorecard(strategy: type[Strategy], y: np.ndarray, pred: np.ndarray,
              baselines: Baselines, proba_order: np.ndarray | None = None,
              population: str | None = None,
              order_value: np.ndarray | None = None) -> Scorecard:
    """Score test predictions of ``strategy`` beside ``baselines`` (the train means).

    ``y``, ``pred`` and ``order_value`` cover every test session; the strategy says which rows
    it is scored on and which train mean is its baseline. ``order_value`` is what the strategy
    predicts a converting session orders (``Strategy.order_value_of``): the converter scores
    (``conv_*``) of a strategy scored on all sessions are computed from it, and it has none
    when it is None.
    """
    y = np.asarray(y)
    rows = strategy.evaluation_rows(y)
    return score(y[rows], np.asarray(pred)[rows], baselines, scored_on=strategy.scored_on,
                 baseline_value=strategy.baseline_of(baselines), name=strategy.name,
                 population=population or strategy.population(),
                 proba_order=None if proba_order is None else np.asarray(proba_order)[rows],
                 order_value=None if order_value is None else np.asarray(order_value)[rows])


def score(y: np.ndarray, pred: np.ndarray, baselines: Baselines, *, scored_on: str,
          baseline_value: float, name: str, population: str,
          proba_order: np.ndarray | None = None,
          order_value: np.ndarray | None = None) -> Scorecard:
    """The scorecard of predictions on exactly these rows. Rows of every session
    (``scored_on`` SESSIONS) add the zero-aware metrics, the ROC AUC of P(order) when given, and
    -- when ``order_value`` (the order value predicted for a converting session) is given --
    the four main metrics of it on the converters among them, beside the train mean order
    value: one definition of ``conv_*`` for every strategy (see :func:`converter_scores`)."""
    from revcli.strategies import SESSIONS

    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    base = np.full_like(y, baseline_value)
    metrics = main_metrics(y, pred)
    baseline = main_metrics(y, base)
    conv_base: float | None = None
    if scored_on == SESSIONS:
        metrics.update(zero_aware_metrics(y, pred))
        baseline.update(zero_aware_metrics(y, base))
        conv = y > 0
        if order_value is not None:
            conv_base = baselines.order_value
            got, base_conv = converter_scores(y, np.asarray(order_value), conv_base)
            metrics.update(got)
            baseline.update(base_conv)
        if proba_order is not None:
            metrics["auc"] = roc_auc(conv, np.asarray(proba_order))
            baseline["auc"] = 0.5
    return Scorecard(strategy=name, population=population, scored_on=scored_on, rows=len(y),
                     converters=int((y > 0).sum()), baseline_value=float(baseline_value),
                     metrics=metrics, baseline=baseline, conv_baseline_value=conv_base)


def converter_scores(y: np.ndarray, order_value: np.ndarray,
                     mean_order_value: float) -> tuple[dict[str, float], dict[str, float]]:
    """The one definition of ``conv_*``: the order value a model predicts for a converting
    session (converting_only's prediction, two_stage's stage 2 E[revenue | order]) scored on
    the converters among ``y``, and the train mean order value on the same rows. Never an
    expected revenue (P(order) x value), which no model of revenue can make match an order
    value."""
    y = np.asarray(y, dtype=np.float64)
    conv = y > 0
    conv_y = y[conv]
    got = main_metrics(conv_y, np.asarray(order_value, dtype=np.float64)[conv])
    base = main_metrics(conv_y, np.full_like(conv_y, mean_order_value))
    return ({CONVERTER_OF[k]: v for k, v in got.items()},
            {CONVERTER_OF[k]: v for k, v in base.items()})


def sort_key(key: str) -> Callable[[Any], tuple[int, float]]:
    """A key for ``sorted`` over anything with a ``metrics`` dict: best first by ``key``'s own
    direction, rows without it last."""
    metric = get(key, "--sort")

    def by(row: Any) -> tuple[int, float]:
        return metric.sort_value(row.metrics.get(key))

    return by


def present(rows: Sequence[Any]) -> set[str]:
    """Metric keys any of ``rows`` (objects with a ``metrics`` dict) has."""
    return {k for r in rows for k in r.metrics}
