"""The leakage audit: features that give the answer away, and scores too good to be true.

On the real table ``engagement_depth == 7`` exactly when the session ordered (the thank-you page is
the 7th pageview), so any all-sessions model "explains" R^2 ~ 0.91 through that one fact. The audit
runs on the training rows before fitting and names such features; a converter RMSE under $10 --
which the seed task itself calls too good to be true -- is flagged after scoring. Findings are
warnings and run tags, never silent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from revcli.metrics import Scorecard

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
    from revcli.metrics import converter_rmse

    value = converter_rmse(card)
    if np.isfinite(value) and value < TOO_GOOD_RMSE:
        return (f"RMSE on converters is ${value:.2f} < ${TOO_GOOD_RMSE:.0f}: too good to be true "
                "for this data (the mean predictor scores ~$17.7); check for leakage")
    return None
