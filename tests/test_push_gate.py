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
    gate = judge(facts(**{metric: new}), champion(**{metric: old}), metric)
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
                 "rmse")
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
