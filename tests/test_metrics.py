from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from revcli import metrics


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
    card = metrics.scorecard("converting_only", y, p, baseline_value=60.0)
    assert card.population == "test converters"
    assert card.rows == int((y > 0).sum())
    assert card.baseline["rmse"] == pytest.approx(metrics.rmse(y[y > 0], np.full((y > 0).sum(),
                                                                              60.0)))
    assert "gini" not in card.metrics

    card = metrics.scorecard("two_stage", y, p, baseline_value=4.1, proba_order=p)
    assert card.population == "all test sessions"
    assert card.rows == len(y)
    for key in ("total_ratio", "gini", "top10_share", "conv_rmse", "conv_mae", "conv_r2",
                "conv_mape", "auc"):
        assert key in card.metrics and key in card.baseline
    assert card.metrics["conv_rmse"] == pytest.approx(metrics.rmse(y[y > 0], p[y > 0]))
    assert card.baseline["auc"] == 0.5
    assert card.to_dict()["metrics"]["rmse"] == pytest.approx(card.metrics["rmse"])
