"""One resolver for run references, used by every command that takes one (evaluate, predict,
push, compare): a full run id, a unique prefix of one (the 8 characters ``compare runs``
prints), a registry alias of the registered model (``champion``), ``models:/NAME@ALIAS`` or
``models:/NAME/VERSION``, ``latest`` (the newest finished run that holds a model), or a run
name."""

from __future__ import annotations

import re
from dataclasses import dataclass

from revcli.errors import NotFoundError
from revcli.tracking._client import Tracker
from revcli.tracking.record import MODEL_COMMANDS

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
RUN_PREFIX = re.compile(r"^[0-9a-f]{6,31}$")
ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
MAX_NAME = 256
LATEST = "latest"  # MLflow reserves it: never a registry alias


@dataclass(frozen=True)
class Resolved:
    run_id: str
    how: str  # e.g. "run 3f2a...", "registry revenue-regression@champion (version 3, run ...)"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _registry(tracker: Tracker, name: str, alias: str | None,
              version: str | None) -> Resolved | None:
    client = tracker.client
    label = f"{name}@{alias}" if alias is not None else f"{name}/{version}"
    try:
        mv = tracker.call(f"read {label}", client.get_model_version_by_alias, name, alias) if (
            alias is not None) else tracker.call(f"read {label}", client.get_model_version,
                                                 name, str(version))
    except NotFoundError:
        return None
    if not mv.run_id:
        raise NotFoundError(f"registered model version {name}/{mv.version} records no run; "
                            "revcli can only load models it trained")
    how = (f"registry {name}@{alias} (version {mv.version}, run {mv.run_id})"
           if alias is not None else f"registry {name}/{mv.version} (run {mv.run_id})")
    return Resolved(str(mv.run_id), how)


def _search(tracker: Tracker, filter_string: str) -> list[str]:
    ids = [e.experiment_id for e in tracker.experiments()]
    if not ids:
        return []
    runs, _ = tracker.search(ids, filter_string, max_results=3)
    return [r.run_id for r in runs]


def _latest(tracker: Tracker) -> Resolved:
    """The newest finished run of train, tune or compare (not a trial, not an evaluation)."""
    ids = [e.experiment_id for e in tracker.experiments()]
    runs, _ = (tracker.search(ids, "attributes.status = 'FINISHED'", max_results=200)
               if ids else ([], None))
    for run in runs:
        if run.parent_id is None and run.record.command in MODEL_COMMANDS:
            return Resolved(run.run_id, f"run {run.run_id} (latest, {run.name!r})")
    raise NotFoundError(f"no finished run with a model in {tracker.shown} yet; `revcli train` "
                        "makes one")


def resolve(tracker: Tracker, ref: str, registry_model: str) -> Resolved:
    """The run ``ref`` names, and how it was found; NotFoundError (one line, with the command
    that lists runs) when nothing or more than one run matches."""
    ref = ref.strip()
    if RUN_ID.match(ref):
        return Resolved(ref, f"run {ref}")
    if ref.lower() == LATEST:
        return _latest(tracker)
    if ref.startswith("models:/"):
        body = ref.removeprefix("models:/")
        if "@" in body:
            name, alias = body.split("@", 1)
            found = _registry(tracker, name, alias, None)
        elif "/" in body:
            name, version = body.rsplit("/", 1)
            found = _registry(tracker, name, None, version)
        else:
            raise NotFoundError(f"{ref!r} names no version: use models:/NAME@ALIAS or "
                                "models:/NAME/VERSION")
        if found is None:
            raise NotFoundError(f"no registered model version {body} in {tracker.shown}")
        return found
    if RUN_PREFIX.match(ref):
        matches = _search(tracker, f"attributes.run_id LIKE {_quote(ref + '%')}")
        if len(matches) == 1:
            return Resolved(matches[0], f"run {matches[0]}")
        if len(matches) > 1:
            raise NotFoundError(f"run id prefix {ref!r} is ambiguous (several runs in "
                                f"{tracker.shown} start with it); give more characters")
    if ALIAS.match(ref) and registry_model:
        found = _registry(tracker, registry_model, ref, None)
        if found is not None:
            return found
    if 0 < len(ref) <= MAX_NAME and "\n" not in ref:
        matches = _search(tracker, f"attributes.run_name = {_quote(ref)}")
        if len(matches) == 1:
            return Resolved(matches[0], f"run {matches[0]} (named {ref!r})")
        if len(matches) > 1:
            raise NotFoundError(f"{len(matches)}+ runs are named {ref!r}; give a run id "
                                "(`revcli compare runs` lists them)")
    raise NotFoundError(f"no run, run name or registered model alias {ref!r} in {tracker.shown}"
                        "; give a run id or a unique prefix of one (`revcli runs list` lists "
                        "them), latest, or an alias such as champion")
