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
    # the ranking's noise: each row against the best, paired on the same converters
    # (two_stage and converting_only share one stage-2 fit here: a difference of 0 ± 0)
    assert models[0].vs_best is None and models[1].vs_best["half_width"] >= 0
    assert models[1].vs_best["rows"] == board.split["test_converters"]
    two, one = (next(r for r in models if r.strategy == k)
                for k in ("two_stage", "converting_only"))
    assert two.metrics["backtest_conv_rmse"] == pytest.approx(
        one.metrics["backtest_conv_rmse"], rel=0.02)


def _trending(n: int = 20000, seed: int = 0):
    """Sessions over 36 months whose conversion (linear in the logit) and order value rise,
    and their expected revenue (the truth)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    days = np.sort(rng.uniform(0, 3 * 365, n))
    when = pd.Timestamp("2012-01-01") + pd.to_timedelta(days, unit="D")
    month = days / 30.4
    p = 1 / (1 + np.exp(3.9 - 0.045 * month))  # 2 % -> 9 %
    ordered = rng.random(n) < p
    value = 50 + 1.0 * month
    revenue = np.where(ordered, value + rng.normal(0, 5, n), 0.0)
    frame = pd.DataFrame({"created_at": when, "device": rng.choice(["a", "b"], n),
                          "is_ordered": ordered.astype(int), "revenue": revenue})
    return frame, p * value


def test_the_default_carries_a_trend_forward(tmp_path: Path) -> None:
    from revcli import pipeline, serialization

    frame, expected = _trending()
    s, result = train_in(tmp_path, frame, strategy="two_stage", split="time", n_jobs=1)
    from revcli import train

    before = train.train(s, plots=False, params={"trend": False, "classifier__trend": False})
    split = pipeline.make(s, frame, frame["is_ordered"].to_numpy() > 0)
    X = frame.drop(columns=["is_ordered", "revenue"]).iloc[split.test]
    truth = expected[split.test].sum()
    now = serialization.load(result.model_path).predict(X).sum() / truth
    flat = serialization.load(before.model_path).predict(X).sum() / truth
    # trees alone keep the last level; boosted from the line they follow the truth
    assert flat < 0.9 and abs(now - 1) < abs(flat - 1) / 2, (flat, now)
    model = serialization.load(result.model_path)
    regressor, classifier = model.strategy_.regressor_, model.strategy_.classifier_
    assert regressor.trend_checked_ and regressor.trend_line_ is not None
    assert classifier.trend_checked_ and regressor.trend_columns_ == ["created_at__month"]
    later = X.copy()
    later["created_at"] = later["created_at"] + np.timedelta64(365, "D")
    # a year further on the predicted order value keeps rising: the line is in the model
    assert model.predict_parts(later)["order_value"].mean() > \
        model.predict_parts(X)["order_value"].mean() + 6


def test_a_stepped_target_keeps_the_trees_as_they_were() -> None:
    """Where the level steps and stays (order values by product era), the forward check
    finds no trend to carry: the line is not used."""
    import pandas as pd

    from revcli.trend import TrendXGBRegressor

    rng = np.random.default_rng(1)
    month = np.sort(rng.uniform(0, 36, 4000))
    y = np.where(month < 20, 50.0, 64.0) + rng.normal(0, 5, 4000)
    X = pd.DataFrame({"t__month": month, "x": rng.normal(size=4000)})
    model = TrendXGBRegressor(n_estimators=20).fit(X, y)
    assert model.trend_checked_ is False and model.trend_line_ is None
    assert np.isfinite(model.predict(X)).all()


def test_trend_estimators_clone_and_take_xgboost_params() -> None:
    from sklearn.base import clone

    from revcli import estimators

    reg = estimators.make_regressor("xgb", {"max_depth": 4, "trend": False})
    assert reg.get_params()["max_depth"] == 4 and reg.get_params()["trend"] is False
    again = clone(reg)
    assert type(again).__name__ == "TrendXGBRegressor" and again.get_params()["trend"] is False
    reg = estimators.make_regressor("xgb", {"objective": "reg:tweedie",
                                            "tweedie_variance_power": 1.3})
    assert reg.get_params()["tweedie_variance_power"] == 1.3


def test_push_promote_of_a_gain_within_the_noise_exits_1_with_its_interval(
        tmp_path: Path, small_demo) -> None:
    """Issue 20's acceptance: a candidate a cent better on the same rows is not promoted;
    --margin 0 would promote it. Refused before anything is uploaded (no S3 needed)."""
    from revcli import push, tracking, train
    from revcli.errors import GateFailed
    from revcli.workspace import Workspace

    frame = small_demo.drop(columns=["engagement_depth"])
    s, champ = train_in(tmp_path, frame, strategy="converting_only", n_jobs=1)
    # the same recipe with a tree more or less: a few cents either way, within the noise
    cand = None
    for trees in (99, 98, 97, 96, 95, 101, 102, 90, 105):
        tried = train.train(s, plots=False, params={"n_estimators": trees})
        if tried.scorecard.metrics["rmse"] < champ.scorecard.metrics["rmse"]:
            cand = tried
            break
    assert cand is not None
    gain = champ.scorecard.metrics["rmse"] - cand.scorecard.metrics["rmse"]
    assert 0 < gain < 0.1
    tracker, _ = tracking.connect(s, Workspace(s.workspace))
    version, _ = tracking.registry.register(tracker, s.registry_model,
                                            tracker.get_run(champ.run_id), {})
    tracking.registry.promote(tracker, s.registry_model, str(version.version), "test")
    with pytest.raises(GateFailed) as refused:
        push.push(s, cand.run_id, promote=True)
    text = str(refused.value)
    assert "not a clear gain" in text and " ± " in text and "paired on the same" in text
    assert "nothing was uploaded" in text
    # the gate alone: --margin 0 promotes it, on the same facts
    facts = [push.RunFacts.from_run(tracker.get_run(r)) for r in (cand.run_id, champ.run_id)]
    assert push.judge(facts[0], facts[1], "rmse", margin="0").verdict == push.WON


def test_compare_runs_baseline_shows_the_paired_interval(tmp_path: Path, small_demo) -> None:
    from revcli import compare, train

    frame = small_demo.drop(columns=["engagement_depth"])
    s, first = train_in(tmp_path, frame, strategy="converting_only", n_jobs=1)
    other = train.train(s.replace(estimator="ridge"), plots=False)
    result = compare.compare_runs(s, baseline=first.run_id)
    assert result.baseline.run_id == first.run_id and result.sort == "rmse"
    row = next(r for r in result.rows if r.run_id == other.run_id)
    d = row.vs_baseline
    assert d is not None and d["rows"] == first.scorecard.converters
    assert d["difference"] == pytest.approx(
        other.scorecard.metrics["rmse"] - first.scorecard.metrics["rmse"], abs=1e-9)
    assert d["half_width"] > 0


@pytest.mark.parametrize("columns", [80, 120])
def test_evaluate_tables_fit_the_terminal(warehouse_run, columns: int) -> None:
    """The new tables (periods, order-value bands, worst rows, backtest) at 80 and 120
    columns: every table line fits, every section is there."""
    from rich.cells import cell_len
    from typer.testing import CliRunner

    from revcli.cli import app

    s, trained = warehouse_run
    result = CliRunner().invoke(app, ["evaluate", "--run", trained.run_id[:8], "--workspace",
                                      str(s.workspace), "--no-track", "--no-plots",
                                      "--worst", "3", "--backtest", "2"],
                                env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    text = result.stdout
    tables = [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]
    assert tables and all(cell_len(line) <= columns for line in tables)
    for title in ("errors by session_start (month), in time order",
                  "converters by actual order value", "the 3 largest errors",
                  "backtest: the recipe refitted"):
        assert title in text.replace("\n", " ") or title.split(",")[0] in text
