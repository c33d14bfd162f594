"""A synthetic training table with the real schema and the real data's shape.

The real table (Maven Fuzzy Factory, 472,871 sessions from 2012-03-19 to 2015-03-19) is not ours to
ship, so ``revcli fetch --demo`` builds a stand-in that matches what was measured on it
(see ``shared/reference/mff_facts.md``): the exact 14 columns, dtypes and order; conversion
6.83 %; the 10 order values and their shares; the engagement-depth leak; and an order value that
the features barely predict. Rows are in time order, as in the real table.

By default the table also has the session timestamp the real pipeline dropped, ``created_at``
(first column, ``datetime64[us]``, naive UTC), so that time features and a time-based split can be
exercised; ``generate(time_column=False)`` gives the 14-column table exactly as before that
column existed. ``generate(with_truth=True)`` also returns the generator's truth per row (point 6):
the oracle of a quality benchmark.

How it is built, and every assumption made where the facts are silent:

1. **Time.** Row ``i`` is a session at a time that follows the real monthly session volumes and
   order counts (``MONTHS``: sessions per month interpolated from the contiguous session ids of
   the real orders table; orders counted exactly). Fewer rows than 472,871 shrink every month alike.
2. **Segments** (all independent of each other unless said):
   - hour of day: the real orders' hour profile (mean 13.0 / std 5.76, within 1 % of the sessions'
     12.93 / 5.73), with a mild conversion bump peaking at 14:00 (+8 %) [shape assumed];
   - weekend: 15.1 % of sessions (15 % of real orders fall on weekends and weekend conversion is
     within 0.1 point of weekday conversion, so sessions split the same way) [assumption];
   - repeat visitor: 16.6 % overall, rising with time from none at launch (visitors need an
     earlier session) [shape assumed]; conversion x1.10, which with the later sessions' higher
     conversion gives about the real 7.83 % vs 6.64 %;
   - traffic source: gsearch 66.8 %, bsearch 13.3 %, socialbook 2.3 % (only from 2014-02 on),
     direct/organic the rest [shares assumed from the course data's usual figures]; direct
     converts x1.12 (about the real 7.28 %), socialbook x0.55 [assumed];
   - device: 31 % mobile, converting at 0.35x desktop [assumed];
   - landing page: direct/organic traffic lands on /home; paid traffic on the lander of its time
     (``LANDER_PERIODS``) [assumed schedule], with mild conversion differences.
3. **Orders.** Each month's conversion is the real one (``MONTHS``); within a month, a session's
   probability is proportional to the product of its segment factors, rescaled so the month's mean
   is exact. Ordered sessions have ``engagement_depth == 7`` (the full funnel) and no other session
   does: the leak of the real data, kept on purpose so the audit has something to find.
4. **Depth of non-orders** (1..6): 47.8 / 11.5 / 27.4 / 6.0 / 2.4 / 4.9 %, solved so that the whole
   table has depth mean 2.513 and std 1.816 and 5+ page sessions convert at 50.1 %; depth 4 is set
   to 6 % as the free parameter, near the public sample of early sessions.
5. **Order values.** The basket mix of each product era (launches of Love Bear 2013-01-06, the
   cross-sell 2013-09-25, Sugar Panda 2013-12-12, Mini Bear 2014-02-05) is the real one
   (``ERA_MIX``), chosen per row by the era of the row's own date (the date of its ``created_at``):
   no Love Bear before its launch, no two-item basket before the cross-sell, and so on, exactly as
   in the real orders (AOV $49.99 in 2012, ~$64 from 2014-02). Within an era, repeat visitors are
   30 % more and mobile visitors 25 % less likely to buy a two-item basket [assumed], relative to
   the era's orders' mean tilt. That, plus the features' drift with time, is the only link from
   features to order value: R^2 on converters without a time feature stays near the real data's
   ~0 (well under 0.2); the date (the era) is the strongest signal, as in the real data.
6. **The truth** (``with_truth=True``): a frame with the table's index and, per row,
   ``p_order`` = P(order | x), ``order_value`` = E[order value | x, order] and ``revenue`` =
   E[revenue | x] = their product, where x is what the table shows the generator conditioned on:
   the date (month and product era; a month's conversion normaliser is the table's own), hour,
   weekend, repeat, device, source and lander columns; not ``engagement_depth`` (the leak), and
   not the hidden one: direct/organic and bsearch-on-/home sessions look alike in the table, so
   their conversion factor is the posterior mix of the two given the lander period. A model's
   RMSE against realised revenue is at best about the oracle's (``truth.revenue``, or
   ``truth.order_value`` on converters), and ``RMSE(prediction, truth)`` is its error against
   the truth. The sample means match: mean ``p_order`` is the conversion and mean
   ``revenue`` the mean revenue, within sampling error.
7. **Timestamps.** Drawn after everything else (so the 14 columns' draws are untouched): a day
   in the row's month, uniform among the days of the row's calendar cell (the stretch of its month
   with the same product era, lander period and socialbook state) that agree with ``is_weekend``
   (Saturday/Sunday), at hour ``hour_of_day`` and a uniform minute and second. The rows are then
   stably sorted by ``created_at``: the table is the ``time_column=False`` table's rows,
   permuted within their cells, with each month's session count unchanged.

Deterministic for a given ``rows`` and ``seed`` (numpy's PCG64). Vectorised: the full table takes
about a second, its truth included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from revcli.data import FULL_ROWS

if TYPE_CHECKING:
    import pandas as pd


COLUMNS: tuple[str, ...] = (
    "is_repeat_session", "hour_of_day", "is_weekend", "engagement_depth", "is_ordered", "revenue",
    "utm_source_gsearch", "utm_source_socialbook", "device_type_mobile",
    "landing_page_/lander-1", "landing_page_/lander-2", "landing_page_/lander-3",
    "landing_page_/lander-4", "landing_page_/lander-5",
)
# The session timestamp (naive UTC), first column unless ``generate(time_column=False)``.
TIME_COLUMN = "created_at"
# The truth beside the table (``generate(with_truth=True)``): P(order | x), E[order value | x,
# order] and E[revenue | x], their product.
TRUTH_COLUMNS: tuple[str, ...] = ("p_order", "order_value", "revenue")

# (month, sessions, orders), measured on the real orders table; totals 472,871 and 32,313.
MONTHS: tuple[tuple[str, int, int], ...] = (
    ("2012-03", 1873, 60), ("2012-04", 3725, 99), ("2012-05", 3745, 108),
    ("2012-06", 3963, 140), ("2012-07", 4250, 169), ("2012-08", 6101, 228),
    ("2012-09", 6545, 287), ("2012-10", 8176, 371), ("2012-11", 14018, 618),
    ("2012-12", 10072, 506), ("2013-01", 6400, 390), ("2013-02", 7162, 498),
    ("2013-03", 6269, 385), ("2013-04", 7972, 553), ("2013-05", 8449, 571),
    ("2013-06", 8323, 593), ("2013-07", 8903, 604), ("2013-08", 9181, 608),
    ("2013-09", 9564, 629), ("2013-10", 10788, 708), ("2013-11", 14023, 861),
    ("2013-12", 15742, 1047), ("2014-01", 14828, 982), ("2014-02", 16285, 1021),
    ("2014-03", 15663, 1066), ("2014-04", 17355, 1241), ("2014-05", 18065, 1368),
    ("2014-06", 17711, 1239), ("2014-07", 19037, 1286), ("2014-08", 18595, 1325),
    ("2014-09", 19509, 1424), ("2014-10", 21527, 1609), ("2014-11", 25137, 1985),
    ("2014-12", 29707, 2314), ("2015-01", 25338, 2098), ("2015-02", 23780, 2068),
    ("2015-03", 15090, 1254),
)
START = np.datetime64("2012-03-19")
END = np.datetime64("2015-03-20")

ORDER_VALUES = np.array([29.99, 45.99, 49.99, 59.99, 75.98, 79.98, 89.98, 95.98, 105.98, 109.98])
TWO_ITEM = ORDER_VALUES > 70
# Product eras: Love Bear 2013-01-06, cross-sell 2013-09-25, Sugar Panda 2013-12-12,
# Mini Bear 2014-02-05. Real order counts per basket value in each era.
ERA_STARTS = np.array(["2012-03-19", "2013-01-06", "2013-09-25", "2013-12-12", "2014-02-05"],
                      dtype="datetime64[D]")
ERA_MIX = np.array([
    [0, 0, 2649, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 3844, 803, 0, 0, 0, 0, 0, 0],
    [0, 0, 1685, 324, 0, 0, 0, 0, 0, 89],
    [0, 220, 1066, 230, 0, 0, 0, 136, 14, 77],
    [534, 1819, 8860, 2567, 662, 3142, 680, 1900, 234, 778],
], dtype=float)

# Real orders per hour (share of orders, %, 00..23).
ORDER_HOURS = np.array([2.55, 2.23, 1.81, 1.69, 1.70, 1.75, 2.12, 2.34, 3.56, 5.14, 6.03, 6.79,
                        6.72, 6.45, 6.66, 6.77, 6.50, 5.95, 4.93, 4.26, 3.68, 3.69, 3.50, 3.18])
HOUR_CONVERSION = 1.0 + 0.08 * np.cos(2 * np.pi * (np.arange(24) - 14) / 24)

WEEKEND_SHARE = 0.151
REPEAT_SHARE = 0.166
MOBILE_SHARE = 0.31
# direct/organic, gsearch, bsearch, socialbook (socialbook only from SOCIALBOOK_START)
SOURCE_SHARES = np.array([0.176, 0.668, 0.133, 0.023])
SOURCE_CONVERSION = np.array([1.12, 1.0, 1.02, 0.55])
SOCIALBOOK_START = np.datetime64("2014-02-01")
REPEAT_CONVERSION = 1.10
MOBILE_CONVERSION = 0.35

# Landing pages of paid traffic by period: shares of /home, /lander-1 .. /lander-5.
LANDER_PERIODS = np.array(["2012-03-19", "2012-06-19", "2012-07-29", "2013-06-01", "2014-01-01",
                           "2014-07-01"], dtype="datetime64[D]")
LANDER_MIX = np.array([
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.5, 0.5, 0.0, 0.0, 0.0, 0.0],
    [0.1, 0.9, 0.0, 0.0, 0.0, 0.0],
    [0.1, 0.45, 0.45, 0.0, 0.0, 0.0],
    [0.1, 0.0, 0.4, 0.3, 0.2, 0.0],
    [0.05, 0.0, 0.2, 0.25, 0.1, 0.4],
])
LANDER_CONVERSION = np.array([0.92, 1.0, 1.05, 0.97, 1.0, 1.08])

NON_ORDER_DEPTH = np.array([0.4780, 0.1154, 0.2736, 0.0600, 0.02434, 0.04868])
TWO_ITEM_ODDS_REPEAT = 1.30
TWO_ITEM_ODDS_MOBILE = 0.75


def _choice(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row from a (rows, k) matrix of probabilities."""
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]
    u = rng.random(len(probs))[:, None]
    return (u > cum).sum(axis=1)


def _calendar_cells(month_start: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                      np.ndarray]:
    """The period cut at every date where something the generator draws from changes.

    Returns the cells' start dates (a row's cell is ``searchsorted(bounds, day, "right") - 1``),
    every day of the period sorted by (cell, weekend), and per (cell, weekend) key
    (``2 * cell + weekend``) the offset of its first day in that list and its number of days.
    """
    bounds = np.unique(np.concatenate([month_start, ERA_STARTS, LANDER_PERIODS,
                                       [SOCIALBOOK_START]]))
    days = np.arange(START, END, dtype="datetime64[D]")
    cell = np.searchsorted(bounds, days, side="right") - 1
    key = 2 * cell + _is_weekend(days)
    order = np.argsort(key, kind="stable")
    counts = np.bincount(key, minlength=2 * len(bounds))
    offsets = np.cumsum(counts) - counts
    return bounds, days[order], offsets, counts


def _is_weekend(days: np.ndarray) -> np.ndarray:
    """Saturday or Sunday (1970-01-01, day 0, was a Thursday)."""
    return (days.astype("datetime64[D]").astype(np.int64) + 3) % 7 >= 5


def generate(rows: int = FULL_ROWS, seed: int = 0, *, time_column: bool = True,
             with_truth: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``rows`` synthetic sessions in time order.

    ``time_column=True`` (the default) puts the session timestamp ``created_at`` first, before
    the real 14 columns, and sorts the rows by it; ``time_column=False`` gives the real 14-column
    schema, exactly the table this function returned before ``created_at`` existed (same rows,
    same seed, same bytes). ``with_truth=True`` returns ``(table, truth)``: the truth has the
    table's index and the columns of :data:`TRUTH_COLUMNS` (see the module docstring, point 6).
    """
    import pandas as pd

    if rows < 1:
        raise ValueError("rows must be at least 1")
    rng = np.random.default_rng(seed)
    month_sessions = np.array([m[1] for m in MONTHS], dtype=float)
    month_conv = np.array([m[2] / m[1] for m in MONTHS])
    month_start = np.array([m[0] for m in MONTHS], dtype="datetime64[D]")
    month_start[0] = START
    month_end = np.append(month_start[1:], END)

    # 1. time: row position on the real cumulative session curve
    cum = np.concatenate([[0.0], np.cumsum(month_sessions)])
    pos = (np.arange(rows) + 0.5) / rows * cum[-1]
    month = np.searchsorted(cum, pos, side="right") - 1
    frac = (pos - cum[month]) / month_sessions[month]
    span = (month_end - month_start).astype(float)[month]
    day = month_start[month] + (frac * span).astype("timedelta64[D]")
    t = (day - START).astype(float) / (END - START).astype(float)

    # 2. segments
    hour = rng.choice(24, size=rows, p=ORDER_HOURS / ORDER_HOURS.sum())
    weekend = rng.random(rows) < WEEKEND_SHARE
    repeat_curve = 1.0 - np.exp(-t / 0.25)
    repeat = rng.random(rows) < REPEAT_SHARE * repeat_curve / repeat_curve.mean()
    mobile = rng.random(rows) < MOBILE_SHARE
    source_p = np.broadcast_to(SOURCE_SHARES, (rows, 4)).copy()
    source_p[day < SOCIALBOOK_START, 3] = 0.0
    source = _choice(rng, source_p)
    period = np.searchsorted(LANDER_PERIODS, day, side="right") - 1
    lander = _choice(rng, LANDER_MIX[period])
    lander[source == 0] = 0

    # 3. orders: segment factors, rescaled to each month's real conversion
    others = (HOUR_CONVERSION[hour] * np.where(repeat, REPEAT_CONVERSION, 1.0)
              * np.where(mobile, MOBILE_CONVERSION, 1.0) * LANDER_CONVERSION[lander]
              * np.where(weekend, 0.99, 1.0))
    weight = others * SOURCE_CONVERSION[source]
    month_mean = np.bincount(month, weights=weight, minlength=len(MONTHS)) / np.maximum(
        np.bincount(month, minlength=len(MONTHS)), 1)
    p_order = np.clip(weight / month_mean[month] * month_conv[month], 0.0, 1.0)
    ordered = rng.random(rows) < p_order

    # 4. depth: the full funnel for orders, the calibrated mix otherwise
    depth = np.full(rows, 7, dtype=np.int64)
    non = ~ordered
    depth[non] = 1 + rng.choice(6, size=int(non.sum()), p=NON_ORDER_DEPTH / NON_ORDER_DEPTH.sum())

    # 5. order values: the era's basket mix, tilted towards two items for repeat / desktop
    revenue = np.zeros(rows)
    idx = np.flatnonzero(ordered)
    era_all = np.searchsorted(ERA_STARTS, day, side="right") - 1
    era = era_all[idx]
    odds_all = (np.where(repeat, TWO_ITEM_ODDS_REPEAT, 1.0)
                * np.where(mobile, TWO_ITEM_ODDS_MOBILE, 1.0))
    odds = odds_all[idx]
    mix = ERA_MIX / ERA_MIX.sum(axis=1, keepdims=True)
    share_two = mix[:, TWO_ITEM].sum(axis=1)
    era_orders = np.bincount(era, minlength=len(ERA_MIX))
    mean_odds = np.bincount(era, weights=odds, minlength=len(ERA_MIX)) / np.maximum(
        era_orders, 1)
    p_two = np.clip(share_two[era] * odds / mean_odds[era], 0.0, 0.95)
    two = rng.random(len(idx)) < p_two
    probs = mix[era].copy()
    probs[two[:, None] & ~TWO_ITEM[None, :]] = 0.0
    probs[~two[:, None] & TWO_ITEM[None, :]] = 0.0
    # An era without two-item baskets cannot sell one: fall back to its single-item mix.
    empty = probs.sum(axis=1) == 0
    probs[empty] = mix[era[empty]] * ~TWO_ITEM
    revenue[idx] = ORDER_VALUES[_choice(rng, probs)]

    frame = pd.DataFrame({
        "is_repeat_session": repeat.astype(np.int64),
        "hour_of_day": hour.astype(np.int32),
        "is_weekend": weekend,
        "engagement_depth": depth,
        "is_ordered": ordered.astype(np.int64),
        "revenue": revenue,
        "utm_source_gsearch": source == 1,
        "utm_source_socialbook": source == 3,
        "device_type_mobile": mobile,
        **{f"landing_page_/lander-{k}": lander == k for k in range(1, 6)},
    })[list(COLUMNS)]

    truth = None
    if with_truth:
        # 6. the truth: what the generator knows about each row, given what the table shows.
        # Direct/organic traffic and bsearch traffic landing on /home look alike in the table
        # (both all-zero source columns, no lander column set); their conversion factors are
        # averaged with the posterior odds of the two sources given that view.
        hidden = (source == 0) | ((source == 2) & (lander == 0))
        direct_odds = SOURCE_SHARES[0]
        bsearch_odds = SOURCE_SHARES[2] * LANDER_MIX[period, 0]
        mixed = ((direct_odds * SOURCE_CONVERSION[0] + bsearch_odds * SOURCE_CONVERSION[2])
                 / (direct_odds + bsearch_odds))
        seen = np.where(hidden, mixed, SOURCE_CONVERSION[source])
        true_p = np.clip(others * seen / month_mean[month] * month_conv[month], 0.0, 1.0)
        # E[order value | x, order]: two items with the row's p_two, each basket at its era's
        # mean value of one or of two items (an era without two-item baskets sells one item).
        values_two = mix * TWO_ITEM
        values_one = mix * ~TWO_ITEM
        mean_two = np.divide(values_two @ ORDER_VALUES, values_two.sum(axis=1),
                             out=np.zeros(len(ERA_MIX)), where=values_two.sum(axis=1) > 0)
        mean_one = values_one @ ORDER_VALUES / values_one.sum(axis=1)
        # The tilt's normaliser is the era's orders' mean odds; an era without orders in a small
        # table has none, and takes the era's sessions' mean odds instead.
        era_sessions_odds = np.bincount(era_all, weights=odds_all, minlength=len(ERA_MIX)) / (
            np.maximum(np.bincount(era_all, minlength=len(ERA_MIX)), 1))
        norm = np.where(era_orders > 0, mean_odds, era_sessions_odds)
        true_two = np.clip(share_two[era_all] * odds_all / np.where(norm > 0, norm, 1.0)[era_all],
                           0.0, 0.95)
        true_two[share_two[era_all] == 0] = 0.0
        true_value = true_two * mean_two[era_all] + (1 - true_two) * mean_one[era_all]
        truth = pd.DataFrame({"p_order": true_p, "order_value": true_value,
                              "revenue": true_p * true_value})

    if time_column:
        # 7. the timestamp: a day of the row's cell (its month, product era, lander period and
        # socialbook state, so everything drawn from the row's date holds for its timestamp)
        # with the row's weekend flag, then its hour and a uniform minute and second. Drawn
        # after everything else, so the other columns are the time_column=False ones, re-sorted.
        bounds, cell_days, offsets, counts = _calendar_cells(month_start)
        key = 2 * (np.searchsorted(bounds, day, side="right") - 1) + weekend
        if (counts[key] == 0).any():  # every cell has both kinds of days; kept honest here
            raise AssertionError("a calendar cell lacks a weekday or a weekend day")
        pick = offsets[key] + (rng.random(rows) * counts[key]).astype(np.int64)
        seconds = hour.astype(np.int64) * 3600 + rng.integers(0, 3600, size=rows)
        created = (cell_days[pick].astype("datetime64[us]")
                   + (seconds * 1_000_000).astype("timedelta64[us]"))
        order = np.argsort(created, kind="stable")
        frame = frame.iloc[order].reset_index(drop=True)
        frame.insert(0, TIME_COLUMN, pd.Series(created[order], dtype="datetime64[us]"))
        if truth is not None:
            truth = truth.iloc[order].reset_index(drop=True)
    if with_truth:
        return frame, truth
    return frame
