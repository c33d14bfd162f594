"""The objective: folds of the training split only, scored on the strategy's rows."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from revcli import pipeline, strategies
from revcli.errors import ConfigError, DataError
from revcli.tuning import _cv, _space


@pytest.fixture
def prepared(tune_settings):
    return pipeline.prepare(tune_settings())


@pytest.mark.parametrize("strategy", ["converting_only", "all", "two_stage"])
def test_folds_cover_the_training_split_and_never_the_holdout(prepared, strategy) -> None:
    y = prepared.table.y
    train_rows, test_rows = set(prepared.split.train), set(prepared.split.test)
    folds = _cv.make_folds(prepared, strategy, 3, seed=7)
    scored = np.concatenate([f.score for f in folds])
    assert len(scored) == len(set(scored))  # each row is scored by exactly one fold
    for fold in folds:
        assert not set(fold.fit) & test_rows and not set(fold.score) & test_rows
        assert not set(fold.fit) & set(fold.score)
        assert set(fold.fit) <= train_rows
    if strategy == "converting_only":
        assert (y[scored] > 0).all() and set(scored) == {r for r in train_rows if y[r] > 0}
        assert all((y[f.fit] > 0).all() for f in folds)
    else:
        assert set(scored) == train_rows
    # stratified: every fold has about the same share of converters
    shares = [float((y[f.score] > 0).mean()) for f in folds]
    if strategy != "converting_only":
        assert max(shares) - min(shares) < 0.01


def test_no_fit_or_prediction_of_a_search_touches_a_holdout_row(prepared, tune_settings,
                                                                monkeypatch) -> None:
    """Spy on every fit and predict of real trials: the rows they see (by table index) are
    training rows only."""
    seen: list[np.ndarray] = []
    for cls in map(strategies.get, ("converting_only", "all", "two_stage")):
        original_fit, original_predict = cls.fit, cls.predict

        def fit(self, X, y, _fit=original_fit):
            seen.append(np.asarray(X.index))
            return _fit(self, X, y)

        def predict(self, X, _predict=original_predict):
            seen.append(np.asarray(X.index))
            return _predict(self, X)

        monkeypatch.setattr(cls, "fit", fit)
        monkeypatch.setattr(cls, "predict", predict)

    for strategy in ("two_stage", "converting_only"):
        space = _space.parse({"xgb": {"n_estimators": {"type": "int", "low": 5, "high": 10}}},
                             "t").search("xgb", strategy)
        folds = _cv.make_folds(prepared, strategy, 3, seed=7)
        objective = _cv.Objective(prepared, tune_settings(strategy=strategy), space, folds,
                                  "rmse", threads=1)
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        optuna.create_study().optimize(objective, n_trials=2)
    rows = np.concatenate(seen)
    assert len(seen) == 2 * 2 * 3 * 2  # strategies x trials x folds x (fit, predict)
    assert not set(rows) & set(prepared.split.test)
    assert set(rows) <= set(prepared.split.train)


def test_fold_scores_are_reported_and_their_mean_returned(prepared, tune_settings) -> None:
    space = _space.parse({"ridge": {"alpha": {"type": "float", "low": 1.0, "high": 2.0}}},
                         "t").search("ridge", "all")
    folds = _cv.make_folds(prepared, "all", 3, seed=7)
    objective = _cv.Objective(prepared, tune_settings(strategy="all"), space, folds, "mae",
                              threads=1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study()
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert sorted(trial.intermediate_values) == [0, 1, 2]
    assert trial.value == pytest.approx(np.mean(list(trial.intermediate_values.values())))


def test_tweedie_deviance_clips_predictions_and_rejects_unknown_metrics() -> None:
    y = np.array([0.0, 0.0, 49.99])
    assert np.isfinite(_cv.metric("tweedie_deviance")(y, np.array([0.0, -1.0, 50.0])))
    assert _cv.metric("rmse")(y, y) == 0.0
    with pytest.raises(ConfigError, match="unknown tune metric 'r2'"):
        _cv.metric("r2")


def test_too_many_folds_for_the_data(prepared) -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        _cv.make_folds(prepared, "all", 1, seed=7)
    with pytest.raises(DataError, match="lower --folds"):
        _cv.make_folds(prepared, "all", 10_000, seed=7)
