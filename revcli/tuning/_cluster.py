"""``tune --cluster``: the search's trials as tasks on a Dask cluster's workers, one study.

The in-process search (revcli.tuning._tune.search_in_process) runs ``study.optimize`` in threads of
this process. On a cluster the same objective runs on the workers instead, one trial per task, each
worker fitting in its own process from its own copy of the CV folds (installed on every worker once
by a worker plugin, revcli.tuning._worker, then reused by every trial there). The workers open the
study's storage themselves, so everything that makes a search honest and resumable stays where it
is: the sampler (TPE seeded by seed + trial number, so a trial's parameters do not depend on which
worker draws them), the median pruner across every worker's folds, the heartbeat that fails a dead
worker's trial, the study's key. This process only decides how many trials run, feeds the progress
bar and the MLflow child runs with each finished trial, and stops.

The storage must be one every worker reaches: the workspace's sqlite file does for ``--cluster
local`` (the workers are processes of this machine); an external cluster needs ``--storage`` a
database URL its workers reach (PostgreSQL, MySQL) or an sqlite path on a file system they share.
A worker that cannot open it is one line naming the storage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import TYPE_CHECKING, Any

from revcli.errors import ClusterError, RevcliError, Terminated, first_line

if TYPE_CHECKING:
    import optuna

    from revcli.engines._dask import DaskEngine
    from revcli.tuning._cv import Objective
    from revcli.tuning._tune import Budget, Plan
    from revcli.tuning._tune import _StopRequest as StopRequest

#: How often the client looks up from waiting for a trial (a Ctrl-C, a deadline).
POLL_SECONDS = 0.5
#: How long a search waits for a cluster without workers to get some back.
NO_WORKERS_GRACE = 30

# -- on a worker ---------------------------------------------------------------------------------

# A worker process keeps its storage connection and study between trials (key: url, name, seed).
_STUDIES: dict[tuple[str, str, int], Any] = {}


def _worker_study(url: str, name: str, seed: int) -> optuna.Study:
    import optuna

    from revcli.tuning import _study

    key = (url, name, seed)
    if key not in _STUDIES:
        try:
            storage = _study.open_storage(url)
            with _study._quiet_experimental():
                _STUDIES[key] = optuna.load_study(study_name=name, storage=storage,
                                                  sampler=_study.make_sampler(seed),
                                                  pruner=_study.make_pruner())
        except (RevcliError, KeyError) as exc:
            raise ClusterError(
                f"a worker ({_study.worker()}) cannot open study {name} in "
                f"{_study.mask(url)}: {first_line(exc)}; on a cluster of other machines give "
                "--storage a database URL every worker reaches (e.g. postgresql://...)") from None
    return _STUDIES[key]


def _preload(estimator_names: list[str]) -> None:
    from revcli import estimators
    from revcli.tuning import _cv, _study  # noqa: F401

    for name in estimator_names:
        estimators.make_regressor(name, n_jobs=1)


def run_trial(folds: str, url: str, name: str, seed: int) -> optuna.trial.FrozenTrial:
    """One trial of study ``name`` in this worker process: Optuna asks, the objective (installed
    as ``folds`` by the search's worker plugin) fits the folds, Optuna tells (a failing fit is a
    FAIL trial, as in-process)."""
    from revcli.tuning import _worker
    from revcli.tuning._tune import _optuna_quiet

    objective = _worker.OBJECTIVES.get(folds)
    if objective is None:
        raise ClusterError(f"the worker has no CV folds of this search ({folds}); its plugin "
                           "was not installed")
    study = _worker_study(url, name, seed)
    finished: list[optuna.trial.FrozenTrial] = []
    with _optuna_quiet():
        study.optimize(objective, n_trials=1, catch=(Exception,),
                       callbacks=[lambda _study, trial: finished.append(trial)])
    return finished[0]


# -- on the client -------------------------------------------------------------------------------


def slots(engine: DaskEngine) -> dict[str, int]:
    """The workers a trial can run on, with their threads (one trial at a time on each)."""
    info = engine.client.scheduler_info(n_workers=-1).get("workers", {})
    return {address: int(worker.get("nthreads", 1)) for address, worker in info.items()}


def warm(engine: DaskEngine, estimator_names: list[str]) -> None:
    """Have every worker import Optuna, revcli's objective and the estimators' libraries now,
    in the background, not in its first trial (a few seconds a worker)."""
    from distributed import fire_and_forget

    for address in slots(engine):
        fire_and_forget(engine.client.submit(_preload, list(estimator_names), pure=False,
                                             workers=[address], allow_other_workers=False))


def plan_for(engine: DaskEngine, p: Plan) -> Plan:
    """The plan on this cluster: a trial at a time per worker, on the worker's threads
    (``--n-jobs`` is this machine's; the cluster's size is the workers')."""
    workers = slots(engine)
    if not workers:
        raise ClusterError("the Dask cluster has no workers; start some (dask worker "
                           "<scheduler>) or use --cluster local")
    return dataclasses.replace(p, parallel=len(workers), threads=min(workers.values()))


def search(engine: DaskEngine, study: optuna.Study, objective: Objective, budget: Budget,
           stop: StopRequest, *, url: str, seed: int) -> str:
    """Run trials on the cluster until ``budget`` names a reason to stop (the in-process
    search's reasons: n_trials, timeout, failures, tracking, interrupted), then wait for the
    running ones; returns the reason. One trial at a time per worker, pinned to it (a worker's
    threads are its trial's); queued trials (the defaults) one at a time on the whole cluster,
    as in-process (two workers must not pop the same one: optuna#4002). The objective with its
    folds reaches every worker, also one that joins mid-search, as a worker plugin."""
    import uuid

    from revcli.tuning import _worker

    client = engine.client
    engine.reporter.step(f"sending the {len(objective.folds)} CV folds to every worker")
    folds = f"revcli-tune-{uuid.uuid4().hex[:12]}"
    client.register_plugin(_worker.Folds(folds, objective), name=folds)
    try:
        return _search(engine, study, budget, stop, folds, url=url, seed=seed)
    finally:
        with contextlib.suppress(Exception):  # a lost scheduler has forgotten it anyway
            client.unregister_worker_plugin(folds)


def _search(engine: DaskEngine, study: optuna.Study, budget: Budget, stop: StopRequest,
            folds: str, *, url: str, seed: int) -> str:
    from distributed import wait
    from optuna.trial import TrialState

    client = engine.client
    running: dict[Any, str] = {}
    reason: str | None = None
    workerless: float | None = None  # since when no worker could take a trial
    try:
        while True:
            reason = reason or budget.reason()
            if stop.aborted:  # SIGTERM: leave the running trials now
                _cancel(client, running)
                return "interrupted"
            if reason is None:
                queued = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
                workers = slots(engine)
                limit = 1 if queued else len(workers)
                more = budget.left()
                if more is not None:
                    limit = min(limit, more)  # the running ones count towards it
                for address in workers:
                    if len(running) >= limit:
                        break
                    if address in running.values():
                        continue
                    future = client.submit(run_trial, folds, url, study.study_name, seed,
                                           workers=[address], allow_other_workers=True,
                                           pure=False)
                    running[future] = address
            if not running:
                if reason is not None:
                    return reason
                # Trials wanted and not one worker to run them: a nanny restarting a dead
                # worker takes a few seconds; a cluster left without workers is an error.
                workerless = workerless or time.monotonic()
                if time.monotonic() - workerless > NO_WORKERS_GRACE:
                    raise ClusterError(f"the Dask cluster has had no workers for "
                                       f"{NO_WORKERS_GRACE} s; {STUDY_KEPT} once it has "
                                       "workers")
                time.sleep(POLL_SECONDS)
                continue
            workerless = None
            try:
                done, _ = wait(list(running), timeout=POLL_SECONDS,
                               return_when="FIRST_COMPLETED")
            except TimeoutError:  # none finished yet: look at the budget and the stop again
                continue
            for future in done:
                running.pop(future)
                try:
                    trial = future.result()
                except Exception as exc:
                    raise _fault(engine, exc) from None
                budget.tally.record(trial)
    except KeyboardInterrupt as exc:  # a second Ctrl-C: the running trials are abandoned
        _cancel(client, running)
        stop.requested = True
        if isinstance(exc, Terminated):
            stop.aborted = True
            raise
        return "interrupted"
    except RevcliError:
        _cancel(client, running)
        raise
    except Exception as exc:  # the scheduler lost mid-search, say
        _cancel(client, running)
        raise _fault(engine, exc) from None
    except BaseException:
        _cancel(client, running)
        raise


def _cancel(client: Any, running: dict[Any, str]) -> None:
    """Abandon the running trials' tasks (a worker finishes a trial it has begun: Dask cannot
    stop a running function); quietly, when the scheduler is what failed."""
    with contextlib.suppress(Exception):
        client.cancel(list(running), force=True)


#: What a failed search leaves, as its cluster errors end.
STUDY_KEPT = "the study keeps its finished trials: run the same command again to resume it"


def _fault(engine: DaskEngine, exc: Exception) -> Exception:
    """A cluster failure during the search as one line (the engine's, or revcli's own error
    from a worker as it is)."""
    fault = engine.explain_fault(exc, "running the trials", then=STUDY_KEPT)
    return fault if fault is not None else ClusterError(
        f"a trial task failed on the cluster: {type(exc).__name__}: {first_line(exc)}; "
        f"{STUDY_KEPT}")
