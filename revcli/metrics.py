"""Metrics and the scorecard: every score beside the train-mean baseline on the same rows.

Conventions (the seed pipeline's): predictions are clipped at $0 by the strategies; MAPE is in
percent and computed on converting sessions only (revenue > 0), because it is undefined on the 93 %
of sessions with revenue 0 -- the label says so wherever it is shown.

Population: ``converting_only`` is scored on the test converters; ``all`` and ``two_stage`` on
every test session, plus the zero-aware metrics (total revenue ratio, normalized Gini, share of
revenue in the top decile) and the four main metrics again on the converters among them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LOWER = "lower"
HIGHER = "higher"
ONE = "closer to 1"

# key -> (label, which direction is better)
METRICS: dict[str, tuple[str, str]] = {
    "rmse": ("RMSE ($)", LOWER),
    "mae": ("MAE ($)", LOWER),
    "r2": ("R²", HIGHER),
    "mape": ("MAPE (%, converters only)", LOWER),
    "total_ratio": ("predicted ÷ actual total", ONE),
    "gini": ("normalized Gini", HIGHER),
    "top10_share": ("revenue in top 10 % predicted", HIGHER),
    "conv_rmse": ("converters: RMSE ($)", LOWER),
    "conv_mae": ("converters: MAE ($)", LOWER),
    "conv_r2": ("converters: R²", HIGHER),
    "conv_mape": ("converters: MAPE (%)", LOWER),
    "auc": ("stage 1: ROC AUC", HIGHER),
}
MAIN_METRICS = ("rmse", "mae", "r2", "mape")


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


def main_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"rmse": rmse(y, p), "mae": mae(y, p), "r2": r2(y, p), "mape": mape(y, p)}


def zero_aware_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The metrics that only mean something on all sessions, zeros included."""
    conv = y > 0
    return {
        "total_ratio": total_ratio(y, p),
        "gini": normalized_gini(y, p),
        "top10_share": top_share(y, p),
        **{f"conv_{k}": v for k, v in main_metrics(y[conv], p[conv]).items()},
    }


def _clean(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


@dataclass
class Scorecard:
    """Scores of one model on one population, beside the train-mean baseline on the same rows."""

    strategy: str
    population: str
    rows: int
    converters: int
    baseline_value: float
    metrics: dict[str, float]
    baseline: dict[str, float]
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    # Features the leakage audit flagged that the model was trained with: its scores are not
    # honest, and renderers and gates say so.
    leaks: list[str] = field(default_factory=list)

    def rows_for_display(self) -> list[tuple[str, str, float, float, str]]:
        """(key, label, value, baseline, better) for every metric present, in display order."""
        return [(k, METRICS[k][0], self.metrics[k], self.baseline.get(k, math.nan), METRICS[k][1])
                for k in METRICS if k in self.metrics]

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "population": self.population,
            "rows": self.rows,
            "converters": self.converters,
            "baseline_value": self.baseline_value,
            "metrics": {k: _clean(v) for k, v in self.metrics.items()},
            "baseline": {k: _clean(v) for k, v in self.baseline.items()},
            "verdicts": self.verdicts,
            "leaks": self.leaks,
        }


def scorecard(strategy: str, y: np.ndarray, pred: np.ndarray, baseline_value: float,
              proba_order: np.ndarray | None = None) -> Scorecard:
    """Score test predictions of ``strategy``; ``baseline_value`` is the train mean of its target.

    ``y`` and ``pred`` cover every test session; ``converting_only`` keeps its converters itself.
    """
    from revcli.strategies import scores_converters_only

    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    ordered = y > 0
    if scores_converters_only(strategy):
        y, pred = y[ordered], pred[ordered]
        population = "test converters"
    else:
        population = "all test sessions"
    base = np.full_like(y, baseline_value)
    metrics = main_metrics(y, pred)
    baseline = main_metrics(y, base)
    if not scores_converters_only(strategy):
        metrics.update(zero_aware_metrics(y, pred))
        baseline.update(zero_aware_metrics(y, base))
        if proba_order is not None:
            metrics["auc"] = roc_auc(y > 0, proba_order)
            baseline["auc"] = 0.5
    return Scorecard(strategy=strategy, population=population, rows=len(y),
                     converters=int((y > 0).sum()), baseline_value=float(baseline_value),
                     metrics=metrics, baseline=baseline)


def converter_rmse(card: Scorecard) -> float:
    """RMSE on converting sessions, whichever population the scorecard has."""
    return card.metrics["rmse"] if "conv_rmse" not in card.metrics else card.metrics["conv_rmse"]
