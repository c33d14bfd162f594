"""The strategies pass scikit-learn's estimator conformance suite, except where the domain says
otherwise (each exception says why)."""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.utils.estimator_checks import parametrize_with_checks

from revcli.strategies import AllSessions, ConvertingOnly, TwoStage

NEGATIVE_TARGETS = ("the check fits scaled targets with negative values; revenue is >= 0 and "
                    "predictions are clipped at $0")


def _expected_failures(estimator) -> dict[str, str]:
    failures = {"check_regressors_train": NEGATIVE_TARGETS}
    if isinstance(estimator, ConvertingOnly):
        failures["check_estimators_nan_inf"] = (
            "NaN is left to the sub-estimator, which only sees the converting rows")
    if isinstance(estimator, TwoStage):
        all_positive = "the check's targets are all positive: no non-converting row for stage 1"
        failures["check_estimators_dtypes"] = all_positive
        failures["check_fit2d_1feature"] = all_positive
    return failures


@parametrize_with_checks(
    [AllSessions(Ridge()), ConvertingOnly(Ridge()), TwoStage(LogisticRegression(), Ridge())],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible(estimator, check) -> None:
    check(estimator)
