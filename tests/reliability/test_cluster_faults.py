"""Issue 16: the cluster's faults in the reliability matrix (class ``cluster``).

Each case runs revcli as a real process (its own session) against a real Dask cluster and
breaks the cluster in the middle of the work (tests/reliability/dask_faults.py chooses the
moment by watching the workers, never by a sleep): a worker SIGKILLed while XGBoost boosts or
while a part is scored, the scheduler SIGKILLed mid-fit and mid-predict, a scheduler that is not
there, a part deleted between the listing and its read, workers out of memory (``--cluster
local --worker-memory``). The harness's checks hold for each (exit 2, one ``Error:`` line that
names the cause, no traceback, the case's workspace, MLflow store and ``--out`` as they were),
and :func:`nothing_left` adds that no process of the command's session outlives it (the
``LocalCluster`` revcli started is stopped) and no MLflow run is RUNNING.

One cluster for the module (a scheduler and 2 single-threaded worker processes, each a process
of its own so the scheduler can be killed; restarted when a case killed it), the template
workspace of the matrix (3,000 demo sessions, one ridge run to predict with), the table as 4
parts.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability import setups as S
from tests.reliability.harness import Case, Ctx, Outcome
from tests.reliability.test_matrix import Template, _prepare, play, template  # noqa: F401

distributed = pytest.importorskip("distributed")

from tests.reliability.dask_faults import (  # noqa: E402
    BOOSTING,
    SCORING,
    KillWhen,
    SubprocessCluster,
    UnlinkBefore,
    process_group_gone,
)

pytestmark = pytest.mark.reliability

PARTS = 4
ON = "--cluster {scheduler} --no-plots --data {parts}"
TRAIN = f"train {ON}"
TWO_STAGE = f"train -s two_stage {ON}"
PREDICT = "predict --run {run} --cluster {scheduler} --data {parts}"
OOM = "--cluster local --cluster-workers 1 --worker-memory 100MB"


def C(id: str, argv: str, **kw: Any) -> Case:
    check = kw.pop("check", None)
    return Case(id=id, klass="cluster", argv=tuple(shlex.split(argv)), subprocess=True,
                timeout=kw.pop("timeout", 120), check=_and(nothing_left, check),
                setup=_and_setup(parts, kw.pop("setup", None)), **kw)


def on_module_cluster(case: Case) -> bool:
    return any("{scheduler}" in a for a in case.argv)


# -- setups: the table as parts, a fault registered on the module's cluster ---------------------

def parts(ctx: Ctx) -> None:
    """The template's table as PARTS parquet parts, outside the case directory (a case deletes
    one: that is the fault, not a change the command made)."""
    import numpy as np

    directory = ctx.root.parent / f"{ctx.root.name}-parts"
    directory.mkdir()
    frame = S.frame()
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), PARTS)):
        frame.iloc[rows].to_parquet(directory / f"part-{i}.parquet", index=False)
    ctx.values["parts"] = str(directory)


def fault(make: Callable[[Ctx], Any]) -> Callable[[Ctx], None]:
    """Register the plugin ``make(ctx)`` on the module's cluster for this case only."""
    def run(ctx: Ctx) -> None:
        plugin = make(ctx)
        with distributed.Client(ctx.values["scheduler"], timeout=30) as client:
            client.register_plugin(plugin, name=plugin.name)

        def unregister() -> None:
            cluster = _CLUSTER["now"]
            cluster.ensure()  # what the case killed, back (the nanny restarts a worker)
            try:
                with cluster.client() as client:
                    client.unregister_worker_plugin(plugin.name)
            except ValueError:
                pass  # the case killed the scheduler: the new one never had the plugin
            except OSError:  # a worker restarting: start afresh rather than keep the plugin
                cluster.stop()
                cluster.ensure()
        ctx.cleanups.append(unregister)
    return run


def _flag(ctx: Ctx) -> str:
    return str(ctx.root.parent / f"{ctx.root.name}-flag")


def kill_worker(when: tuple[str, str], every_try: bool = False) -> Callable[[Ctx], None]:
    return fault(lambda ctx: KillWhen(when, None if every_try else _flag(ctx)))


def kill_scheduler(when: tuple[str, str]) -> Callable[[Ctx], None]:
    return fault(lambda ctx: KillWhen(when, _flag(ctx), pid=int(ctx.values["scheduler_pid"])))


def delete_part(function: str, reading: bool = False) -> Callable[[Ctx], None]:
    return fault(lambda ctx: UnlinkBefore(
        function, f"{ctx.values['parts']}/part-{PARTS - 1}.parquet", reading))


def _and(*checks: Callable[[Ctx, Outcome], list[str]] | None) -> Callable[[Ctx, Outcome],
                                                                          list[str]]:
    def run(ctx: Ctx, outcome: Outcome) -> list[str]:
        return [p for c in checks if c is not None for p in c(ctx, outcome)]
    return run


def _and_setup(*setups: Callable[[Ctx], None] | None) -> Callable[[Ctx], None]:
    return S.chain(*[s for s in setups if s is not None])


# -- checks beyond the harness's --------------------------------------------------------------

def nothing_left(ctx: Ctx, outcome: Outcome) -> list[str]:
    """No process of the command's session (its LocalCluster's scheduler, nannies, workers,
    the logger) outlives it; no MLflow run RUNNING; no temp file."""
    problems = S.left_nothing_running(ctx, outcome)
    if outcome.pid is not None:
        left = process_group_gone(outcome.pid, seconds=10)
        if left:
            problems.append(f"processes of the command outlive it: {left}")
    return problems


def fault_happened(ctx: Ctx, outcome: Outcome) -> list[str]:
    """The fault's moment came (the kill was done): the case tested what it says."""
    return [] if Path(_flag(ctx)).exists() else ["the fault's moment never came"]


def scored_every_row(ctx: Ctx, outcome: Outcome) -> list[str]:
    """A worker's death that Dask recovered from (the part scored again elsewhere): every row
    scored once, in order."""
    import numpy as np
    import pandas as pd

    out = pd.read_parquet(ctx.root / "o.parquet")
    if not np.array_equal(out["row"].to_numpy(), np.arange(S.ROWS)):
        return [f"o.parquet has {len(out)} rows, not rows 0..{S.ROWS - 1} in order"]
    if out["prediction"].isna().any():
        return ["o.parquet has missing predictions"]
    return []


# -- the cases ---------------------------------------------------------------------------------

GONE = f"part-{PARTS - 1}.parquet is missing"
CASES: list[Case] = [
    # (a) a worker SIGKILLed while XGBoost boosts: its peers' collective fails; named
    C("train-worker-killed-mid-fit", TRAIN, setup=kill_worker(BOOSTING),
      says=("Dask worker tcp://", "died while fitting the estimator of converting_only"),
      check=fault_happened),
    C("train-two-stage-worker-killed-mid-fit", TWO_STAGE, setup=kill_worker(BOOSTING),
      says=("Dask worker tcp://", "died while fitting the classifier of two_stage"),
      check=fault_happened),
    # a worker killed while it scores a part: Dask scores the part again on another worker
    C("predict-worker-killed-mid-scoring", f"{PREDICT} --out o.parquet",
      setup=kill_worker(SCORING), exit=0, check=_and(fault_happened, scored_every_row)),
    # ... and when the part kills every worker that tries it: named, --out never written
    C("predict-workers-killed-every-try", f"{PREDICT} --out o.parquet",
      setup=kill_worker(SCORING, every_try=True),
      says=("Dask workers died while scoring the parts", "the task predict_part")),
    # (b) no scheduler there; the scheduler SIGKILLed mid-fit and mid-predict
    C("train-scheduler-unreachable", "train --cluster tcp://127.0.0.1:{dead} --no-plots "
      "--data {parts}", says=("cannot reach the Dask scheduler at tcp://",)),
    C("predict-scheduler-unreachable", "predict --run {run} --cluster tcp://127.0.0.1:{dead} "
      "--data {parts} --out o.parquet",
      says=("cannot reach the Dask scheduler at tcp://",)),
    C("train-scheduler-killed-mid-fit", TRAIN, setup=kill_scheduler(BOOSTING),
      says=("lost the Dask scheduler at {scheduler} while fitting",), check=fault_happened),
    C("predict-scheduler-killed-mid-scoring", f"{PREDICT} --out o", setup=kill_scheduler(SCORING),
      says=("lost the Dask scheduler at {scheduler} while scoring",), check=fault_happened),
    # (c) a part deleted after the listing, before a worker reads it
    C("train-part-deleted-mid-run", TRAIN, setup=delete_part("_empty_part"),
      says=("part {parts}/" + GONE,)),
    C("predict-part-deleted-mid-run", f"{PREDICT} --out o", setup=delete_part(
        "_predict_part", reading=True), says=("part {parts}/" + GONE,)),
    # (d) out of memory: a LocalCluster revcli starts, whose worker the nanny kills each try
    C("train-out-of-memory", f"train {OOM} --no-plots --data {{parts}}",
      says=("Dask workers died", "--worker-memory 100MB")),
    C("predict-out-of-memory", f"predict --run {{run}} {OOM} --data {{parts}} --out o.parquet",
      says=("Dask workers died", "--worker-memory 100MB")),
]

_CLUSTER: dict[str, SubprocessCluster] = {}


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[SubprocessCluster]:
    cluster = SubprocessCluster(workers=2)
    _CLUSTER["now"] = cluster
    try:
        cluster.ensure()
        yield cluster
    finally:
        cluster.stop()


def _param(case: Case) -> Any:
    marks = [pytest.mark.integration] if on_module_cluster(case) or "local" in case.argv else []
    return pytest.param(case, id=f"{case.klass}:{case.id}", marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_cluster_case(case: Case, template: Template,  # noqa: F811
                      monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    ctx = _prepare(case, template, monkeypatch)
    if on_module_cluster(case):
        cluster = request.getfixturevalue("dask_cluster")
        ctx.values.update(scheduler=cluster.ensure(), scheduler_pid=str(cluster.scheduler_pid()))
    play(case, ctx, monkeypatch)


def test_every_fault_is_a_case() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    for word in ("worker-killed", "scheduler-unreachable", "scheduler-killed", "part-deleted",
                 "out-of-memory"):
        assert any(word in i and i.startswith("train") for i in ids), word
        assert any(word in i and i.startswith("predict") for i in ids), word
