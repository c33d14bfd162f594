"""Where the pipeline's steps run: one interface (:class:`Engine`), two implementations.

- :class:`~revcli.engines._local.InProcess` (the default): :mod:`revcli.pipeline` exactly as every
  command always ran it, the whole table as one pandas frame in this process;
- :class:`~revcli.engines._dask.DaskEngine` (``--cluster``): the same steps -- load and check,
  split, fit the encoding, fit, score, audit, predict -- on a Dask cluster, each worker reading
  its own parquet parts, XGBoost training with ``xgboost.dask``. It hands back the same objects
  (a prepared dataset, a :class:`~revcli.pipeline.Fitted` with its scorecard, an ordinary fitted
  :class:`~revcli.model.RevenueModel`), so ``runs.finish``, the renderers, ``evaluate``,
  ``predict``, ``push`` and MLflow's pyfunc treat a cluster-trained model like any other.

:func:`open_engine` picks one from ``settings.cluster`` (``--cluster`` / ``REVCLI_CLUSTER`` /
``DASK_SCHEDULER_ADDRESS`` / ``cluster`` in the config file). Importing this package imports no
Dask: the cluster engine's module is imported only when a cluster is asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli.engines._base import DASK, IN_PROCESS, LOCAL_CLUSTER, Engine
from revcli.errors import ConfigError
from revcli.progress import SILENT, Reporter

if TYPE_CHECKING:
    from revcli.settings import Settings

__all__ = ["DASK", "IN_PROCESS", "LOCAL_CLUSTER", "Engine", "check", "check_evaluate",
           "check_holdout", "cluster_estimators", "in_process_only", "open_engine"]


def cluster_estimators() -> list[str]:
    """The estimators a cluster trains (revcli.estimators.EstimatorSpec.distributed)."""
    from revcli import estimators

    return [name for name, spec in estimators.ESTIMATORS.items() if spec.distributed]


def check(settings: Settings, estimators: Iterable[str] = ()) -> None:
    """Refuse, before any data is read or any cluster started, what the engine of ``settings``
    cannot run: on a cluster, an estimator without distributed training, or a split other than
    the cluster's own."""
    if not settings.cluster:
        return
    runs = cluster_estimators()
    for name in [*estimators] or [settings.estimator]:
        if name not in runs:
            raise ConfigError(f"--estimator {name} does not run on a cluster; --cluster trains "
                              f"{' and '.join(runs)} (xgboost.dask); drop --cluster to train "
                              f"{name} in this process")
    from revcli import split

    if settings.split == split.TIME:
        raise ConfigError("--split time runs in this process only; on a cluster each row's side "
                          "is decided by a hash of its id (README: Beyond one machine); drop "
                          "--split time or --cluster")


def check_evaluate(settings: Settings, backtest: int = 0) -> None:
    """Refuse, before any model is loaded, what ``evaluate`` cannot do on a cluster."""
    if settings.cluster and backtest:
        raise ConfigError("--backtest refits the run's recipe in this process, on the whole "
                          "table; drop --cluster (or --backtest) to run it")


def check_holdout(settings: Settings, meta: dict[str, Any], data: str | Path | None) -> None:
    """On a cluster, refuse to evaluate a model on its own holdout (``data`` None) when that
    split cannot be made part by part (revcli.split.hash_recipe), before a cluster is started.
    (``--data`` naming the model's own dataset is refused by the engine once it is hashed.)"""
    if settings.cluster and data is None:
        from revcli import split

        split.hash_recipe(meta)


def in_process_only(settings: Settings, command: str, reporter: Reporter = SILENT) -> None:
    """Say so when a cluster is set (REVCLI_CLUSTER, DASK_SCHEDULER_ADDRESS, the config file)
    for a command that runs in this process only, rather than ignore it silently."""
    if settings.cluster:
        reporter.warn(f"{command} runs in this process: the cluster setting "
                      f"({settings.source_of('cluster')}) is used by train, tune, predict "
                      "and evaluate only")


@contextlib.contextmanager
def open_engine(settings: Settings, reporter: Reporter = SILENT) -> Iterator[Engine]:
    """The engine ``settings`` ask for, open for the duration of the block (a LocalCluster
    revcli started is stopped at its end; an existing cluster is only disconnected from)."""
    if not settings.cluster:
        from revcli.engines._local import InProcess

        yield InProcess()
        return
    from revcli.engines._dask import DaskEngine

    engine = DaskEngine.connect(settings, reporter)
    try:
        yield engine
    finally:
        engine.close()
