"""evaluate(): the holdout scorecard reproduces training's, other data is scored honestly, the
evaluation run is logged with its plots, and the gate knows about leaks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from revcli import evaluate, settings, train
from revcli.errors import DataError, GateFailed
from revcli.workspace import Workspace
from tests.workspaces import seed_store, train_in

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def trained_settings(trained):
    """Settings pointing at the session's trained workspace (used read-only: no tracking, no
    plots)."""
    root = trained.model_path.parent.parent.parent
    return settings.resolve(flags={"workspace": str(root)}, env={})


def test_holdout_scorecard_reproduces_training(trained, trained_settings) -> None:
    result = evaluate.evaluate(trained_settings, run=trained.run_id, track=False, plots=False)
    card = result.scorecard
    for key, value in trained.scorecard.metrics.items():
        assert card.metrics[key] == pytest.approx(value), key
        assert card.baseline[key] == pytest.approx(trained.scorecard.baseline[key]), key
    assert card.population == "test converters"
    assert card.rows == trained.split["test_converters"]
    assert result.data["holdout"] is True and result.data["rows"] == trained.split["test_rows"]
    assert "own training rows" in result.baseline_note
    # named by the audit, but constant on the converters converting_only is scored on
    assert card.leaks == [] and [f.feature for f in result.leak_findings] == ["engagement_depth"]
    # the segment table covers every evaluated row once per group
    landing = [s for s in result.segments if s.group == "landing_page"]
    assert sum(s.rows for s in landing) == card.rows
    assert {s.level for s in landing} >= {"/home", "/lander-1"}
    assert sum(b.rows for b in result.calibration) == card.rows
    assert set(result.importance) == set(trained.features)
    # not enforced: shown, never raised
    assert not result.gate.enforced and not result.gate.passed
    result.check_gate()


@pytest.fixture(scope="module")
def leaky(tmp_path_factory, small_demo) -> tuple[settings.Settings, train.TrainResult]:
    """An all-sessions model trained with engagement_depth: its scores rest on the leak."""
    return train_in(tmp_path_factory.mktemp("leaky"), small_demo, strategy="all",
                    estimator="ridge")


def test_leak_fails_an_enforced_gate_unless_allowed(leaky, tmp_path) -> None:
    s, source = leaky
    lenient = tmp_path / "lenient.toml"
    lenient.write_text('default_level = "minimum"\n[minimum]\nrmse = "< 1000"\n')
    result = evaluate.evaluate(s, run=source.run_id, gate=lenient, enforce=True, track=False,
                               plots=False)
    assert result.scorecard.leaks == ["engagement_depth"]
    assert all(v["passed"] for v in result.gate.verdicts)
    assert not result.gate.passed
    assert "rest on engagement_depth" in result.gate.reasons()[0]
    with pytest.raises(GateFailed, match="leakage audit flags"):
        result.check_gate()
    allowed = evaluate.evaluate(s, run=source.run_id, gate=lenient, enforce=True,
                                allow_leak=True, track=False, plots=False)
    assert allowed.gate.passed and allowed.gate.leaks == ["engagement_depth"]
    allowed.check_gate()


def test_converting_only_is_not_failed_for_a_constant_leak(trained, trained_settings,
                                                           tmp_path) -> None:
    lenient = tmp_path / "lenient.toml"
    lenient.write_text('default_level = "minimum"\n[minimum]\nrmse = "< 1000"\n')
    result = evaluate.evaluate(trained_settings, run=trained.run_id, gate=lenient,
                               enforce=True, track=False, plots=False)
    assert result.gate.passed and result.gate.leaks == []
    result.check_gate()


def test_other_data_is_scored_on_all_its_rows(trained, trained_settings, tmp_path) -> None:
    from revcli import demo

    other = demo.generate(rows=3_000, seed=5)
    other.insert(0, "session_id", np.arange(len(other)))
    other["extra_flag"] = 0
    path = tmp_path / "other.parquet"
    other.to_parquet(path, index=False)
    result = evaluate.evaluate(trained_settings, model=trained.model_path, data=path,
                               track=False, plots=False)
    card = result.scorecard
    assert result.data["holdout"] is False and card.population == "converters of other.parquet"
    assert card.rows == int((other["revenue"] > 0).sum())
    assert card.baseline_value == pytest.approx(trained.scorecard.baseline_value)
    assert "recorded with the model" in result.baseline_note
    assert "make sure none of them was used to train" in result.data["note"]
    from revcli import serialization

    pred = serialization.load(trained.model_path).predict(
        other[trained.features])
    conv = other["revenue"].to_numpy() > 0
    assert card.metrics["rmse"] == pytest.approx(
        float(np.sqrt(np.mean((other["revenue"].to_numpy()[conv] - pred[conv]) ** 2))))
    missing = tmp_path / "missing.parquet"
    other.drop(columns=["hour_of_day", "is_weekend"]).to_parquet(missing)
    with pytest.raises(DataError, match=r"lacks 2 feature.*hour_of_day, is_weekend"):
        evaluate.evaluate(trained_settings, model=trained.model_path, data=missing,
                          track=False, plots=False)


def test_a_split_that_does_not_reproduce_is_refused(trained, tmp_path) -> None:
    import shutil

    root = tmp_path / "ws"
    ws = Workspace(root).ensure()
    shutil.copy(trained.dataset.path, ws.dataset_path(trained.dataset.sha256))
    shutil.copy(trained.dataset.path.with_suffix(".json"),
                ws.datasets_dir / f"{trained.dataset.sha256}.json")
    model_dir = ws.model_dir(trained.run_id)
    shutil.copytree(trained.model_path.parent, model_dir)
    meta_path = model_dir / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["split"]["seed"] = 7  # another split than the one the model was trained on
    meta_path.write_text(json.dumps(meta))
    s = settings.resolve(flags={"workspace": str(root)}, env={})
    # This workspace has no MLflow store to vouch for the copied file: --trust says we know it.
    with pytest.raises(DataError, match="holdout does not reproduce"):
        evaluate.evaluate(s, model=model_dir / "model.skops", track=False, plots=False,
                          trust=True)


def test_tracked_evaluation_run_has_plots_and_links_to_its_source(small_settings) -> None:
    from mlflow import MlflowClient

    seed_store(small_settings.workspace)
    s = small_settings.replace(strategy="two_stage", estimator="ridge")
    source = train.train(s, drop_features=["engagement_depth"], plots=False)
    result = evaluate.evaluate(s, run=source.run_id)
    assert result.eval_run_id and result.eval_run_id != source.run_id
    assert result.scorecard.metrics["rmse"] == pytest.approx(source.scorecard.metrics["rmse"])
    assert result.scorecard.leaks == []
    plots_dir = Workspace(s.workspace).plots_dir / result.eval_run_id
    assert set(result.plots) == {"residuals", "predicted_vs_actual", "feature_importance",
                                 "lorenz", "calibration", "by_period"}
    for path in result.plots.values():
        assert path.parent == plots_dir
        data = path.read_bytes()
        assert data[:8] == PNG and len(data) > 5_000

    client = MlflowClient(tracking_uri=result.tracking_uri)
    run = client.get_run(result.eval_run_id)
    assert run.data.tags["revcli.command"] == "evaluate"
    assert run.data.tags["revcli.source_run"] == source.run_id
    assert run.data.tags["revcli.holdout"] == "true"
    assert run.info.experiment_id == client.get_run(source.run_id).info.experiment_id
    assert run.data.metrics["rmse"] == pytest.approx(result.scorecard.metrics["rmse"])
    assert "baseline_rmse" in run.data.metrics
    logged = {a.path for a in client.list_artifacts(result.eval_run_id, "plots")}
    assert logged == {f"plots/{p.name}" for p in result.plots.values()}
    top = {a.path for a in client.list_artifacts(result.eval_run_id)}
    assert {"evaluation.json", "segments.csv"} <= top
    local = Path(client.download_artifacts(result.eval_run_id, "evaluation.json"))
    assert json.loads(local.read_text())["gate"]["level"] == "minimum"
    assert client.get_run(source.run_id).data.tags["revcli.last_evaluation"] == \
        result.eval_run_id
