"""Which model a command means (run reference or file), loaded only once it is safe.

A skops file (what revcli writes: :mod:`revcli.serialization`) is built from the types on
revcli's one list of trusted types and nothing else, so it loads without a record of who wrote
it; a file holding any other type is refused naming it. A pickle (``model.joblib`` of older
workspaces, a ``.pkl`` from S3) runs code when it is loaded, so its sha256 is checked BEFORE it
is loaded against a record revcli wrote itself: the ``revcli.model_sha256`` tag of its MLflow
run, or its ``revcli.pickle_sha256`` (the pickle ``push`` made of it); the run named by this
workspace's ``models/<run id>/model.json``, or found by the hash. A ``model.json`` beside a
file is never proof on its own: whoever wrote the file could write the sidecar too. A
mismatch or a file with no record is refused unless the caller trusts it (``--trust``); once
loaded, a file that does not hold one of revcli's strategies is refused too.

Run references (``--run``) are resolved by :func:`revcli.tracking.resolve`: a run id, a unique
prefix, a registry alias (``champion``), ``models:/NAME@ALIAS`` / ``models:/NAME/VERSION``, or a
run name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli import atomic, serialization, strategies, tracking
from revcli.errors import ConfigError, DataError, NotFoundError
from revcli.progress import SILENT, Reporter
from revcli.runs import LEGACY_MODEL_FILE, META_FILE, MODEL_FILE, model_path
from revcli.tracking import LoggedRun

if TYPE_CHECKING:
    from revcli.settings import Settings
    from revcli.strategies import Strategy
    from revcli.workspace import Workspace

SHA_TAG = tracking.record.SHA_TAG
#: The sha256 of the pickle ``push`` wrote from a run's skops model (the default
#: ``regression_model.pkl``): a record revcli wrote too, so that pickle loads under the rule.
PICKLE_SHA_TAG = "revcli.pickle_sha256"


def _recorded(run: LoggedRun | None) -> set[str]:
    """The sha256s run ``run`` vouches for: its model and the pickle push made of it."""
    if run is None:
        return set()
    tags = run.raw.data.tags if run.raw is not None else {}
    return {sha for sha in (run.record.model_sha256, tags.get(PICKLE_SHA_TAG)) if sha}


@dataclass
class LoadedModel:
    """A verified, unpickled model and what revcli recorded about it."""

    model: Any
    path: Path | None
    sha256: str | None
    meta: dict[str, Any]
    run_id: str | None
    source: str
    checked: str  # where the sha256 was checked, or why it was not
    run: LoggedRun | None = None  # the MLflow run, when it was consulted

    @property
    def strategy_class(self) -> type[Strategy]:
        return strategies.of(self.model)

    @property
    def strategy(self) -> str:
        return self.strategy_class.name

    @property
    def estimator(self) -> str:
        return str(self.meta.get("estimator") or "unknown")

    @property
    def features(self) -> list[str]:
        recorded = self.meta.get("features")
        if recorded:
            return list(recorded)
        return [str(c) for c in getattr(self.model, "feature_names_in_", [])]

    @property
    def flagged(self) -> list[str]:
        """Features the leakage audit named when the model was trained."""
        return _names(self.meta.get("leakage"))

    @property
    def leaks(self) -> list[str]:
        """Flagged features the model's scores rest on, as training judged it (the run's
        ``revcli.honest`` verdict; never re-decided here)."""
        if self.meta.get("leaks") is not None:
            return _names(self.meta["leaks"])
        if self.meta.get("honest") in (True, "true") or not (
                self.strategy_class.leak_can_inflate()):
            return []
        return self.flagged

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "run_id": self.run_id,
                "path": str(self.path) if self.path else None, "sha256": self.sha256,
                "checked": self.checked, "strategy": self.strategy, "estimator": self.estimator,
                "features": self.features, "leakage": self.flagged, "leaks": self.leaks,
                "dataset_sha256": self.meta.get("dataset_sha256"),
                "split_hash": self.meta.get("split_hash")}


def _names(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [v for v in value.split(",") if v and v != "none"]
    return [str(v) for v in value]


def _read_meta(path: Path) -> dict[str, Any] | None:
    """model.json as ``revcli train`` writes it, or the metadata JSON ``revcli push`` uploads
    beside the model on S3 (its sha256 is under ``model``)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if "model_sha256" not in data and isinstance(data.get("model"), dict) and (
            data["model"].get("sha256")):
        data = {**data, "model_sha256": data["model"]["sha256"]}
    return data if data.get("model_sha256") else None


def _workspace_record(path: Path, workspace: Workspace | None) -> dict[str, Any] | None:
    """model.json of ``path`` when ``path`` is this workspace's own ``models/<run id>/
    model.joblib`` -- metadata, and the run to ask; never proof by itself."""
    if workspace is None:
        return None
    try:
        resolved = path.resolve()
        home = workspace.models_dir.resolve()
    except OSError:
        return None
    if (resolved.name not in (MODEL_FILE, LEGACY_MODEL_FILE) or resolved.parent.parent != home
            or not tracking.refs.RUN_ID.match(resolved.parent.name)):
        return None
    meta = _read_meta(resolved.parent / META_FILE)
    if meta is None or meta.get("run_id", resolved.parent.name) != resolved.parent.name:
        return None
    return meta


def _meta_beside(path: Path) -> dict[str, Any]:
    """Metadata beside a file the user vouched for with --trust (features, strategy, ...)."""
    for candidate in dict.fromkeys((path.with_suffix(".json"), path.parent / META_FILE)):
        meta = _read_meta(candidate)
        if meta is not None:
            return meta
    return {}


def _unpickle(path: Path) -> Any:
    import joblib

    try:
        model = joblib.load(path)
    except Exception as exc:  # a pickle can fail in any way; all of them mean "not ours"
        raise DataError(f"{path} is not a revcli model: it cannot be read as a joblib file "
                        f"({type(exc).__name__})") from None
    return _ours(path, model)


def _ours(path: Path | str, model: Any) -> Any:
    try:
        strategies.of(model)
    except ConfigError:
        raise DataError(f"{path} holds a {type(model).__module__}.{type(model).__name__}, not a "
                        f"revcli model (a strategy: {', '.join(strategies.names())})") from None
    return model


def _refuse(message: str, trust: bool, reporter: Reporter, safe: bool = False) -> str:
    if not trust:
        if safe:  # a skops file runs no code, but it is not the model the run names
            raise DataError(f"{message}; refusing to use it as that run's model (changed or "
                            "swapped since training): pass --trust only if you know where "
                            "the file came from")
        raise DataError(f"{message}; refusing to unpickle it (a pickle can run code): pass "
                        "--trust only if you know where the file came from")
    reporter.warn(f"{message}; loading it anyway (--trust)")
    return "not checked (--trust)"


def load_file(path: str | Path, *, trust: bool = False,
              tracker: tracking.Tracker | None = None, workspace: Workspace | None = None,
              run: LoggedRun | None = None, reporter: Reporter = SILENT) -> LoadedModel:
    """A model file, unpickled only once its sha256 matches a record revcli wrote itself: the
    ``revcli.model_sha256`` tag of its MLflow run (``run``; else the run named by this
    workspace's ``models/<run id>/model.json`` when the file is that run's ``model.joblib``;
    else a run in ``tracker`` tagged with the file's hash). A sidecar file proves nothing:
    whoever wrote the model could write it too. Anything unverified needs ``trust``."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"model file {path} does not exist")
    sha = atomic.sha256_file(path)
    meta = _workspace_record(path, workspace)
    sidecar = path.parent / META_FILE
    if meta is None and run is not None and sidecar.is_file():
        reporter.warn(f"{sidecar} is unreadable; using the record of MLflow run {run.run_id} "
                      "instead")
    where = f" in {tracker.shown}" if tracker is not None else ""
    if run is None and tracker is not None:
        if meta is not None:
            run = tracker.find_run(str(meta.get("run_id") or path.parent.name))
        else:
            found = tracker.runs_tagged(SHA_TAG, sha) or tracker.runs_tagged(PICKLE_SHA_TAG, sha)
            run = found[0] if found else None
    tagged = run.record.model_sha256 if run is not None else None
    safe = serialization.format_of(path) == serialization.SKOPS
    if run is not None and sha in _recorded(run):
        checked = f"sha256 matches MLflow run {run.run_id} (tag {SHA_TAG})"
        meta = {**{k: v for k, v in run.model_meta().items() if v not in (None, "")},
                **(meta or {})}
    elif safe and run is None:
        # Loading it runs no code, so no record is needed; without one, its metadata comes
        # from beside it and proves nothing (the same as --trust's).
        checked = "skops, trusted types only (no run vouches for its sha256)"
        meta = meta or _meta_beside(path)
    else:
        if run is not None:
            reason = (f"{path} (sha256 {sha[:12]}…) is not the model MLflow run {run.run_id} "
                      "logged (" + (f"{SHA_TAG} {tagged[:12]}…)" if tagged
                                    else f"the run has no {SHA_TAG})"))
        elif meta is not None:
            reason = (f"{path} claims to be run {meta.get('run_id') or path.parent.name}, which "
                      f"no MLflow store{where} knows")
        else:
            reason = (f"{path} (sha256 {sha[:12]}…) matches no record revcli wrote: no MLflow "
                      f"run{where} is tagged {SHA_TAG} with that hash (a model.json beside a "
                      "file proves nothing)")
        checked = _refuse(reason, trust, reporter, safe=safe)
        meta = meta or _meta_beside(path)
    run_id = run.run_id if run is not None else meta.get("run_id")
    model = _ours(path, serialization.load(path)) if safe else _unpickle(path)
    return LoadedModel(model=model, path=path, sha256=sha, meta=dict(meta), run_id=run_id,
                       source=f"file {path}", checked=checked, run=run)


def load_run(settings: Settings, workspace: Workspace, ref: str, tracker: tracking.Tracker, *,
             trust: bool = False, reporter: Reporter = SILENT) -> LoadedModel:
    """The model of a run reference: the workspace's joblib copy, checked against the run's
    ``revcli.model_sha256`` tag before it is unpickled."""
    resolved = tracking.resolve(tracker, ref, settings.registry_model)
    run_id = resolved.run_id
    path = model_path(workspace.model_dir(run_id))
    run = tracker.get_run(run_id)
    if path.is_file():
        loaded = load_file(path, trust=trust, tracker=tracker, workspace=workspace, run=run,
                           reporter=reporter)
        loaded.source, loaded.run_id = resolved.how, run_id
        return loaded
    # Not trained in this workspace: its MLflow-logged copy. A skops one loads with the
    # trusted types only; an older cloudpickle one carries no hash revcli recorded, so it is
    # unpickled only with --trust (and never downloaded without it).
    meta = run.model_meta()
    if not meta.get("strategy"):
        raise NotFoundError(f"run {run_id} was not logged by revcli (no strategy recorded); "
                            "revcli can only load models it trained")
    model, kind = tracker.load_model(run, pickle=trust)
    if kind is None:
        raise NotFoundError(f"run {run_id} has no model in this workspace ({path} is missing: "
                            "it was trained elsewhere) and its MLflow copy is a pickle; point "
                            "--workspace at the workspace that trained it, or pass --trust to "
                            "load the copy logged to MLflow")
    if kind == serialization.SKOPS:
        checked = "skops, trusted types only (the copy logged to MLflow)"
    else:
        reporter.warn(f"loading the MLflow-logged model of run {run_id} without a sha256 check "
                      "(--trust)")
        checked = "not checked (--trust, MLflow-logged copy)"
    try:
        strategies.of(model)
    except ConfigError:
        raise DataError(f"run {run_id}'s model is a {type(model).__name__}, not a revcli "
                        "model") from None
    return LoadedModel(model=model, path=None, sha256=None, meta=meta, run_id=run_id,
                       source=resolved.how, checked=checked, run=run)



def load(settings: Settings, workspace: Workspace, *, run: str | None = None,
         model_file: str | Path | None = None, trust: bool = False,
         tracker: tracking.Tracker | None = None, reporter: Reporter = SILENT) -> LoadedModel:
    """``--run`` or ``--model``: exactly one of them. ``--run`` needs ``tracker``."""
    if (run is None) == (model_file is None):
        raise ConfigError("give exactly one of --run RUN (a run id, prefix, name or registry "
                          "alias) and --model FILE")
    if run is not None:
        if tracker is None:
            raise NotFoundError(f"no MLflow store to look run {run!r} up in: the workspace "
                                f"{workspace.root} has none and no --tracking-uri is set")
        return load_run(settings, workspace, run, tracker, trust=trust, reporter=reporter)
    return load_file(model_file, trust=trust, tracker=tracker,  # type: ignore[arg-type]
                     workspace=workspace, reporter=reporter)
