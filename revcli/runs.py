"""A trained model's run: judged, saved in the workspace, logged to MLflow.

The one path ``train``, ``tune`` (its refit best model) and ``compare strategies`` share after
:mod:`revcli.pipeline` has fitted and scored a model: targets and honesty (:func:`pipeline.judge`),
importance, the model saved (skops, revcli.serialization) with its ``model.json`` *before*
anything is sent to MLflow (a finished fit is never thrown away), the plots, and one MLflow run
through :func:`revcli.tracking.log_training`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli import atomic, backtest, leakage, metrics, pipeline, targets, tracking
from revcli.errors import DataError, RevcliError, TrackingError, first_line
from revcli.progress import SILENT, Reporter
from revcli.tracking import RunRecord
from revcli.workspace import DatasetRecord, Workspace

if TYPE_CHECKING:
    from revcli.settings import Settings

MODEL_FILE = "model.skops"  # revcli.serialization.SKOPS_FILE: no pickle in a workspace
LEGACY_MODEL_FILE = "model.joblib"  # what older workspaces hold (loaded under the sha256 rule)
META_FILE = "model.json"
RESULT_FILE = "scorecard.json"


@dataclass
class TrainResult:
    run_id: str
    experiment: str
    tracking_uri: str
    strategy: str
    estimator: str
    params: dict[str, Any]
    dataset: DatasetRecord
    features: list[str]
    dropped: list[str]
    split: dict[str, Any]
    scorecard: metrics.Scorecard
    honesty: leakage.Honesty
    model_path: Path
    model_sha256: str
    model_uri: str | None
    plots: dict[str, Path]
    importance: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    importance_method: str = pipeline.PERMUTATION
    backtest: list[dict[str, Any]] = field(default_factory=list)
    # where it ran (revcli.engines): {"kind": "in-process"} or the Dask cluster's description
    engine: dict[str, Any] = field(default_factory=lambda: {"kind": "in-process"})
    classifier: dict[str, Any] | None = None  # a classifier fitted elsewhere (--classifier)

    @property
    def leakage(self) -> list[leakage.LeakFinding]:
        return list(self.honesty.findings)

    @property
    def too_good(self) -> str | None:
        return self.honesty.too_good

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment": self.experiment,
            "tracking_uri": self.tracking_uri,
            "strategy": self.strategy,
            "estimator": self.estimator,
            "params": self.params,
            "dataset": {"sha256": self.dataset.sha256, "source": self.dataset.source,
                        "rows": self.dataset.rows, "path": str(self.dataset.path),
                        "demo": "demo" in self.dataset.extra},
            "features": self.features,
            "dropped": self.dropped,
            "split": self.split,
            "scorecard": self.scorecard.to_dict(),
            "leakage": [f.to_dict() for f in self.honesty.findings],
            "too_good": self.honesty.too_good,
            "honest": self.honesty.honest,
            "leak_can_inflate": self.honesty.can_inflate,
            "model": {"path": str(self.model_path), "sha256": self.model_sha256,
                      "uri": self.model_uri},
            "plots": {k: str(v) for k, v in self.plots.items()},
            "importance": self.importance,
            "importance_method": self.importance_method,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "notes": self.notes,
            "backtest": self.backtest,
            "engine": self.engine,
            "classifier": self.classifier,
        }


@dataclass
class RunSpec:
    """How a command wants its model's run logged."""

    command: str = tracking.record.TRAIN
    run_name: str | None = None
    run_id: str | None = None          # log into this existing run (tune's parent)
    parent_run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)      # extra revcli.* tags, no prefix
    params: dict[str, Any] = field(default_factory=dict)    # extra params
    note: str | None = None                                  # the run's description
    user_tags: dict[str, str] = field(default_factory=dict)  # --tag k=v, as given
    plots: bool = True
    importance: str = pipeline.NATIVE                        # or pipeline.PERMUTATION
    backtest: list[dict[str, Any]] = field(default_factory=list)  # revcli.backtest windows
    engine: dict[str, Any] = field(default_factory=lambda: {"kind": "in-process"})
    classifier: dict[str, Any] | None = None   # the source of a classifier fitted elsewhere


def record_of(prepared: pipeline.Prepared, settings: Settings, fitted: pipeline.Fitted,
              honesty: leakage.Honesty, command: str, extra: Mapping[str, str],
              model_sha256: str | None = None) -> RunRecord:
    """The run record of a fitted model: what its tags say, for every reader."""
    versions = tracking.library_versions()
    card = fitted.scorecard
    return RunRecord(
        command=command, strategy=settings.strategy, estimator=settings.estimator,
        dataset_sha256=prepared.dataset.sha256, dataset_source=prepared.dataset.source,
        split_hash=prepared.split.hash, split=prepared.split.kind, population=card.population,
        scored_on=card.scored_on, leakage=honesty.flagged, leaks=list(honesty.leaks),
        too_good=bool(honesty.too_good), honest=honesty.honest, model_sha256=model_sha256,
        version=versions["revcli"], git_commit=tracking.git_commit(), libraries=versions,
        extra=dict(extra))


def run_params(prepared: pipeline.Prepared, settings: Settings, fitted: pipeline.Fitted,
               hyper: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    split = prepared.split_summary()
    return {
        "strategy": settings.strategy,
        "estimator": settings.estimator,
        "seed": settings.seed,
        "test_size": settings.test_size,
        "train_rows": split["train_rows"],
        "test_rows": split["test_rows"],
        "train_converters": split["train_converters"],
        "test_converters": split["test_converters"],
        **{f"split.{k}": v for k, v in prepared.split.describe().items() if v is not None},
        "features": tracking.param_list(prepared.table.features),
        "dropped_features": tracking.param_list(prepared.table.dropped),
        **fitted.model.options(),
        **{f"hyper.{k}": v for k, v in hyper.items()},
        **{f"model.{k}": v for k, v in
           tracking.flat_params(fitted.model.strategy.get_params()).items()},
        "encoding": "native categories" if fitted.model.featurizer_.native_categories
        else "one-hot categories",
        **extra,
    }


def model_path(directory: Path) -> Path:
    """The model file of a ``models/<run>/`` directory: ``model.skops``, or the
    ``model.joblib`` of a model an older revcli saved."""
    skops, legacy = directory / MODEL_FILE, directory / LEGACY_MODEL_FILE
    return legacy if legacy.is_file() and not skops.is_file() else skops


@contextlib.contextmanager
def staged_model(workspace: Workspace, model: Any) -> Iterator[tuple[Path, str]]:
    """The model dumped (skops, revcli.serialization) to a temp file in ``models/`` and its
    sha256, before any run exists: the run is then created with the hash as its tag, so the
    store vouches for the file from the run's first moment (``revcli runs sync`` loads nothing
    the store does not vouch for). :func:`save_model` moves the file into place; otherwise it
    is removed."""
    from revcli import serialization
    from revcli.errors import StorageError

    stack = contextlib.ExitStack()
    try:
        tmp = stack.enter_context(atomic.temp_path(workspace.models_dir, suffix=".skops"))
        serialization.dump(model, tmp)
        sha = atomic.sha256_file(tmp)
    except BaseException as exc:
        stack.close()
        if not isinstance(exc, OSError):
            raise
        raise StorageError(f"cannot save the fitted model in {workspace.models_dir}: "
                           f"{exc.strerror or exc}; free some space or choose another "
                           "--workspace") from None
    with stack:
        yield tmp, sha


def save_model(workspace: Workspace, name: str, staged: tuple[Path, str],
               meta: Mapping[str, Any], result: Mapping[str, Any] | None = None
               ) -> tuple[Path, str]:
    """The :func:`staged_model` file + model.json (with its sha256) [+ the scorecard] under
    ``models/<name>/``, each written atomically."""
    import shutil

    from revcli.errors import StorageError

    tmp, sha = staged
    directory = workspace.model_dir(name)
    new = not directory.exists()
    path = directory / MODEL_FILE
    try:
        directory.mkdir(parents=True, exist_ok=True)
        atomic.replace(tmp, path)  # the model file durably in place before its sidecar
        atomic.write_json(directory / META_FILE, {**meta, "model_sha256": sha,
                                                  "model_file": path.name})
        if result is not None:
            atomic.write_json(directory / RESULT_FILE, result)
    except OSError as exc:
        if new:  # nothing half-written: not even an empty directory
            shutil.rmtree(directory, ignore_errors=True)
        raise StorageError(f"cannot save the fitted model in {directory}: "
                           f"{exc.strerror or exc}; free some space or choose another "
                           "--workspace") from None
    return path, sha


#: The tracker and experiment id a run is logged to, or what returns them once the store is
#: open (train's logger process: the work that needs no store is done while it opens).
Store = tuple["tracking.Tracker", str]


def finish(prepared: pipeline.Prepared, settings: Settings, fitted: pipeline.Fitted,
           hyper: Mapping[str, Any], findings: Sequence[leakage.LeakFinding],
           store: Store | Callable[[], Store], spec: RunSpec | None = None,
           reporter: Reporter = SILENT, timings: dict[str, float] | None = None) -> TrainResult:
    """Judge ``fitted``, save it in the workspace, and log it as one MLflow run.

    Everything that needs no store comes first -- the judgement, the importance, the model's
    skops file and the plots (staged under temporary names) -- and only then is ``store``
    asked for, so a store still opening in the logger process is waited for as late as
    possible (issue 19)."""
    spec = spec or RunSpec()
    timings = timings if timings is not None else {}
    target_set = targets.load(settings.targets,
                              fallback=settings.source_of("targets") == "default")
    honesty = pipeline.judge(fitted, findings, target_set, reporter)
    card = fitted.scorecard
    X_eval, y_eval, pred_eval = pipeline.evaluation_data(fitted.model, prepared.X_test,
                                                         prepared.y_test, fitted.pred_test)
    reporter.step(f"{spec.importance} feature importance")
    start = time.perf_counter()
    importance = pipeline.importance(fitted.model, X_eval, y_eval, settings.seed,
                                     fitted.threads, method=spec.importance)
    timings["importance"] = time.perf_counter() - start

    log_start = time.perf_counter()
    sample = prepared.X_test.iloc[:5]
    with contextlib.ExitStack() as stack:
        staged = stack.enter_context(staged_model(prepared.workspace, fitted.model))
        plot_paths: dict[str, Path] = {}
        if spec.plots:
            from revcli import plots

            start = time.perf_counter()
            # drawn under a temporary name (removed if anything below fails), renamed to the
            # run's id once the run exists
            drawn = stack.enter_context(atomic.temp_dir(prepared.workspace.plots_dir))
            plot_paths = plots.training_set(drawn, f"{settings.strategy}: {card.population}",
                                            y_eval, pred_eval, importance)
            timings["plots"] = time.perf_counter() - start
        waited = time.perf_counter()
        if callable(store):
            reporter.step("opening the MLflow store")
            store = store()
        waited = time.perf_counter() - waited
        tracker, experiment_id = store
        # A failure after the run exists (a full disk saving the model, SIGTERM) ends it,
        # never leaves it RUNNING.
        stack.enter_context(closing_own_runs(tracker, experiment_id))
        reporter.step("logging the MLflow run")
        # What MLflow cannot describe fails here, before any run or pending record exists (a
        # pending run that `runs sync` could never log would be left otherwise).
        _describable(tracker, sample, fitted.model.predict(sample))
        record = record_of(prepared, settings, fitted, honesty, spec.command,
                           {**spec.tags, **worker_tags()}, model_sha256=staged[1])
        params = run_params(prepared, settings, fitted, hyper, spec.params)
        unreachable: RevcliError | None = None
        try:
            if spec.run_id:
                run_id = spec.run_id
                # best effort: if the store fails here, the logging below fails and says so
                with contextlib.suppress(RevcliError):
                    tracker.set_tag(run_id, tracking.record.SHA_TAG, staged[1])
            else:
                run_id = tracking.start(
                    tracker, experiment_id, record, run_name=spec.run_name,
                    parent_run_id=spec.parent_run_id, note=spec.note, tags=spec.user_tags)
        except RevcliError as exc:
            # A finished fit is never thrown away: saved under a local name, logged by
            # `runs sync`.
            unreachable, run_id = exc, f"{UNLOGGED}{uuid.uuid4().hex}"
        meta = {
            "run_id": run_id,
            "strategy": settings.strategy,
            "estimator": settings.estimator,
            "params": dict(hyper),
            "options": fitted.model.options(),
            "features": prepared.table.features,
            "dropped_features": prepared.table.dropped,
            "encoding": fitted.model.featurizer_.describe(),
            "dataset_sha256": prepared.dataset.sha256,
            "split_hash": prepared.split.hash,
            "split": prepared.split.describe(),
            "seed": settings.seed,
            "test_size": settings.test_size,
            "metrics": card.to_dict()["metrics"],
            "baseline_value": card.baseline_value,
            "baseline_order_value": prepared.baselines.order_value,
            "leakage": honesty.flagged,
            "leaks": list(honesty.leaks),
            "honest": honesty.honest,
            "too_good": honesty.too_good,
            "revcli_version": record.version,
            "classifier": spec.classifier,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        prepared.commit()
        model_path, model_sha = save_model(prepared.workspace, run_id, staged, meta)
        if plot_paths:
            # file by file: the run's directory may hold plots already (tune's search plots)
            home = prepared.workspace.plots_dir / run_id
            home.mkdir(parents=True, exist_ok=True)
            for name, path in plot_paths.items():
                os.replace(path, home / path.name)
                plot_paths[name] = home / path.name
        result = TrainResult(
            run_id=run_id, experiment=settings.experiment, tracking_uri=tracker.shown,
            strategy=settings.strategy, estimator=settings.estimator, params=dict(hyper),
            dataset=prepared.dataset, features=prepared.table.features,
            dropped=prepared.table.dropped, split=prepared.split_summary(), scorecard=card,
            honesty=honesty, model_path=model_path, model_sha256=model_sha, model_uri=None,
            plots=plot_paths, importance=importance.values, timings=timings,
            notes=list(prepared.notes), importance_method=importance.method,
            backtest=list(spec.backtest),
            engine=spec.engine,
            classifier=spec.classifier)
        atomic.write_json(model_path.parent / RESULT_FILE, result.to_dict())
        pending = Pending(
            directory=model_path.parent, run_id=None if unreachable else run_id,
            experiment=settings.experiment, experiment_id=experiment_id, run_name=spec.run_name,
            parent_run_id=spec.parent_run_id, note=spec.note, user_tags=dict(spec.user_tags),
            tags=record.to_tags(), params={k: str(v) for k, v in params.items()},
            metrics={**tracking.score_metrics(card), **backtest.as_metrics(spec.backtest)},
            plots={k: str(v.relative_to(prepared.workspace.root)) for k, v in plot_paths.items()},
            dataset=dataset_input(prepared))
        pending.save(sample)
        if unreachable is not None:
            raise TrackingError(f"{unreachable}; {_saved(model_path.parent)}")
        try:
            result.model_uri = pending.log(tracker, fitted.model, sample, result.to_dict(),
                                           timings)
        except DataError as exc:
            # The model's own problem (MLflow's model code refused it): a retry by `runs sync`
            # would fail the same way, so nothing is left pending.
            tracking.fail(tracker, run_id)
            (model_path.parent / PENDING_FILE).unlink(missing_ok=True)
            (model_path.parent / SAMPLE_FILE).unlink(missing_ok=True)
            raise DataError(f"{exc} (run {run_id} is marked FAILED)") from None
        except RevcliError as exc:
            tracking.fail(tracker, run_id)
            raise TrackingError(f"{exc}; {_saved(model_path.parent)}") from None
        except BaseException:
            tracking.fail(tracker, run_id, "KILLED")
            raise
        # the plots and the wait for the store are steps of their own: the rest is saving and
        # logging
        timings["log"] = (time.perf_counter() - log_start - timings.get("plots", 0.0)
                          - waited)
        return result


def _describable(tracker: tracking.Tracker, sample: Any, predictions: Any) -> None:
    """MLflow can describe a model's input ``sample`` and its ``predictions`` (DataError
    otherwise), asked where MLflow is imported: the logger process. When that process or the
    store is gone, asked here (the failure of the store itself is met, and handled, when the
    run is created)."""
    try:
        tracker.describe(sample, predictions)
    except DataError:
        raise
    except RevcliError:
        from revcli.tracking._model import describe

        describe(sample, predictions)


UNLOGGED = "unlogged-"
PENDING_FILE = "pending.json"
SAMPLE_FILE = "sample.parquet"


def _saved(directory: Path) -> str:
    return (f"the fitted model and its scorecard are saved in {directory}; `revcli runs sync` "
            "logs them once the tracking store answers")


def worker_tags() -> dict[str, str]:
    """Which process makes a run (``revcli.worker.*``): a run left RUNNING by a process that
    is gone is closed as KILLED by the next command (:func:`close_dead_runs`)."""
    from revcli import processes

    return {f"worker.{k}": str(v) for k, v in processes.identity().items() if v is not None}


@dataclass
class Pending:
    """Everything a run still has to send to MLflow, written beside its saved model
    (``pending.json``) before any of it is sent and removed once all of it was: what
    ``revcli runs sync`` replays when the tracking store failed half-way."""

    directory: Path
    run_id: str | None
    experiment: str
    experiment_id: str | None
    run_name: str | None
    parent_run_id: str | None
    note: str | None
    user_tags: dict[str, str]
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    plots: dict[str, str]
    dataset: dict[str, Any]

    def save(self, sample: Any) -> None:
        with atomic.atomic_path(self.directory / SAMPLE_FILE, suffix=".parquet") as tmp:
            sample.to_parquet(tmp)
        self.save_json()

    def save_json(self) -> None:
        data = {k: v for k, v in self.__dict__.items() if k != "directory"}
        atomic.write_json(self.directory / PENDING_FILE, data)

    @classmethod
    def load(cls, directory: Path) -> Pending:
        """The pending run of ``directory``; DataError when its file is not one revcli wrote."""
        import dataclasses
        import json

        from revcli.errors import DataError

        path = directory / PENDING_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            names = {f.name for f in dataclasses.fields(cls)} - {"directory"}
            if not isinstance(data, dict) or set(data) != names:
                raise ValueError("not the fields of a pending run")
            return cls(directory=directory, **data)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path} is not a pending run revcli wrote ({first_line(exc, 80)}); "
                            f"remove the directory with `revcli runs delete {directory.name}` "
                            "or move it away, then sync again") from None

    def log(self, tracker: tracking.Tracker, model: Any, sample: Any,
            scorecard: dict[str, Any], timings: dict[str, float] | None = None) -> str | None:
        """Send it all to run ``run_id`` and end the run FINISHED; then forget it. The model
        goes as the directory's skops file (``model``, loaded or just fitted, gives its
        predictions on ``sample``); a model an older revcli saved as a pickle is written as
        skops first."""
        assert self.run_id is not None
        root = self.directory.parent.parent
        with _skops_file(self.directory, model) as model_file:
            uri = tracking.log_training(
                tracker, self.run_id, record=tracking.RunRecord.from_tags(self.tags),
                params=self.params, metrics=self.metrics, model_file=model_file, sample=sample,
                predictions=model.predict(sample),
                artifacts=tracking.Artifacts(files={k: root / v for k, v in self.plots.items()},
                                             documents={RESULT_FILE: scorecard}),
                dataset=self.dataset, timings=timings)
        (self.directory / PENDING_FILE).unlink(missing_ok=True)
        (self.directory / SAMPLE_FILE).unlink(missing_ok=True)
        return uri


@contextlib.contextmanager
def _skops_file(directory: Path, model: Any) -> Iterator[Path]:
    """The skops file of a model directory; for the pickle of an older revcli, the loaded
    ``model`` written as a temporary skops file beside it."""
    from revcli import serialization

    path = model_path(directory)
    if serialization.format_of(path) == serialization.SKOPS:
        yield path
        return
    with atomic.temp_path(directory, suffix=".skops") as tmp:
        serialization.dump(model, tmp)
        yield tmp


def dataset_input(prepared: pipeline.Prepared) -> dict[str, Any]:
    """The dataset as MLflow records a run's input: name, digest, source, schema."""
    record = prepared.dataset
    return {"name": Path(record.source).name or record.short, "digest": record.sha256,
            "source": record.source, "rows": record.rows,
            "schema": {c["name"]: c["dtype"] for c in record.columns}}


# -- looking after runs: sync, dead runs, delete, gc ---------------------------------------------

@dataclass
class Synced:
    directory: Path
    run_id: str
    created: bool  # a new run (the original never reached the store)

    def to_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "run_id": self.run_id,
                "created": self.created}


def pending_runs(workspace: Workspace) -> list[Path]:
    """Model directories whose runs are not (fully) logged yet."""
    if not workspace.models_dir.is_dir():
        return []
    return sorted(p.parent for p in workspace.models_dir.glob(f"*/{PENDING_FILE}"))


def sync(settings: Settings, trust: bool = False,
         reporter: Reporter = SILENT) -> list[Synced]:
    """Log every saved model whose run did not reach MLflow (``pending.json``): into its run
    when the store has it, else as a new run (the workspace's files are renamed after it).

    A model is loaded through :func:`revcli.modelref.load_file`, the one loader: a pickle only
    when its sha256 is the ``revcli.model_sha256`` tag of its run in the store (the run is
    created with it), else only with ``trust`` -- a file planted in ``models/`` runs no code.
    Each directory is claimed before it is logged, so two syncs never log one run twice."""
    workspace = Workspace(settings.workspace).ensure()
    directories = pending_runs(workspace)
    if not directories:
        return []
    tracker, _ = tracking.connect(settings, workspace, experiment=False)
    done = []
    for directory in directories:
        with _claim(directory) as claim:
            if claim is None or not (directory / PENDING_FILE).is_file():
                reporter.note(f"{directory.name} is being synced by another process; skipped")
                continue
            done.append(_sync_one(workspace, tracker, claim, trust, reporter))
    return done


def _sync_one(workspace: Workspace, tracker: tracking.Tracker, claim: Claim, trust: bool,
              reporter: Reporter) -> Synced:
    directory = claim.path.parent
    import pandas as pd

    from revcli import modelref

    pending = Pending.load(directory)
    reporter.step(f"logging {directory.name}")
    run = tracker.find_run(pending.run_id) if pending.run_id else None
    # Checked before anything is sent: a file no record vouches for creates no run either.
    loaded = modelref.load_file(model_path(directory), trust=trust, tracker=tracker, run=run,
                                reporter=reporter)
    created = run is None
    if created:
        experiment_id = tracker.experiment_id(pending.experiment)
        assert experiment_id is not None
        pending.run_id = tracking.start(
            tracker, experiment_id, tracking.RunRecord.from_tags(pending.tags),
            run_name=pending.run_name, parent_run_id=pending.parent_run_id,
            note=pending.note, tags=pending.user_tags)
        directory = _rename(workspace, pending, directory)
        claim.path = directory / CLAIM_FILE  # it moved with the directory
    sample = pd.read_parquet(directory / SAMPLE_FILE)
    scorecard = _read_json(directory / RESULT_FILE)
    scorecard["run_id"] = pending.run_id
    assert pending.run_id is not None
    try:
        pending.log(tracker, loaded.model, sample, scorecard)
    except RevcliError:
        tracking.fail(tracker, pending.run_id)
        raise
    return Synced(directory, pending.run_id, created)


CLAIM_FILE = "sync.claim"


@dataclass
class Claim:
    path: Path  # the claim file, in the directory being synced


@contextlib.contextmanager
def _claim(directory: Path) -> Iterator[Claim | None]:
    """This process's hold on ``directory`` for syncing (None when another live process holds
    it): a claim file created exclusively with the holder's identity; a claim whose process is
    provably gone is taken over."""
    import json

    from revcli import processes

    path = directory / CLAIM_FILE
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _read_json(path)
            if not processes.gone(holder or None):
                break
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(processes.identity(), fh)
        claim = Claim(path)
        try:
            yield claim
        finally:
            claim.path.unlink(missing_ok=True)
        return
    yield None


def _rename(workspace: Workspace, pending: Pending, directory: Path) -> Path:
    """The files of an unlogged run, renamed after the run the store gave it."""
    import os

    assert pending.run_id is not None
    old = directory.name
    target = workspace.model_dir(pending.run_id)
    os.replace(directory, target)
    meta = _read_json(target / META_FILE)
    meta["run_id"] = pending.run_id
    atomic.write_json(target / META_FILE, meta)
    plots = workspace.plots_dir / old
    if plots.is_dir():
        os.replace(plots, workspace.plots_dir / pending.run_id)
        pending.plots = {k: v.replace(old, pending.run_id) for k, v in pending.plots.items()}
    pending.directory = target
    pending.save_json()
    return target


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def close_dead_runs(tracker: tracking.Tracker, experiment_id: str) -> list[str]:
    """Mark KILLED the runs of this experiment left RUNNING by a revcli process that provably
    died (kill -9, a crash): tagged ``revcli.killed_because``; their saved models, if any, can
    be logged with ``revcli runs sync``. Never raises."""
    from revcli import processes

    closed: list[str] = []
    try:
        found, _ = tracker.search([experiment_id], "attributes.status = 'RUNNING'",
                                  max_results=500)
    except RevcliError:
        return closed
    for run in found:
        who: dict[str, Any] = {k.removeprefix("worker."): v
                               for k, v in run.record.extra.items() if k.startswith("worker.")}
        for key in ("pid", "start", "pidns"):  # tags are strings; the identity has numbers
            who[key] = int(who[key]) if str(who.get(key, "")).isdigit() else None
        if not processes.gone(who):
            continue
        try:
            tracker.set_tag(run.run_id, "revcli.killed_because", "its process died")
            tracker.end_run(run.run_id, "KILLED")
            closed.append(run.run_id)
        except RevcliError:
            break
    return closed


def close_own_runs(tracker: tracking.Tracker, experiment_id: str, status: str) -> list[str]:
    """End as ``status`` (FAILED, or KILLED for an interrupt or SIGTERM) the runs of this
    experiment this very process left RUNNING: a command that fails after its run was created
    (a full disk while saving the model, SIGTERM while logging) leaves no run RUNNING.
    Never raises."""
    from revcli import processes

    me = {k: str(v) for k, v in processes.identity().items() if v is not None}
    closed: list[str] = []
    try:
        found, _ = tracker.search([experiment_id], "attributes.status = 'RUNNING'",
                                  max_results=500)
    except BaseException:
        return closed
    for run in found:
        who = {k.removeprefix("worker."): str(v) for k, v in run.record.extra.items()
               if k.startswith("worker.")}
        if not who or who != me:
            continue
        try:
            tracker.end_run(run.run_id, status)
            closed.append(run.run_id)
        except BaseException:
            break
    return closed


@contextlib.contextmanager
def closing_own_runs(tracker: tracking.Tracker, experiment_id: str) -> Iterator[None]:
    """On any failure inside, :func:`close_own_runs` (KILLED for an interrupt), then re-raise."""
    try:
        yield
    except BaseException as exc:
        close_own_runs(tracker, experiment_id,
                       "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise


@dataclass
class Cleanup:
    """What ``runs delete`` or ``gc`` removed."""

    runs: list[str] = field(default_factory=list)      # MLflow runs deleted
    directories: list[Path] = field(default_factory=list)
    freed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "removed": [str(d) for d in self.directories],
                "freed_bytes": self.freed}


def _remove_tree(path: Path, cleanup: Cleanup) -> None:
    import shutil

    if not path.exists():
        return
    cleanup.freed += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    shutil.rmtree(path)
    cleanup.directories.append(path)


def delete(settings: Settings, refs: list[str], reporter: Reporter = SILENT) -> Cleanup:
    """Delete runs from MLflow (soft: MLflow's UI and ``mlflow gc`` can restore or purge them)
    and remove their models and plots from the workspace. Every reference is resolved before
    anything is deleted."""
    from revcli.errors import ConfigError

    if not refs:
        raise ConfigError("give the runs to delete (ids, prefixes, names)")
    workspace = Workspace(settings.workspace).ensure()
    tracker, _ = tracking.connect(settings, workspace, experiment=False, create=False)
    if tracker.is_workspace_store and not workspace.mlflow_db.is_file():
        from revcli.errors import NotFoundError

        raise NotFoundError(f"no MLflow store in workspace {workspace.root}; nothing to delete")
    ids = [tracking.resolve(tracker, ref, settings.registry_model).run_id for ref in refs]
    _refuse_live_runs(tracker, list(dict.fromkeys(ids)))
    _warn_champion(tracker, settings.registry_model, ids, reporter)
    cleanup = Cleanup()
    for run_id in dict.fromkeys(ids):
        reporter.step(f"deleting run {run_id}")
        tracker.call(f"delete run {run_id}", tracker.client.delete_run, run_id)
        cleanup.runs.append(run_id)
        _remove_tree(workspace.model_dir(run_id), cleanup)
        _remove_tree(workspace.plots_dir / run_id, cleanup)
    return cleanup


def _refuse_live_runs(tracker: tracking.Tracker, ids: list[str]) -> None:
    """A run still RUNNING in a live process (a train, tune or compare in progress) is not
    deleted: the command would go on writing into a deleted run and a removed model directory,
    and report a model path that no longer exists. Runs whose process died are deletable."""
    from revcli import processes
    from revcli.errors import ConfigError

    for run_id in ids:
        run = tracker.get_run(run_id)
        if getattr(getattr(run.raw, "info", None), "status", "") != "RUNNING":
            continue
        who: dict[str, Any] = {k.removeprefix("worker."): v
                               for k, v in run.record.extra.items() if k.startswith("worker.")}
        for key in ("pid", "start", "pidns"):
            who[key] = int(who[key]) if str(who.get(key, "")).isdigit() else None
        if who.get("pid") is not None and not processes.gone(who):  # a revcli run, alive
            raise ConfigError(f"run {run_id} is still RUNNING (pid {who['pid']} on "
                              f"{who.get('host')}); stop that command or wait for it to "
                              "finish, then delete the run")


def _warn_champion(tracker: tracking.Tracker, name: str, ids: list[str],
                   reporter: Reporter) -> None:
    """Deleting the champion's run leaves the registry alone (its version keeps its own copy
    of the model and keeps serving): said, so nobody believes the champion went with it."""
    from revcli.tracking import registry

    try:
        found = registry.champion(tracker, name)
    except RevcliError:
        return
    if found is not None and found[1] is not None and found[1].run_id in ids:
        reporter.warn(f"run {found[1].run_id} is the champion of {name!r} (v{found[0]}): the "
                      "alias still points at that version, which keeps serving; promote "
                      "another run with `revcli push --promote` to replace it")


def _abandoned(path: Path) -> bool:
    """A temporary directory a killed command left: the writer its name holds
    (:func:`revcli.atomic.writer_pid`) is gone, or, naming none, it is over an hour old."""
    from revcli import processes

    writer = atomic.writer_pid(path)
    if writer is not None:
        return processes.pid_gone(writer)
    return time.time() - path.stat().st_mtime > 3600


def gc(settings: Settings, reporter: Reporter = SILENT) -> Cleanup:
    """Remove from the workspace the models and plots of runs MLflow no longer has (deleted or
    gone), and temp files of killed commands; pending (unlogged) runs are kept."""
    from revcli import processes

    workspace = Workspace(settings.workspace).ensure()
    cleanup = Cleanup()
    tracker, _ = tracking.connect(settings, workspace, experiment=False, create=False)
    if not (tracker.is_workspace_store and not workspace.mlflow_db.is_file()):
        for directory in [*workspace.models_dir.glob("*"), *workspace.plots_dir.glob("*")]:
            name = directory.name
            if not directory.is_dir() or name.startswith(UNLOGGED) or (
                    directory / PENDING_FILE).exists():
                continue
            if name.startswith("."):
                # a temporary (plots a train draws before its run exists, an atomic directory)
                if _abandoned(directory):
                    reporter.step(f"removing {directory}")
                    _remove_tree(directory, cleanup)
                continue
            if name.startswith("eval-"):
                continue  # plots of --no-track evaluations: not a run's
            run = tracker.find_run(name)
            if run is None or run.raw.info.lifecycle_stage == "deleted":
                reporter.step(f"removing {directory}")
                _remove_tree(directory, cleanup)
    for path in workspace.root.glob(".revcli-model-*"):  # a killed run's model staging
        if path.is_dir() and _abandoned(path):
            _remove_tree(path, cleanup)
    for path in [*workspace.root.glob(f"{atomic.INCOMING}*"),
                 *workspace.datasets_dir.glob(f"{atomic.INCOMING}*"),
                 *workspace.models_dir.glob(f"{atomic.INCOMING}*")]:
        pid = atomic.writer_pid(path)
        if pid is not None and processes.pid_gone(pid):
            cleanup.freed += path.stat().st_size
            path.unlink(missing_ok=True)
            cleanup.directories.append(path)
    return cleanup
