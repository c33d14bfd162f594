"""The leakage audit: features that give the answer away, and scores too good to be true.

On the real table ``engagement_depth == 7`` exactly when the session ordered (the thank-you page is
the 7th pageview), so any all-sessions model "explains" R^2 ~ 0.91 through that one fact. The audit
runs on the training rows before fitting and ranks every column by how well it alone separates
the sessions that ordered (its ROC AUC; categories by their levels' order rates, timestamps by
date): a column that marks the orders, or with AUC >= 0.99, is a leak; AUC >= 0.95 is a near-leak
(a feature that is 7 for every order and 3 % of other sessions scores 0.985 and lifts R^2 to 0.56).
Both are named with their figure, both make the scores not honest, and an enforced gate refuses
them unless --allow-leak. After scoring, scores no session model of this data reaches -- a
converter RMSE under $10, which the seed task calls too good to be true, or an R^2 above 0.5,
where the honest ceiling is about 0.1 -- are flagged as too good. Findings are warnings and run
tags, never silent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from revcli.metrics import Scorecard
    from revcli.strategies import Strategy

AUC_THRESHOLD = 0.99
NEAR_THRESHOLD = 0.95
TOO_GOOD_RMSE = 10.0
TOO_GOOD_R2 = 0.5
LEAK, NEAR = "leak", "near-leak"


@dataclass(frozen=True)
class LeakFinding:
    feature: str
    auc: float
    detail: str
    kind: str = LEAK  # LEAK or NEAR

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _single_feature_auc(values: np.ndarray, ordered: np.ndarray) -> tuple[float, bool]:
    """ROC AUC of ``values`` alone for ``ordered`` (ties count half, as with mid-ranks), and
    whether one value marks the orders (every order has it, no other session does).

    From the counts of orders and non-orders at each distinct value, which decide the marking
    too; whole numbers in a small range (flags, counts, hours) are their own codes, so only a
    column of many distinct values is sorted."""
    n_pos = int(ordered.sum())
    n_neg = len(ordered) - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.5, False
    low = values.min()
    if values.max() - low < 1 << 16 and np.array_equal(values, np.floor(values)):
        codes = (values - low).astype(np.intp)  # flags, counts, hours: their own codes
    else:  # a sort beats hashing when nearly every value is distinct (a timestamp)
        codes = np.unique(values, return_inverse=True)[1]
    pos = np.bincount(codes, weights=ordered, minlength=codes.max() + 1)
    neg = np.bincount(codes, minlength=len(pos)) - pos
    return auc_of_counts(pos, neg)


def auc_of_counts(pos: np.ndarray, neg: np.ndarray) -> tuple[float, bool]:
    """:func:`_single_feature_auc` from the orders (``pos``) and other sessions (``neg``) at
    each distinct value, in the values' order: what a cluster adds up part by part."""
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return 0.5, False
    below = np.cumsum(neg) - neg  # non-orders at lower values
    auc = float((pos * (below + 0.5 * neg)).sum() / (n_pos * n_neg))
    with_orders = np.flatnonzero(pos)
    marks = len(with_orders) == 1 and neg[with_orders[0]] == 0
    return max(auc, 1.0 - auc), bool(marks)


def finding(name: str, auc: float, marks_orders: bool, marking_value: Any, n_orders: int,
            threshold: float = AUC_THRESHOLD, near: float = NEAR_THRESHOLD) -> LeakFinding | None:
    """What the audit says of one column with this AUC (None: nothing)."""
    if marks_orders:
        value = marking_value
        shown = int(value) if float(value).is_integer() else value
        return LeakFinding(name, auc, f"value {shown} occurs only in sessions that ordered, "
                           f"and in all {n_orders:,} of them")
    if auc >= threshold:
        return LeakFinding(name, auc, f"alone separates is_ordered (ROC AUC {auc:.3f})")
    if auc >= near:
        return LeakFinding(name, auc, f"nearly separates is_ordered on its own (ROC AUC "
                           f"{auc:.3f} >= {near}): a near-leak", NEAR)
    return None


def audit(X: pd.DataFrame, ordered: np.ndarray, threshold: float = AUC_THRESHOLD,
          near: float = NEAR_THRESHOLD, rows: np.ndarray | None = None) -> list[LeakFinding]:
    """Features that alone separate ``ordered``: leaks (ROC AUC >= ``threshold``, or a value
    seen only with orders that every order has) and near-leaks (AUC >= ``near``). ``rows``:
    audit those rows of ``X`` only (``ordered`` is then theirs), without copying the table."""
    from revcli.features import audit_columns

    ordered = np.asarray(ordered, dtype=bool)
    findings = []
    for name, values in audit_columns(X, ordered, rows):
        values = np.where(np.isnan(values), np.nanmin(values) - 1 if (~np.isnan(values)).any()
                          else 0.0, values)  # a gap ranks as its own lowest value
        auc, marks_orders = _single_feature_auc(values, ordered)
        found = finding(name, auc, marks_orders,
                        values[np.argmax(ordered)] if marks_orders else None,
                        int(ordered.sum()), threshold, near)
        if found is not None:
            findings.append(found)
    return findings


def too_good(card: Scorecard) -> str | None:
    """A message when the scores are beyond what session features make plausible: a converter
    RMSE under what the seed calls too good to be true, or an R^2 far above the honest ceiling
    (~0.1 with a time feature) on sessions or on converters."""
    value = card.converter_score("rmse")
    if np.isfinite(value) and value < TOO_GOOD_RMSE:
        return (f"RMSE on converters is ${value:.2f} < ${TOO_GOOD_RMSE:.0f}: too good to be true "
                "for this data (the mean predictor scores ~$17.7); check for leakage")
    for key, rows in (("r2", card.population), ("conv_r2", "the converters")):
        r2 = card.metrics.get(key, float("nan"))
        if np.isfinite(r2) and r2 > TOO_GOOD_R2:
            return (f"R² {r2:.2f} on {rows} is beyond what session features make plausible "
                    f"(> {TOO_GOOD_R2}; about 0.1 at best on this data); check for leakage")
    return None


@dataclass(frozen=True)
class Honesty:
    """The one rule that decides whether a model's scores are honest, applied once (at
    training) and recorded as the run's ``revcli.honest`` tag, which every command reads.

    ``findings`` are what the audit named; ``leaks`` those the scores can rest on (a feature
    that marks the order is constant on converters, so it cannot inflate a strategy scored on
    them only); ``too_good`` the message when the scores are too good to be true.
    """

    findings: tuple[LeakFinding, ...]
    leaks: tuple[str, ...]
    too_good: str | None
    can_inflate: bool

    @property
    def honest(self) -> bool:
        return not self.leaks and not self.too_good

    @property
    def flagged(self) -> list[str]:
        return [f.feature for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        return {"findings": [f.to_dict() for f in self.findings], "leaks": list(self.leaks),
                "too_good": self.too_good, "honest": self.honest,
                "leak_can_inflate": self.can_inflate}


def judge(strategy: type[Strategy], findings: Sequence[LeakFinding], card: Scorecard,
          recorded: Sequence[str] = ()) -> Honesty:
    """Honesty of ``card``'s scores for a model of ``strategy`` trained where the audit found
    ``findings`` (plus ``recorded`` leaks it was trained with, for a model judged later);
    sets ``card.leaks``."""
    can_inflate = strategy.leak_can_inflate()
    leaks = sorted({*recorded, *(f.feature for f in findings)}) if can_inflate else []
    card.leaks = list(leaks)
    return Honesty(findings=tuple(findings), leaks=tuple(leaks), too_good=too_good(card),
                   can_inflate=can_inflate)
