"""train() end to end on the small demo set, and its MLflow run read back with MlflowClient."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from revcli import atomic, serialization, settings, train
from revcli.errors import ConfigError, DataError


def test_run_has_metrics_params_tags_and_artifacts(trained) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=trained.tracking_uri)
    run = client.get_run(trained.run_id)
    for key in ("rmse", "mae", "r2", "mape", "baseline_rmse", "baseline_r2"):
        assert key in run.data.metrics
    assert run.data.metrics["rmse"] == pytest.approx(trained.scorecard.metrics["rmse"])
    assert run.data.params["strategy"] == "converting_only"
    assert run.data.params["estimator"] == "xgb"
    assert run.data.params["model.estimator__max_depth"] == "3"
    assert int(run.data.params["test_converters"]) == trained.split["test_converters"]
    tags = run.data.tags
    assert tags["revcli.dataset_sha256"] == trained.dataset.sha256
    assert tags["revcli.split_hash"] == trained.split["hash"]
    assert tags["revcli.leakage"] == "engagement_depth"
    assert tags["revcli.model_sha256"] == trained.model_sha256
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "Revenue_Prediction_Regression"

    artifacts = {a.path for a in client.list_artifacts(trained.run_id)}
    assert "scorecard.json" in artifacts
    plots = {a.path for a in client.list_artifacts(trained.run_id, "plots")}
    assert plots == {"plots/residuals.png", "plots/predicted_vs_actual.png",
                     "plots/feature_importance.png"}
    local = Path(client.download_artifacts(trained.run_id, "scorecard.json"))
    assert json.loads(local.read_text())["scorecard"]["population"] == "test converters"


def test_logged_model_loads_with_mlflow_and_predicts_like_the_joblib(trained,
                                                                    monkeypatch) -> None:
    import mlflow
    import pandas as pd

    model = serialization.load(trained.model_path)
    assert atomic.sha256_file(trained.model_path) == trained.model_sha256
    # runs:/ URIs resolve against the tracking URI: the environment's, put back after
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{trained.run_id}/model")
    # the table as revcli reads it -- timestamps, int32, int64 and bool columns as they are
    raw = pd.read_parquet(trained.dataset.path).head(200)
    X = raw.drop(columns=["revenue", "is_ordered"])
    assert {str(t) for t in X.dtypes} >= {"datetime64[us]", "int32", "int64", "bool"}
    assert np.allclose(pyfunc.predict(X), model.predict(X))
    # ... and the same columns in other integer widths, or with extra columns
    wider = X.astype({"hour_of_day": "int64", "is_repeat_session": "int32"})
    assert np.allclose(pyfunc.predict(wider.assign(extra=1)), model.predict(X))
    assert pyfunc.metadata.signature is not None
    meta = json.loads((trained.model_path.parent / "model.json").read_text())
    assert meta["features"] == trained.features and meta["model_sha256"] == trained.model_sha256


def test_scorecard_is_beside_the_baseline_and_plots_are_pngs(trained) -> None:
    card = trained.scorecard
    assert set(card.metrics) == set(card.baseline) == {"rmse", "mae", "r2", "mape"}
    assert card.baseline["r2"] == pytest.approx(0.0, abs=0.05)
    assert card.rows == card.converters == trained.split["test_converters"]
    # the audit names the leak, but on converters it is constant and cannot inflate the scores
    assert [f.feature for f in trained.leakage] == ["engagement_depth"]
    assert card.leaks == []
    assert {v["level"] for v in card.verdicts} == {"minimum", "good"}
    for path in trained.plots.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(trained.importance) == set(trained.features)


def test_two_stage_and_all_score_every_session(small_settings) -> None:
    s = small_settings.replace(strategy="two_stage", estimator="ridge")
    result = train.train(s, drop_features=["engagement_depth"], plots=False)
    card = result.scorecard
    assert card.rows == result.split["test_rows"]
    assert 0.5 < card.metrics["auc"] < 0.99  # honest once the leak is dropped
    assert result.leakage == [] and card.leaks == []
    assert "engagement_depth" not in result.features
    s = small_settings.replace(strategy="all", estimator="mean")
    result = train.train(s, plots=False)
    # the mean estimator *is* the baseline
    assert result.scorecard.metrics["rmse"] == pytest.approx(result.scorecard.baseline["rmse"])


def test_leak_makes_two_stage_look_great_and_is_reported(small_settings) -> None:
    s = small_settings.replace(strategy="two_stage", estimator="hgb")
    result = train.train(s, plots=False)
    assert result.scorecard.metrics["auc"] > 0.99
    assert result.scorecard.leaks == ["engagement_depth"]
    from mlflow import MlflowClient

    tags = MlflowClient(tracking_uri=result.tracking_uri).get_run(result.run_id).data.tags
    assert tags["revcli.honest"] == "false"
    assert tags["revcli.leakage"] == "engagement_depth"


def test_config_params_then_cli_params(small_settings, tmp_path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[params.ridge]\nalpha = 3.0\nfit_intercept = false\n")
    s = settings.resolve(flags={"workspace": str(small_settings.workspace),
                                "estimator": "ridge"}, config_file=config, env={})
    result = train.train(s, params={"alpha": 5.0}, plots=False)
    assert result.params == {"alpha": 5.0, "fit_intercept": False}


def test_errors_before_any_work(small_settings, tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown strategy"):
        train.train(small_settings.replace(strategy="zero_inflated"))
    bad = tmp_path / "bad.parquet"
    import pandas as pd

    pd.DataFrame({"revenue": [-1.0, 2.0], "x": [1, 2]}).to_parquet(bad)
    with pytest.raises(DataError, match="negative"):
        train.train(small_settings, data=bad)
    # nothing was registered from the bad file
    from revcli.workspace import Workspace

    assert len(Workspace(small_settings.workspace).datasets()) == 1


def test_training_leaves_the_environment_alone(small_settings, monkeypatch) -> None:
    import os

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    train.train(small_settings.replace(estimator="mean"), plots=False)
    # a second resolution in the same process must not inherit the first run's store
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert settings.resolve(env=dict(os.environ)).tracking_uri is None


def test_data_trains_on_the_file_and_leaves_the_current_dataset(small_settings, small_demo,
                                                                tmp_path) -> None:
    from revcli.workspace import Workspace

    ws = Workspace(small_settings.workspace)
    before = ws.current().sha256
    other = tmp_path / "other.parquet"
    small_demo.head(5_000).to_parquet(other, index=False)
    result = train.train(small_settings.replace(estimator="mean"), data=other, plots=False)
    assert result.dataset.sha256 != before and result.dataset.rows == 5_000
    assert ws.current().sha256 == before


def test_a_broken_current_dataset_fails_before_any_work(small_settings) -> None:
    from revcli.workspace import Workspace

    ws = Workspace(small_settings.workspace)
    ws.current().path.unlink()
    with pytest.raises(DataError, match=r"missing its file.*revcli fetch"):
        train.train(small_settings.replace(estimator="mean"), plots=False)
    assert not ws.mlflow_db.exists()  # nothing was logged
