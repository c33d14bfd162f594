"""Reading an sqlite MLflow store without importing MLflow.

``import mlflow`` and opening its SQLAlchemy store take ~2 s of CPU (MLflow's GenAI and gateway
modules, alembic, the ORM's mappers) before the first row: more than ``compare runs`` or
``predict`` need in all. :class:`ReadingTracker` is a :class:`Tracker` whose reads (experiments,
one run, a search with the filters revcli writes) are plain read-only sqlite queries of MLflow's
tables (``experiments``, ``runs``, ``tags``, ``params``, ``latest_metrics``: the schema MLflow
has kept since 1.x), returning the same :class:`LoggedRun` records. Anything else — writes, the
registry, a filter it does not know, a store it cannot read (damaged, locked, another schema) —
goes to the inherited MLflow client, so errors and results stay MLflow's own.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli.tracking._client import Tracker
from revcli.tracking.record import LoggedRun

if TYPE_CHECKING:
    from revcli.workspace import Workspace

_TABLES = {"experiments": {"experiment_id", "name", "lifecycle_stage", "creation_time"},
           "runs": {"run_uuid", "name", "experiment_id", "status", "start_time", "end_time",
                    "lifecycle_stage", "artifact_uri", "user_id"},
           "tags": {"key", "value", "run_uuid"}, "params": {"key", "value", "run_uuid"},
           "latest_metrics": {"key", "value", "is_nan", "run_uuid"}}

_STR = r"'((?:[^'\\]|\\.)*)'"
_CLAUSES = [
    ("status", re.compile(rf"attributes\.status = {_STR}")),
    ("since", re.compile(r"attributes\.start_time >= (\d+)")),
    ("tag", re.compile(rf"tags\.`([^`]+)` = {_STR}")),
    ("has_tag", re.compile(r"tags\.`([^`]+)` != ''")),
    ("ids", re.compile(rf"attributes\.run_id IN \(({_STR}(?:, {_STR})*)\)")),
    ("prefix", re.compile(rf"attributes\.run_id LIKE {_STR}")),
    ("name", re.compile(rf"attributes\.run_name = {_STR}")),
]
_AND = re.compile(r"\s+and\s+")


class Unsupported(Exception):
    """This read is MLflow's to do (a filter, an order or a store the reader does not know)."""


def _unquote(text: str) -> str:
    if "\\" in text:  # how MLflow's parser reads an escape is MLflow's business
        raise Unsupported(text)
    return text


def parse_filter(text: str) -> list[tuple[str, Any]]:
    """The clauses of a search filter revcli wrote, or Unsupported."""
    clauses: list[tuple[str, Any]] = []
    rest = text.strip()
    while rest:
        for name, pattern in _CLAUSES:
            m = pattern.match(rest)
            if m:
                kind = name
                break
        else:
            raise Unsupported(rest[:40])
        if kind == "ids":
            value: Any = {_unquote(v) for v in re.findall(_STR, m.group(1))}
        elif kind == "prefix":
            value = _unquote(m.group(1))
            if not value.endswith("%") or any(c in value[:-1] for c in "%_"):
                raise Unsupported(value)
            value = value[:-1]
        elif kind == "since":
            value = int(m.group(1))
        elif kind == "tag":
            value = (m.group(1), _unquote(m.group(2)))
        elif kind == "has_tag":
            value = m.group(1)
        else:
            value = _unquote(m.group(1))
        clauses.append((kind, value))
        rest = rest[m.end():]
        joint = _AND.match(rest)
        if joint:
            rest = rest[joint.end():]
        elif rest:
            raise Unsupported(rest[:40])
    return clauses


# -- what MLflow's client returns, as far as revcli reads it --------------------------------------

@dataclass
class RunInfo:
    run_id: str
    run_name: str
    experiment_id: str
    status: str
    start_time: int | None
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str | None
    user_id: str | None

    @property
    def run_uuid(self) -> str:
        return self.run_id


@dataclass
class RunData:
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Run:
    info: RunInfo
    data: RunData


@dataclass
class Experiment:
    experiment_id: str
    name: str
    lifecycle_stage: str


class ReadingTracker(Tracker):
    """A Tracker for an sqlite store whose reads need no MLflow (see the module's docstring)."""

    def __init__(self, uri: str, path: Path, workspace: Workspace | None = None) -> None:
        super().__init__(uri, workspace)
        self.path = path
        self._db: sqlite3.Connection | None = None
        self.fallbacks = 0  # reads handed to MLflow (tests and benchmarks look)

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            if not self.path.is_file():
                raise Unsupported("no store")
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                 timeout=1.0, check_same_thread=False)
            try:
                for table, columns in _TABLES.items():
                    found = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                    if not columns <= found:
                        raise Unsupported(f"table {table}")
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _read(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(self._connect(), *args)
        except (Unsupported, sqlite3.Error, OSError, ValueError):
            self.fallbacks += 1
            raise Unsupported from None

    # -- experiments ---------------------------------------------------------------------------

    def _experiments(self, db: sqlite3.Connection) -> list[Experiment]:
        return [Experiment(str(i), n, s) for i, n, s in db.execute(
            "SELECT experiment_id, name, lifecycle_stage FROM experiments "
            "ORDER BY creation_time DESC, experiment_id")]  # MLflow's order

    def experiments(self, limit: int = 1000) -> list[Any]:
        try:
            found = self._read(self._experiments)
        except Unsupported:
            return super().experiments(limit)
        return [e for e in found if e.lifecycle_stage == "active"][:limit]

    def experiment_id(self, name: str, create: bool = True) -> str | None:
        if create:
            return super().experiment_id(name, create)
        try:
            found = [e for e in self._read(self._experiments) if e.name == name]
        except Unsupported:
            return super().experiment_id(name, create)
        if not found or found[0].lifecycle_stage != "active" or not name.strip():
            return super().experiment_id(name, create)  # its errors are MLflow's
        return found[0].experiment_id

    # -- runs ------------------------------------------------------------------------------------

    def _runs(self, db: sqlite3.Connection, where: str, args: Sequence[Any]) -> list[Run]:
        rows = db.execute(
            "SELECT run_uuid, name, experiment_id, status, start_time, end_time, "
            f"lifecycle_stage, artifact_uri, user_id FROM runs WHERE {where} "
            "ORDER BY start_time DESC, run_uuid", list(args)).fetchall()
        return [Run(RunInfo(r[0], r[1] or "", str(r[2]), str(r[3]), r[4], r[5], r[6], r[7], r[8]),
                    RunData()) for r in rows]

    def _fill(self, db: sqlite3.Connection, runs: list[Run], tables: Sequence[str]) -> None:
        by_id = {r.info.run_id: r for r in runs}
        ids = list(by_id)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            if "tags" in tables:
                for key, value, run in db.execute(
                        f"SELECT key, value, run_uuid FROM tags WHERE run_uuid IN ({marks})",
                        chunk):
                    by_id[run].data.tags[key] = value
            if "params" in tables:
                for key, value, run in db.execute(
                        f"SELECT key, value, run_uuid FROM params WHERE run_uuid IN ({marks})",
                        chunk):
                    by_id[run].data.params[key] = value
            if "metrics" in tables:
                for key, value, nan, run in db.execute(
                        "SELECT key, value, is_nan, run_uuid FROM latest_metrics "
                        f"WHERE run_uuid IN ({marks})", chunk):
                    by_id[run].data.metrics[key] = float("nan") if nan else float(value)

    def _get(self, db: sqlite3.Connection, run_id: str) -> Run | None:
        found = self._runs(db, "run_uuid = ?", [run_id])
        if found:
            self._fill(db, found, ("tags", "params", "metrics"))
        return found[0] if found else None

    def get_run(self, run_id: str) -> LoggedRun:
        try:
            found = self._read(self._get, run_id)
        except Unsupported:
            return super().get_run(run_id)
        if found is None:
            return super().get_run(run_id)  # MLflow's own "not found", one line
        return LoggedRun.of(found)

    def _search(self, db: sqlite3.Connection, experiment_ids: Sequence[str], filter_string: str,
                max_results: int, offset: int) -> tuple[list[Run], str | None]:
        clauses = parse_filter(filter_string)
        marks = ",".join("?" * len(experiment_ids))
        where, args = [f"experiment_id IN ({marks})", "lifecycle_stage = 'active'"], \
            [int(i) for i in experiment_ids]
        needs_tags = False
        for kind, value in clauses:
            if kind == "status":
                where.append("status = ?")
                args.append(value)
            elif kind == "since":
                where.append("start_time >= ?")
                args.append(value)
            elif kind == "name":
                where.append("name = ?")
                args.append(value)
            elif kind == "ids":
                where.append(f"run_uuid IN ({','.join('?' * len(value))})")
                args.extend(sorted(value))
            elif kind == "prefix":
                where.append("substr(run_uuid, 1, ?) = ?")
                args.extend([len(value), value])
            else:
                needs_tags = True
        runs = self._runs(db, " AND ".join(where), args)
        if needs_tags:
            self._fill(db, runs, ("tags",))
            for kind, value in clauses:
                if kind == "tag":
                    runs = [r for r in runs if r.data.tags.get(value[0]) == value[1]]
                elif kind == "has_tag":
                    runs = [r for r in runs if r.data.tags.get(value, "") != ""]
        page = runs[offset:offset + max_results]
        for r in page:
            r.data = RunData()
        self._fill(db, page, ("tags", "params", "metrics"))
        more = offset + max_results < len(runs)
        return page, (str(offset + max_results) if more else None)

    def search(self, experiment_ids: Sequence[str], filter_string: str = "",
               order_by: Sequence[str] | None = None, max_results: int = 1000,
               page_token: str | None = None) -> tuple[list[LoggedRun], str | None]:
        try:
            if order_by or not experiment_ids or (page_token and not page_token.isdigit()):
                raise Unsupported("order")
            found, token = self._read(self._search, list(experiment_ids), filter_string,
                                      max_results, int(page_token or 0))
        except Unsupported:
            return super().search(experiment_ids, filter_string, order_by, max_results,
                                  page_token)
        return [LoggedRun.of(r) for r in found], token
