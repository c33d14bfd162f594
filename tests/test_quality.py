"""Honest quality: a time split, near-leaks, implausible scores, mean-targeting estimators,
starting from a run or a study, and a search that tries each estimator's defaults first."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from revcli import evaluate, leakage, metrics, split, strategies, train
from revcli.errors import GateFailed
from revcli.progress import Reporter
from tests.workspaces import seed_store


class Warnings(Reporter):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def warn(self, message: str) -> None:
        self.messages.append(message)


def test_a_time_split_trains_on_the_past_and_tests_on_the_future(small_demo) -> None:
    ordered = small_demo.revenue.to_numpy() > 0
    times = small_demo.created_at
    s = split.make_time_split(times, ordered, 0.2, "created_at")
    assert s.kind == "time" and len(s.test) == round(len(small_demo) * 0.2)
    assert times.iloc[s.train].max() <= times.iloc[s.test].min()
    assert s.hash != split.make_split(ordered).hash
    gapped = split.make_time_split(times, ordered, 0.2, "created_at", gap="14d")
    assert times.iloc[gapped.test].min() - times.iloc[gapped.train].max() >= pd.Timedelta("14D")
    assert len(gapped.train) < len(s.train) and gapped.hash == s.hash  # same test rows
    assert list(s.train_in_time) == sorted(s.train_in_time, key=lambda i: times.iloc[i])


def test_train_and_evaluate_on_a_time_split(small_settings) -> None:
    seed_store(small_settings.workspace)
    s = small_settings.replace(split="time", estimator="ridge")
    result = train.train(s, plots=False)
    assert result.split["kind"] == "time" and result.split["time_column"] == "created_at"
    assert result.split["train_until"] < result.split["test_from"]
    # evaluate recomputes the very same holdout from what the model recorded
    evaluated = evaluate.evaluate(s, run=result.run_id, plots=False, track=False)
    assert evaluated.data["holdout"] is True
    assert evaluated.scorecard.metrics["rmse"] == pytest.approx(result.scorecard.metrics["rmse"])


def test_a_near_leak_is_named_and_fails_an_enforced_gate(small_settings, small_demo,
                                                         tmp_path) -> None:
    """A feature that is 7 for every order and for 3 % of other sessions: single-feature AUC
    ~0.985, under the 0.99 cut-off for a leak, and still the order nearly given away."""
    rng = np.random.default_rng(1)
    frame = small_demo.drop(columns="engagement_depth")
    ordered = frame.revenue.to_numpy() > 0
    frame["pages"] = np.where(ordered | (rng.random(len(frame)) < 0.03), 7, 3)
    path = tmp_path / "near.parquet"
    frame.to_parquet(path, index=False)
    seed_store(small_settings.workspace)
    s = small_settings.replace(strategy="two_stage", estimator="hgb")
    result = train.train(s, data=path, plots=False)
    [finding] = result.leakage
    assert finding.feature == "pages" and finding.kind == leakage.NEAR
    assert 0.95 <= finding.auc < 0.99
    assert result.honesty.leaks == ("pages",) and not result.honesty.honest
    with pytest.raises(GateFailed, match="pages"):
        evaluate.evaluate(s, run=result.run_id, level="minimum", enforce=True, plots=False,
                          track=False).check_gate()


def test_an_implausible_r2_is_too_good() -> None:
    y = np.r_[np.zeros(90), np.full(10, 60.0)]
    card = metrics.scorecard(strategies.get("all"), y, y * 0.7, metrics.Baselines.of(y))
    assert "R² 0.90 on all test sessions" in leakage.too_good(card)


def test_xgb_log_estimates_the_mean_not_the_geometric_mean(small_settings) -> None:
    s = small_settings.replace(strategy="all", estimator="xgb_log")
    result = train.train(s, drop_features=["engagement_depth"], plots=False)
    # predicted ÷ actual total revenue: ~0.08 with the plain back-transform
    assert 0.7 < result.scorecard.metrics["total_ratio"] < 1.3


def test_a_median_estimator_on_mostly_zeros_is_warned_about_before_training(
        small_settings) -> None:
    reporter = Warnings()
    s = small_settings.replace(strategy="all", estimator="gbr_quantile")
    train.train(s, drop_features=["engagement_depth"], plots=False, reporter=reporter)
    assert any("estimates the median" in m and "earned $0" in m for m in reporter.messages)
    quiet = Warnings()
    train.train(s.replace(strategy="converting_only"), plots=False, reporter=quiet)
    assert not any("estimates the median" in m for m in quiet.messages)


def test_train_from_a_run_and_from_a_study(small_settings, tmp_path) -> None:
    seed_store(small_settings.workspace)
    first = train.train(small_settings.replace(strategy="all", estimator="ridge"),
                        params={"alpha": 7.5}, drop_features=["engagement_depth"], plots=False)
    again = train.train(small_settings, from_run=first.run_id[:8],
                        drop_features=["engagement_depth"], plots=False)
    assert (again.strategy, again.estimator) == ("all", "ridge")
    assert again.params == {"alpha": 7.5}

    from revcli import settings
    from revcli.tuning import tune

    space = tmp_path / "spaces.toml"
    space.write_text('[ridge]\nalpha = { type = "float", low = 0.1, high = 100.0, log = true }\n')
    s = settings.resolve(flags={"workspace": str(small_settings.workspace), "spaces": str(space),
                                "strategy": "converting_only", "estimator": "ridge",
                                "n_trials": 3, "n_jobs": 1}, env={})
    tuned = tune(s, plots=False)
    assert tuned.top[0].number == 0 or tuned.top[0].params  # searched
    best = train.train(small_settings, from_study=tuned.study, plots=False)
    assert best.estimator == "ridge" and best.params["alpha"] == pytest.approx(
        tuned.best.params["alpha"])
    # a unique prefix and `latest` name the same study; `latest` names the newest run
    for ref in (tuned.study[:20], "latest"):
        again = train.train(small_settings, from_study=ref, plots=False)
        assert again.params["alpha"] == pytest.approx(tuned.best.params["alpha"])
    newest = train.train(small_settings, from_run="latest", plots=False)
    assert newest.params["alpha"] == pytest.approx(tuned.best.params["alpha"])

    from revcli.errors import NotFoundError

    with pytest.raises(NotFoundError, match=r"no study 'nightly'.*latest"):
        train.train(small_settings, from_study="nightly", plots=False)


def test_tune_tries_each_estimators_defaults_first(small_settings, tmp_path) -> None:
    from revcli import settings
    from revcli.tuning import tune

    space = tmp_path / "spaces.toml"
    space.write_text('all_estimators = ["ridge", "xgb"]\n'
                     '[ridge]\nalpha = { type = "float", low = 0.001, high = 1000.0, log = true }\n'
                     '[xgb]\nmax_depth = { type = "int", low = 2, high = 8 }\n'
                     'n_estimators = { type = "int", low = 20, high = 60, step = 20 }\n')
    s = settings.resolve(flags={"workspace": str(small_settings.workspace), "spaces": str(space),
                                "estimator": "all", "n_trials": 2, "n_jobs": 1}, env={})
    result = tune(s, plots=False)
    import optuna

    study = optuna.load_study(study_name=result.study, storage=result.storage)
    first = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)[:2]
    assert [t.params["estimator"] for t in first] == ["ridge", "xgb"]
    assert first[0].params["ridge.alpha"] == pytest.approx(1.0)  # Ridge's own default
    assert first[1].params["xgb.max_depth"] == 3  # revcli's xgb default
    assert first[1].params["xgb.n_estimators"] == 60  # 100, the nearest point of the space
    again = tune(s, plots=False)  # resumed: the defaults are not queued twice
    study = optuna.load_study(study_name=again.study, storage=again.storage)
    assert sum(1 for t in study.get_trials(deepcopy=False)
               if t.user_attrs.get("revcli.defaults_of")) == 2
