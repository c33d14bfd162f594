"""MLflow for revcli: the only package that imports mlflow.

- :mod:`._client`: :class:`Tracker`, an ``MlflowClient`` bound to one tracking URI (no global
  state), every call's failures turned into one line; the workspace's sqlite store, created whole
- :mod:`._record`: :class:`RunRecord`, the ``revcli.*`` tag schema written and read in one place,
  and :class:`LoggedRun`, a run as revcli reads it
- :mod:`._errors`: the one translator of MLflow's errors
- :mod:`._logger`: :class:`Logger`, MLflow in a process of its own beside the load and fit
- :mod:`._reader`: :class:`ReadingTracker`, an sqlite store's reads without importing MLflow
- :mod:`._log`: :func:`log_training`, how train, tune, compare and evaluate log a run
- :mod:`._model`: logging a model and its dataset through the client
- :mod:`._refs`: one resolver for run references (id, prefix, name, alias, registry version)
- :mod:`._search`: paging through runs
- :mod:`._registry`: the Model Registry calls of push

Importing this package does not import mlflow; its functions do, when called.
"""

from __future__ import annotations

from revcli.tracking import record, refs, registry, search
from revcli.tracking._client import (
    Tracker,
    connect,
    ensure_store,
    git_commit,
    library_versions,
    model_requirements,
    tracking_uri,
)
from revcli.tracking._errors import translate
from revcli.tracking._log import (
    Artifacts,
    fail,
    flat_params,
    log_training,
    param_list,
    score_metrics,
    start,
)
from revcli.tracking._logger import Logger, RemoteTracker
from revcli.tracking.record import LoggedRun, RunRecord
from revcli.tracking.refs import Resolved, resolve

__all__ = ["Artifacts", "LoggedRun", "Logger", "RemoteTracker", "Resolved",
           "RunRecord", "Tracker", "connect",
           "ensure_store", "fail", "flat_params", "git_commit", "library_versions",
           "log_training", "model_requirements", "param_list", "record", "refs", "registry",
           "resolve",
           "score_metrics", "search", "start", "tracking_uri", "translate"]
