"""compare_runs() over real MLflow runs (logged here with known metrics), and
compare_strategies() end to end on the small demo set."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from revcli import compare, settings
from revcli.errors import ConfigError, NotFoundError
from tests.workspaces import seed_store

DATA = "a" * 64
SPLIT = "b" * 16
NOW_MS = int(time.time() * 1000)


class Store:
    """Runs logged straight to the workspace's MLflow store, as train/tune log them."""

    def __init__(self, s: settings.Settings) -> None:
        from mlflow import MlflowClient

        from revcli import tracking
        from revcli.workspace import Workspace

        self.settings = s
        seed_store(s.workspace)
        ws = Workspace(s.workspace).ensure()
        tracker, self.experiment_id = tracking.connect(s, ws)
        self.uri = tracker.uri
        self.client = MlflowClient(tracking_uri=self.uri)
        self.count = 0

    def log(self, *, metrics: dict[str, float], strategy: str = "all", estimator: str = "xgb",
            dataset: str = DATA, split: str = SPLIT, params: dict[str, str] | None = None,
            minutes_ago: float | None = None, command: str = "train", leakage: str = "none",
            parent: str | None = None, name: str | None = None,
            honest: str | None = None) -> str:
        self.count += 1
        population = "test converters" if strategy == "converting_only" else "all test sessions"
        scored_on = "converters" if strategy == "converting_only" else "sessions"
        tags = {"revcli.command": command, "revcli.strategy": strategy,
                "revcli.estimator": estimator, "revcli.dataset_sha256": dataset,
                "revcli.split_hash": split, "revcli.population": population,
                "revcli.scored_on": scored_on, "revcli.leakage": leakage}
        if parent:
            tags["mlflow.parentRunId"] = parent
        if honest is not None:
            tags["revcli.honest"] = honest
        started = NOW_MS - int((minutes_ago if minutes_ago is not None else 100 - self.count)
                               * 60_000)
        run = self.client.create_run(self.experiment_id, start_time=started, tags=tags,
                                     run_name=name or f"run-{self.count}")
        run_id = run.info.run_id
        for key, value in {"strategy": strategy, "estimator": estimator,
                           **(params or {})}.items():
            self.client.log_param(run_id, key, value)
        for key, value in metrics.items():
            self.client.log_metric(run_id, key, value)
        self.client.set_terminated(run_id, "FINISHED", end_time=started + 1000)
        return run_id


@pytest.fixture
def store(isolated) -> Store:
    return Store(settings.resolve(flags={"workspace": str(isolated)}, env={}))


def test_best_first_in_each_metric_direction(store) -> None:
    a = store.log(metrics={"rmse": 3.0, "r2": 0.1, "total_ratio": 0.7})
    b = store.log(metrics={"rmse": 1.0, "r2": 0.3, "total_ratio": 1.4})
    c = store.log(metrics={"rmse": 2.0, "r2": 0.2, "total_ratio": 1.1})
    d = store.log(metrics={"mae": 1.0})  # no rmse: last, whatever the direction
    s = store.settings

    def order(**kw) -> list[str]:
        return [r.run_id for r in compare.compare_runs(s, **kw).rows]

    assert order() == [b, c, a, d]  # default: the promote metric, rmse, lower first
    assert order(sort="r2") == [b, c, a, d]
    assert order(sort="total_ratio") == [c, a, b, d]  # |ratio - 1|: 0.1, 0.3, 0.4
    assert order(sort="rmse", top=2) == [b, c]
    with pytest.raises(ConfigError, match="unknown metric 'accuracy'"):
        compare.compare_runs(s, sort="accuracy")


def test_latest_runs_then_best_first(store) -> None:
    old_best = store.log(metrics={"rmse": 0.5}, minutes_ago=60)
    recent = [store.log(metrics={"rmse": v}, minutes_ago=m) for v, m in ((3.0, 3), (2.0, 2),
                                                                         (4.0, 1))]
    rows = compare.compare_runs(store.settings, top=3).rows
    assert [r.run_id for r in rows] == [recent[1], recent[0], recent[2]]
    # with an explicit --sort, the best of every matching run
    assert compare.compare_runs(store.settings, top=1, sort="rmse").rows[0].run_id == old_best
    since = compare.compare_runs(store.settings, since="30m").rows
    assert old_best not in {r.run_id for r in since} and len(since) == 3


def test_filters_and_what_is_left_out(store) -> None:
    keep = store.log(metrics={"rmse": 2.0}, strategy="two_stage", estimator="hgb")
    store.log(metrics={"rmse": 1.0}, strategy="two_stage", estimator="rf")
    store.log(metrics={"rmse": 1.0}, strategy="all", estimator="hgb")
    store.log(metrics={"rmse": 0.1}, strategy="two_stage", estimator="hgb", command="evaluate")
    child = store.log(metrics={"rmse": 0.2}, strategy="two_stage", estimator="hgb",
                      parent=keep)
    result = compare.compare_runs(store.settings, strategy="two_stage", estimator="hgb")
    assert [r.run_id for r in result.rows] == [keep]
    nested = compare.compare_runs(store.settings, strategy="two_stage", estimator="hgb",
                                  include_nested=True)
    assert [r.run_id for r in nested.rows] == [child, keep]


def test_only_changed_params(store) -> None:
    store.log(metrics={"rmse": 1.0}, params={"seed": "42", "model.max_depth": "6",
                                             "features": "a,b"})
    store.log(metrics={"rmse": 2.0}, params={"seed": "42", "model.max_depth": "4",
                                             "features": "a,b"})
    changed = compare.compare_runs(store.settings, only_changed=True)
    assert changed.params == ["model.max_depth"]
    everything = compare.compare_runs(store.settings, params=True)
    assert everything.params == ["estimator", "model.max_depth", "seed", "strategy"]
    headers, rows = changed.tabular()
    assert headers[-1] == "param max_depth" and [r[-1] for r in rows] == ["6", "4"]


def test_not_comparable_runs_are_called_out(store) -> None:
    store.log(metrics={"rmse": 1.0})
    store.log(metrics={"rmse": 1.0})
    same = compare.compare_runs(store.settings)
    assert same.warnings == []
    assert same.reference is None  # no baseline_* metrics logged
    store.log(metrics={"rmse": 1.0}, split="c" * 16)
    splits = compare.compare_runs(store.settings).warnings
    assert len(splits) == 1 and "2 different splits" in splits[0]
    store.log(metrics={"rmse": 1.0}, dataset="d" * 64, split="e" * 16)
    data = compare.compare_runs(store.settings).warnings
    assert len(data) == 1 and "2 different datasets" in data[0]
    assert "not comparable" in data[0]


def test_mixed_populations_sort_on_converter_scores(store) -> None:
    conv = store.log(metrics={"rmse": 17.0, "mae": 13.0, "r2": 0.01, "mape": 22.0},
                     strategy="converting_only")
    both = store.log(metrics={"rmse": 15.0, "conv_rmse": 18.0, "conv_mae": 14.0},
                     strategy="two_stage", leakage="engagement_depth")
    result = compare.compare_runs(store.settings)
    assert result.sort == "conv_rmse"
    assert [r.run_id for r in result.rows] == [conv, both]
    assert result.rows[0].metrics["conv_rmse"] == 17.0 and "conv_rmse" in result.rows[0].derived
    assert any("different rows" in w for w in result.warnings)
    assert any("not honest" in w and "engagement_depth" in w for w in result.warnings)
    assert any("sorted by conv_rmse" in n for n in result.notes)


def test_baseline_is_pinned_with_deltas(store) -> None:
    from mlflow import MlflowClient

    champion = store.log(metrics={"rmse": 2.0, "r2": 0.5}, minutes_ago=50)
    better = store.log(metrics={"rmse": 1.5, "r2": 0.6})
    client = MlflowClient(tracking_uri=store.uri)
    client.create_registered_model(store.settings.registry_model)
    version = client.create_model_version(store.settings.registry_model,
                                          source=f"runs:/{champion}/model", run_id=champion)
    client.set_registered_model_alias(store.settings.registry_model, "champion",
                                      version.version)
    result = compare.compare_runs(store.settings, baseline="champion")
    assert result.baseline.run_id == champion
    assert [r.run_id for r in result.all_rows] == [champion, better]
    assert result.delta(result.rows[0], "rmse") == pytest.approx(-0.5)
    assert result.delta(result.baseline, "rmse") is None
    data = result.to_dict()
    assert data["runs"][0]["pinned"] and data["runs"][1]["delta"]["r2"] == pytest.approx(0.1)


def test_given_runs_side_by_side(store) -> None:
    a = store.log(metrics={"rmse": 1.0}, params={"model.max_depth": "6", "seed": "1"})
    b = store.log(metrics={"rmse": 2.0}, params={"model.max_depth": "4", "seed": "1"})
    result = compare.compare_runs(store.settings, run_ids=[b, a[:32]])
    assert result.side_by_side and [r.run_id for r in result.rows] == [b, a]
    assert result.params == ["model.max_depth"]  # differing params only, by default
    headers, rows = result.tabular()
    assert len(headers) == 3
    assert ["rmse", 2.0, 1.0] in rows and ["param max_depth", "4", "6"] in rows
    with pytest.raises(NotFoundError, match="no MLflow run"):
        compare.compare_runs(store.settings, run_ids=[a, "f" * 32])


def test_no_runs_is_a_hint_and_an_unknown_experiment_an_error(isolated, store) -> None:
    assert "`revcli train`" in compare.compare_runs(store.settings).hint
    seed_store(isolated / "fresh")
    fresh = settings.resolve(flags={"workspace": str(isolated / "fresh")}, env={})
    assert "does not exist" in compare.compare_runs(fresh).hint
    named = settings.resolve(flags={"workspace": str(isolated), "experiment": "nope"}, env={})
    with pytest.raises(NotFoundError, match=r"no experiment 'nope'.*Revenue_Prediction"):
        compare.compare_runs(named)
    empty = settings.resolve(flags={"workspace": str(isolated), "experiment": " "}, env={})
    with pytest.raises(ConfigError, match="--experiment is empty"):
        compare.compare_runs(empty)


def test_parse_since() -> None:
    now = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
    assert compare.parse_since("2d", now) == now - dt.timedelta(days=2)
    assert compare.parse_since("90m", now) == now - dt.timedelta(minutes=90)
    assert compare.parse_since("2026-11-01", now) == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    with pytest.raises(ConfigError, match="give a duration"):
        compare.parse_since("yesterday", now)


def test_compare_strategies_on_one_split(small_settings) -> None:
    seed_store(small_settings.workspace)
    s = small_settings.replace(estimator="ridge")
    board = compare.compare_strategies(s, drop_features=["engagement_depth"])
    models = {r.strategy: r for r in board.rows if r.kind == "model"}
    assert set(models) == {"all", "converting_only", "two_stage"}
    assert [r.kind for r in board.rows][-2:] == ["baseline", "baseline"]
    ranked = [r.metrics["rmse"] for r in board.rows if r.kind == "model"]
    assert ranked == sorted(ranked)
    # converting_only x the two_stage classifier of the same estimator IS two_stage on all
    # sessions; on the converters it keeps its own (seed-style) scores
    co, ts = models["converting_only"], models["two_stage"]
    for key in ("rmse", "mae", "r2", "gini", "auc"):
        assert co.metrics[key] == pytest.approx(ts.metrics[key]), key
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=board.tracking_uri)
    co_run = client.get_run(co.run_id)
    assert co.metrics["conv_rmse"] == pytest.approx(co_run.data.metrics["rmse"])
    assert co_run.data.tags["revcli.command"] == "compare"
    assert co_run.data.tags["revcli.compare_batch"] == board.batch
    assert not board.warnings and board.dropped == ["engagement_depth"]
    base = board.rows[-2]
    assert base.metrics["r2"] == pytest.approx(0.0, abs=0.01)
    assert base.metrics["rmse"] > ts.metrics["rmse"]

    # converting_only alone pairs with a classifier fitted for the occasion: same numbers
    alone = compare.compare_strategies(s, strategy_names=["converting_only"],
                                       drop_features=["engagement_depth"])
    assert alone.rows[0].metrics["rmse"] == pytest.approx(co.metrics["rmse"])

    # and compare runs lists all four, scored on one split: comparable, sorted on conv_rmse
    listed = compare.compare_runs(s)
    assert len(listed.rows) == 4 and listed.sort == "conv_rmse"
    assert not any("datasets" in w or "splits" in w for w in listed.warnings)


def test_honesty_is_the_verdict_recorded_at_training(store) -> None:
    """A converting_only run names the leak (constant on converters) but was judged honest:
    compare reads that verdict instead of re-deciding it from the leakage tag."""
    store.log(metrics={"rmse": 17.0}, strategy="converting_only", leakage="engagement_depth",
              honest="true")
    result = compare.compare_runs(store.settings)
    assert not any("not honest" in w for w in result.warnings)
    store.log(metrics={"rmse": 4.0}, strategy="all", leakage="engagement_depth",
              honest="false")
    result = compare.compare_runs(store.settings)
    assert any("1 of 2 runs were judged not honest" in w for w in result.warnings)
