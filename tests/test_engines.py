"""The engine interface (revcli.engines): the in-process path is the pipeline as it was, the
cluster's pieces share their arithmetic with it, and what a cluster cannot run is refused before
one is started."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from revcli import demo, features, pipeline, settings
from revcli import split as split_mod
from revcli.cli import app
from revcli.engines import open_engine
from revcli.engines._local import InProcess


def test_the_in_process_path_keeps_its_split_hash_and_scores(tmp_path: Path) -> None:
    """Measured on the code before the engines existed (commit 60a71f5): the same split hash and
    the same scores, to the last bit, through the engine the commands now call."""
    path = tmp_path / "t.parquet"
    demo.generate(20_000, seed=0).to_parquet(path, index=False)
    st = settings.resolve(flags={"workspace": str(tmp_path / "ws"), "n_jobs": 1,
                                 "strategy": "converting_only", "estimator": "xgb"}, env={})
    with open_engine(st) as engine:
        assert isinstance(engine, InProcess) and engine.describe() == {"kind": "in-process"}
        prepared = engine.prepare(st, path, (), pipeline.SILENT)
        fitted = engine.fit_and_score(prepared, st, {}, pipeline.SILENT)
    assert prepared.split.hash == "b27a0bd216f7ead4"
    assert fitted.scorecard.metrics["rmse"] == pytest.approx(16.922508280999445, rel=1e-12)
    assert fitted.scorecard.metrics["mae"] == pytest.approx(13.602341587232505, rel=1e-12)


def test_the_encoding_fitted_from_parts_sums_is_the_in_process_one() -> None:
    from revcli.engines._dask import _combine_statistics

    rng = np.random.default_rng(0)
    n = 6_000
    frame = pd.DataFrame({
        "source": rng.choice(["a", "b", "c", "rare"], n, p=[0.5, 0.3, 0.198, 0.002]),
        "amount": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
        "when": pd.date_range("2015-01-01", periods=n, freq="h"),
        "flag": rng.random(n) < 0.5})
    frame.loc[::97, "source"] = None
    whole = features.Featurizer(native_categories=True, handles_missing=True).fit(frame)
    parts = [frame.iloc[i:i + 1_500] for i in range(0, n, 1_500)]
    stats = _combine_statistics([features.column_statistics(p, medians=False) for p in parts])
    from_parts = features.Featurizer(native_categories=True,
                                     handles_missing=True).fit_statistics(stats)
    assert from_parts.describe() == whole.describe()
    assert "rare" not in whole.levels_["source"]  # the cut-off did something
    pd.testing.assert_frame_equal(from_parts.transform(frame), whole.transform(frame))


def test_the_hash_split_is_the_same_part_by_part() -> None:
    ordered = np.random.default_rng(1).random(10_000) < 0.07
    whole = split_mod.make_hash_split(np.arange(10_000), ordered, 0.2, 42, split_mod.ROW_POSITION)
    masks = [split_mod.hash_test_mask(np.arange(i, i + 2_500), 42, 0.2)
             for i in range(0, 10_000, 2_500)]
    np.testing.assert_array_equal(np.flatnonzero(np.concatenate(masks)), whole.test)
    assert abs(len(whole.test) / 10_000 - 0.2) < 0.02
    fingerprint = sum(split_mod.hash_fingerprint(np.arange(i, i + 2_500), 42, m)
                      for i, m in zip(range(0, 10_000, 2_500), masks, strict=True))
    assert split_mod.hash_split_hash(10_000, len(whole.test), fingerprint, split_mod.ROW_POSITION,
                                     42, 0.2) == whole.hash
    other = split_mod.make_hash_split(np.arange(10_000), ordered, 0.2, 7, split_mod.ROW_POSITION)
    assert other.hash != whole.hash


@pytest.mark.parametrize("args", [["-e", "rf"], ["-e", "ridge", "-s", "two_stage"]])
def test_an_estimator_a_cluster_cannot_train_is_one_line_exit_2(args: list[str]) -> None:
    done = CliRunner().invoke(app, ["train", "--cluster", "local", *args])
    assert done.exit_code == 2
    lines = [line for line in done.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: --estimator ")
    assert "--cluster trains xgb and xgb_log" in lines[0]
    assert "Traceback" not in done.output


def test_split_time_on_a_cluster_is_refused() -> None:
    done = CliRunner().invoke(app, ["train", "--cluster", "local", "--split", "time"])
    assert done.exit_code == 2 and "--split time runs in this process only" in done.output


def test_an_unreachable_scheduler_is_one_line_exit_2() -> None:
    pytest.importorskip("distributed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = CliRunner().invoke(app, ["train", "--cluster", f"tcp://127.0.0.1:{port}"])
    assert done.exit_code == 2, done.output
    lines = [line for line in done.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, done.output
    assert lines[0].startswith(f"Error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}")
    assert "Traceback" not in done.output


def test_a_cluster_address_that_is_no_address_is_refused() -> None:
    pytest.importorskip("distributed")
    done = CliRunner().invoke(app, ["train", "--cluster", "somewhere"])
    assert done.exit_code == 2 and "give local or a scheduler address" in done.output


def test_commands_that_run_in_process_only_say_so_when_a_cluster_is_set() -> None:
    from revcli import engines
    from revcli.progress import Reporter

    class Recorder(Reporter):
        def __init__(self) -> None:
            self.warnings: list[str] = []

        def warn(self, message: str) -> None:
            self.warnings.append(message)

    recorder = Recorder()
    engines.in_process_only(settings.resolve(env={}), "compare strategies", recorder)
    assert recorder.warnings == []
    st = settings.resolve(env={"DASK_SCHEDULER_ADDRESS": "tcp://scheduler:8786"})
    assert st.cluster == "tcp://scheduler:8786"
    engines.in_process_only(st, "compare strategies", recorder)
    assert recorder.warnings == ["compare strategies runs in this process: the cluster setting "
                                 "(env:DASK_SCHEDULER_ADDRESS) is used by train, tune, predict "
                                 "and evaluate only"]
