"""A fourth strategy, written and registered here only, runs through train, evaluate, predict
and compare runs without an edit of revcli's code (the acceptance test of one home per
concept: the strategy owns every decision that depends on which one it is)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.validation import check_is_fitted

from revcli import compare, evaluate, predict, settings, strategies, train
from revcli.strategies import CONVERTERS, ORDER_VALUE, Strategy
from tests.workspaces import seed_store


class MedianOrderValue(Strategy):
    """Predicts the median order value of the training converters for every session, scored on
    converters: a deliberately dull fourth strategy with its own population and meaning."""

    name = "median_order_value"
    summary = "the training converters' median order value"
    scored_on = CONVERTERS
    predicts = ORDER_VALUE

    def __init__(self, estimator=None, shift: float = 0.0) -> None:
        self.estimator = estimator
        self.shift = shift

    def fit(self, X, y):
        y = np.asarray(y, dtype=np.float64)
        self.median_ = float(np.median(y[y > 0])) + self.shift
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        return self

    def predict(self, X):
        check_is_fitted(self, "median_")
        return np.full(len(X), self.median_)

    def meaning(self) -> str:
        return "the median order value of the training converters ($)"


@pytest.fixture
def fourth():
    strategies.register(MedianOrderValue)
    yield MedianOrderValue
    strategies.unregister(MedianOrderValue.name)


def test_a_registered_strategy_runs_through_every_command(fourth, small_demo, isolated,
                                                          tmp_path) -> None:
    from revcli.workspace import Workspace

    seed_store(isolated)
    Workspace(isolated).write_dataset(small_demo, source="demo:test")
    s = settings.resolve(flags={"workspace": str(isolated), "strategy": fourth.name,
                                "estimator": "mean"}, env={})
    trained = train.train(s, plots=False)
    from revcli.split import make_split

    y = small_demo["revenue"].to_numpy()
    split = make_split(y > 0, test_size=0.2, seed=42)
    y_train = y[split.train]
    card = trained.scorecard
    assert card.population == "test converters" and card.rows == trained.split["test_converters"]
    assert trained.honesty.can_inflate is False  # its own rule: scored on converters
    # its baseline: the train mean order value; its prediction: the train median order value
    assert card.baseline_value == pytest.approx(y_train[y_train > 0].mean())
    test_converters = y[split.test][y[split.test] > 0]
    median = float(np.median(y_train[y_train > 0]))
    assert card.metrics["mae"] == pytest.approx(np.abs(test_converters - median).mean())

    evaluated = evaluate.evaluate(s, run=trained.run_id[:8], plots=False)
    assert evaluated.model.strategy == fourth.name
    assert evaluated.scorecard.metrics["rmse"] == pytest.approx(card.metrics["rmse"])

    sessions = tmp_path / "sessions.parquet"
    small_demo.head(500).to_parquet(sessions, index=False)
    scored = predict.predict(s, run=trained.run_id, data=sessions, out=tmp_path / "out.parquet")
    assert scored.prediction == "the median order value of the training converters ($)"
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["row", "prediction"] and out["prediction"].nunique() == 1

    listed = compare.compare_runs(s)
    assert [r.strategy for r in listed.rows] == [fourth.name]
    assert listed.rows[0].scored_on == CONVERTERS
