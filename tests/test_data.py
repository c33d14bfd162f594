"""The data contract: each bad table gives one DataError naming the problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from revcli import data
from revcli.errors import DataError, NotFoundError


def _frame(n: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    revenue = np.where(rng.random(n) < 0.3, 49.99, 0.0)
    return pd.DataFrame({"hour_of_day": rng.integers(0, 24, n).astype("int32"),
                         "is_weekend": rng.random(n) < 0.2,
                         "is_ordered": (revenue > 0).astype("int64"),
                         "revenue": revenue})


def test_features_are_every_column_but_the_target_and_ids() -> None:
    frame = _frame()
    frame["landing_page_/lander-9"] = True  # an extra one-hot column just works
    frame["website_session_id"] = np.arange(len(frame))
    frame["utm_source"] = "gsearch"  # text: a category
    frame["created_at"] = pd.Timestamp("2014-01-01") + pd.to_timedelta(np.arange(len(frame)),
                                                                        "h")
    table = data.validate(frame)
    assert table.features == ["hour_of_day", "is_weekend", "landing_page_/lander-9",
                              "utm_source", "created_at"]
    assert list(table.ids.columns) == ["website_session_id"]
    # the columns as they are: the model encodes them (revcli.features)
    assert table.X["created_at"].dtype.kind == "M" and table.X["hour_of_day"].dtype == "int32"
    assert table.converters == int((frame.revenue > 0).sum())


def test_gaps_in_features_are_allowed_the_target_stays_strict() -> None:
    frame = _frame().assign(hour_of_day=lambda f: f.hour_of_day.astype(float).where(
        f.index != 2), utm_source=lambda f: np.where(f.index % 2, "a", None))
    table = data.validate(frame)
    assert table.X["hour_of_day"].isna().sum() == 1
    with pytest.raises(DataError, match="'revenue' has 1 missing"):
        data.validate(frame.assign(revenue=frame.revenue.where(frame.index != 3)))


def test_is_ordered_is_derived_when_absent() -> None:
    table = data.validate(_frame().drop(columns="is_ordered"))
    assert table.ordered.sum() > 0


def test_drop_feature() -> None:
    table = data.validate(_frame(), drop_features=["is_weekend"])
    assert table.features == ["hour_of_day"] and table.dropped == ["is_weekend"]
    with pytest.raises(DataError, match="'nope' is not a feature"):
        data.validate(_frame(), drop_features=["nope"])


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda f: f.assign(z=np.ones(len(f)) * 1j), "column 'z' has dtype complex128, which is not"),
    (lambda f: f.assign(d=pd.to_timedelta(np.arange(len(f)), "s")), "column 'd' has dtype"),
    (lambda f: f.assign(revenue=f.revenue.astype(str)), "column 'revenue' has dtype"),
    (lambda f: f.assign(revenue=f.revenue.where(f.index != 3, np.nan)), "missing values"),
    (lambda f: f.assign(revenue=f.revenue.where(f.index != 3, -5.0)), "negative"),
    (lambda f: f.iloc[0:0], "empty"),
    (lambda f: f.assign(revenue=0.0, is_ordered=0), "no converting sessions"),
    (lambda f: f.drop(columns="revenue"), "no 'revenue' column"),
    (lambda f: f.assign(is_ordered=1), "disagrees"),
    (lambda f: f.assign(revenue=f.revenue.where(f.index != 3, np.inf)),
     "'revenue' has 1 infinite or out-of-range"),
    (lambda f: f.assign(revenue=f.revenue.where(f.index != 3, 1e300)),
     "'revenue' has 1 infinite or out-of-range"),
    (lambda f: f.assign(hour_of_day=f.hour_of_day.astype(float).where(f.index != 2, -np.inf)),
     "feature 'hour_of_day' has 1 infinite or out-of-range"),
    (lambda f: f.assign(hour_of_day=f.hour_of_day.astype(float).where(f.index != 2, 1e39)),
     "feature 'hour_of_day' has 1 infinite or out-of-range"),
])
def test_bad_tables(mutate, message) -> None:
    with pytest.raises(DataError, match=message):
        data.validate(mutate(_frame()))


def test_read_parquet_errors(tmp_path) -> None:
    with pytest.raises(NotFoundError):
        data.read_parquet(tmp_path / "missing.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_text("this is not parquet")
    with pytest.raises(DataError, match="not a readable parquet file"):
        data.read_parquet(junk)


def test_features_for_names_missing_columns() -> None:
    with pytest.raises(DataError, match=r"lacks 1 feature.*is_repeat_session"):
        data.features_for(_frame(), ["hour_of_day", "is_repeat_session"])
