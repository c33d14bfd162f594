"""The demo table matches the measured facts of the real data (shared/reference/mff_facts.md)."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pandas as pd
import pytest

from revcli import demo

REAL_VALUE_COUNTS = {29.99: 534, 45.99: 2039, 49.99: 18104, 59.99: 3924, 75.98: 662,
                     79.98: 3142, 89.98: 680, 95.98: 2036, 105.98: 248, 109.98: 944}


# sha256 of generate(rows, seed, time_column=False) (names, dtypes and bytes of every column, and
# the index), taken from the generator as it was before created_at existed.
OLD_TABLES = {
    (5_000, 3): "56b1b4e7de5b3bc4ed5dc8b84e941017e5cd00c8f6ea507d0c1f638e609c455a",
    (12_345, 7): "8de90aadc2c2239c49d34301456fd47c9ffe521f3146586c6500a8dc88a658e9",
    (472_871, 0): "6c7d7b1d5f8856da9e67672d2e3e3145355d291062179fc5de4cef73f24dba70",
}


def fingerprint(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    for column in frame.columns:
        digest.update(column.encode())
        digest.update(str(frame[column].dtype).encode())
        digest.update(frame[column].to_numpy().tobytes())
    digest.update(frame.index.to_numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def full_and_truth() -> tuple[pd.DataFrame, pd.DataFrame]:
    return demo.generate(with_truth=True)


@pytest.fixture(scope="module")
def full(full_and_truth: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return full_and_truth[0]


@pytest.fixture(scope="module")
def truth(full_and_truth: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return full_and_truth[1]


def test_schema_is_the_real_one_with_the_timestamp_first(full: pd.DataFrame) -> None:
    assert list(full.columns) == [demo.TIME_COLUMN, *demo.COLUMNS]
    assert len(full) == 472_871
    dtypes = {c: str(t) for c, t in full.dtypes.items()}
    assert dtypes["created_at"] == "datetime64[us]"
    assert dtypes["is_repeat_session"] == "int64"
    assert dtypes["hour_of_day"] == "int32"
    assert dtypes["is_weekend"] == "bool"
    assert dtypes["engagement_depth"] == "int64"
    assert dtypes["is_ordered"] == "int64"
    assert dtypes["revenue"] == "float64"
    for c in demo.COLUMNS[6:]:
        assert dtypes[c] == "bool", c


@pytest.mark.parametrize(("rows", "seed"), sorted(OLD_TABLES))
def test_without_time_column_the_table_is_the_old_one(rows: int, seed: int) -> None:
    table = demo.generate(rows=rows, seed=seed, time_column=False)
    assert list(table.columns) == list(demo.COLUMNS)
    assert fingerprint(table) == OLD_TABLES[rows, seed]


def test_the_timed_table_is_the_old_rows_reordered() -> None:
    timed = demo.generate(rows=20_000, seed=1)
    old = demo.generate(rows=20_000, seed=1, time_column=False)
    columns = list(demo.COLUMNS)
    pd.testing.assert_frame_equal(
        timed.drop(columns="created_at").sort_values(columns).reset_index(drop=True),
        old.sort_values(columns).reset_index(drop=True))
    # each row stays in its month: the monthly counts of the old row positions are kept
    month_old = np.searchsorted(np.cumsum([m[1] for m in demo.MONTHS]),
                                (np.arange(20_000) + 0.5) / 20_000 * demo.FULL_ROWS, side="right")
    counts = timed.created_at.dt.strftime("%Y-%m").value_counts().sort_index().to_numpy()
    np.testing.assert_array_equal(counts, np.bincount(month_old))


def test_created_at_agrees_with_the_other_columns(full: pd.DataFrame) -> None:
    created = full.created_at
    assert created.is_monotonic_increasing
    assert created.min() >= pd.Timestamp("2012-03-19")
    assert created.max() < pd.Timestamp("2015-03-20")
    assert (created.dt.hour == full.hour_of_day).all()
    assert ((created.dt.day_of_week >= 5) == full.is_weekend).all()
    counts = created.dt.strftime("%Y-%m").value_counts().sort_index()
    assert list(counts.index) == [m[0] for m in demo.MONTHS]
    assert counts.tolist() == [m[1] for m in demo.MONTHS]  # the full table: exactly the real ones
    # minutes and seconds are drawn, not constant
    assert created.dt.minute.nunique() == 60
    assert created.dt.second.nunique() == 60
    # socialbook traffic only from its start, and each lander only in its periods
    assert not full.utm_source_socialbook[created < pd.Timestamp(demo.SOCIALBOOK_START)].any()
    assert not full["landing_page_/lander-5"][created < pd.Timestamp("2014-07-01")].any()


def test_order_values_follow_the_era_of_each_rows_date(full: pd.DataFrame) -> None:
    conv = full[full.is_ordered == 1]
    era = np.searchsorted(demo.ERA_STARTS, conv.created_at.to_numpy().astype("datetime64[D]"),
                          side="right") - 1
    value_index = np.searchsorted(demo.ORDER_VALUES, conv.revenue.to_numpy())
    assert (demo.ERA_MIX[era, value_index] > 0).all()  # nothing sold before its launch
    aov = conv.revenue.groupby(era).mean()
    assert aov[0] == pytest.approx(49.99)
    assert aov[4] > aov[3] > aov[1] > aov[0]  # the launches raise the order value
    assert aov[4] == pytest.approx(64.0, abs=1.5)  # the real AOV from 2014-02 on is ~$63-64


def test_truth_is_aligned_and_sane(full: pd.DataFrame, truth: pd.DataFrame) -> None:
    assert list(truth.columns) == list(demo.TRUTH_COLUMNS)
    assert truth.index.equals(full.index)
    assert truth.p_order.between(0.0, 1.0, inclusive="neither").all()
    assert truth.order_value.between(demo.ORDER_VALUES.min(), demo.ORDER_VALUES.max()).all()
    np.testing.assert_allclose(truth.revenue, truth.p_order * truth.order_value)
    # asking for the truth changes nothing in the table
    pd.testing.assert_frame_equal(full, demo.generate())
    # before any second item existed, every order is the one product
    before = full.created_at < pd.Timestamp("2013-01-06")
    np.testing.assert_allclose(truth.order_value[before], 49.99)


def test_truth_means_match_the_table_within_sampling_error(full: pd.DataFrame,
                                                           truth: pd.DataFrame) -> None:
    n = len(full)
    se_p = np.sqrt((truth.p_order * (1 - truth.p_order)).sum()) / n
    assert abs(truth.p_order.mean() - full.is_ordered.mean()) < 4 * se_p
    assert truth.p_order.mean() == pytest.approx(0.0683336, rel=0.03)
    se_revenue = full.revenue.std() / np.sqrt(n)
    assert abs(truth.revenue.mean() - full.revenue.mean()) < 4 * se_revenue
    conv = full.is_ordered == 1
    se_value = full.revenue[conv].std() / np.sqrt(conv.sum())
    assert abs(truth.order_value[conv].mean() - full.revenue[conv].mean()) < 4 * se_value


def test_truth_is_calibrated_and_beats_the_mean(full: pd.DataFrame, truth: pd.DataFrame) -> None:
    # by deciles of the true P(order), the observed conversion matches it
    decile = pd.qcut(truth.p_order, 10, labels=False, duplicates="drop")
    observed = full.is_ordered.groupby(decile).mean()
    expected = truth.p_order.groupby(decile).mean()
    np.testing.assert_allclose(observed, expected, rtol=0.08)
    # the oracle is the noise floor: no worse than the mean on all sessions and on converters
    y = full.revenue
    assert np.sqrt(((y - truth.revenue) ** 2).mean()) < np.sqrt(((y - y.mean()) ** 2).mean())
    conv = full.is_ordered == 1
    yc = y[conv]
    oracle = np.sqrt(((yc - truth.order_value[conv]) ** 2).mean())
    assert oracle < 0.97 * np.sqrt(((yc - yc.mean()) ** 2).mean())


@pytest.mark.parametrize(("quantity", "real"), [
    ("conversion", 0.0683336),
    ("repeat_share", 0.166119),
    ("hour_mean", 12.9337),
    ("hour_std", 5.7304),
    ("depth_mean", 2.51258),
    ("depth_std", 1.81638),
    ("revenue_mean", 4.0994473),
    ("aov", 59.9916),
    ("five_plus_conversion", 0.5011),
])
def test_marginals_within_three_percent(full: pd.DataFrame, quantity: str, real: float) -> None:
    conv = full[full.revenue > 0]
    measured = {
        "conversion": full.is_ordered.mean(),
        "repeat_share": full.is_repeat_session.mean(),
        "hour_mean": full.hour_of_day.mean(),
        "hour_std": full.hour_of_day.std(),
        "depth_mean": full.engagement_depth.mean(),
        "depth_std": full.engagement_depth.std(),
        "revenue_mean": full.revenue.mean(),
        "aov": conv.revenue.mean(),
        "five_plus_conversion": full[full.engagement_depth >= 5].is_ordered.mean(),
    }[quantity]
    assert measured == pytest.approx(real, rel=0.03)


def test_order_values_and_their_shares(full: pd.DataFrame) -> None:
    conv = full.revenue[full.revenue > 0]
    shares = conv.value_counts(normalize=True)
    assert set(np.round(shares.index, 2)) == set(REAL_VALUE_COUNTS)
    total = sum(REAL_VALUE_COUNTS.values())
    for value, count in REAL_VALUE_COUNTS.items():
        real = count / total
        # within 0.5 percentage points or 10 % of the share, whichever is looser
        assert abs(shares[value] - real) <= max(0.005, 0.1 * real), value


def test_depth_range_and_the_leak(full: pd.DataFrame) -> None:
    assert full.engagement_depth.min() == 1
    assert full.engagement_depth.max() == 7
    assert ((full.engagement_depth == 7) == (full.is_ordered == 1)).all()
    assert full[full.engagement_depth == 1].is_ordered.sum() == 0
    assert ((full.revenue > 0) == (full.is_ordered == 1)).all()


def test_order_value_is_weakly_predictable(full: pd.DataFrame) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import train_test_split

    conv = full[full.revenue > 0]
    X = conv.drop(columns=["created_at", "revenue", "is_ordered"])  # without the time
    X_tr, X_te, y_tr, y_te = train_test_split(X, conv.revenue, test_size=0.2, random_state=42)
    model = HistGradientBoostingRegressor(max_iter=100, random_state=0).fit(X_tr, y_tr)
    r2 = model.score(X_te, y_te)
    assert 0.0 < r2 < 0.2  # some signal, as in the real data, and far from the seed's 0.5


@pytest.mark.parametrize("time_column", [True, False])
def test_deterministic_for_a_seed(time_column: bool) -> None:
    a, truth_a = demo.generate(rows=5_000, seed=3, time_column=time_column, with_truth=True)
    b, truth_b = demo.generate(rows=5_000, seed=3, time_column=time_column, with_truth=True)
    c = demo.generate(rows=5_000, seed=4, time_column=time_column)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(truth_a, truth_b)
    assert not a.equals(c)


@pytest.mark.parametrize("rows", [1, 2, 37, 1_000])
def test_tiny_tables_work(rows: int) -> None:
    table, truth = demo.generate(rows=rows, seed=0, with_truth=True)
    assert len(table) == len(truth) == rows
    assert table.created_at.is_monotonic_increasing
    assert truth.notna().all().all()


def test_full_size_is_fast() -> None:
    # A generous bound that catches an accidental per-row Python loop, not a benchmark.
    start = time.perf_counter()
    demo.generate()
    assert time.perf_counter() - start < 5.0
