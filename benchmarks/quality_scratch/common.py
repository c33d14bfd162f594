"""Shared pieces of the scratch quality measurements (plain scikit-learn / XGBoost, no revcli CLI).

Data: the full-size demo with ``created_at`` and the generator's truth
(``revcli.demo.generate(with_truth=True)``). Splits: ``random`` (80/20, stratified on is_ordered,
seed 42, as revcli) and ``time`` (the earliest 80 % of sessions train, the latest 20 % test).
Features: the 12 session features minus ``engagement_depth`` (the leak: == 7 iff ordered), with
or without calendar features from ``created_at`` (month index since 2012-03, day of week, hour).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see README: OpenMP stalls on a busy box

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from revcli import demo  # noqa: E402

RESULTS = HERE / "results"
SEED = 42
THREADS = int(os.environ.get("SCRATCH_THREADS", "2"))
STRATEGIES = ("all", "converting_only", "two_stage")
SPLITS = ("random", "time")
SESSION_FEATURES = [c for c in demo.COLUMNS if c not in ("is_ordered", "revenue")]
HONEST_FEATURES = [c for c in SESSION_FEATURES if c != "engagement_depth"]
CALENDAR_FEATURES = ["month_index", "day_of_week", "hour"]

# revcli's current defaults (revcli/estimators.py)
XGB_DEFAULT = dict(n_estimators=300, learning_rate=0.05, max_depth=6, subsample=0.8,
                   colsample_bytree=0.8, min_child_weight=1.0, tree_method="hist")
XGB_CLF_DEFAULT = dict(n_estimators=300, learning_rate=0.05, max_depth=6, subsample=0.8,
                       colsample_bytree=0.8, tree_method="hist", eval_metric="logloss")
HGB_DEFAULT = dict(max_iter=300, learning_rate=0.05)


def calendar(created: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({
        "month_index": (created.dt.year - 2012) * 12 + created.dt.month - 3,
        "day_of_week": created.dt.day_of_week,
        "hour": created.dt.hour,
    }, index=created.index).astype(np.float32)


@dataclass
class Data:
    X: pd.DataFrame          # every feature (session + calendar), float32
    y: np.ndarray            # revenue
    ordered: np.ndarray      # 0/1
    truth_revenue: np.ndarray | None
    truth_value: np.ndarray | None

    def features(self, time_features: bool, leak: bool = False) -> pd.DataFrame:
        cols = list(SESSION_FEATURES if leak else HONEST_FEATURES)
        if time_features:
            cols += CALENDAR_FEATURES
        return self.X[cols]


def demo_data(seed: int = 0) -> Data:
    frame, truth = demo.generate(seed=seed, with_truth=True)
    X = pd.concat([frame[SESSION_FEATURES].astype(np.float32), calendar(frame.created_at)], axis=1)
    return Data(X, frame.revenue.to_numpy(), frame.is_ordered.to_numpy(),
                truth.revenue.to_numpy(), truth.order_value.to_numpy())


def split(kind: str, ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row positions; rows are in time order."""
    from sklearn.model_selection import train_test_split

    n = len(ordered)
    if kind == "random":
        train, test = train_test_split(np.arange(n), test_size=0.2, random_state=SEED,
                                       stratify=ordered)
        return np.sort(train), np.sort(test)
    if kind == "time":
        cut = round(0.8 * n)
        return np.arange(cut), np.arange(cut, n)
    raise ValueError(kind)


def cv_folds(kind: str, ordered: np.ndarray, k: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds of a training split (positions into it): stratified shuffled folds for the random
    split, forward-chaining time blocks for the time split (train on blocks < i, validate on i)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(ordered)
    if kind == "random":
        if ordered.min() == ordered.max():
            return list(KFold(k, shuffle=True, random_state=SEED).split(np.zeros(n)))
        return list(StratifiedKFold(k, shuffle=True, random_state=SEED).split(np.zeros(n),
                                                                               ordered))
    blocks = np.array_split(np.arange(n), k + 1)
    return [(np.concatenate(blocks[:i]), blocks[i]) for i in range(1, k + 1)]


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)))


# --- estimators ---------------------------------------------------------------------------

class LogTarget:
    """A regressor on log1p(y), back in dollars: expm1(f) (the geometric-type mean, biased low)
    or, with smearing (Duan 1983), exp(f) * mean(exp(training residuals)) - 1."""

    def __init__(self, base: Any, smear: bool) -> None:
        self.base, self.smear, self.factor = base, smear, 1.0

    def fit(self, X: Any, y: np.ndarray) -> LogTarget:
        z = np.log1p(y)
        self.base.fit(X, z)
        if self.smear:
            self.factor = float(np.mean(np.exp(z - self.base.predict(X))))
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.exp(self.base.predict(X)) * self.factor - 1.0


def xgb_reg(**params: Any) -> Any:
    from xgboost import XGBRegressor

    p = {**XGB_DEFAULT, **params}
    return XGBRegressor(**p, random_state=SEED, n_jobs=THREADS)


def xgb_clf(**params: Any) -> Any:
    from xgboost import XGBClassifier

    p = {**XGB_CLF_DEFAULT, **params}
    return XGBClassifier(**p, random_state=SEED, n_jobs=THREADS)


def hgb_reg(**params: Any) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(**{**HGB_DEFAULT, **params}, random_state=SEED)


def hgb_clf(**params: Any) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**{**HGB_DEFAULT, **params}, random_state=SEED)


def ridge() -> Any:
    from sklearn.linear_model import Ridge

    return Ridge(alpha=1.0)


def logistic() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


def rf() -> Any:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=200, max_depth=20, min_samples_split=10,
                                 random_state=SEED, n_jobs=THREADS)


Factory = Callable[[], Any]


def fit_predict(strategy: str, reg: Factory, clf: Factory | None, X_tr: Any, y_tr: np.ndarray,
                o_tr: np.ndarray, X_te: Any) -> tuple[np.ndarray, float]:
    """Predictions (clipped >= 0) for ``X_te`` and the fit time in seconds.

    converting_only: ``X_te`` must already be the test converters."""
    start = time.perf_counter()
    if strategy == "all":
        model = reg().fit(X_tr, y_tr)
        fit = time.perf_counter() - start
        pred = model.predict(X_te)
    elif strategy == "converting_only":
        m = o_tr == 1
        model = reg().fit(X_tr[m], y_tr[m])
        fit = time.perf_counter() - start
        pred = model.predict(X_te)
    elif strategy == "two_stage":
        m = o_tr == 1
        c = clf().fit(X_tr, o_tr)
        r = reg().fit(X_tr[m], y_tr[m])
        fit = time.perf_counter() - start
        pred = c.predict_proba(X_te)[:, 1] * np.clip(r.predict(X_te), 0.0, None)
    else:
        raise ValueError(strategy)
    return np.clip(pred, 0.0, None), fit


def scored_rows(strategy: str, test: np.ndarray, ordered: np.ndarray) -> np.ndarray:
    return test[ordered[test] == 1] if strategy == "converting_only" else test


def append_result(name: str, row: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"{name}.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")


def load_results(name: str) -> list[dict[str, Any]]:
    path = RESULTS / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# Proposed defaults (defaults_search.py: xgb_d3_clf_d2, hgb_prop_clf100): few shallow trees.
PROPOSED_XGB = dict(n_estimators=100, learning_rate=0.05, max_depth=3, subsample=0.8,
                    colsample_bytree=0.8, min_child_weight=100.0, reg_lambda=5.0)
PROPOSED_XGB_CLF = dict(n_estimators=200, learning_rate=0.1, max_depth=2, subsample=0.8,
                        colsample_bytree=0.8, min_child_weight=30.0)
PROPOSED_HGB = dict(max_iter=100, learning_rate=0.05, max_depth=3, min_samples_leaf=100,
                    l2_regularization=1.0, early_stopping=False)
PROPOSED_HGB_CLF = dict(max_iter=100, learning_rate=0.1, max_leaf_nodes=8, min_samples_leaf=100,
                        early_stopping=False)
