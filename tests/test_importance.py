"""Feature importance: the estimator's own (train's default) and permutation (any estimator)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from revcli import pipeline, settings
from revcli.errors import ConfigError


def _fitted(small_demo, strategy: str, estimator: str, **params):
    s = settings.resolve(flags={"strategy": strategy, "estimator": estimator, "n_jobs": 1},
                         env={})
    model = pipeline.build(s, {"n_estimators": 20, **params} if "xgb" in estimator or
                           estimator == "rf" else params)
    rows = small_demo.head(6000)
    X = rows.drop(columns=["revenue", "is_ordered"])
    y = rows["revenue"].to_numpy(dtype=np.float64)
    return model.fit(X, y), X, y


@pytest.mark.parametrize(("strategy", "estimator"), [
    ("converting_only", "xgb"), ("all", "rf"), ("two_stage", "xgb"),
    ("converting_only", "ridge"), ("converting_only", "xgb_log")])
def test_native_importance_is_per_table_column_and_sums_to_one(small_demo, strategy,
                                                               estimator) -> None:
    model, X, y = _fitted(small_demo, strategy, estimator)
    found = pipeline.importance(model, X, y, seed=0, method=pipeline.NATIVE)
    assert found.method == pipeline.NATIVE
    assert list(found.values) == [str(c) for c in X.columns]
    assert sum(found.values.values()) == pytest.approx(1.0)
    assert min(found.values.values()) >= 0.0


def test_native_importance_adds_one_hot_levels_and_calendar_parts_to_their_column(
        small_demo) -> None:
    # ridge one-hot encodes a text column and splits the timestamp into calendar parts; every
    # encoded column's share comes home to the column it came from
    s = settings.resolve(flags={"estimator": "ridge", "n_jobs": 1}, env={})
    rows = small_demo.head(6000)
    X = rows.drop(columns=["revenue", "is_ordered"])
    X["channel"] = np.where(X["utm_source_gsearch"], "gsearch", "elsewhere")
    y = rows["revenue"].to_numpy(dtype=np.float64)
    model = pipeline.build(s, {}).fit(X, y)
    encoded = list(model.featurizer_.feature_names_out_)
    found = pipeline.importance(model, X, y, seed=0, method=pipeline.NATIVE).values
    share = model.strategy_.native_importance()
    for column, prefix in (("channel", "channel="), ("created_at", "created_at__")):
        parts = [i for i, c in enumerate(encoded) if c.startswith(prefix)]
        assert len(parts) >= 2
        assert found[column] == pytest.approx(share[parts].sum())


def test_two_stage_importance_is_the_mean_of_its_stages(small_demo) -> None:
    from revcli import estimators

    model, _, _ = _fitted(small_demo, "two_stage", "xgb")
    inner = model.strategy_
    clf = estimators.native_importance(inner.classifier_)
    reg = estimators.native_importance(inner.regressor_)
    assert np.allclose(inner.native_importance(), (clf + reg) / 2)


def test_an_estimator_without_its_own_importance_falls_back_to_permutation(small_demo) -> None:
    model, X, y = _fitted(small_demo, "converting_only", "hgb", max_iter=20)
    assert model.native_importance() is None
    found = pipeline.importance(model, X, y, seed=0, method=pipeline.NATIVE)
    assert found.method == pipeline.PERMUTATION
    assert "RMSE increase" in found.unit
    # the test's leak column matters: shuffling it costs dollars of RMSE
    assert max(found.values, key=found.values.get) in X.columns


def test_permutation_on_request_and_unknown_methods_refused(small_demo) -> None:
    model, X, y = _fitted(small_demo, "converting_only", "xgb")
    assert pipeline.importance(model, X, y, seed=0,
                               method=pipeline.PERMUTATION).method == pipeline.PERMUTATION
    with pytest.raises(ConfigError, match="importance must be one of"):
        pipeline.importance(model, X, y, seed=0, method="shap")


def test_train_records_the_method_and_plots_its_unit(small_settings) -> None:
    from revcli import train

    result = train.train(small_settings, params={"n_estimators": 20},
                         importance=pipeline.PERMUTATION, plots=False)
    assert result.importance_method == pipeline.PERMUTATION
    assert result.to_dict()["importance_method"] == pipeline.PERMUTATION
    assert {"load", "tracking", "tracking_wait", "fit", "importance", "log",
            "total"} <= set(result.timings)
    with pytest.raises(ConfigError, match="--importance"):
        train.train(small_settings, importance="gain")


def test_a_store_that_fails_while_data_loads_fails_the_command(small_settings, tmp_path) -> None:
    # the store opens in a thread beside the data's loading; its failure is the command's,
    # raised before the fit
    from revcli import train
    from revcli.errors import TrackingError

    not_a_store = tmp_path / "store.db"
    not_a_store.write_text("not sqlite")
    bad = small_settings.replace(tracking_uri=f"sqlite:///{not_a_store}")
    with pytest.raises(TrackingError, match="not an sqlite database"):
        train.train(bad, plots=False)
    assert not list((small_settings.workspace / "models").glob("*"))


def test_feature_names_map_back_with_overlapping_column_names() -> None:
    from revcli.features import Featurizer

    X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "a_b": [1.0, 0.0, 1.0],
                      "a__x": pd.Categorical(["u", "v", "u"])})
    f = Featurizer().fit(X)
    assert f.by_source(np.ones(len(f.feature_names_out_))) == {
        "a": 1.0, "a_b": 1.0, "a__x": float(len(f.feature_names_out_) - 2)}
