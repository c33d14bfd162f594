"""The run record: what revcli writes about a run as MLflow tags, and reads back, in one place.

Every ``revcli.*`` tag is named here and nowhere else. :class:`RunRecord` is written by
:func:`revcli.tracking.log_training` (train, tune, compare) and evaluate, and read back by
:class:`LoggedRun` for compare, evaluate, predict and push: one schema, one parser, with a
round-trip test (``RunRecord.from_tags(r.to_tags()) == r``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from revcli.settings import STRATEGY_OPTIONS

PREFIX = "revcli."
PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"
RUN_NAME_TAG = "mlflow.runName"
GIT_TAG = "mlflow.source.git.commit"
LIB_PREFIX = PREFIX + "lib."
# The tag that vouches for a saved model file: revcli.modelref loads nothing else without --trust.
SHA_TAG = PREFIX + "model_sha256"
NONE = "none"

# Commands, as recorded in revcli.command.
TRAIN, TUNE, TUNE_TRIAL, COMPARE, EVALUATE = "train", "tune", "tune-trial", "compare", "evaluate"
# Runs that hold a model of their own (evaluation runs and tuning trials do not).
MODEL_COMMANDS = (TRAIN, TUNE, COMPARE)


def _names(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v and v != NONE]


def _bool(value: str | None) -> bool | None:
    return None if value is None else value == "true"


@dataclass
class RunRecord:
    """revcli's tags on one run. ``None`` fields are not written; ``extra`` holds the other
    ``revcli.*`` tags a command adds (``study``, ``compare_batch``, ``source_run``, ...), keyed
    without the prefix."""

    command: str
    strategy: str | None = None
    estimator: str | None = None
    dataset_sha256: str | None = None
    dataset_source: str | None = None
    split_hash: str | None = None
    split: str | None = None           # how rows were split: random | time
    population: str | None = None      # words: "all test sessions", "test converters", ...
    scored_on: str | None = None       # revcli.strategies.SESSIONS | CONVERTERS
    leakage: list[str] = field(default_factory=list)  # features the audit named
    leaks: list[str] = field(default_factory=list)    # ... that the scores rest on
    too_good: bool | None = None
    honest: bool | None = None
    model_sha256: str | None = None
    version: str | None = None
    git_commit: str | None = None
    libraries: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    def to_tags(self) -> dict[str, str]:
        tags: dict[str, str] = {}
        for f in fields(self):
            if f.name in ("libraries", "extra"):
                continue
            value = getattr(self, f.name)
            if f.name in ("leakage", "leaks"):
                tags[PREFIX + f.name] = ",".join(value) or NONE
            elif isinstance(value, bool):
                tags[PREFIX + f.name] = "true" if value else "false"
            elif value is not None:
                tags[PREFIX + f.name] = str(value)
        if self.git_commit:
            tags[GIT_TAG] = self.git_commit
        tags.update({LIB_PREFIX + k: v for k, v in self.libraries.items()})
        tags.update({PREFIX + k: str(v) for k, v in self.extra.items()})
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> RunRecord:
        own = {k.removeprefix(PREFIX): v for k, v in tags.items() if k.startswith(PREFIX)}
        known = {f.name for f in fields(cls)} - {"libraries", "extra"}
        values: dict[str, Any] = {}
        for name in known:
            raw = own.pop(name, None)
            if name in ("leakage", "leaks"):
                values[name] = _names(raw)
            elif name in ("too_good", "honest"):
                values[name] = _bool(raw)
            else:
                values[name] = raw
        values["command"] = values["command"] or "-"
        values["libraries"] = {k.removeprefix("lib."): v for k, v in own.items()
                               if k.startswith("lib.")}
        values["extra"] = {k: v for k, v in own.items() if not k.startswith("lib.")}
        return cls(**values)

    @property
    def rests_on_leak(self) -> bool:
        """The honesty verdict recorded at training: False means its scores are honest."""
        return self.honest is False


@dataclass
class LoggedRun:
    """One MLflow run as revcli reads it: the record, params and metrics (own and baseline)."""

    run_id: str
    name: str
    experiment_id: str
    status: str
    started: dt.datetime | None
    parent_id: str | None
    record: RunRecord
    params: dict[str, str]
    metrics: dict[str, float]
    baseline: dict[str, float]
    note: str | None = None
    raw: Any = None  # the mlflow Run it was read from

    @classmethod
    def of(cls, run: Any) -> LoggedRun:
        tags, info = run.data.tags, run.info
        values = dict(run.data.metrics)
        started = (dt.datetime.fromtimestamp(info.start_time / 1000, tz=dt.UTC)
                   if info.start_time else None)
        record = RunRecord.from_tags(tags)
        params = dict(run.data.params)
        # Runs whose tags predate a field: fall back on their params.
        record.strategy = record.strategy or params.get("strategy")
        record.estimator = record.estimator or params.get("estimator")
        return cls(run_id=info.run_id, name=info.run_name or "",
                   experiment_id=str(info.experiment_id), status=str(info.status),
                   started=started, parent_id=tags.get(PARENT_TAG), record=record,
                   params=params,
                   metrics={k: v for k, v in values.items() if not k.startswith("baseline_")},
                   baseline={k.removeprefix("baseline_"): v for k, v in values.items()
                             if k.startswith("baseline_")},
                   note=tags.get(NOTE_TAG), raw=run)

    @property
    def short(self) -> str:
        return self.run_id[:8]

    @property
    def strategy(self) -> str:
        return self.record.strategy or "-"

    @property
    def estimator(self) -> str:
        return self.record.estimator or "-"

    def number(self, key: str, kind: type = float) -> Any:
        raw = self.params.get(key)
        return kind(raw) if raw not in (None, "", "None") else None

    def names(self, key: str) -> list[str]:
        return _names(self.params.get(key))

    def model_meta(self) -> dict[str, Any]:
        """What ``model.json`` records, as far as the run's params and tags tell it."""
        r = self.record
        return {
            "run_id": self.run_id,
            "strategy": r.strategy,
            "estimator": r.estimator,
            "features": self.names("features"),
            "dropped_features": self.names("dropped_features"),
            "dataset_sha256": r.dataset_sha256,
            "split_hash": r.split_hash,
            "seed": self.number("seed", int),
            "test_size": self.number("test_size", float),
            "split": {k.removeprefix("split."): self._split_value(k) for k in self.params
                      if k.startswith("split.")} or None,
            "options": {name: self._option(name) for name in STRATEGY_OPTIONS
                        if name in self.params},
            "model_sha256": r.model_sha256,
            "leakage": r.leakage,
            # Runs from before revcli.leaks: their honest verdict says whether the flagged
            # features count.
            "leaks": r.leaks or ([] if r.honest is not False else r.leakage),
            "honest": r.honest,
        }

    def _split_value(self, key: str) -> Any:
        raw = self.params[key]
        if key in ("split.test_size",):
            return float(raw)
        if key in ("split.seed",):
            return int(raw)
        return raw

    def _option(self, name: str) -> Any:
        raw = self.params[name]
        try:
            return float(raw) if "." in raw or raw.replace("-", "").isdigit() else raw
        except ValueError:
            return raw
