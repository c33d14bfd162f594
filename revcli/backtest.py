"""Backtests: a model's recipe refitted at several forward cut-offs, each next window scored.

One cut-off is one sample. A backtest takes the last ``test_size`` of the table (in time order),
cuts it into ``windows`` consecutive windows and, for each, refits the recipe -- strategy,
estimator, hyperparameters and encoding: an unfitted clone of the model -- on every session
before the window (an expanding window; sessions within ``gap`` before it left out) and scores
the window beside its own train-mean baseline. Each window is a time split made by
:func:`revcli.split.make_time_split` on the sessions up to the window's end: no second split
implementation, the same gap rule as ``--split time``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from revcli import metrics, pipeline, strategies, threads
from revcli.progress import SILENT, Reporter

if TYPE_CHECKING:
    from revcli.modelref import LoadedModel
    from revcli.settings import Settings
    from revcli.workspace import Workspace

KEYS = ("train_end", "test_start", "test_end", "rows", "rmse", "baseline_rmse", "total_ratio")


def windows(times: Any, ordered: np.ndarray, n: int, test_size: float, column: str,
            gap: str | None) -> list[Any]:
    """``n`` forward splits (revcli.split.Split, positions in the whole table) whose test parts
    are consecutive windows covering the last ``test_size`` of the rows in time order."""
    import pandas as pd

    from revcli import split
    from revcli.errors import ConfigError
    from revcli.features import naive_utc

    if n < 1:
        raise ConfigError(f"--backtest takes a number of windows >= 1, got {n}")
    stamps = naive_utc(pd.Series(times)).reset_index(drop=True)
    order = np.argsort(stamps.to_numpy(), kind="stable")
    total = len(order)
    n_test = max(n, round(total * test_size))
    start = total - n_test
    ends = [start + round(n_test * (k + 1) / n) for k in range(n)]
    out = []
    for k, end in enumerate(ends):
        begin = start + round(n_test * k / n)
        subset = np.sort(order[:end])
        made = split.make_time_split(stamps.iloc[subset], np.asarray(ordered)[subset],
                                     (end - begin) / end, column, gap)
        out.append(split.Split(train=subset[made.train], test=subset[made.test],
                               test_size=made.test_size, seed=0, hash=made.hash,
                               kind=split.TIME, time_column=column, gap=gap,
                               bounds=made.bounds))
    return out


def run(recipe: Any, X: Any, y: np.ndarray, times: Any, n: int, *, test_size: float,
        column: str, gap: str | None, n_jobs: int = -1,
        reporter: Reporter = SILENT) -> list[dict[str, Any]]:
    """Refit ``recipe`` (an unfitted revcli.model.RevenueModel) at ``n`` forward cut-offs and
    score each window on the strategy's own rows beside its own train mean; one dict per
    window with :data:`KEYS` and ``conv_rmse`` (the order value predicted for the window's
    converters, where the model has one)."""
    from sklearn.base import clone

    y = np.asarray(y, dtype=np.float64)
    cls = strategies.of(recipe)
    out = []
    for k, made in enumerate(windows(times, y > 0, n, test_size, column, gap), start=1):
        reporter.step(f"backtest window {k} of {n}: fitting on {len(made.train):,} sessions")
        model = clone(recipe)
        y_train = y[made.train]
        cls.check_data(y_train)
        mask = cls.fit_mask(y_train)
        n_threads = threads.resolve(n_jobs, len(y_train) if mask is None else int(mask.sum()))
        pipeline.fit(model, X.iloc[made.train], y_train, n_threads)
        with threads.limit(n_threads):
            parts = model.predict_parts(X.iloc[made.test])
        y_test = y[made.test]
        card = metrics.scorecard(cls, y_test, parts["prediction"], metrics.Baselines.of(y_train),
                                 order_value=cls.order_value_of(parts))
        out.append({"window": k, "train_end": made.bounds["train_until"],
                    "test_start": made.bounds["test_from"],
                    "test_end": made.bounds["test_until"], "rows": card.rows,
                    "rmse": card.metrics["rmse"], "baseline_rmse": card.baseline["rmse"],
                    "total_ratio": metrics.total_ratio(y_test[cls.evaluation_rows(y_test)],
                                                       np.asarray(parts["prediction"])[
                                                           cls.evaluation_rows(y_test)]),
                    "conv_rmse": _finite(card.converter_score("rmse")),
                    "metrics": {k: _finite(v) for k, v in card.metrics.items()}})
    return out


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def summary(rows: Sequence[dict[str, Any]], key: str = "rmse") -> tuple[float, float]:
    """Mean and standard deviation (n-1) of ``key`` over the windows."""
    values = np.array([r["metrics"].get(key) if key in r.get("metrics", {}) else r.get(key)
                       for r in rows], dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def for_loaded(settings: Settings, ws: Workspace, loaded: LoadedModel, n: int,
               reporter: Reporter = SILENT) -> list[dict[str, Any]]:
    """``revcli evaluate --run <id> --backtest N``: the model's recipe on its own dataset."""
    from revcli import split
    from revcli.data import features_for, read_parquet, validate
    from revcli.errors import ConfigError

    sha = loaded.meta.get("dataset_sha256")
    if not sha:
        raise ConfigError("the model records no dataset to backtest on")
    record = ws.dataset(str(sha))
    frame = read_parquet(record.path)
    table = validate(frame)
    recorded = loaded.meta.get("split") if isinstance(loaded.meta.get("split"), dict) else {}
    column = recorded.get("time_column") or split.time_column_of(frame, settings.time_column)
    gap = recorded.get("gap") if recorded.get("kind") == split.TIME else settings.gap
    test_size = float(recorded.get("test_size") or loaded.meta.get("test_size")
                      or settings.test_size)
    X = features_for(frame, loaded.features)
    return run(unfitted(loaded.model), X, table.y, frame[column], n, test_size=test_size,
               column=column, gap=gap, n_jobs=settings.n_jobs, reporter=reporter)


def unfitted(model: Any) -> Any:
    """The recipe of a fitted model: strategy, estimator, hyperparameters, encoding."""
    from sklearn.base import clone

    return clone(model)


def as_metrics(windows: list[dict[str, Any]]) -> dict[str, float]:
    """Backtest windows as MLflow metrics: each window's scores as a step, and the mean."""
    if not windows:
        return {}
    out: dict[str, float] = {}
    for key in ("rmse", "baseline_rmse", "total_ratio"):
        values = [w[key] for w in windows if w.get(key) is not None]
        if values:
            out[f"backtest_{key}_mean"] = float(np.mean(values))
            out[f"backtest_{key}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 \
                else 0.0
    return out
