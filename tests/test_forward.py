"""Issue 17: converter scores that mean one thing, segments from the table's own columns,
backtests over forward cut-offs, and a default that carries a trend forward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.workspaces import train_in


def test_two_stage_conv_rmse_is_its_stage_two_and_ranks_beside_converting_only(
        tmp_path: Path, small_demo) -> None:
    from revcli import compare

    frame = small_demo.drop(columns=["engagement_depth"])
    flags = {"estimator": "xgb", "n_jobs": 1}
    s, two = train_in(tmp_path, frame, strategy="two_stage", **flags)
    s_co = s.replace(strategy="converting_only")
    from revcli import train

    one = train.train(s_co, plots=False)
    s_all = s.replace(strategy="all")
    everyone = train.train(s_all, plots=False)
    two_conv = two.scorecard.metrics["conv_rmse"]
    one_conv = one.scorecard.metrics["rmse"]
    # the same estimator on the same converters: stage 2 is converting_only's model
    assert two_conv == pytest.approx(one_conv, rel=0.02)
    assert not any(k.startswith("conv_") for k in everyone.scorecard.metrics)
    result = compare.compare_runs(s)
    assert result.sort == "conv_rmse"
    by_strategy = {r.strategy: r for r in result.rows}
    assert by_strategy["two_stage"].metrics["conv_rmse"] == pytest.approx(two_conv)
    # all has none: ranked last, shown as n/a
    assert result.rows[-1].strategy == "all"
    assert [r.strategy for r in result.rows[:2]] in (["two_stage", "converting_only"],
                                                     ["converting_only", "two_stage"])


def warehouse(frame):
    """The demo table as a warehouse exports it: a timestamp, text columns, flags, an id."""
    import pandas as pd

    src = np.where(frame["utm_source_gsearch"], "gsearch",
                   np.where(frame["utm_source_socialbook"], "socialbook", "bsearch_or_direct"))
    page = np.full(len(frame), "/home", dtype=object)
    for c in [c for c in frame.columns if c.startswith("landing_page_")]:
        page[frame[c].to_numpy().astype(bool)] = c.removeprefix("landing_page_")
    return pd.DataFrame({
        "session_id": np.arange(len(frame)), "session_start": frame["created_at"],
        "utm_source": src, "device_type": np.where(frame["device_type_mobile"], "mobile",
                                                   "desktop"),
        "landing_page": page, "is_repeat_session": frame["is_repeat_session"],
        "is_weekend": frame["is_weekend"], "hour_of_day": frame["hour_of_day"],
        "is_ordered": frame["is_ordered"], "revenue": frame["revenue"]})


@pytest.fixture(scope="module")
def warehouse_run(tmp_path_factory, small_demo):
    root = tmp_path_factory.mktemp("warehouse")
    s, result = train_in(root, warehouse(small_demo), strategy="two_stage", split="time",
                         n_jobs=1)
    return s, result


def test_evaluate_segments_every_text_column_and_time_in_order(warehouse_run) -> None:
    from revcli import evaluate

    s, trained = warehouse_run
    result = evaluate.evaluate(s, run=trained.run_id, plots=True, track=True, worst=5)
    data = result.to_dict()
    segments = {row["segment"] for row in data["segments"]}
    assert {"utm_source", "device_type", "landing_page"} <= segments
    # flags are yes/no, never grouped; the hour is banded
    weekend = [r for r in data["segments"] if r["segment"] == "is_weekend"]
    assert {r["level"] for r in weekend} == {"yes", "no"}
    assert any(r["segment"] == "hour_of_day" and "-" in r["level"] for r in data["segments"])
    months = [r["level"] for r in data["segments"] if r["segment"] == "session_start (month)"]
    assert len(months) >= 2 and months == sorted(months)
    assert sum(r["rows"] for r in data["segments"]
               if r["segment"] == "session_start (month)") == result.scorecard.rows
    bands = [r for r in data["segments"] if r["segment"] == "order value (converters)"]
    assert sum(r["rows"] for r in bands) == result.scorecard.converters
    assert len(data["worst"]) == 5
    first = data["worst"][0]
    assert {"session_id", "utm_source", "actual", "predicted"} <= set(first)
    errors = [abs(w["predicted"] - w["actual"]) for w in data["worst"]]
    assert errors == sorted(errors, reverse=True)
    assert "by_period" in result.plots and result.plots["by_period"].stat().st_size > 0
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=trained.tracking_uri)
    names = {a.path for a in client.list_artifacts(result.eval_run_id)}
    assert {"worst.csv", "segments.csv"} <= names


def test_one_hot_groups_are_decided_at_training_not_from_the_evaluation_file(
        tmp_path: Path, small_demo) -> None:
    from revcli import evaluate

    s, trained = train_in(tmp_path, small_demo.drop(columns=["engagement_depth"]),
                          n_jobs=1, strategy="all")
    # a tiny evaluation file where no row has both flags: still two flags
    tiny = small_demo.drop(columns=["engagement_depth"])
    tiny = tiny[(tiny.is_weekend.astype(int) + tiny.is_repeat_session) < 2].head(40)
    path = tmp_path / "tiny.parquet"
    tiny.to_parquet(path, index=False)
    result = evaluate.evaluate(s, run=trained.run_id, data=path, plots=False, track=False)
    groups = {r.group for r in result.segments}
    assert {"is_weekend", "is_repeat_session", "landing_page", "utm_source"} <= groups
    assert "is" not in groups


def test_backtest_windows_go_forward_with_their_own_baselines(warehouse_run) -> None:
    from revcli import evaluate

    s, trained = warehouse_run
    result = evaluate.evaluate(s, run=trained.run_id, plots=False, track=False, backtest=3)
    windows = result.to_dict()["backtest"]
    assert len(windows) == 3
    for w in windows:
        assert {"train_end", "test_start", "test_end", "rows", "rmse", "baseline_rmse",
                "total_ratio"} <= set(w)
        assert w["train_end"] < w["test_start"] <= w["test_end"]
    assert [w["test_start"] for w in windows] == sorted(w["test_start"] for w in windows)
    assert windows[0]["test_end"] < windows[1]["test_start"]
    # the last window is the end of the table, as the holdout is
    assert windows[-1]["test_end"] == trained.split["test_until"]


def test_train_and_compare_strategies_backtest(tmp_path: Path, small_demo) -> None:
    from revcli import compare, train
    from revcli.errors import ConfigError

    frame = warehouse(small_demo)
    s, _ = train_in(tmp_path, frame, strategy="converting_only", split="time", n_jobs=1)
    result = train.train(s, plots=False, backtest=2)
    assert len(result.backtest) == 2 and result.to_dict()["backtest"] == result.backtest
    from mlflow import MlflowClient

    logged = MlflowClient(tracking_uri=result.tracking_uri).get_run(result.run_id).data.metrics
    assert logged["backtest_rmse_mean"] == pytest.approx(
        np.mean([w["rmse"] for w in result.backtest]))
    with pytest.raises(ConfigError, match="--split time"):
        train.train(s.replace(split="random"), plots=False, backtest=2)
    board = compare.compare_strategies(s, strategy_names=["all", "two_stage",
                                                          "converting_only"],
                                       sort="conv_rmse", backtest=2)
    models = [r for r in board.rows if r.kind == "model"]
    assert board.backtest == 2 and all(len(r.backtest) == 2 for r in models)
    means = [r.metrics["backtest_conv_rmse"] for r in models]
    # all has no order value: ranked last; the others by the mean over the windows
    assert models[-1].strategy == "all" and np.isnan(means[-1])
    assert means[0] <= means[1]
    two, one = (next(r for r in models if r.strategy == k)
                for k in ("two_stage", "converting_only"))
    assert two.metrics["backtest_conv_rmse"] == pytest.approx(
        one.metrics["backtest_conv_rmse"], rel=0.02)
