"""Models without pickle: skops with revcli's one list of trusted types, in the workspace and in
MLflow, loaded with pickle turned off; anything else refused by name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from revcli import estimators, modelref, serialization, strategies
from revcli.errors import DataError
from revcli.model import RevenueModel

# Few trees: every estimator's classes, quickly.
SMALL = {"rf": {"n_estimators": 3, "max_depth": 3}, "xgb": {"n_estimators": 3},
         "xgb_log": {"n_estimators": 3}, "hgb": {"max_iter": 3}, "gbr_quantile": {"max_iter": 3}}


def _fitted(strategy: str, estimator: str, frame):
    from revcli.features import for_estimator

    X = frame.drop(columns=["revenue", "is_ordered"])
    params = dict(SMALL.get(estimator, {}))
    if estimator == "ensemble":
        params = {"rf__n_estimators": 3, "xgb__n_estimators": 3}
    model = RevenueModel(featurizer=for_estimator(estimators.spec(estimator).capabilities),
                         strategy=strategies.build(strategy, estimator, params, n_jobs=1))
    return model.fit(X, frame["revenue"].to_numpy()), X


@pytest.fixture(scope="module")
def frame(small_demo):
    return small_demo.head(3000).reset_index(drop=True)


def test_every_strategy_and_estimator_needs_only_the_trusted_types(frame, tmp_path) -> None:
    import skops.io

    trusted = set(serialization.trusted_types())
    for strategy in strategies.names():
        for estimator in estimators.ESTIMATORS:
            model, X = _fitted(strategy, estimator, frame)
            found = set(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
            assert found <= trusted, (strategy, estimator, found - trusted)
            path = tmp_path / f"{strategy}-{estimator}.skops"
            serialization.dump(model, path)
            assert np.allclose(serialization.load(path).predict(X.head(50)),
                               model.predict(X.head(50)))


class Foreign:
    """A type no list trusts: loading it would mean running its code."""

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def test_a_skops_file_with_a_foreign_type_is_refused_naming_it(tmp_path, frame) -> None:
    import skops.io

    model, _ = _fitted("converting_only", "ridge", frame)
    model.strategy_.extra_ = Foreign()
    path = tmp_path / "model.skops"
    skops.io.dump(model, path)
    with pytest.raises(DataError, match=r"tests\.test_serialization\.Foreign"):
        modelref.load_file(path)
    with pytest.raises(DataError, match="Foreign"):
        modelref.load_file(path, trust=True)  # --trust is for pickles; skops never runs code
    with pytest.raises(DataError, match="Foreign"):
        serialization.dump(model, tmp_path / "again.skops")
    assert not (tmp_path / "again.skops").exists()


def test_a_trusted_skops_file_loads_from_anywhere_without_trust(tmp_path, frame) -> None:
    model, X = _fitted("two_stage", "xgb", frame)
    path = tmp_path / "handed-to-me" / "model.skops"
    path.parent.mkdir()
    serialization.dump(model, path)
    loaded = modelref.load_file(path)
    assert loaded.checked.startswith("skops")
    assert np.allclose(loaded.model.predict(X.head(20)), model.predict(X.head(20)))


def test_the_workspace_holds_no_pickle_and_the_mlflow_model_loads_with_pickle_off(
        trained) -> None:
    directory = trained.model_path.parent
    assert trained.model_path.name == "model.skops"
    assert serialization.format_of(trained.model_path) == serialization.SKOPS
    assert not list(directory.glob("*.joblib")) and not list(directory.glob("*.pkl"))
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=trained.tracking_uri)
    model_id = trained.model_uri.removeprefix("models:/")
    location = client.get_logged_model(model_id).artifact_location
    local = Path(location.removeprefix("file://"))
    files = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    assert "model.skops" in files and not any(f.endswith((".pkl", ".joblib")) for f in files)
    code = [f for f in files if f.startswith("code/")]
    # not the whole package: the modules and the data files they read
    assert len(code) == len(serialization.MODEL_MODULES) + len(serialization.MODEL_DATA), code


SCRIPT = """
import json, sys
import mlflow, numpy as np, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
raw = pd.read_parquet(sys.argv[2])
out = {}
for run_id in sys.argv[3:]:
    out[run_id] = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(raw).tolist()[:50]
print(json.dumps(out))
"""


def test_pyfunc_loads_every_strategy_and_estimator_with_pickle_deserialization_off(
        tmp_path, frame) -> None:
    """The acceptance line: MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false, mlflow.pyfunc on the
    raw table, in a fresh process (so only the model's own code/ and installed libraries)."""
    from revcli.tracking._client import Tracker
    from revcli.workspace import Workspace
    from tests.workspaces import seed_store

    seed_store(tmp_path / "ws")
    tracker = Tracker(f"sqlite:///{tmp_path / 'ws' / 'mlflow.db'}", Workspace(tmp_path / "ws"))
    experiment = tracker.experiment_id("serialization")
    expected = {}
    for strategy in strategies.names():
        for estimator in estimators.ESTIMATORS:
            model, X = _fitted(strategy, estimator, frame)
            run_id = tracker.client.create_run(experiment).info.run_id
            path = tmp_path / f"{strategy}-{estimator}.skops"
            serialization.dump(model, path)
            tracker.log_model(run_id, path, X.head(5), model.predict(X.head(5)))
            expected[run_id] = model.predict(X.head(50))
    raw = tmp_path / "raw.parquet"
    frame.to_parquet(raw)
    env = {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, tracker.uri, str(raw), *expected],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    for run_id, values in expected.items():
        assert np.allclose(got[run_id], values), run_id


def test_skops_trusts_the_same_scikit_learn_estimators_without_walking_scikit_learn() -> None:
    """serialization.skops_io answers skops' all_estimators() from the names read for this
    scikit-learn release: skops ends up trusting exactly the list the walk would give."""
    import sklearn

    listed = json.loads((Path(serialization.__file__).parent / "defaults" /
                         serialization.ESTIMATOR_NAMES_FILE).read_text())
    if listed["scikit-learn"] != sklearn.__version__:
        pytest.skip(f"{serialization.ESTIMATOR_NAMES_FILE} was read from scikit-learn "
                    f"{listed['scikit-learn']}, {sklearn.__version__} is installed (skops walks "
                    "it as usual); refresh it: python -c \"from revcli.serialization import "
                    "write_estimator_names as w; w()\"")
    script = (
        "import sys, sklearn.utils\n"
        "real = sklearn.utils.all_estimators\n"
        "from revcli import serialization\n"
        "serialization.skops_io()\n"
        "from skops.io import _trusted_types as t\n"
        "walked = 'sklearn.cross_decomposition' in sys.modules  # what only the walk imports\n"
        "import json\n"
        "print(json.dumps({'walked': walked, 'restored': sklearn.utils.all_estimators is real,\n"
        "                  'trusted': t.SKLEARN_ESTIMATOR_TYPE_NAMES,\n"
        "                  'real': serialization.sklearn_estimator_names()}))\n")
    out = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True,
                                    text=True, check=True).stdout)
    assert not out["walked"] and out["restored"]
    assert len(out["real"]) > 100
    assert out["trusted"] == out["real"]


def test_a_list_read_from_another_scikit_learn_release_is_not_used(monkeypatch) -> None:
    from revcli import defaults

    monkeypatch.setattr(defaults, "text", lambda name: json.dumps(
        {"scikit-learn": "0.0.1", "names": ["sklearn.Fake"]}))
    assert serialization._listed_estimators() is None
