from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from revcli import leakage, metrics, strategies


def test_audit_names_engagement_depth_on_the_demo(small_demo: pd.DataFrame) -> None:
    X = small_demo.drop(columns=["revenue", "is_ordered"])
    findings = leakage.audit(X, small_demo.is_ordered.to_numpy() == 1)
    assert [f.feature for f in findings] == ["engagement_depth"]
    assert "value 7" in findings[0].detail
    assert findings[0].auc > 0.99


def test_audit_flags_high_auc_without_a_marking_value() -> None:
    rng = np.random.default_rng(0)
    ordered = rng.random(5_000) < 0.1
    X = pd.DataFrame({"score": np.where(ordered, rng.uniform(10, 20, 5_000),
                                        rng.uniform(0, 9, 5_000)),
                      "noise": rng.random(5_000)})
    findings = leakage.audit(X, ordered)
    assert [f.feature for f in findings] == ["score"]
    assert "ROC AUC 1.000" in findings[0].detail


def test_single_feature_auc_is_the_roc_auc_with_ties_counted_half() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    ordered = rng.random(20_000) < 0.07
    for values in (rng.integers(0, 5, 20_000).astype(float),  # few levels: many ties
                   rng.normal(size=20_000) + ordered,          # continuous
                   np.where(ordered, 0.0, rng.integers(0, 3, 20_000))):  # below chance
        auc, marks = leakage._single_feature_auc(values, ordered)
        expected = roc_auc_score(ordered, values)
        assert auc == pytest.approx(max(expected, 1 - expected), abs=1e-12)
        assert not marks


def test_audit_of_some_rows_is_the_audit_of_those_rows(small_demo: pd.DataFrame) -> None:
    X = small_demo.drop(columns=["revenue", "is_ordered"])
    ordered = small_demo.is_ordered.to_numpy() == 1
    rows = np.arange(0, len(X), 3)
    assert (leakage.audit(X, ordered[rows], rows=rows)
            == leakage.audit(X.iloc[rows].reset_index(drop=True), ordered[rows]))


def test_too_good_to_be_true() -> None:
    y = np.array([49.99, 59.99, 109.98, 49.99])
    cls, baselines = strategies.get("converting_only"), metrics.Baselines(4.0, 60.0)
    good = metrics.scorecard(cls, y, y + 1.0, baselines)
    honest = metrics.scorecard(cls, y, np.full(4, 60.0), baselines)
    assert "too good to be true" in leakage.too_good(good)
    assert leakage.too_good(honest) is None
