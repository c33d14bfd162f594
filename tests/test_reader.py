"""The sqlite reader (revcli.tracking._reader) reads what MLflow's client reads, without MLflow."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from revcli.tracking import RunRecord, Tracker
from revcli.tracking._reader import ReadingTracker, Unsupported, parse_filter
from tests.workspaces import seed_store


def _store(tmp_path: Path, runs: int = 6) -> tuple[Tracker, str, list[str]]:
    ws = tmp_path / "ws"
    seed_store(ws)
    tracker = Tracker(f"sqlite:///{ws / 'mlflow.db'}")
    experiment_id = tracker.experiment_id("exp")
    assert experiment_id is not None
    ids = []
    for i in range(runs):
        record = RunRecord(command="train", strategy="all" if i % 2 else "converting_only",
                           estimator="xgb", extra={"note": f"it's #{i}"})
        run_id = tracker.create_run(experiment_id, f"run {i}", record.to_tags(),
                                    {"seed": i, "features": "a,b"}, start_time=1000 + i)
        tracker.log(run_id, metrics={"rmse": 10.0 + i, "baseline_rmse": 20.0,
                                     "nan": math.nan if i == 0 else 1.0})
        tracker.log(run_id, metrics={"rmse": 5.0 + i}, step=1)  # the latest value counts
        if i != 3:
            tracker.end_run(run_id, "FINISHED")
        ids.append(run_id)
    return tracker, experiment_id, ids


def _same(a: list, b: list) -> None:
    assert [r.run_id for r in a] == [r.run_id for r in b]
    for x, y in zip(a, b, strict=True):
        assert (x.name, x.status, x.started, x.record, x.params, x.parent_id, x.note) == (
            y.name, y.status, y.started, y.record, y.params, y.parent_id, y.note)
        assert x.metrics.keys() == y.metrics.keys() and x.baseline == y.baseline
        for key in x.metrics:
            assert x.metrics[key] == y.metrics[key] or (
                math.isnan(x.metrics[key]) and math.isnan(y.metrics[key]))


@pytest.mark.parametrize("filter_string", [
    "",
    "attributes.status = 'FINISHED'",
    "attributes.status = 'FINISHED' and tags.`revcli.strategy` = 'all'",
    "tags.`revcli.estimator` = 'xgb' and attributes.status = 'RUNNING'",
    "tags.`revcli.strategy` != '' and attributes.start_time >= 1002",
    "attributes.run_name = 'run 4'",
])
def test_a_search_reads_what_mlflow_reads(tmp_path: Path, filter_string: str) -> None:
    tracker, experiment_id, _ = _store(tmp_path)
    reader = ReadingTracker(tracker.uri, Path(tracker.uri.removeprefix("sqlite:///")))
    for size in (2, 100):  # one page and several
        mine, theirs, token, their_token = [], [], None, None
        while True:
            page, token = reader.search([experiment_id], filter_string, max_results=size,
                                        page_token=token)
            mine += page
            if not token:
                break
        while True:
            page, their_token = tracker.search([experiment_id], filter_string,
                                               max_results=size, page_token=their_token)
            theirs += page
            if not their_token:
                break
        _same(mine, theirs)
    assert reader.fallbacks == 0


def test_ids_prefixes_runs_and_experiments(tmp_path: Path) -> None:
    tracker, experiment_id, ids = _store(tmp_path)
    reader = ReadingTracker(tracker.uri, Path(tracker.uri.removeprefix("sqlite:///")))
    quoted = ", ".join(f"'{i}'" for i in ids[:3])
    for f in (f"attributes.run_id IN ({quoted})", f"attributes.run_id LIKE '{ids[4][:8]}%'"):
        _same(reader.search([experiment_id], f)[0], tracker.search([experiment_id], f)[0])
    _same([reader.get_run(ids[1])], [tracker.get_run(ids[1])])
    assert reader.experiment_id("exp", create=False) == experiment_id
    assert [e.name for e in reader.experiments()] == [e.name for e in tracker.experiments()]
    assert reader.fallbacks == 0


def test_what_it_does_not_know_goes_to_mlflow(tmp_path: Path) -> None:
    tracker, experiment_id, _ = _store(tmp_path)
    reader = ReadingTracker(tracker.uri, Path(tracker.uri.removeprefix("sqlite:///")))
    with pytest.raises(Unsupported):
        parse_filter("metrics.rmse < 3")
    for f in ("metrics.rmse < 7", "tags.`revcli.note` = 'it\\'s #2'"):
        _same(reader.search([experiment_id], f)[0], tracker.search([experiment_id], f)[0])
    assert reader.fallbacks == 2


def test_a_garbage_store_gets_mlflows_error(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    reader = ReadingTracker(f"sqlite:///{db}", db)
    from revcli.errors import RevcliError

    with pytest.raises(RevcliError):
        reader.search(["0"], "")
    assert reader.fallbacks == 1


def test_compare_runs_imports_no_mlflow(tmp_path: Path) -> None:
    _store(tmp_path)
    (tmp_path / "empty.toml").write_text("")
    code = ("import sys; from pathlib import Path; from revcli import compare, settings; "
            f"s = settings.resolve(flags={{'workspace': {str(tmp_path / 'ws')!r}, "
            f"'experiment': 'exp'}}, config_file=Path({str(tmp_path / 'empty.toml')!r}), "
            "env={}); r = compare.compare_runs(s); "
            "assert len(r.rows) == 5, r.rows; "
            "assert 'mlflow' not in sys.modules, 'mlflow imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-800:]
