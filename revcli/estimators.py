"""The estimators revcli can train, by name, and how their hyperparameters are overridden.

Each name builds a scikit-learn regressor (and, for the two-stage strategy, the classifier of the
same family). Defaults are the seed pipeline's where it had one (``rf``: 200 trees, depth 20,
min_samples_split 10); hyperparameters come from ``[params.<name>]`` in ``configs/revcli.toml``
and ``--param key=value`` on the command line, in that order.
"""

from __future__ import annotations

import math
import re
import tomllib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from revcli.errors import ConfigError

CLASSIFIER_PREFIX = "classifier__"
#: The estimator of ``--estimator`` when none is given.
DEFAULT = "xgb"


def _threads(n_jobs: int) -> int:
    """XGBoost's nthread: -1 / None means every core (see revcli.threads for who decides)."""
    from revcli import threads

    if n_jobs is None or n_jobs < 1:
        return threads.cores()
    return n_jobs


# Defaults a tuned model barely beats. Measured on the full demo set (random and time split,
# with and without time features, benchmarks/bench_quality.py): a 40-trial Optuna search over
# the xgb space found shallow, strongly regularised trees (depth 2-3, min_child_weight ~100);
# these defaults land within 0.03 % of its RMSE and fit 3-4x faster than the old depth-6,
# 300-tree ones, which were up to 1.6 % behind it (and behind plain ridge on converters).
def _xgb(seed: int, n_jobs: int) -> Any:
    # boosted from a line in the month index when the table has a timestamp (revcli.trend)
    from revcli.trend import TrendXGBRegressor as XGBRegressor

    return XGBRegressor(n_estimators=100, learning_rate=0.05, max_depth=3,
                        min_child_weight=100.0, reg_lambda=5.0, subsample=0.8,
                        colsample_bytree=0.8, tree_method="hist", enable_categorical=True,
                        random_state=seed, n_jobs=_threads(n_jobs))


def _xgb_classifier(seed: int, n_jobs: int) -> Any:
    from revcli.trend import TrendXGBClassifier as XGBClassifier

    return XGBClassifier(n_estimators=200, learning_rate=0.1, max_depth=2,
                         min_child_weight=30.0, subsample=0.8, colsample_bytree=0.8,
                         tree_method="hist", enable_categorical=True, eval_metric="logloss",
                         random_state=seed, n_jobs=_threads(n_jobs))


def _rf(seed: int, n_jobs: int) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=200, max_depth=20, min_samples_split=10,
                                 random_state=seed, n_jobs=n_jobs)


def _rf_classifier(seed: int, n_jobs: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=200, max_depth=20, min_samples_split=10,
                                  random_state=seed, n_jobs=n_jobs)


# early_stopping=False: scikit-learn's "auto" holds out 10 % of the rows above 10,000 of them,
# silently, and the shallow, regularised trees below do not need it (measured as for _xgb).
def _hgb(seed: int, n_jobs: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=100, learning_rate=0.05, max_depth=3,
                                         min_samples_leaf=100, l2_regularization=1.0,
                                         early_stopping=False, random_state=seed)


def _hgb_classifier(seed: int, n_jobs: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=8,
                                          min_samples_leaf=100, early_stopping=False,
                                          random_state=seed)


def _gbr_quantile(seed: int, n_jobs: int) -> Any:
    # The histogram variant of sklearn's GradientBoostingRegressor(loss="quantile"): the same
    # median loss, but minutes faster on 378k all-sessions rows.
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(loss="quantile", quantile=0.5, max_iter=200,
                                         learning_rate=0.05, random_state=seed)


def _xgb_log(seed: int, n_jobs: int) -> Any:
    from revcli.log_target import LogTargetRegressor

    return LogTargetRegressor(regressor=_xgb(seed, n_jobs), smearing=True)


def _ridge(seed: int, n_jobs: int) -> Any:
    from sklearn.linear_model import Ridge

    return Ridge(alpha=1.0)


def _logistic(seed: int, n_jobs: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


def _mean(seed: int, n_jobs: int) -> Any:
    from sklearn.dummy import DummyRegressor

    return DummyRegressor(strategy="mean")


def _prior(seed: int, n_jobs: int) -> Any:
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy="prior")


def _ensemble(seed: int, n_jobs: int) -> Any:
    from sklearn.ensemble import VotingRegressor

    return VotingRegressor([("rf", _rf(seed, n_jobs)), ("xgb", _xgb(seed, n_jobs))])


@dataclass(frozen=True)
class EstimatorSpec:
    name: str
    summary: str
    regressor: Callable[[int, int], Any]
    classifier: Callable[[int, int], Any]
    #: What its regressor estimates: the mean (what every scorecard metric rewards) or the
    #: median (which is $0 for a population that is mostly zeros).
    estimates: str = "mean"
    #: Takes pandas categoricals itself (else categories are one-hot encoded).
    native_categories: bool = False
    #: Takes missing values (NaN) itself (else they are imputed, with an indicator).
    handles_missing: bool = False
    #: Needs standardised numbers (a penalised linear model).
    needs_scaling: bool = False
    #: Trains on a Dask cluster (``--cluster``) with the library's own distributed training.
    distributed: bool = False

    @property
    def capabilities(self) -> dict[str, bool]:
        return {"native_categories": self.native_categories,
                "handles_missing": self.handles_missing, "needs_scaling": self.needs_scaling}


ESTIMATORS: dict[str, EstimatorSpec] = {spec.name: spec for spec in (
    EstimatorSpec("mean", "predicts the training mean (the baseline)", _mean, _prior,
                  handles_missing=True),
    EstimatorSpec("ridge", "linear model, L2 penalty", _ridge, _logistic, needs_scaling=True),
    EstimatorSpec("rf", "random forest, the seed's 200 trees / depth 20", _rf, _rf_classifier,
                  handles_missing=True),
    EstimatorSpec("xgb", "XGBoost, shallow regularised histogram trees (default)", _xgb,
                  _xgb_classifier, native_categories=True, handles_missing=True,
                  distributed=True),
    EstimatorSpec("xgb_log", "XGBoost on log1p(revenue), back in dollars with Duan's smearing",
                  _xgb_log, _xgb_classifier, native_categories=True, handles_missing=True,
                  distributed=True),
    EstimatorSpec("hgb", "scikit-learn histogram gradient boosting", _hgb, _hgb_classifier,
                  native_categories=True, handles_missing=True),
    EstimatorSpec("gbr_quantile", "gradient boosting on the median (quantile 0.5)", _gbr_quantile,
                  _hgb_classifier, estimates="median", native_categories=True,
                  handles_missing=True),
    EstimatorSpec("ensemble", "average of rf and xgb", _ensemble, _xgb_classifier,
                  handles_missing=True),
)}


def spec(name: str) -> EstimatorSpec:
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise ConfigError(f"unknown estimator {name!r}; choose one of "
                          f"{', '.join(ESTIMATORS)}") from None


def parse_param(text: str) -> tuple[str, Any]:
    """``key=value`` with a TOML literal value (``3``, ``0.1``, ``true``, ``"x"``) or bare text."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--param {text!r} is not key=value (e.g. --param max_depth=4)")
    raw = raw.strip()
    python = {"True": True, "False": False, "None": None}  # as str() of a logged value reads
    if raw in python:
        return key, python[raw]
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


# Booster parameters XGBoost's scikit-learn wrapper takes through **kwargs: get_params() does not
# list them, so they are named here (each checked to be used by XGBoost 3.2 with its objective).
XGBOOST_KEYWORDS = frozenset({
    "tweedie_variance_power", "huber_slope", "quantile_alpha", "max_cached_hist_node",
    "refresh_leaf", "seed_per_iteration",
})


def xgboost_keyword(estimator: Any, key: str) -> str | None:
    """``key`` (or ``regressor__key``) as a booster keyword of an XGBoost model inside
    ``estimator``, e.g. ``tweedie_variance_power`` for ``objective = "reg:tweedie"``."""
    if key.rpartition("__")[2] not in XGBOOST_KEYWORDS:
        return None
    params = estimator.get_params(deep=True)
    for name in (key, f"regressor__{key}"):
        owner_path = name.rpartition("__")[0]
        owner = params.get(owner_path) if owner_path else estimator
        if owner is not None and any(c.__module__.split(".")[0] == "xgboost"
                                     for c in type(owner).__mro__):
            return name
    return None


def set_params(estimator: Any, params: Mapping[str, Any], label: str) -> Any:
    """Apply ``params`` to ``estimator``; a key the estimator lacks is tried as ``regressor__key``
    (for wrappers such as ``xgb_log``), then as an XGBoost booster keyword, before it is refused
    with the list of valid keys."""
    if not params:
        return estimator
    valid = estimator.get_params(deep=True)
    resolved: dict[str, Any] = {}
    for key, value in params.items():
        if key in valid:
            resolved[key] = value
        elif f"regressor__{key}" in valid:
            resolved[f"regressor__{key}"] = value
        elif (keyword := xgboost_keyword(estimator, key)) is not None:
            resolved[keyword] = value
        else:
            simple = sorted(k for k, v in valid.items()
                            if isinstance(v, (int, float, str, bool, type(None))))
            raise ConfigError(f"{label} takes no parameter {key!r}; valid: {', '.join(simple)}")
    try:
        estimator.set_params(**resolved)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{label}: cannot set {resolved}: {exc}") from None
    return estimator


def make_regressor(name: str, params: Mapping[str, Any] | None = None, seed: int = 42,
                   n_jobs: int = -1) -> Any:
    return set_params(spec(name).regressor(seed, n_jobs), params or {}, f"estimator {name!r}")


def make_classifier(name: str, params: Mapping[str, Any] | None = None, seed: int = 42,
                    n_jobs: int = -1) -> Any:
    return set_params(spec(name).classifier(seed, n_jobs), params or {},
                      f"the classifier of {name!r}")


# Sizes a fit takes literally: beyond these a value is a typo, not a model (a fit would run for
# hours or never end); below them the estimator would be degenerate.
SIZE_LIMITS: dict[str, tuple[int, int]] = {
    "n_estimators": (1, 100_000), "max_iter": (1, 100_000), "max_depth": (0, 1_000),
    "max_leaf_nodes": (2, 1_000_000), "num_parallel_tree": (1, 10_000), "max_bin": (2, 65_535),
    "min_samples_split": (2, 10_000_000), "min_samples_leaf": (1, 10_000_000),
}


def check_values(params: Mapping[str, Any], label: str) -> None:
    """What no estimator should get: NaN or infinite numbers, fractional or absurd sizes."""
    for key, value in params.items():
        name = key.rpartition("__")[2]
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{label}: {key} = {value} is not a finite number")
        if name not in SIZE_LIMITS or value is None:
            continue
        low, high = SIZE_LIMITS[name]
        if isinstance(value, bool) or not isinstance(value, int):
            if name.startswith("min_samples") and isinstance(value, float) and 0 < value < 1:
                continue  # scikit-learn's fraction of the rows
            raise ConfigError(f"{label}: {key} must be a whole number, got {value!r}")
        if not low <= value <= high:
            raise ConfigError(f"{label}: {key} = {value:,} is outside {low:,}..{high:,}"
                              + (": a fit would not end" if value > high else ""))


def probe(model: Any, label: str) -> None:
    """Fit a copy of ``model`` on 60 synthetic sessions with its size parameters at most 2, so
    the estimators' own validation (scikit-learn's parameter constraints, XGBoost's parameter
    ranges) runs in a fraction of a second, before any data is read. Any failure is one
    ConfigError naming the estimator."""
    import numpy as np
    import pandas as pd
    from sklearn.base import clone

    from revcli.errors import first_line

    probe_model = clone(model)
    small = {k: min(v, 2) for k, v in probe_model.get_params(deep=True).items()
             if k.rpartition("__")[2] in ("n_estimators", "max_iter") and isinstance(v, int)
             and not isinstance(v, bool)}
    probe_model.set_params(**small)
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((60, 3)).astype(np.float32), columns=["a", "b", "c"])
    y = np.where(np.arange(60) % 3 == 0, 40.0 + 20.0 * X["a"].to_numpy(), 0.0)
    try:
        with warnings.catch_warnings():  # two iterations do not converge, by design
            warnings.simplefilter("ignore")
            probe_model.fit(X, y)
            probe_model.predict(X)
    except Exception as exc:  # every estimator reports a bad parameter its own way
        # XGBoost prefixes its messages with "[hh:mm:ss] /path/file.cc:27: "
        text = re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", first_line(exc, 300))
        raise ConfigError(f"{label}: {text[:200]}") from None


def split_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate regressor params from ``classifier__``-prefixed classifier params."""
    regressor = {k: v for k, v in params.items() if not k.startswith(CLASSIFIER_PREFIX)}
    classifier = {k.removeprefix(CLASSIFIER_PREFIX): v for k, v in params.items()
                  if k.startswith(CLASSIFIER_PREFIX)}
    return regressor, classifier


def native_importance(fitted: Any) -> Any:
    """A fitted estimator's own importance per encoded column, scaled to sum 1: XGBoost's gain,
    a forest's impurity decrease, a linear model's |coefficient| (on standardised columns); None
    when it has none (histogram boosting, a mean, an ensemble) or learned nothing."""
    import numpy as np

    inner = getattr(fitted, "regressor_", None)  # a target transform around the real model
    if inner is not None:
        return native_importance(inner)
    values = getattr(fitted, "feature_importances_", None)
    if values is None:
        coef = getattr(fitted, "coef_", None)
        if coef is None:
            return None
        values = np.abs(np.ravel(coef))
    values = np.asarray(values, dtype=np.float64)
    total = float(values.sum())
    if not np.isfinite(total) or total <= 0:
        return None
    return values / total

