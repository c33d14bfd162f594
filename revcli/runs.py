"""A trained model's run: judged, saved in the workspace, logged to MLflow.

The one path ``train``, ``tune`` (its refit best model) and ``compare strategies`` share after
:mod:`revcli.pipeline` has fitted and scored a model: targets and honesty (:func:`pipeline.judge`),
permutation importance, the model saved as joblib with its ``model.json`` *before* anything is
sent to MLflow (a finished fit is never thrown away), the plots, and one MLflow run through
:func:`revcli.tracking.log_training`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli import atomic, leakage, metrics, pipeline, targets, tracking
from revcli.errors import RevcliError, TrackingError
from revcli.progress import SILENT, Reporter
from revcli.tracking import RunRecord
from revcli.workspace import DatasetRecord, Workspace

if TYPE_CHECKING:
    from revcli.settings import Settings

MODEL_FILE = "model.joblib"
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
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "notes": self.notes,
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
               extra: Mapping[str, Any]) -> dict[str, Any]:
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
        "features": tracking.param_list(prepared.table.features),
        "dropped_features": tracking.param_list(prepared.table.dropped),
        **fitted.model.options(),
        **{f"model.{k}": v for k, v in tracking.flat_params(fitted.model.get_params()).items()},
        **extra,
    }


def save_model(workspace: Workspace, name: str, model: Any, meta: Mapping[str, Any],
               result: Mapping[str, Any] | None = None) -> tuple[Path, str]:
    """joblib file + model.json (with its sha256) [+ the scorecard] under ``models/<name>/``,
    each written atomically."""
    import joblib

    directory = workspace.model_dir(name)
    path = directory / MODEL_FILE
    with atomic.atomic_path(path) as tmp:
        joblib.dump(model, tmp)
        sha = atomic.sha256_file(tmp)
    atomic.write_json(directory / META_FILE, {**meta, "model_sha256": sha,
                                              "model_file": path.name})
    if result is not None:
        atomic.write_json(directory / RESULT_FILE, result)
    return path, sha


def finish(prepared: pipeline.Prepared, settings: Settings, fitted: pipeline.Fitted,
           hyper: Mapping[str, Any], findings: Sequence[leakage.LeakFinding],
           tracker: tracking.Tracker, experiment_id: str, spec: RunSpec | None = None,
           reporter: Reporter = SILENT, timings: dict[str, float] | None = None) -> TrainResult:
    """Judge ``fitted``, save it in the workspace, and log it as one MLflow run."""
    spec = spec or RunSpec()
    timings = timings if timings is not None else {}
    target_set = targets.load(settings.targets,
                              fallback=settings.source_of("targets") == "default")
    honesty = pipeline.judge(fitted, findings, target_set, reporter)
    card = fitted.scorecard
    X_eval, y_eval, pred_eval = pipeline.evaluation_data(fitted.model, prepared.X_test,
                                                         prepared.y_test, fitted.pred_test)
    reporter.step("permutation importance")
    start = time.perf_counter()
    importance = pipeline.importance(fitted.model, X_eval, y_eval, settings.seed,
                                     fitted.threads)
    timings["importance"] = time.perf_counter() - start

    reporter.step("logging the MLflow run")
    log_start = time.perf_counter()
    record = record_of(prepared, settings, fitted, honesty, spec.command, spec.tags)
    params = run_params(prepared, settings, fitted, spec.params)
    run_id = spec.run_id or tracking.start(
        tracker, experiment_id, record, run_name=spec.run_name,
        parent_run_id=spec.parent_run_id, note=spec.note, tags=spec.user_tags)
    meta = {
        "run_id": run_id,
        "strategy": settings.strategy,
        "estimator": settings.estimator,
        "params": dict(hyper),
        "options": fitted.model.options(),
        "features": prepared.table.features,
        "dropped_features": prepared.table.dropped,
        "dataset_sha256": prepared.dataset.sha256,
        "split_hash": prepared.split.hash,
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
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    prepared.commit()
    model_path, model_sha = save_model(prepared.workspace, run_id, fitted.model, meta)
    record.model_sha256 = model_sha
    plot_paths: dict[str, Path] = {}
    if spec.plots:
        label = f"{settings.strategy}: {card.population}"
        from revcli import plots

        plot_paths = plots.training_set(prepared.workspace.plots_dir / run_id, label, y_eval,
                                        pred_eval, importance)
    result = TrainResult(
        run_id=run_id, experiment=settings.experiment, tracking_uri=tracker.shown,
        strategy=settings.strategy, estimator=settings.estimator, params=dict(hyper),
        dataset=prepared.dataset, features=prepared.table.features,
        dropped=prepared.table.dropped, split=prepared.split_summary(), scorecard=card,
        honesty=honesty, model_path=model_path, model_sha256=model_sha, model_uri=None,
        plots=plot_paths, importance=importance, timings=timings, notes=list(prepared.notes))
    atomic.write_json(model_path.parent / RESULT_FILE, result.to_dict())
    try:
        result.model_uri = tracking.log_training(
            tracker, run_id, record=record, params=params, card=card, model=fitted.model,
            sample=prepared.X_test.iloc[:5],
            artifacts=tracking.Artifacts(files=plot_paths,
                                         documents={RESULT_FILE: result.to_dict()}),
            dataset=dataset_input(prepared), timings=timings)
    except RevcliError as exc:
        tracking.fail(tracker, run_id)
        raise TrackingError(f"{exc}; the fitted model and its scorecard are saved in "
                            f"{model_path.parent}") from None
    except BaseException:
        tracking.fail(tracker, run_id, "KILLED")
        raise
    timings["log"] = time.perf_counter() - log_start
    return result


def dataset_input(prepared: pipeline.Prepared) -> dict[str, Any]:
    """The dataset as MLflow records a run's input: name, digest, source, schema."""
    record = prepared.dataset
    return {"name": Path(record.source).name or record.short, "digest": record.sha256,
            "source": record.source, "rows": record.rows,
            "schema": {c["name"]: c["dtype"] for c in record.columns}}
