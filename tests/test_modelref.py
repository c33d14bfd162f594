"""A model file is unpickled only once its sha256 matches revcli's record of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import joblib
import pytest

from revcli import modelref, settings, tracking
from revcli.errors import DataError, NotFoundError
from revcli.progress import Reporter
from revcli.workspace import Workspace


class Recorder(Reporter):
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)


@pytest.fixture
def copied(trained, tmp_path: Path) -> Path:
    """The trained model as a pickle (as `push` writes one, its sha256 tagged on the run, or as
    an older workspace holds one) and its model.json, so tests can tamper with them."""
    from mlflow import MlflowClient

    from revcli import atomic, serialization

    directory = tmp_path / "copy"
    directory.mkdir()
    joblib.dump(serialization.load(trained.model_path), directory / "model.joblib")
    MlflowClient(trained.tracking_uri).set_tag(trained.run_id, modelref.PICKLE_SHA_TAG,
                                               atomic.sha256_file(directory / "model.joblib"))
    shutil.copy(trained.model_path.parent / "model.json", directory / "model.json")
    return directory / "model.joblib"


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("joblib.load was called on a file that failed its check")

    monkeypatch.setattr(joblib, "load", refuse)


def _workspace(trained) -> Workspace:
    return Workspace(trained.model_path.parent.parent.parent)


def _tracker(trained) -> tracking.Tracker:
    return tracking.Tracker(trained.tracking_uri, _workspace(trained))


def test_workspace_model_loads_once_its_run_vouches_for_it(trained) -> None:
    loaded = modelref.load_file(trained.model_path, tracker=_tracker(trained),
                                workspace=_workspace(trained))
    assert loaded.sha256 == trained.model_sha256
    assert loaded.checked.startswith("sha256 matches MLflow run") and loaded.run is not None
    assert loaded.strategy == "converting_only" and loaded.estimator == "xgb"
    assert loaded.features == trained.features
    # trained with engagement_depth, constant on converters: converting_only's scores are honest
    assert "engagement_depth" in loaded.features and loaded.leaks == []
    assert loaded.meta["baseline_value"] == pytest.approx(trained.scorecard.baseline_value)
    assert loaded.run_id == trained.run_id


def test_a_copy_with_its_model_json_is_not_trusted_for_the_sidecar(trained, copied,
                                                                   no_unpickling) -> None:
    """A model.json beside a file proves nothing: whoever wrote the file could write it."""
    with pytest.raises(DataError, match=r"proves nothing\); refusing to unpickle"):
        modelref.load_file(copied)


def test_tampered_file_is_refused_before_unpickling(trained, copied, no_unpickling) -> None:
    with open(copied, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(DataError, match="refusing to unpickle"):
        modelref.load_file(copied, tracker=_tracker(trained))


def test_unrecorded_file_loads_with_trust_and_a_warning(copied) -> None:
    recorder = Recorder()
    loaded = modelref.load_file(copied, trust=True, reporter=recorder)
    assert loaded.checked == "not checked (--trust)"
    assert recorder.warnings and "loading it anyway (--trust)" in recorder.warnings[0]
    assert loaded.features  # metadata beside a trusted file is still read


def test_a_copy_is_found_by_its_mlflow_tag(trained, copied) -> None:
    (copied.parent / "model.json").unlink()
    loaded = modelref.load_file(copied, tracker=_tracker(trained))
    assert loaded.run_id == trained.run_id
    assert "MLflow run" in loaded.checked
    assert loaded.features == trained.features
    assert loaded.meta["split_hash"] == trained.split["hash"]


class _Hostile:
    """Unpickling it creates a marker file: a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("place", ["anywhere", "workspace-models", "pushed-copy"])
@pytest.mark.parametrize("forged", [False, True])
def test_a_hostile_pickle_never_runs_without_trust(trained, tmp_path: Path, place: str,
                                                   forged: bool) -> None:
    import json

    ws = _workspace(trained)
    marker = tmp_path / "pwned"
    if place == "workspace-models":
        path = ws.model_dir("f" * 32) / "model.joblib"
    elif place == "pushed-copy":
        path = tmp_path / "download" / "regression_model.pkl"
    else:
        path = tmp_path / "elsewhere" / "model.joblib"
    path.parent.mkdir(parents=True)
    joblib.dump(_Hostile(marker), path)
    from revcli import atomic

    sha = atomic.sha256_file(path)
    if forged:  # a sidecar carrying the file's true hash, in every form revcli writes
        (path.parent / "model.json").write_text(json.dumps(
            {"run_id": "f" * 32, "model_sha256": sha, "strategy": "all", "features": ["x"]}))
        path.with_suffix(".json").write_text(json.dumps(
            {"run_id": trained.run_id, "model": {"sha256": sha}}))
    for tracker in (None, _tracker(trained)):
        with pytest.raises(DataError, match="refusing to unpickle"):
            modelref.load_file(path, tracker=tracker, workspace=ws)
    if place == "workspace-models":
        s = settings.resolve(flags={"workspace": str(ws.root)}, env={})
        with pytest.raises(NotFoundError):
            modelref.load(s, ws, run="f" * 32, tracker=_tracker(trained))
    assert not marker.exists()
    shutil.rmtree(path.parent)


def test_a_file_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.joblib"
    text.write_text("revenue,hour\n1,2\n")
    with pytest.raises(DataError, match="matches no record"):
        modelref.load_file(text)
    with pytest.raises(DataError, match="not a revcli model: it cannot be read as a joblib"):
        modelref.load_file(text, trust=True)
    other = tmp_path / "dict.joblib"
    joblib.dump({"weights": [1, 2]}, other)
    with pytest.raises(DataError, match=r"holds a builtins\.dict, not a revcli model"):
        modelref.load_file(other, trust=True)
    with pytest.raises(NotFoundError, match="does not exist"):
        modelref.load_file(tmp_path / "missing.joblib")


def test_run_references(trained, tmp_path: Path) -> None:
    ws = _workspace(trained)
    s = settings.resolve(flags={"workspace": str(ws.root)}, env={})
    tracker = _tracker(trained)
    run_id = trained.run_id
    assert tracking.resolve(tracker, run_id, "m") == tracking.Resolved(run_id, f"run {run_id}")
    assert tracking.resolve(tracker, run_id[:8], "m").run_id == run_id
    name = tracker.get_run(run_id).name
    assert tracking.resolve(tracker, name, "m").run_id == run_id  # by run name
    loaded = modelref.load(s, ws, run=run_id[:8], tracker=tracker)
    assert loaded.run is not None and loaded.run.run_id == run_id
    assert loaded.flagged == ["engagement_depth"] and loaded.leaks == []  # from the run's tags
    with pytest.raises(NotFoundError, match="no run, run name or registered model alias"):
        tracking.resolve(tracker, "../../etc/passwd", "m")
    with pytest.raises(NotFoundError, match="no run, run name or registered model alias"):
        tracking.resolve(tracker, "champion", "m")
    with pytest.raises(NotFoundError, match="no registered model version m@champion"):
        tracking.resolve(tracker, "models:/m@champion", "m")
    from revcli.errors import ConfigError

    with pytest.raises(ConfigError, match="exactly one of --run"):
        modelref.load(s, ws)


def test_a_pushed_model_is_checked_against_its_run_not_the_metadata_beside_it(
        trained, tmp_path) -> None:
    """`revcli push` uploads regression_model.pkl and regression_model.json (sha256 under
    "model"); downloaded together, the file loads once MLflow's run vouches for its hash. The
    JSON alone is no proof."""
    import json

    from mlflow import MlflowClient

    from revcli import atomic, serialization

    pkl = tmp_path / "regression_model.pkl"
    joblib.dump(serialization.load(trained.model_path), pkl)
    sha = atomic.sha256_file(pkl)
    MlflowClient(trained.tracking_uri).set_tag(trained.run_id, modelref.PICKLE_SHA_TAG, sha)
    document = {"run_id": trained.run_id, "strategy": "converting_only", "estimator": "xgb",
                "features": trained.features, "model": {"sha256": sha}}
    (tmp_path / "regression_model.json").write_text(json.dumps(document))
    with pytest.raises(DataError, match="proves nothing"):
        modelref.load_file(pkl)
    loaded = modelref.load_file(pkl, tracker=_tracker(trained))
    assert "MLflow run" in loaded.checked and loaded.run_id == trained.run_id
    assert loaded.flagged == ["engagement_depth"] and loaded.leaks == []
