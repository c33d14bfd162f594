"""The run record is written and read in one place: what goes into tags comes back out."""

from __future__ import annotations

import os

from revcli import tracking
from revcli.tracking import RunRecord


def test_the_run_record_round_trips_through_its_tags() -> None:
    record = RunRecord(
        command="train", strategy="two_stage", estimator="xgb", dataset_sha256="a" * 64,
        dataset_source="s3://processed-data/training_data.parquet", split_hash="b" * 16,
        split="random", population="all test sessions", scored_on="sessions",
        leakage=["engagement_depth"], leaks=["engagement_depth"], too_good=True,
        honest=False, model_sha256="c" * 64, version="0.2.0", git_commit="d" * 40,
        libraries={"mlflow": "3.17.2", "scikit-learn": "1.9.1"},
        extra={"study": "s", "compare_batch": "e" * 12})
    tags = record.to_tags()
    assert tags["revcli.honest"] == "false" and tags["revcli.leakage"] == "engagement_depth"
    assert tags["mlflow.source.git.commit"] == "d" * 40
    assert tags["revcli.lib.mlflow"] == "3.17.2" and tags["revcli.study"] == "s"
    assert RunRecord.from_tags(tags) == record
    bare = RunRecord(command="evaluate")
    assert RunRecord.from_tags(bare.to_tags()) == bare
    assert bare.to_tags()["revcli.leakage"] == "none"


def test_a_tracker_leaves_the_process_as_it_found_it(tmp_path) -> None:
    before = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    tracker = tracking.Tracker(f"sqlite:///{tmp_path / 'm.db'}")
    experiment = tracker.experiment_id("x")
    run_id = tracker.create_run(experiment, "r", {"revcli.command": "train"})
    tracker.log(run_id, params={"a": 1}, metrics={"rmse": 2.0},
                series={"fold_rmse": [(0, 1.0), (1, 3.0)]})
    tracker.end_run(run_id)
    run = tracker.get_run(run_id)
    assert run.params == {"a": "1"} and run.metrics["rmse"] == 2.0
    assert run.record.command == "train" and run.status == "FINISHED"
    assert {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")} == before
    import mlflow

    assert mlflow.active_run() is None
    assert not mlflow.is_tracking_uri_set() or os.environ.get("MLFLOW_TRACKING_URI")
