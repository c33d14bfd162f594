from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression

from revcli import estimators, strategies
from revcli.errors import ConfigError


@pytest.fixture
def xy() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.random(500), "b": rng.integers(0, 2, 500).astype(float)})
    y = np.where(X.b > 0, 40 + 20 * X.a, 0.0)
    return X, y


def test_two_stage_expected_value_is_probability_times_value(xy) -> None:
    X, y = xy
    model = strategies.TwoStage(classifier=LogisticRegression(), regressor=LinearRegression())
    model.fit(X, y)
    p = model.predict_proba_order(X)
    v = model.predict_order_value(X)
    assert np.allclose(model.predict(X), p * v)
    # the regressor saw converters only: it recovers 40 + 20a exactly
    assert np.allclose(v, np.clip(40 + 20 * X.a, 0, None))


def test_two_stage_threshold_variant(xy) -> None:
    X, y = xy
    model = strategies.TwoStage(classifier=LogisticRegression(), regressor=LinearRegression(),
                                combine="threshold", threshold=0.5).fit(X, y)
    p, v = model.predict_proba_order(X), model.predict_order_value(X)
    assert np.allclose(model.predict(X), np.where(p >= 0.5, v, 0.0))


def test_converting_only_fits_on_converters(xy) -> None:
    X, y = xy
    model = strategies.ConvertingOnly(DummyRegressor()).fit(X, y)
    assert model.predict(X[:1])[0] == pytest.approx(y[y > 0].mean())
    all_sessions = strategies.AllSessions(DummyRegressor()).fit(X, y)
    assert all_sessions.predict(X[:1])[0] == pytest.approx(y.mean())


def test_predictions_are_clipped_at_zero(xy) -> None:
    X, _ = xy
    y = -np.ones(len(X))
    y[:10] = 5
    model = strategies.AllSessions(LinearRegression()).fit(X, y)
    assert (model.predict(X) >= 0).all()


@pytest.mark.parametrize("name", strategies.names())
def test_strategies_clone_pickle_and_expose_params(name, xy) -> None:
    X, y = xy
    model = strategies.build(name, "ridge", {"alpha": 2.0}, seed=1)
    params = model.get_params()
    key = "regressor__alpha" if model.has_classifier else "estimator__alpha"
    assert params[key] == 2.0
    fitted = clone(model).fit(X, y)
    again = pickle.loads(pickle.dumps(fitted))
    assert np.allclose(again.predict(X), fitted.predict(X))
    assert list(fitted.feature_names_in_) == ["a", "b"]


@pytest.mark.parametrize("name", list(estimators.ESTIMATORS))
def test_every_estimator_builds_with_both_stages(name) -> None:
    model = strategies.build("two_stage", name, seed=0, n_jobs=1)
    assert model.regressor is not None and model.classifier is not None


def test_param_overrides_and_errors() -> None:
    assert estimators.parse_param("max_depth=4") == ("max_depth", 4)
    assert estimators.parse_param("objective=reg:tweedie") == ("objective", "reg:tweedie")
    assert estimators.parse_param("learning_rate=0.1") == ("learning_rate", 0.1)
    xgb_log = estimators.make_regressor("xgb_log", {"max_depth": 3})
    assert xgb_log.get_params()["regressor__max_depth"] == 3
    with pytest.raises(ConfigError, match="takes no parameter 'nope'"):
        estimators.make_regressor("xgb", {"nope": 1})
    with pytest.raises(ConfigError, match="unknown estimator"):
        estimators.make_regressor("svm")
    with pytest.raises(ConfigError, match="only to strategies with a classifier stage"):
        strategies.build("all", "ridge", {"classifier__C": 1.0})
    with pytest.raises(ConfigError, match="unknown strategy 'zero_inflated'; choose one of all"):
        strategies.build("zero_inflated", "ridge")
    with pytest.raises(ConfigError, match="--threshold must be between 0 and 1"):
        strategies.build("two_stage", "ridge", options={"threshold": 1.5})
    with pytest.raises(ConfigError):
        estimators.parse_param("no-equals-sign")


def test_two_stage_with_dummy_stages(xy) -> None:
    X, y = xy
    model = strategies.TwoStage(DummyClassifier(strategy="prior"), DummyRegressor()).fit(X, y)
    expected = (y > 0).mean() * y[y > 0].mean()
    assert np.allclose(model.predict(X), expected)


def test_each_strategy_owns_its_population_baseline_and_meaning() -> None:
    y = np.array([0.0, 0.0, 50.0, 0.0, 100.0])
    converting, every, two = (strategies.get(n) for n in ("converting_only", "all", "two_stage"))
    assert list(converting.evaluation_rows(y)) == [2, 4] and converting.baseline(y) == 75.0
    assert list(every.evaluation_rows(y)) == [0, 1, 2, 3, 4] and every.baseline(y) == 30.0
    assert not converting.leak_can_inflate() and every.leak_can_inflate()
    assert converting.fit_mask(y).tolist() == [False, False, True, False, True]
    assert every.fit_mask(y) is None and two.fit_mask(y) is None
    assert "E[revenue | order]" in strategies.build("converting_only", "mean").meaning()
    assert "expected revenue" in strategies.build("all", "mean").meaning()
    threshold = strategies.build("two_stage", "mean", options={"combine": "threshold"})
    assert threshold.meaning().startswith("order value where P(order) >= 0.5")
    assert threshold.options() == {"combine": "threshold", "threshold": 0.5}
    assert strategies.build("all", "mean", options={"combine": "threshold"}).options() == {}


def test_predict_parts_run_each_stage_once_and_agree_with_predict(xy) -> None:
    X, y = xy
    model = strategies.build("two_stage", "ridge").fit(X, y)
    parts = model.predict_parts(X)
    assert list(parts) == model.output_columns() == ["prediction", "p_order", "order_value"]
    assert np.allclose(parts["prediction"], model.predict(X))
    assert np.allclose(parts["prediction"],
                       strategies.expected_revenue(parts["order_value"], parts["p_order"]))
    assert np.allclose(model.order_probability(X), parts["p_order"])
    one = strategies.build("all", "ridge").fit(X, y)
    assert list(one.predict_parts(X)) == ["prediction"] and one.order_probability(X) is None


def test_the_registry_takes_a_new_strategy_and_refuses_clashes() -> None:
    from revcli.strategies import Strategy

    class Halved(strategies.get("all")):
        name = "halved_test"

        def predict(self, X):
            return super().predict(X) / 2

    try:
        assert strategies.register(Halved) is Halved
        assert strategies.get("halved_test") is Halved and "halved_test" in strategies.names()
        with pytest.raises(ValueError, match="already registered"):
            strategies.register(type("Other", (Halved,), {"name": "halved_test"}))
        with pytest.raises(TypeError):
            strategies.register(int)  # type: ignore[arg-type]
        assert isinstance(strategies.build("halved_test", "mean"), Strategy)
    finally:
        strategies.unregister("halved_test")
    assert "halved_test" not in strategies.names()
