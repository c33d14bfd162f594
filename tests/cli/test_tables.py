"""Tables laid out for the width they get (issue 9.1): `compare runs` (list and side by side),
`compare strategies` and evaluate's segment table rendered at 80 and 120 columns and piped; and
plain progress lines when stderr is a log (9.8)."""

from __future__ import annotations

import csv
import io
import re

import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from revcli import settings
from revcli.cli import app
from tests.test_compare import Store

DEFAULT_HEADERS = ("run", "name", "strategy", "estimator", "age")


def run_cli(*args: str, columns: int | None):
    """The CLI in-process at a terminal width (COLUMNS), or piped without one (columns=None)."""
    env = {"COLUMNS": str(columns) if columns else None}
    return CliRunner().invoke(app, list(args), env=env)


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]


def header_cells(text: str) -> list[str]:
    head = next(line for line in text.splitlines() if line.startswith("┃"))
    return [c.strip() for c in head.strip("┃").split("┃")]


def body_cells(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("│").split("│")]
            for line in text.splitlines() if line.startswith("│")]


def assert_fits(text: str, width: int) -> None:
    """No line wider than ``width`` -- but a single word (an id, a path, a URL) longer than the
    width, which stays whole on a line of its own rather than broken inside."""
    long = [line for line in text.splitlines()
            if cell_len(line) > width and len(line.split()) > 1]
    assert long == [], f"lines wider than {width}:\n" + "\n".join(long)


def assert_no_empty_column(text: str) -> None:
    heads = header_cells(text)
    assert all(heads[1:]) and "…" not in heads, heads
    for row in body_cells(text):
        assert len(row) == len(heads)
        assert all(cell and cell != "…" for cell in row[1:]), row


@pytest.fixture
def store(isolated) -> Store:
    """Five real MLflow runs: different strategies and estimators, long names, each with its
    train-mean baseline metrics (baseline_*), as train logs them."""
    s = Store(settings.resolve(flags={"workspace": str(isolated)}, env={}))
    s.ids = []
    for strategy, estimator, rmse, name in (
            ("all", "ridge", 17.2, "ridge on every session, engagement_depth dropped"),
            ("two_stage", "xgb", 16.9, "xgb two stage, no depth"),
            ("two_stage", "hgb", 17.9, "hgb-two-stage-with-a-rather-long-name"),
            ("all", "xgb_log", 18.4, None),
            ("all", "rf", 17.5, "rf")):
        s.ids.append(s.log(metrics={"rmse": rmse, "mae": 7.6, "r2": 0.02, "mape": 90.8,
                                    "gini": 0.33, "total_ratio": 1.01, "conv_rmse": 57.5,
                                    "baseline_rmse": 17.7, "baseline_mae": 7.7,
                                    "baseline_conv_rmse": 17.6},
                           strategy=strategy, estimator=estimator, name=name,
                           params={"model.max_depth": str(len(s.ids) + 3),
                                   "model.estimator__objective":
                                       f"{len(s.ids)}:" + "reg:squarederror" * 3}))
    return s


@pytest.mark.parametrize("width", [80, 120])
def test_compare_runs_fits_with_the_default_columns(store, width) -> None:
    result = run_cli("compare", "runs", columns=width)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert_fits(out, width)
    assert_no_empty_column(out)
    heads = header_cells(out)
    assert set(DEFAULT_HEADERS) <= set(heads) and "rmse ▲" in heads
    for run_id in store.ids:
        assert run_id[:8] in out  # the full 8 characters push/evaluate/predict accept
    rows = {r[0]: r for r in body_cells(out)}
    ridge = rows[store.ids[0][:8]]
    assert ridge[heads.index("rmse ▲")] == "17.20 (\u22120.50)"  # delta vs the train mean
    assert rows[store.ids[3][:8]][heads.index("rmse ▲")] == "18.40 (+0.70)"
    assert all(re.fullmatch(r"\d+[smhdwy]", r[heads.index("age")]) for r in rows.values())
    assert body_cells(out)[0][0] == store.ids[1][:8]  # best first
    assert "did not fit" not in out


def test_compare_runs_piped_is_wide_and_whole(store) -> None:
    out = run_cli("compare", "runs", "-m", "mae,r2,gini", columns=None).stdout
    heads = header_cells(out)
    assert {*DEFAULT_HEADERS, "rmse ▲", "mae", "r2", "gini"} <= set(heads)
    assert "ridge on every session, engagement_depth dropped" in out  # never cut at 220
    assert "did not fit" not in out
    assert_fits(out, 220)


def test_columns_that_do_not_fit_are_left_out_and_named(store) -> None:
    every = "run,name,age,started,command,strategy,estimator,dataset,split,leak,honest,rmse,mae"
    out = run_cli("compare", "runs", "--columns", every, "--only-changed", columns=80).stdout
    assert_fits(out, 80)
    assert_no_empty_column(out)
    heads = header_cells(out)
    assert heads[:3] == ["run", "name", "age"] and "rmse ▲" in heads  # sorted by: kept
    line = " ".join(out.split())
    found = re.search(r"(\d+) more columns did not fit in 80 columns: (.*?); choose", line)
    assert found, out
    named = [n for n in found.group(2).split(", ") if " more" not in n]
    assert named and not set(named) & set(heads)
    # every column asked for, and the two params that differ, is shown or counted as left out
    assert len(heads) + int(found.group(1)) == len(every.split(",")) + 2
    assert "--columns" in line and "--format csv or json" in line
    # what is asked for in that order when it fits, and the run id always first
    narrow = run_cli("compare", "runs", "--columns", "mae,estimator", columns=80).stdout
    assert header_cells(narrow) == ["run", "mae", "estimator"]
    # csv keeps every column whatever --columns says
    rows = list(csv.DictReader(io.StringIO(run_cli(
        "compare", "runs", "--columns", "run", "--format", "csv", columns=80).stdout)))
    assert {"run_id", "name", "started", "rmse", "mae", "r2", "mape"} <= set(rows[0])
    assert len(rows[0]["run_id"]) == 32


def test_unknown_column_is_a_one_line_error(store) -> None:
    result = run_cli("compare", "runs", "--columns", "run,colour", columns=80)
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("Error: unknown --columns 'colour'")
    assert len(result.stderr.strip().splitlines()) == 1


def test_pinned_baseline_deltas_fit(store) -> None:
    out = run_cli("compare", "runs", "--baseline", store.ids[0], "-m", "mae,r2",
                  columns=80).stdout
    assert_fits(out, 80)
    assert_no_empty_column(out)
    assert f"★ {store.ids[0][:8]}" in out and "pinned baseline run" in out


@pytest.mark.parametrize("width", [80, 120])
def test_side_by_side_fits(store, width) -> None:
    ids = [i[:8] for i in store.ids[:4]]
    result = run_cli("compare", "runs", *ids, columns=width)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert_fits(out, width)
    assert_no_empty_column(out)
    assert header_cells(out)[1:] == ids
    rows = {r[0]: r[1:] for r in body_cells(out)}
    assert rows["rmse"] == ["17.20", "16.90", "17.90", "18.40"]  # metric values never cut
    objective = next(v for k, v in rows.items() if k.endswith("objective"))
    assert all(v.endswith("…") for v in objective)  # long param values are
    assert rows["param max_depth"] == ["3", "4", "5", "6"]


def test_side_by_side_leaves_out_runs_that_do_not_fit(store) -> None:
    out = run_cli("compare", "runs", *store.ids, columns=60).stdout
    assert_fits(out, 60)
    shown = header_cells(out)[1:]
    assert shown == [i[:8] for i in store.ids[:len(shown)]] and len(shown) < 5
    assert f"{5 - len(shown)} more runs did not fit in 60 columns" in " ".join(out.split())


def test_hostile_names_stay_escaped_when_cut(store) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=store.uri).set_tag(store.ids[0], "mlflow.runName",
                                                 "[red]x[/red]\x1b[2J" + "y" * 40)
    for width in (80, 120, None):
        out = run_cli("compare", "runs", columns=width).stdout
        assert "\x1b" not in out and "[red]" in out


def test_leaderboard_fits_at_80(small_settings) -> None:
    from tests.workspaces import seed_store

    seed_store(small_settings.workspace)
    result = run_cli("compare", "strategies", "-e", "mean", "-s", "all,two_stage",
                     "--drop-feature", "engagement_depth", columns=80)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert_fits(out, 80)
    # the ranking's noise beside the sort metric: each row minus the best, paired (issue 20)
    assert header_cells(out) == ["model", "run", "rmse ▲", "rmse vs best (95 %)", "conv_rmse"]
    rows = body_cells(out)
    assert all(re.fullmatch(r"[0-9a-f]{8}", r[1]) for r in rows[:2])
    assert all("(" in r[2] for r in rows[:2])  # the delta against the baseline row
    assert "order value" in out  # the baseline rows' labels wrap, never lost


def test_evaluate_segment_table_fits_at_80(trained) -> None:
    ws = str(trained.model_path.parents[2])
    result = run_cli("evaluate", "--run", trained.run_id[:8], "--workspace", ws, "--no-track",
                     "--no-plots", columns=80)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert_fits("\n".join(line for line in out.splitlines() if line[:1] in "┏┃┡│└"), 80)
    # the segments' table, up to the errors by period that follow it (issue 17)
    block = out[out.index("errors by segment"):out.index("errors by created_at (month)")]
    assert_fits(block, 80)
    heads = header_cells(block)
    assert {"segment", "level", "rows", "RMSE", "RMSE ÷ baseline"} <= set(heads)
    rows = [r for r in body_cells(block) if r[0]]  # not the lines of a wrapped label
    assert len(rows) == 12 and all(all(r) for r in rows)
    assert "landing_page" in block and "direct/organic" in block
    assert "MAE" not in heads and "MAE" in block.split("did not fit")[1]


# -- the width helper ----------------------------------------------------------------------------

def test_fit_columns_drops_least_important_and_never_narrows_numbers() -> None:
    from revcli.cli._render import CUT, FIXED, Col, fit_columns

    cols = [Col("run", "run", ["3f2a9c1e"], priority=0),
            Col("name", "name", ["a fairly long run name here"], priority=9, fit=CUT,
                shrink_to=10),
            Col("rmse", "rmse", ["17.20 (\u22120.50)"], priority=1),
            Col("mae", "mae", ["7.62"], priority=5),
            Col("started", "started", ["2026-12-02 03:39"], priority=6, fit=FIXED)]
    kept, dropped = fit_columns(cols, 200)
    assert dropped == [] and [c.width for c in kept] == [c.natural for c in cols]
    kept, dropped = fit_columns(cols, 70)  # the name gives up width first
    assert dropped == [] and sum(c.width for c in kept) + 3 * len(kept) + 1 == 70
    assert [c.width for c in kept] == [8, 13, 13, 4, 16]
    kept, dropped = fit_columns(cols, 60)  # below its 10 cells, the least important goes
    assert [c.key for c in dropped] == ["name"]
    assert sum(c.width for c in kept) + 3 * len(kept) + 1 <= 60
    assert {c.key: c.width for c in kept}["rmse"] == len("17.20 (\u22120.50)")
    assert all(c.width >= max(c.minimum, 1) for c in kept)
    kept, dropped = fit_columns(cols, 10)  # nothing fits: the priority-0 column stays
    assert [c.key for c in kept] == ["run"]
    assert [c.key for c in dropped] == ["rmse", "mae", "started", "name"]


def test_equal_priority_columns_share_the_cut() -> None:
    from revcli.cli._render import CUT, Col, fit_columns

    cols = [Col(k, k, [v], priority=1, fit=CUT, shrink_to=8)
            for k, v in (("a", "x" * 40), ("b", "y" * 12), ("c", "z" * 30))]
    kept, _ = fit_columns(cols, 60)
    assert sum(c.width for c in kept) + 10 == 60
    assert kept[1].width == 12 and abs(kept[0].width - kept[2].width) <= 1


# -- progress in logs (9.8) ---------------------------------------------------------------------

def test_progress_is_plain_lines_when_stderr_is_a_log(monkeypatch) -> None:
    from rich.console import Console

    from revcli.cli import _console

    buffer = io.StringIO()
    monkeypatch.setattr(_console, "err", Console(file=buffer, width=80))
    clock = iter(range(0, 10_000, 4))  # every call 4 s later
    monkeypatch.setattr(_console, "_clock", lambda: float(next(clock)))
    reporter = _console.ConsoleReporter()
    with reporter.task("trials", total=50, info="") as task:
        for _ in range(12):
            task.advance()
            task.update(info="best rmse 17.7 · [red]failed 1[/]")
    with reporter.task("downloading s3://b/k.parquet", total=2_000_000, unit="bytes") as task:
        task.advance(1_500_000)
    text = buffer.getvalue()
    lines = text.splitlines()
    assert lines[0] == "trials 0/50"
    assert "trials 12/50 (best rmse 17.7 · failed 1)" in lines  # the end, markup gone
    assert 3 <= len([x for x in lines if x.startswith("trials")]) <= 12  # ~ every 10 s
    assert lines[-1] == "downloading s3://b/k.parquet 1.5 MB/2.0 MB"
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", text)  # no bars, no control characters
