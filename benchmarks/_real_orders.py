"""The real Maven Fuzzy Factory orders as a session-like table, for benchmarks.

The real orders (``order_id, created_at, website_session_id, user_id, primary_product_id,
items_purchased, price_usd, cogs_usd``; ``../shared/data/mff_orders.parquet``) are not ours to
ship: benchmarks take the path and build the table in memory, nothing is copied into the repo.

Session ids 1..472,871 are contiguous and in time order, so every session id without an order has
revenue 0, and each session's start can be placed between the order timestamps of neighbouring
session ids:

- an order is placed some minutes after its session starts (up to ~15 min in this data), so the
  order timestamps, sorted by session id, are not monotone (2,153 steps back). A session starts
  no later than any later session's order, so each order session's anchor is the running minimum
  of order times from the last session id backwards: monotone, and at most a session's length
  after its start;
- sessions between two anchors are interpolated linearly in session id;
- sessions before the first order (ids 1-19) and after the last (472,819-472,871) are
  extrapolated with the average pace of the nearest 200 orders' sessions, clipped to the real
  period (2012-03-19 00:00 to 2015-03-19 23:59:59).

Only ``created_at``, ``revenue`` (``price_usd``, 0.0 without an order) and ``is_ordered`` are
returned: the real data has no other session features, and ``primary_product_id`` or
``items_purchased`` would give the order (and its value) away.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SESSIONS = 472_871
PERIOD_START = np.datetime64("2012-03-19T00:00:00", "s")
PERIOD_END = np.datetime64("2015-03-19T23:59:59", "s")
EDGE_ORDERS = 200


def build_sessions(orders_path: str | Path) -> pd.DataFrame:
    """One row per session id 1..472,871 (row ``i`` is session ``i + 1``), in time order:
    ``created_at`` (datetime64[us], interpolated), ``revenue`` (float64) and ``is_ordered``
    (int64)."""
    orders = pd.read_parquet(orders_path, columns=["created_at", "website_session_id",
                                                   "price_usd"])
    orders = orders.sort_values("website_session_id", kind="stable")
    sid = orders.website_session_id.to_numpy(dtype=np.int64)
    if len(np.unique(sid)) != len(sid) or sid.min() < 1 or sid.max() > SESSIONS:
        raise ValueError("expected at most one order per session id, ids in 1..472,871")

    seconds = orders.created_at.to_numpy().astype("datetime64[s]").astype(np.int64).astype(float)
    anchor = np.minimum.accumulate(seconds[::-1])[::-1]  # monotone, <= every later order

    ids = np.arange(1, SESSIONS + 1, dtype=float)
    when = np.interp(ids, sid.astype(float), anchor)
    k = min(EDGE_ORDERS, len(sid) - 1)
    if k > 0:
        head_pace = (anchor[k] - anchor[0]) / (sid[k] - sid[0])
        tail_pace = (anchor[-1] - anchor[-1 - k]) / (sid[-1] - sid[-1 - k])
        before = ids < sid[0]
        after = ids > sid[-1]
        when[before] = anchor[0] - (sid[0] - ids[before]) * head_pace
        when[after] = anchor[-1] + (ids[after] - sid[-1]) * tail_pace
    lo = PERIOD_START.astype(np.int64)
    hi = PERIOD_END.astype(np.int64)
    when = np.clip(np.round(when), lo, hi).astype(np.int64)
    when = np.maximum.accumulate(when)  # rounding and clipping keep it monotone; made sure

    revenue = np.zeros(SESSIONS)
    revenue[sid - 1] = orders.price_usd.to_numpy(dtype=float)
    ordered = np.zeros(SESSIONS, dtype=np.int64)
    ordered[sid - 1] = 1
    return pd.DataFrame({
        "created_at": pd.Series(when.astype("datetime64[s]").astype("datetime64[us]")),
        "revenue": revenue,
        "is_ordered": ordered,
    })
