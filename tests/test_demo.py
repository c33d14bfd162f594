"""The demo table matches the measured facts of the real data (shared/reference/mff_facts.md)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from revcli import demo

REAL_VALUE_COUNTS = {29.99: 534, 45.99: 2039, 49.99: 18104, 59.99: 3924, 75.98: 662,
                     79.98: 3142, 89.98: 680, 95.98: 2036, 105.98: 248, 109.98: 944}


@pytest.fixture(scope="module")
def full() -> pd.DataFrame:
    return demo.generate()


def test_schema_is_the_real_one(full: pd.DataFrame) -> None:
    assert list(full.columns) == list(demo.COLUMNS)
    assert len(full) == 472_871
    dtypes = {c: str(t) for c, t in full.dtypes.items()}
    assert dtypes["is_repeat_session"] == "int64"
    assert dtypes["hour_of_day"] == "int32"
    assert dtypes["is_weekend"] == "bool"
    assert dtypes["engagement_depth"] == "int64"
    assert dtypes["is_ordered"] == "int64"
    assert dtypes["revenue"] == "float64"
    for c in demo.COLUMNS[6:]:
        assert dtypes[c] == "bool", c


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
    X = conv.drop(columns=["revenue", "is_ordered"])
    X_tr, X_te, y_tr, y_te = train_test_split(X, conv.revenue, test_size=0.2, random_state=42)
    model = HistGradientBoostingRegressor(max_iter=100, random_state=0).fit(X_tr, y_tr)
    r2 = model.score(X_te, y_te)
    assert 0.0 < r2 < 0.2  # some signal, as in the real data, and far from the seed's 0.5


def test_deterministic_for_a_seed() -> None:
    a = demo.generate(rows=5_000, seed=3)
    b = demo.generate(rows=5_000, seed=3)
    c = demo.generate(rows=5_000, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_full_size_is_fast() -> None:
    # A generous bound that catches an accidental per-row Python loop, not a benchmark.
    start = time.perf_counter()
    demo.generate()
    assert time.perf_counter() - start < 5.0
