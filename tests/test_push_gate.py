"""The promotion gate's rules, on run facts alone (the registry round trip is in
tests/integration/test_push.py)."""

from __future__ import annotations

import pytest

from revcli.errors import ConfigError
from revcli.push import (
    ALREADY,
    FIRST,
    INCOMPARABLE,
    LEAK,
    LOST,
    WON,
    RunFacts,
    judge,
    metadata_location,
)
from revcli.storage import Location


def facts(run_id: str = "cand", version: str | None = None, leakage: str = "none",
          dataset: str = "d" * 64, split: str = "s1", population: str = "test converters",
          honest: str | None = "true", too_good: bool = False, **metrics: float) -> RunFacts:
    return RunFacts(run_id=run_id, metrics=metrics or {"rmse": 17.0}, dataset_sha256=dataset,
                    split_hash=split, population=population, leakage=leakage, version=version,
                    honest=honest, too_good=too_good)


def champion(**kw) -> RunFacts:
    return facts(run_id="champ", version="3", **kw)


def test_the_first_model_becomes_champion() -> None:
    gate = judge(facts(), None, "rmse")
    assert gate.verdict == FIRST and gate.passed and gate.promote
    assert "first pushed model" in gate.summary()


@pytest.mark.parametrize(("metric", "new", "old", "verdict"), [
    ("rmse", 16.9, 17.0, WON),  # lower is better
    ("rmse", 17.1, 17.0, LOST),
    ("rmse", 17.0, 17.0, LOST),  # a tie keeps the champion
    ("r2", 0.12, 0.10, WON),  # higher is better
    ("r2", 0.08, 0.10, LOST),
    ("total_ratio", 0.98, 1.05, WON),  # closer to 1 is better
    ("total_ratio", 1.10, 0.95, LOST),
])
def test_the_candidate_must_strictly_beat_the_champion(metric, new, old, verdict) -> None:
    # --margin 0: on the recorded scores alone, any strict gain
    gate = judge(facts(**{metric: new}), champion(**{metric: old}), metric, margin="0")
    assert gate.verdict == verdict
    assert (gate.candidate, gate.champion, gate.champion_version) == (new, old, "3")
    text = gate.summary()
    assert f"{new:.4g}" in text and f"{old:.4g}" in text
    assert ("beats" in text) == (verdict == WON)
    if new == old:
        assert "ties with" in text


@pytest.mark.parametrize(("change", "reason"), [
    ({"dataset": "e" * 64}, "dataset sha256 differs"),
    ({"split": "s2"}, "split hash differs"),
    ({"population": "all test sessions"}, "population differs"),
])
def test_scores_from_other_data_splits_or_populations_are_not_compared(change, reason) -> None:
    gate = judge(facts(rmse=1.0, **change), champion(rmse=17.0), "rmse")
    assert gate.verdict == INCOMPARABLE and not gate.promote
    assert reason in gate.summary() and "not comparable" in gate.summary()
    forced = judge(facts(rmse=1.0, **change), champion(rmse=17.0), "rmse", force=True)
    assert forced.promote and not forced.passed
    assert forced.summary().startswith("promoted by --force over the gate")


@pytest.mark.parametrize("honest", ["false", None])  # None: a run logged before revcli.honest
def test_a_leaky_run_is_refused_even_as_the_first_model(honest) -> None:
    gate = judge(facts(leakage="engagement_depth", honest=honest), None, "rmse")
    assert gate.verdict == LEAK and not gate.promote
    assert "engagement_depth" in gate.summary()
    assert "--drop-feature engagement_depth" in gate.summary()
    assert judge(facts(leakage="engagement_depth", honest=honest), None, "rmse",
                 force=True).promote


def test_a_too_good_run_is_refused() -> None:
    gate = judge(facts(honest="false", too_good=True, rmse=3.0), champion(), "rmse")
    assert gate.verdict == LEAK and "too good to be true" in gate.summary()


def test_a_leak_that_cannot_inflate_the_scores_is_said_but_not_refused() -> None:
    # converting_only: engagement_depth is constant on converters, so the run stays honest.
    gate = judge(facts(leakage="engagement_depth", honest="true", rmse=16.0), champion(),
                 "rmse", margin="0")
    assert gate.verdict == WON
    assert gate.notes and "engagement_depth" in gate.notes[0]


def test_the_champion_itself_passes() -> None:
    gate = judge(facts(run_id="champ"), champion(), "rmse")
    assert gate.verdict == ALREADY and gate.passed


def test_missing_metrics() -> None:
    with pytest.raises(ConfigError, match=r"unknown metric .* for the promotion gate"):
        judge(facts(), None, "accuracy")
    with pytest.raises(ConfigError, match="has no 'auc' metric"):
        judge(facts(), None, "auc")
    gate = judge(facts(rmse=1.0), champion(mae=3.0), "rmse")
    assert gate.verdict == INCOMPARABLE and "has no 'rmse' metric" in gate.summary()


@pytest.mark.parametrize(("key", "expected"), [
    ("regression_model.pkl", "regression_model.json"),
    ("prod/v1.2/model.joblib", "prod/v1.2/model.json"),
    ("prod.v1/model", "prod.v1/model.json"),
    ("model", "model.json"),
    ("model.json", "model.json.metadata.json"),
])
def test_the_metadata_json_sits_beside_the_model(key, expected) -> None:
    assert metadata_location(Location("models", key)) == Location("models", expected)


def _paired(gain: float, noise: float, n: int = 6449):
    """Candidate and champion on the same rows: the candidate's RMSE ``gain`` lower, with
    rows whose errors differ by ``noise``."""
    import numpy as np

    from revcli import metrics

    rng = np.random.default_rng(0)
    y = rng.choice([49.99, 59.99, 79.98, 109.98], n)
    champ = np.full(n, 60.0) + rng.normal(0, noise, n)
    cand = np.full(n, 60.0) + rng.normal(0, noise, n)  # its own errors, row by row
    target = metrics.rmse(y, champ) - gain
    # shrink the candidate's errors until its RMSE is `gain` below the champion's
    scale = target / metrics.rmse(y, cand)
    cand = y + (cand - y) * scale
    return metrics.paired_difference("rmse", y, cand, champ)


def test_a_gain_within_the_noise_is_not_promoted() -> None:
    d = _paired(0.01, 5.0)
    assert d.difference == pytest.approx(-0.01, abs=1e-9) and not d.clear()
    old, new = d.b, d.a
    result = judge(facts(rmse=new), champion(rmse=old), "rmse", paired=d)
    assert result.verdict == LOST and not result.promote
    text = result.reasons[0]
    assert "not a clear gain" in text and "\u22120.0100 ± " in text and "6,449 rows" in text
    assert result.paired["clear"] is False
    # --margin 0: any gain; --force: anyway
    assert judge(facts(rmse=new), champion(rmse=old), "rmse", margin="0").verdict == WON
    assert judge(facts(rmse=new), champion(rmse=old), "rmse", paired=d, force=True).promote


def test_a_clear_gain_is_promoted_with_its_interval() -> None:
    d = _paired(0.5, 0.5)
    assert d.clear()
    result = judge(facts(rmse=d.a), champion(rmse=d.b), "rmse", paired=d)
    assert result.verdict == WON and "a clear gain" in result.reasons[0]


@pytest.mark.parametrize("margin, won", [("0.4", True), ("0.6", False), ("1%", True),
                                         ("5%", False)])
def test_margin_absolute_or_share(margin: str, won: bool) -> None:
    result = judge(facts(rmse=16.5), champion(rmse=17.0), "rmse", margin=margin)
    assert (result.verdict == WON) is won


def test_without_a_measured_noise_the_default_says_how_to_promote() -> None:
    result = judge(facts(rmse=16.5), champion(rmse=17.0), "rmse",
                   paired_error="the champion's model is not in this workspace")
    assert result.verdict == LOST
    assert "could not be measured" in result.reasons[0] and "--margin 0" in result.reasons[0]
    with pytest.raises(ConfigError, match="--margin"):
        judge(facts(rmse=16.5), champion(rmse=17.0), "rmse", margin="lots")
