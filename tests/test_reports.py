"""Segments from column names, their error table against a hand computation, calibration bins,
and the plain-text table formats."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pandas as pd
import pytest

from revcli import reports

Y = np.array([0.0, 50.0, 0.0, 100.0, 0.0, 0.0, 60.0, 0.0])
PRED = np.array([5.0, 40.0, 10.0, 70.0, 0.0, 5.0, 50.0, 10.0])


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "landing_page_/a": [1, 1, 0, 0, 0, 0, 0, 0],
        "landing_page_/b": [0, 0, 1, 1, 0, 0, 0, 0],
        "utm_source_x": [True, False, True, False, True, False, True, False],
        "is_weekend": [1, 1, 1, 0, 0, 0, 0, 1],
        "is_repeat_session": [1, 0, 1, 0, 1, 0, 1, 1],
        "hour_of_day": [1, 2, 3, 4, 5, 6, 7, 8],
        # an extra one-hot group revcli has never heard of
        "campaign_p": [1, 0, 0, 0, 1, 0, 0, 0],
        "campaign_q": [0, 1, 0, 0, 0, 1, 0, 0],
        "session_id": np.arange(8),
        "revenue": Y,
    })


def test_groups_come_from_column_names(frame) -> None:
    groups = {g.name: g for g in reports.segment_groups(frame)}
    assert set(groups) == {"landing_page", "utm_source", "is_weekend", "is_repeat_session",
                           "campaign", "hour_of_day"}
    # a number with few distinct values is banded (8 values: bands of about equal rows)
    hour = groups["hour_of_day"]
    assert hour.kind == reports.BANDS and len(hour.levels) == reports.MAX_BANDS
    assert hour.edges[0] == 1.0 and hour.levels[-1] == "7-8"
    landing = groups["landing_page"]
    assert landing.kind == "one-hot" and landing.levels == ("/a", "/b")
    assert landing.dropped == "/home"
    # one column left by drop_first: still a one-hot group, whose all-zero level merged two
    assert groups["utm_source"].levels == ("x",)
    assert groups["utm_source"].dropped == "bsearch or direct/organic"
    # is_weekend and is_repeat_session share "is_" but are 1 together: two flags, not a group
    assert groups["is_weekend"].kind == groups["is_repeat_session"].kind == "flag"
    assert groups["campaign"].levels == ("p", "q")
    assert groups["campaign"].dropped == "none of campaign_* (dropped level)"


def test_segment_numbers_match_a_hand_computation(frame) -> None:
    rows = reports.segment_table(frame, Y, PRED, baseline_value=20.0, min_rows=1)
    by = {(r.group, r.level): r for r in rows}
    a, b, home = by["landing_page", "/a"], by["landing_page", "/b"], by["landing_page", "/home"]
    # /a: y (0, 50), pred (5, 40)
    assert (a.rows, a.conversion, a.actual_mean, a.predicted_mean) == (2, 0.5, 25.0, 22.5)
    assert a.rmse == pytest.approx(math.sqrt((25 + 100) / 2))
    assert a.mae == pytest.approx(7.5)
    assert a.total_ratio == pytest.approx(45 / 50)
    assert a.baseline_rmse == pytest.approx(math.sqrt((400 + 900) / 2))
    assert a.rmse_vs_baseline == pytest.approx(math.sqrt(62.5) / math.sqrt(650))
    # /b: y (0, 100), pred (10, 70)
    assert b.rmse == pytest.approx(math.sqrt(500)) and b.mae == pytest.approx(20.0)
    assert b.total_ratio == pytest.approx(0.8)
    # /home = every landing_page_* column 0: rows 4..7, y (0, 0, 60, 0), pred (0, 5, 50, 10)
    assert (home.rows, home.conversion) == (4, 0.25)
    assert home.actual_mean == pytest.approx(15.0) and home.predicted_mean == pytest.approx(16.25)
    assert home.rmse == pytest.approx(7.5) and home.mae == pytest.approx(6.25)
    assert home.total_ratio == pytest.approx(65 / 60)
    assert home.rmse_vs_baseline == pytest.approx(7.5 / math.sqrt(700))
    # flags: yes / no; every level of every group is listed once
    assert by["is_weekend", "yes"].rows == 4 and by["is_weekend", "no"].rows == 4
    assert by["campaign", "none of campaign_* (dropped level)"].rows == 4
    assert sum(r.rows for r in rows if r.group == "landing_page") == len(Y)
    # worst first: the model's RMSE relative to the baseline's, descending
    ratios = [r.rmse_vs_baseline for r in rows]
    assert ratios == sorted(ratios, reverse=True)


def test_small_segments_go_last_and_other_sorts(frame) -> None:
    rows = reports.segment_table(frame, Y, PRED, baseline_value=20.0, min_rows=3)
    few = [r.few_rows for r in rows]
    assert few == sorted(few)  # all reliable rows before all small ones
    assert {(r.group, r.level) for r in rows if r.few_rows} >= {("landing_page", "/a"),
                                                                ("landing_page", "/b")}
    by_rmse = reports.segment_table(frame, Y, PRED, 20.0, sort="rmse", min_rows=1)
    assert [r.rmse for r in by_rmse] == sorted((r.rmse for r in by_rmse), reverse=True)
    by_bias = reports.segment_table(frame, Y, PRED, 20.0, sort="bias", min_rows=1)
    bias = [abs(math.log(r.total_ratio)) for r in by_bias]
    assert bias == sorted(bias, reverse=True)
    # is_repeat_session=no (rows 1, 3, 5): predicted 40 + 70 + 5 of actual 50 + 100 + 0
    assert (by_bias[0].group, by_bias[0].level) == ("is_repeat_session", "no")
    assert by_bias[0].total_ratio == pytest.approx(115 / 150)
    from revcli.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown segment sort"):
        reports.segment_table(frame, Y, PRED, 20.0, sort="worst")


def test_calibration_bins() -> None:
    y = np.array([0.0, 0.0, 10.0, 0.0, 50.0, 70.0])
    pred = np.array([1.0, 2.0, 3.0, 4.0, 40.0, 60.0])
    bins = reports.calibration_bins(y, pred, bins=3)
    assert [b.rows for b in bins] == [2, 2, 2]
    assert [b.predicted_mean for b in bins] == [1.5, 3.5, 50.0]
    assert [b.actual_mean for b in bins] == [0.0, 5.0, 60.0]
    assert bins[2].actual_se == pytest.approx(np.std([50.0, 70.0], ddof=1) / math.sqrt(2))


def test_markdown_and_csv_tables() -> None:
    headers = ["run", "rmse", "note"]
    rows = [["a|b", 1.23456789, None], ["c", float("nan"), "x"]]
    md = reports.to_markdown(headers, rows).splitlines()
    assert md[0] == "| run | rmse | note |" and md[1] == "|---|---|---|"
    assert md[2] == "| a\\|b | 1.23457 |  |"
    parsed = list(csv.reader(io.StringIO(reports.to_csv(headers, rows))))
    assert parsed == [headers, ["a|b", "1.23457", ""], ["c", "", "x"]]
