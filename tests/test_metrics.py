from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from revcli import metrics, strategies
from revcli.errors import ConfigError


@pytest.fixture
def yp() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.where(rng.random(2_000) < 0.1, rng.choice([49.99, 59.99, 109.98], 2_000), 0.0)
    p = np.clip(y * 0.7 + rng.normal(3, 5, 2_000), 0, None)
    return y, p


def test_main_metrics_agree_with_scikit_learn(yp) -> None:
    y, p = yp
    got = metrics.main_metrics(y, p)
    assert got["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y, p)))
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(y, p))
    assert got["r2"] == pytest.approx(sk.r2_score(y, p))
    conv = y > 0
    assert got["mape"] == pytest.approx(
        100 * sk.mean_absolute_percentage_error(y[conv], p[conv]))


def test_mape_ignores_zero_revenue_rows() -> None:
    y = np.array([0.0, 0.0, 50.0, 100.0])
    p = np.array([10.0, 99.0, 40.0, 110.0])
    assert metrics.mape(y, p) == pytest.approx(100 * (10 / 50 + 10 / 100) / 2)


def test_gini_and_top_share() -> None:
    y = np.array([0, 0, 0, 0, 0, 0, 0, 0, 50.0, 100.0])
    assert metrics.normalized_gini(y, y) == pytest.approx(1.0)
    assert metrics.normalized_gini(y, -y) < 0
    # A constant predictor ranks nothing: Gini 0 and the top decile holds a tenth of revenue.
    const = np.full_like(y, 7.0)
    assert metrics.normalized_gini(y, const) == pytest.approx(0.0)
    assert metrics.top_share(y, const) == pytest.approx(0.1)
    assert metrics.top_share(y, y) == pytest.approx(100 / 150)
    assert metrics.total_ratio(y, y * 2) == pytest.approx(2.0)


def test_scorecard_population_and_baseline(yp) -> None:
    y, p = yp
    baselines = metrics.Baselines(revenue=4.1, order_value=60.0)
    card = metrics.scorecard(strategies.get("converting_only"), y, p, baselines)
    assert card.population == "test converters" and card.scored_on == strategies.CONVERTERS
    assert card.rows == int((y > 0).sum()) and card.baseline_value == 60.0
    assert card.baseline["rmse"] == pytest.approx(metrics.rmse(y[y > 0], np.full((y > 0).sum(),
                                                                              60.0)))
    assert "gini" not in card.metrics and card.conv_baseline_value is None

    value = np.where(y > 0, y * 0.9 + 5, 55.0)  # stage 2: the order value if it converts
    card = metrics.scorecard(strategies.get("two_stage"), y, p, baselines, proba_order=p,
                             order_value=value)
    assert card.population == "all test sessions" and card.baseline_value == 4.1
    assert card.rows == len(y)
    for key in ("total_ratio", "gini", "top10_share", "conv_rmse", "conv_mae", "conv_r2",
                "conv_mape", "auc"):
        assert key in card.metrics and key in card.baseline
    # conv_* is the order value predicted for the converters, never P(order) x value.
    assert card.metrics["conv_rmse"] == pytest.approx(metrics.rmse(y[y > 0], value[y > 0]))
    assert card.metrics["conv_rmse"] != pytest.approx(metrics.rmse(y[y > 0], p[y > 0]))
    assert card.converter_score("rmse") == card.metrics["conv_rmse"]
    # Each population beside its own baseline: converters beside the mean order value, not the
    # all-sessions mean that any order-value guess beats.
    conv = y[y > 0]
    assert card.conv_baseline_value == 60.0
    assert card.baseline["conv_rmse"] == pytest.approx(metrics.rmse(conv, np.full_like(conv, 60)))
    assert card.baseline["auc"] == 0.5
    assert card.to_dict()["metrics"]["rmse"] == pytest.approx(card.metrics["rmse"])


def test_the_registry_knows_each_metric_s_direction_and_format() -> None:
    assert metrics.get("rmse").better(1.0, 2.0) and not metrics.get("r2").better(0.1, 0.2)
    assert metrics.get("total_ratio").better(1.05, 0.8)
    rows = [type("Row", (), {"metrics": m})() for m in ({"r2": 0.1}, {}, {"r2": 0.3})]
    assert [r.metrics.get("r2") for r in sorted(rows, key=metrics.sort_key("r2"))] == [
        0.3, 0.1, None]
    assert metrics.format_value("mape", 12.345) == "12.3 %"
    assert metrics.format_value("top10_share", 0.5) == "50.0 %"
    assert metrics.format_value("best_cv_rmse", 17.123456) == "17.12"
    assert [k for k, m in metrics.METRICS.items() if m.tunable] == [
        "rmse", "mae", "tweedie_deviance"]
    with pytest.raises(ConfigError, match="unknown metric 'nope'"):
        metrics.get("nope")
    with pytest.raises(ConfigError, match="unknown tune metric 'r2'"):
        metrics.tunable("r2")


def test_a_model_without_an_order_value_has_no_converter_scores(yp) -> None:
    y, p = yp
    cls = strategies.get("all")
    assert cls.order_value_of({"prediction": p}) is None
    card = metrics.scorecard(cls, y, p, metrics.Baselines(4.1, 60.0),
                             order_value=cls.order_value_of({"prediction": p}))
    assert not any(k.startswith("conv_") for k in card.metrics)
    assert card.conv_baseline_value is None and np.isnan(card.converter_score("rmse"))
    # converting_only's own prediction and two_stage's stage 2 are what conv_* reads
    assert strategies.get("converting_only").order_value_of({"prediction": p}) is not None
    parts = {"prediction": p * 0.1, "p_order": p, "order_value": p + 1}
    assert np.array_equal(strategies.get("two_stage").order_value_of(parts), p + 1)


def test_numbers_that_read_right() -> None:
    import math

    assert math.isnan(metrics.ratio(0.0, 0.0)) and math.isnan(metrics.ratio(1e-12, 4e-21))
    assert metrics.ratio(2.0, 4.0) == 0.5
    rmse = metrics.get("rmse")
    assert metrics.same(rmse, 15.6512, 15.6549) and not metrics.same(rmse, 15.64, 15.66)
    assert metrics.format_value("rmse", metrics.ratio(0.0, 0.0)) == "n/a"
