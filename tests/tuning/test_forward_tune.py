"""tune's folds look like the holdout on a time split, it never hands back a model its folds do
not rate clearly above the defaults, and it shows its work (issues 17 and 20)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from revcli import pipeline
from revcli.tuning import tune
from revcli.tuning._cv import make_folds
from revcli.tuning._tune import TrialSummary, against_default


def trial(number: int, folds: list[float]) -> TrialSummary:
    return TrialSummary(number=number, state="COMPLETE", value=float(np.mean(folds)),
                        estimator="xgb", params={}, fold_scores=folds)


def test_the_best_must_beat_the_defaults_beyond_the_fold_spread() -> None:
    default = trial(0, [17.10, 16.90, 17.30])
    # a gain that every fold agrees on
    clear = against_default(trial(7, [17.00, 16.80, 17.20]), default)
    assert clear["clear"] and clear["chosen"] == "best"
    assert clear["gain"] == pytest.approx(0.1) and clear["fold_sd"] == pytest.approx(0.0)
    # a larger mean gain the folds disagree on: not clear, the defaults are refit
    noisy = against_default(trial(9, [16.60, 17.20, 16.90]), default)
    assert noisy["gain"] > 0 and not noisy["clear"] and noisy["chosen"] == "default"
    assert noisy["margin"] > noisy["gain"]
    assert against_default(default, default)["chosen"] == "default"
    assert against_default(trial(3, [17.0, 17.0, 17.0]), None) is None


def test_time_split_folds_look_like_the_holdout(tune_settings) -> None:
    s = tune_settings(split="time", gap="7d")
    prepared = pipeline.prepare(s)
    folds = make_folds(prepared, "all", 3, seed=0)
    stamps = pd.Series(prepared.table.X["created_at"]).to_numpy()
    train = prepared.split.train
    # the last fold ends where the training rows end, as the holdout ends the table
    assert stamps[folds[-1].score].max() == stamps[train].max()
    for fold in folds:
        first = stamps[fold.score].min()
        # the holdout's gap is left out before each fold's window
        assert stamps[fold.fit].max() < first - np.timedelta64(7, "D")
        assert 0.5 < len(fold.score) / len(prepared.split.test) < 1.5
    starts = [stamps[f.score].min() for f in folds]
    assert starts == sorted(starts)


def test_tune_shows_the_defaults_beside_the_best_and_never_kills_pruned_runs(
        tune_settings) -> None:
    result = tune(tune_settings(n_trials=12, strategy="all"), plots=True)
    versus = result.versus_default
    assert versus is not None and versus["default_trial"] == 0
    assert versus["default_cv"] is not None and versus["chosen"] in ("best", "default")
    client = MlflowClient(tracking_uri=result.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.data.metrics["default_cv_rmse"] == pytest.approx(versus["default_cv"])
    assert parent.data.tags["revcli.refit"] == versus["chosen"]
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'")
    assert children and all(r.info.status != "KILLED" for r in children)
    for run in children:
        if run.data.tags["revcli.trial_state"] == "PRUNED":
            assert run.info.status == "FINISHED" and run.data.tags["revcli.pruned"] == "true"
    if versus["chosen"] == "default" and versus["best_trial"] != 0:
        assert any("not clearly better than the defaults" in n for n in result.notes)
