"""The leakage audit: features that give the answer away, and scores too good to be true.

On the real table ``engagement_depth == 7`` exactly when the session ordered (the thank-you page is
the 7th pageview), so any all-sessions model "explains" R^2 ~ 0.91 through that one fact. The audit
runs on the training rows before fitting and names such features; a converter RMSE under $10 --
which the seed task itself calls too good to be true -- is flagged after scoring. Findings are
warnings and run tags, never silent.
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
TOO_GOOD_RMSE = 10.0


@dataclass(frozen=True)
class LeakFinding:
    feature: str
    auc: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _single_feature_auc(values: np.ndarray, ordered: np.ndarray) -> float:
    from scipy.stats import rankdata

    n_pos = int(ordered.sum())
    n_neg = len(ordered) - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.5
    ranks = rankdata(values)
    auc = (ranks[ordered].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return float(max(auc, 1.0 - auc))


def audit(X: pd.DataFrame, ordered: np.ndarray,
          threshold: float = AUC_THRESHOLD) -> list[LeakFinding]:
    """Features that alone separate ``ordered`` (ROC AUC >= threshold, or a value seen only with
    orders that every order has)."""
    ordered = np.asarray(ordered, dtype=bool)
    findings = []
    for name in X.columns:
        values = X[name].to_numpy()
        auc = _single_feature_auc(values, ordered)
        order_values = np.unique(values[ordered])
        marks_orders = (len(order_values) == 1
                        and not np.any(values[~ordered] == order_values[0]))
        if marks_orders:
            value = order_values[0]
            shown = int(value) if float(value).is_integer() else value
            findings.append(LeakFinding(str(name), auc, f"value {shown} occurs only in sessions "
                                        f"that ordered, and in all {int(ordered.sum()):,} of them"))
        elif auc >= threshold:
            findings.append(LeakFinding(str(name), auc,
                                        f"alone separates is_ordered (ROC AUC {auc:.3f})"))
    return findings


def too_good(card: Scorecard) -> str | None:
    """A message when the converter RMSE is below what the seed calls too good to be true."""
    value = card.converter_score("rmse")
    if np.isfinite(value) and value < TOO_GOOD_RMSE:
        return (f"RMSE on converters is ${value:.2f} < ${TOO_GOOD_RMSE:.0f}: too good to be true "
                "for this data (the mean predictor scores ~$17.7); check for leakage")
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
