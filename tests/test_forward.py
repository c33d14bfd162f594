"""Issue 17: converter scores that mean one thing, segments from the table's own columns,
backtests over forward cut-offs, and a default that carries a trend forward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.workspaces import train_in


def test_two_stage_conv_rmse_is_its_stage_two_and_ranks_beside_converting_only(
        tmp_path: Path, small_demo) -> None:
    from revcli import compare

    frame = small_demo.drop(columns=["engagement_depth"])
    flags = {"estimator": "xgb", "n_jobs": 1}
    s, two = train_in(tmp_path, frame, strategy="two_stage", **flags)
    s_co = s.replace(strategy="converting_only")
    from revcli import train

    one = train.train(s_co, plots=False)
    s_all = s.replace(strategy="all")
    everyone = train.train(s_all, plots=False)
    two_conv = two.scorecard.metrics["conv_rmse"]
    one_conv = one.scorecard.metrics["rmse"]
    # the same estimator on the same converters: stage 2 is converting_only's model
    assert two_conv == pytest.approx(one_conv, rel=0.02)
    assert not any(k.startswith("conv_") for k in everyone.scorecard.metrics)
    result = compare.compare_runs(s)
    assert result.sort == "conv_rmse"
    by_strategy = {r.strategy: r for r in result.rows}
    assert by_strategy["two_stage"].metrics["conv_rmse"] == pytest.approx(two_conv)
    # all has none: ranked last, shown as n/a
    assert result.rows[-1].strategy == "all"
    assert [r.strategy for r in result.rows[:2]] in (["two_stage", "converting_only"],
                                                     ["converting_only", "two_stage"])
