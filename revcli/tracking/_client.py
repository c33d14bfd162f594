"""The Tracker: MLflow at one tracking URI, through an ``MlflowClient`` bound to it.

Nothing here sets process-global MLflow state (``mlflow.set_tracking_uri``, an active fluent run),
so ``revcli.train.train(settings)`` called from a PythonOperator leaves the caller's process as it
found it. What MLflow only reads from the environment (its HTTP retry and timeout limits) and its
loggers' levels are set for the duration of each call and restored afterwards (:func:`_scope`), so
a dead server is noticed in seconds instead of minutes of retries.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from revcli import __version__
from revcli.errors import NotFoundError, StorageError, TrackingError
from revcli.tracking._errors import is_missing, translate
from revcli.tracking.record import LoggedRun
from revcli.urls import mask

if TYPE_CHECKING:
    from revcli.settings import Settings
    from revcli.workspace import Workspace

T = TypeVar("T")

# A CLI should fail fast on an unreachable server rather than retry for minutes (MLflow's
# defaults: 7 retries with backoff, 120 s per request).
# MLflow prints "View run ... at" links on stdout when a run ends on a server: --json keeps
# stdout for its one object.
_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
# MLflow's and alembic's INFO chatter (store migrations, run URLs); log_model's warning that
# pickles can run code (revcli loads only pickles whose sha256 an MLflow run vouches for).
# MLflow logs its own ERROR tracebacks before raising (a full disk, a locked store): revcli turns
# every failure into one line itself, so within a call only MLflow's critical records show.
_QUIET = {"mlflow": logging.CRITICAL, "alembic": logging.WARNING,
          "alembic.runtime.migration": logging.WARNING, "urllib3": logging.WARNING,
          "botocore": logging.WARNING}

_scope_lock = threading.Lock()
_scope_depth = 0
_scope_saved: dict[str, Any] = {}


@contextlib.contextmanager
def _scope() -> Iterator[None]:
    """MLflow's env limits and quiet loggers for the block (nested and threaded calls share one
    scope; the last to leave restores what was there)."""
    global _scope_depth
    # Importing mlflow configures its loggers (level INFO): do it before setting them.
    import mlflow  # noqa: F401

    with _scope_lock:
        if _scope_depth == 0:
            _scope_saved.clear()
            for key, value in _ENV.items():
                _scope_saved[key] = os.environ.get(key)
                if key not in os.environ:  # the user's own setting wins
                    os.environ[key] = value
            for name, level in _QUIET.items():
                logger = logging.getLogger(name)
                _scope_saved[f"logger:{name}"] = logger.level
                logger.setLevel(max(level, logger.level))
        _scope_depth += 1
    try:
        yield
    finally:
        with _scope_lock:
            _scope_depth -= 1
            if _scope_depth == 0:
                for key in _ENV:
                    if _scope_saved.get(key) is None:
                        os.environ.pop(key, None)
                for name in _QUIET:
                    logging.getLogger(name).setLevel(_scope_saved[f"logger:{name}"])


# -- facts recorded with every run ------------------------------------------------------------

# Libraries whose versions a run records, by distribution name (import name may differ).
_LIBRARIES = ("scikit-learn", "xgboost-cpu", "xgboost", "numpy", "pandas", "pyarrow", "mlflow",
              "optuna", "joblib", "skops")


def library_versions() -> dict[str, str]:
    versions = {"revcli": __version__}
    for dist in _LIBRARIES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return versions


def model_requirements(versions: dict[str, str] | None = None) -> list[str]:
    """Pinned pip requirements of a logged model (skips MLflow's slow inference), from
    ``versions`` (:func:`library_versions`, read here when not given)."""
    versions = versions if versions is not None else library_versions()
    return [f"{dist}=={versions[dist]}" for dist in
            ("scikit-learn", "xgboost-cpu" if "xgboost-cpu" in versions else "xgboost", "numpy",
             "pandas", "pyarrow", "skops", "mlflow") if dist in versions]


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def tracking_uri(settings: Settings, workspace: Workspace) -> str:
    """The effective tracking URI: the setting, else the sqlite store in the workspace."""
    return settings.tracking_uri or workspace.tracking_uri()


# -- the tracker -----------------------------------------------------------------------------

class Tracker:
    """MLflow at ``uri``. Every call goes through :meth:`call`, which scopes MLflow's limits and
    turns any failure into one revcli error line."""

    def __init__(self, uri: str, workspace: Workspace | None = None) -> None:
        self.uri = uri
        self.shown = mask(uri)
        self.workspace = workspace
        self._client: Any = None

    def __repr__(self) -> str:
        return f"Tracker({self.shown!r})"

    @property
    def is_workspace_store(self) -> bool:
        return self.workspace is not None and self.uri == self.workspace.tracking_uri()

    @property
    def client(self) -> Any:
        if self._client is None:
            with _scope():
                from mlflow import MlflowClient

                try:
                    self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
                except Exception as exc:  # a sqlite store may be opened (and fail) right here
                    raise translate(self.uri, exc, "open the store") from None
        return self._client

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` with MLflow's failures translated (``what`` names the call)."""
        with _scope():
            try:
                return fn(*args, **kwargs)
            except (TrackingError, NotFoundError, StorageError):
                raise
            except Exception as exc:  # MLflow, SQLAlchemy, requests and OSError all end here
                raise translate(self.uri, exc, what) from None

    # -- experiments and runs --------------------------------------------------------------------

    def experiment_id(self, name: str, create: bool = True) -> str | None:
        """The id of experiment ``name``; created when missing (with artifacts in the workspace
        when the store is the workspace's own) if ``create``, else None."""
        def find() -> str | None:
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                return None
            if experiment.lifecycle_stage == "deleted":
                raise TrackingError(f"experiment {name!r} is deleted in {self.shown}; restore "
                                    "it or choose another with --experiment")
            return str(experiment.experiment_id)

        if not name.strip():
            from revcli.errors import ConfigError

            raise ConfigError("--experiment is empty; give an experiment name")
        found = self.call(f"read experiment {name!r}", find)
        if found is not None or not create:
            return found
        location = self.default_artifact_location()
        return str(self.call(f"create experiment {name!r}", self.client.create_experiment, name,
                             artifact_location=location))

    def default_artifact_location(self) -> str | None:
        """Where the artifacts of an experiment revcli creates go: the workspace's when the
        store is the workspace's own; beside the database for any other sqlite store
        (``<its directory>/mlartifacts``, as ``mlflow server --default-artifact-root`` puts
        them), never ``./mlruns`` of whatever directory the command ran in; the server's
        choice for a server."""
        if self.workspace is not None and self.is_workspace_store:
            return self.workspace.artifact_location()
        if self.uri.startswith("sqlite:///"):
            database = Path(self.uri.removeprefix("sqlite:///").split("?")[0])
            return (database.resolve().parent / "mlartifacts").as_uri()
        return None

    def experiments(self, limit: int = 1000) -> list[Any]:
        return list(self.call("list experiments", self.client.search_experiments,
                              max_results=limit))

    def create_run(self, experiment_id: str, run_name: str | None, tags: Mapping[str, str],
                   params: Mapping[str, Any] | None = None,
                   start_time: int | None = None) -> str:
        """A new RUNNING run with ``tags`` (and ``params``); returns its id."""
        def create() -> str:
            from revcli import interrupts

            run = None
            try:
                # A SIGTERM inside MLflow's create is held until the id is known, then raised
                # here, where the run is ended: never a RUNNING run nobody knows the id of.
                with interrupts.deferred():
                    run = self.client.create_run(experiment_id, run_name=run_name,
                                                 tags=dict(tags), start_time=start_time)
                given = {k: v for k, v in (params or {}).items() if v is not None}
                if given:  # a param that is always None says nothing
                    self._log_batch(run.info.run_id, params=given)
            except BaseException as exc:  # the caller never learns the id: end it here
                if run is not None:
                    with contextlib.suppress(Exception):
                        self.client.set_terminated(
                            run.info.run_id,
                            "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
                raise
            return str(run.info.run_id)

        return self.call("create a run", create)

    def log(self, run_id: str, *, params: Mapping[str, Any] | None = None,
            metrics: Mapping[str, float] | None = None,
            tags: Mapping[str, str] | None = None, step: int = 0,
            series: Mapping[str, Sequence[tuple[int, float]]] | None = None) -> None:
        """Params, metrics (and ``series``: a metric's value per step) and tags, in as few
        requests as MLflow allows."""
        self.call("log to the run", self._log_batch, run_id, params=params, metrics=metrics,
                  tags=tags, step=step, series=series)

    def _log_batch(self, run_id: str, *, params: Mapping[str, Any] | None = None,
                   metrics: Mapping[str, float] | None = None,
                   tags: Mapping[str, str] | None = None, step: int = 0,
                   series: Mapping[str, Sequence[tuple[int, float]]] | None = None) -> None:
        import math
        import time

        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        param_list = [Param(str(k), str(v)[:6000]) for k, v in (params or {}).items()]
        points = [(k, v, step) for k, v in (metrics or {}).items()]
        points += [(k, v, s) for k, values in (series or {}).items() for s, v in values]
        metric_list = [Metric(str(k), float(v), now, int(s)) for k, v, s in points
                       if v is not None and math.isfinite(float(v))]
        tag_list = [RunTag(str(k), str(v)) for k, v in (tags or {}).items()]
        # MLflow accepts at most 100 params / 1000 metrics / 100 tags per batch.
        while param_list or metric_list or tag_list:
            self.client.log_batch(run_id, params=param_list[:100], metrics=metric_list[:1000],
                                  tags=tag_list[:100])
            param_list, metric_list, tag_list = (param_list[100:], metric_list[1000:],
                                                 tag_list[100:])

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.call("tag the run", self.client.set_tag, run_id, key, value)

    def end_run(self, run_id: str, status: str = "FINISHED", end_time: int | None = None) -> None:
        self.call("end the run", self.client.set_terminated, run_id, status, end_time)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.call(f"upload {Path(path).name}", self.client.log_artifact, run_id, str(path),
                  artifact_path)

    def log_artifacts(self, run_id: str, directory: Path, artifact_path: str | None = None) -> None:
        self.call(f"upload {Path(directory).name}", self.client.log_artifacts, run_id,
                  str(directory), artifact_path)

    def log_dict(self, run_id: str, obj: Any, artifact_file: str) -> None:
        self.call(f"upload {artifact_file}", self.client.log_dict, run_id, obj, artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.call(f"upload {artifact_file}", self.client.log_text, run_id, text, artifact_file)

    def get_run(self, run_id: str) -> LoggedRun:
        """A run by id, or NotFoundError naming the command that lists runs."""
        with _scope():
            try:
                return LoggedRun.of(self.client.get_run(run_id))
            except Exception as exc:
                if is_missing(exc):
                    raise NotFoundError(f"no MLflow run {run_id!r} in {self.shown}; "
                                        "`revcli compare runs` lists recent runs") from None
                raise translate(self.uri, exc, f"read run {run_id}") from None

    def find_run(self, run_id: str) -> LoggedRun | None:
        try:
            return self.get_run(run_id)
        except NotFoundError:
            return None

    def search(self, experiment_ids: Sequence[str], filter_string: str = "",
               order_by: Sequence[str] | None = None, max_results: int = 1000,
               page_token: str | None = None) -> tuple[list[LoggedRun], str | None]:
        """One page of runs (newest first unless ``order_by``) and the next page's token."""
        def page() -> Any:
            return self.client.search_runs(
                list(experiment_ids), filter_string=filter_string,
                order_by=list(order_by or ["attributes.start_time DESC"]),
                max_results=max_results, page_token=page_token)

        found = self.call("search runs", page)
        return [LoggedRun.of(r) for r in found], found.token

    def runs_tagged(self, key: str, value: str, limit: int = 5) -> list[LoggedRun]:
        """Runs of any experiment whose tag ``key`` equals ``value``."""
        ids = [e.experiment_id for e in self.experiments()]
        if not ids:
            return []
        escaped = value.replace("'", "\\'")
        runs, _ = self.search(ids, f"tags.`{key}` = '{escaped}'", max_results=limit)
        return runs

    # -- models and datasets --------------------------------------------------------------------

    def describe(self, sample: Any, predictions: Any) -> None:
        """Check that MLflow can describe a model's input ``sample`` and its ``predictions`` on
        them (its signature); DataError naming the column when it cannot. Run where MLflow is
        imported already (the logger process), so the command itself never imports it for
        this."""
        from revcli.tracking import _model

        _model.describe(sample, predictions)

    def log_model(self, run_id: str, model_file: str | Path, sample: Any, predictions: Any, *,
                  code_paths: Sequence[str] = (), trusted: Sequence[str] | None = None) -> str:
        """Log the skops file ``model_file`` as the run's MLflow model ``model`` (sklearn and
        pyfunc flavours, a signature from ``sample`` as revcli reads tables and the model's
        ``predictions`` on it, pinned requirements); returns its URI. ``trusted``: the skops
        types, as the process that built the model knows them (the logger process does not
        know a strategy registered only in its parent)."""
        from revcli.tracking import _model

        return self.call("log the model", _model.log_model, self, run_id, model_file, sample,
                         predictions, list(code_paths), trusted)

    def load_model(self, run: LoggedRun, *, pickle: bool = False) -> tuple[Any, str | None]:
        """The model a run logged to MLflow and its format: a skops file is loaded with
        revcli's trusted types only; an older cloudpickle one is unpickled (callers decide
        whether it is trusted: ``pickle``; without it, (None, None))."""
        from revcli.tracking import _model

        return self.call(f"load the model of run {run.run_id}", _model.load_model, self, run,
                         pickle)

    def log_dataset(self, run_id: str, *, name: str, digest: str, source: str,
                    schema: Mapping[str, str], rows: int, context: str = "training") -> None:
        """Record the dataset as the run's input (MLflow's Datasets column and lineage)."""
        from revcli.tracking import _model

        self.call("record the dataset", _model.log_dataset, self, run_id, name=name,
                  digest=digest, source=source, schema=dict(schema), rows=rows, context=context)


def connect(settings: Settings, workspace: Workspace, experiment: bool = True,
            create: bool = True, reading: bool = False) -> tuple[Tracker, str | None]:
    """A Tracker for the effective tracking URI and the experiment's id (created if missing and
    ``create``). The workspace's own store is created only when ``create``: a command that only
    reads never makes one. ``reading`` (with ``create=False``): an sqlite store's reads skip
    MLflow's import (:mod:`revcli.tracking._reader`)."""
    uri = tracking_uri(settings, workspace)
    if reading and not create and uri.startswith("sqlite:///"):
        from revcli.tracking._reader import ReadingTracker

        tracker: Tracker = ReadingTracker(
            uri, Path(uri.removeprefix("sqlite:///").split("?")[0]), workspace)
    else:
        tracker = Tracker(uri, workspace)
    if tracker.is_workspace_store:
        workspace.check_readable()
        if not create and not workspace.mlflow_db.exists():
            return tracker, None
        check_sqlite(workspace.mlflow_db, tracker.shown)
        ensure_store(workspace)
    elif tracker.uri.startswith("sqlite:///"):
        check_sqlite(Path(tracker.uri.removeprefix("sqlite:///").split("?")[0]), tracker.shown)
    if not experiment:
        return tracker, None
    return tracker, tracker.experiment_id(settings.experiment, create=create)


SQLITE_HEADER = b"SQLite format 3\x00"


def check_sqlite(path: Path, shown: str) -> None:
    """An existing sqlite store that cannot be one fails at once (MLflow would retry opening a
    directory for ~100 s, and report a non-database deep in a migration)."""
    if not path.exists():
        return
    if not path.is_file():
        raise TrackingError(f"the MLflow store {shown} is not a file; move it aside or point "
                            "--tracking-uri elsewhere")
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise TrackingError(f"cannot read the MLflow store {shown}: {exc.strerror}") from None
    if head and head != SQLITE_HEADER:
        raise TrackingError(f"the MLflow store {shown} is not an sqlite database (damaged, or "
                            "another file); move it aside to start a new one, or point "
                            "--tracking-uri elsewhere")


def ensure_store(workspace: Workspace) -> None:
    """The workspace's sqlite store, created whole or not at all: MLflow's ~50 migrations run on
    a temp file that is renamed into place when they finish, so a full disk or a kill during
    creation leaves no half-made store behind (MLflow would refuse it for ever after)."""
    target = workspace.mlflow_db
    if target.exists():
        return
    workspace.ensure()
    from revcli import atomic

    try:
        with atomic.temp_path(workspace.root, suffix=".mlflow.db") as tmp:
            tmp.unlink()
            tracker = Tracker(f"sqlite:///{tmp}")
            tracker.call("create the workspace's MLflow store",
                         lambda: tracker.client.search_experiments())
            # link, not rename: never clobber a store another process finished first
            with contextlib.suppress(FileExistsError):
                os.link(tmp, target)
    except OSError as exc:
        raise StorageError(f"cannot create the MLflow store {target}: "
                           f"{exc.strerror or exc}; free some space or choose another "
                           "--workspace") from None
