"""One way to log a trained model as an MLflow run, used by train, tune, compare and evaluate."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli.tracking._client import Tracker
from revcli.tracking.record import NOTE_TAG, PARENT_TAG, RunRecord

if TYPE_CHECKING:
    from revcli.metrics import Scorecard


def flat_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Loggable hyperparameters: plain values only (sub-estimator objects are spelled out by
    their own ``name__param`` entries); ``None`` values are left out."""
    out = {}
    for key, value in params.items():
        if isinstance(value, (str, int, float, bool)):
            out[key] = str(value)
        elif callable(value) and not hasattr(value, "get_params"):
            out[key] = getattr(value, "__name__", type(value).__name__)
    return out


def score_metrics(card: Scorecard) -> dict[str, float]:
    """A scorecard as MLflow metrics: each score, and ``baseline_<key>`` beside it."""
    logged = {k: v for k, v in card.metrics.items() if v is not None and math.isfinite(v)}
    logged.update({f"baseline_{k}": v for k, v in card.baseline.items()
                   if v is not None and math.isfinite(v)})
    return logged


@dataclass
class Artifacts:
    """What a run uploads besides params and metrics."""

    files: dict[str, Path] = field(default_factory=dict)        # name -> local file
    directory: str = "plots"                                     # where files go in the run
    documents: dict[str, Any] = field(default_factory=dict)      # artifact file -> JSON object
    texts: dict[str, str] = field(default_factory=dict)          # artifact file -> text


def start(tracker: Tracker, experiment_id: str, record: RunRecord, *,
          run_name: str | None = None, parent_run_id: str | None = None,
          note: str | None = None, tags: Mapping[str, str] | None = None,
          params: Mapping[str, Any] | None = None) -> str:
    """Create the RUNNING run of ``record``; returns its id. The run is ended by
    :func:`finish` (or :meth:`Tracker.end_run` with FAILED / KILLED)."""
    all_tags = {**record.to_tags(), **(tags or {})}
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    if note:
        all_tags[NOTE_TAG] = note
    return tracker.create_run(experiment_id, run_name, all_tags, params)


def log_training(tracker: Tracker, run_id: str, *, record: RunRecord,
                 params: Mapping[str, Any], metrics: Mapping[str, float],
                 model_file: Path | None = None, sample: Any = None, predictions: Any = None,
                 artifacts: Artifacts | None = None, dataset: Mapping[str, Any] | None = None,
                 timings: dict[str, float] | None = None) -> str | None:
    """Everything a training run holds, logged into ``run_id`` and the run ended FINISHED:
    params, metrics beside ``baseline_*``, the record's tags, the dataset as its input, the
    model's skops file ``model_file`` (``sample`` rows and the model's ``predictions`` on them
    give its signature) and the artifacts. Returns the model's URI."""
    timings = timings if timings is not None else {}
    clock = time.perf_counter()
    tracker.log(run_id, params={k: v for k, v in params.items() if v is not None},
                metrics=metrics, tags=record.to_tags())
    if dataset:
        tracker.log_dataset(run_id, **dataset)
    model_uri = None
    if model_file is not None:
        start_model = time.perf_counter()
        from revcli import serialization

        # the trusted types as this process knows them (the model's own strategy registry)
        model_uri = tracker.log_model(run_id, model_file, sample, predictions,
                                      trusted=serialization.trusted_types())
        timings["log_model"] = time.perf_counter() - start_model
    artifacts = artifacts or Artifacts()
    for path in artifacts.files.values():
        tracker.log_artifact(run_id, path, artifacts.directory)
    for name, obj in artifacts.documents.items():
        tracker.log_dict(run_id, obj, name)
    for name, text in artifacts.texts.items():
        tracker.log_text(run_id, text, name)
    tracker.end_run(run_id, "FINISHED")
    timings["log"] = time.perf_counter() - clock
    return model_uri


def fail(tracker: Tracker, run_id: str, status: str = "FAILED") -> None:
    """End a run that did not finish, if the store still answers (never raises)."""
    import contextlib

    with contextlib.suppress(Exception):
        tracker.end_run(run_id, status)


def param_list(values: Sequence[str]) -> str:
    return ",".join(values) or "none"
