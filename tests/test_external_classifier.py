"""two_stage with the classification team's classifier (``--classifier``): registered in a real
MLflow store as another team would, used as stage 1, embedded in the saved model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from revcli.cli import app
from revcli.errors import DataError
from tests.workspaces import seed_store

COLUMNS = ["hour_of_day", "is_repeat_session", "device_type_mobile", "utm_source_gsearch"]


def _register(store: str, frame, name: str = "conversion", fmt: str = "skops",
              columns=COLUMNS) -> str:
    """A scikit-learn conversion classifier logged and registered the way the classification
    team would (MLflow's fluent API, its own experiment), alias ``champion``."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    X = frame[columns].astype("float64")
    clf = LogisticRegression(max_iter=500).fit(X, frame["is_ordered"].astype(int))
    # the other team's fluent API, on the store through the environment (put back after: no
    # process-global tracking URI is left behind for later tests)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", store)
        mlflow.set_experiment("classification-team")
        with mlflow.start_run() as run:
            mlflow.sklearn.log_model(clf, name="model", serialization_format=fmt,
                                     signature=infer_signature(X, clf.predict_proba(X)[:, 1]),
                                     registered_model_name=name)
    client = MlflowClient(store)
    version = client.search_model_versions(f"name='{name}'")[0].version
    client.set_registered_model_alias(name, "champion", version)
    return run.info.run_id


@pytest.fixture
def store(isolated: Path, small_demo) -> str:
    from revcli.workspace import Workspace

    seed_store(isolated)
    Workspace(isolated).write_dataset(small_demo, source="demo:test")
    return f"sqlite:///{isolated / 'mlflow.db'}"


def test_train_with_the_registered_classifier_then_predict_elsewhere(
        store, small_demo, isolated, tmp_path) -> None:
    runner = CliRunner()
    clf_run = _register(store, small_demo)
    result = runner.invoke(app, ["train", "-s", "two_stage", "--classifier",
                                 "models:/conversion@champion", "--no-plots", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    c = body["classifier"]
    assert c["uri"] == "models:/conversion@champion" and c["run_id"] == clf_run
    assert c["version"] == "1" and len(c["sha256"]) == 64
    # stage 1 is theirs: the scorecard's ROC AUC is the external classifier's on the test rows

    from revcli import serialization

    model = serialization.load(body["model"]["path"])
    inner = model.strategy_.classifier_.model
    raw = small_demo.iloc[np.sort(np.r_[0:len(small_demo)])]
    assert type(inner).__name__ == "LogisticRegression"
    from mlflow import MlflowClient

    run = MlflowClient(store).get_run(body["run_id"])
    assert run.data.params["classifier.uri"] == "models:/conversion@champion"
    assert run.data.tags["revcli.classifier_sha256"] == c["sha256"]

    p = model.order_probability(raw.drop(columns=["revenue", "is_ordered"]))
    theirs = inner.predict_proba(raw[COLUMNS].astype("float64"))[:, 1]
    assert np.allclose(p, theirs)
    assert 0.5 < body["scorecard"]["metrics"]["auc"] < 1.0
    assert json.loads(Path(body["model"]["path"]).with_name("model.json").read_text())[
        "classifier"]["sha256"] == c["sha256"]

    # --combine threshold: the seed's recipe, the value where their P(order) >= 0.5
    hard = runner.invoke(app, ["train", "-s", "two_stage", "--classifier",
                               f"runs:/{clf_run}/model", "--combine", "threshold",
                               "--no-plots", "--json"])
    assert hard.exit_code == 0, hard.output
    hard_model = serialization.load(json.loads(hard.stdout)["model"]["path"])
    parts = hard_model.predict_parts(raw.drop(columns=["revenue", "is_ordered"]).head(500))
    assert np.array_equal(parts["prediction"] > 0, parts["p_order"] >= 0.5)

    # predict in a workspace that never saw the classifier (nor its store): the model alone
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(body["model"]["path"], elsewhere / "model.skops")
    data = tmp_path / "sessions.parquet"
    small_demo.head(300).to_parquet(data)
    out = tmp_path / "scored.parquet"
    scored = runner.invoke(app, ["predict", "--model", str(elsewhere / "model.skops"),
                                 "--data", str(data), "--out", str(out),
                                 "--workspace", str(elsewhere / "ws")])
    assert scored.exit_code == 0, scored.output
    import pandas as pd

    frame = pd.read_parquet(out)
    assert np.allclose(frame["p_order"], theirs[:300])
    # ... and by run id from a fresh workspace: the MLflow copy is skops, no --trust needed
    by_run = runner.invoke(app, ["predict", "--run", body["run_id"], "--tracking-uri", store,
                                 "--data", str(data), "--out", str(tmp_path / "r.parquet"),
                                 "--workspace", str(tmp_path / "fresh")])
    assert by_run.exit_code == 0, by_run.output
    assert np.allclose(pd.read_parquet(tmp_path / "r.parquet")["p_order"], theirs[:300])
    # ... and through MLflow's pyfunc with pickle deserialization off, in a fresh process
    import subprocess
    import sys

    script = ("import json, sys, mlflow, pandas as pd; mlflow.set_tracking_uri(sys.argv[1]); "
              "m = mlflow.pyfunc.load_model(f'runs:/{sys.argv[2]}/model'); "
              "print(json.dumps([float(v) for v in m.predict(pd.read_parquet(sys.argv[3]))[:3]]))")
    done = subprocess.run([sys.executable, "-c", script, store, body["run_id"], str(data)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
                               "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-1500:]
    assert np.allclose(json.loads(done.stdout.strip().splitlines()[-1]),
                       model.predict(small_demo.head(3).drop(columns=["revenue", "is_ordered"])))


def test_missing_columns_and_pickles_are_refused(store, small_demo, isolated) -> None:
    from revcli import tracking
    from revcli.tracking import classifier
    from revcli.workspace import Workspace

    frame = small_demo.copy()
    frame["their_score"] = frame["hour_of_day"] * 2.0
    _register(store, frame, name="needs-more", columns=[*COLUMNS, "their_score"])
    _register(store, small_demo, name="pickled", fmt="cloudpickle")
    runner = CliRunner()
    missing = runner.invoke(app, ["train", "-s", "two_stage", "--classifier",
                                  "models:/needs-more@champion", "--no-plots"])
    assert missing.exit_code == 2, missing.output
    assert "their_score" in missing.stderr and "Traceback" not in missing.output
    pickled = runner.invoke(app, ["train", "-s", "two_stage", "--classifier",
                                  "models:/pickled@champion", "--no-plots"])
    assert pickled.exit_code == 2 and "--trust" in pickled.stderr, pickled.output
    tracker = tracking.Tracker(store, Workspace(isolated))
    with pytest.raises(DataError, match="unpickling runs code"):
        classifier.load(tracker, "models:/pickled/1")
    assert classifier.load(tracker, "models:/pickled/1", trust=True).flavor.startswith(
        "sklearn/")
    wrong = runner.invoke(app, ["train", "-s", "converting_only", "--classifier",
                                "models:/conversion@champion", "--no-plots"])
    assert wrong.exit_code == 2 and "classifier stage" in wrong.stderr


def test_compare_strategies_adds_two_stage_with_the_classifier(store, small_demo) -> None:
    _register(store, small_demo)
    result = CliRunner().invoke(app, ["compare", "strategies", "-s", "two_stage",
                                      "--classifier", "models:/conversion@champion", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["label"]: r for r in json.loads(result.stdout)["rows"]}
    ours, theirs = rows["two_stage / xgb"], rows["two_stage+models:/conversion@champion / xgb"]
    assert ours["run_id"] != theirs["run_id"]
    assert theirs["metrics"]["auc"] != ours["metrics"]["auc"]  # another stage 1, same rows
