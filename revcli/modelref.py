"""Which model a command means (run id, registry alias or file), loaded only once it is ours.

A model file is a pickle, and unpickling runs code, so its sha256 is checked BEFORE it is loaded
against a record revcli wrote itself: the ``revcli.model_sha256`` tag of its MLflow run (the run
named by this workspace's ``models/<run id>/model.json``, or found by the hash). A ``model.json``
beside a file is never proof on its own: whoever wrote the file could write the sidecar too. A
mismatch or a file with no record is refused unless the caller trusts it (``--trust``); once
loaded, a file that does not hold one of revcli's strategies is refused too.

References (``--run``): a 32-character MLflow run id, a unique prefix of one in the workspace's
``models/`` (the short ids ``revcli compare runs`` prints), ``models:/NAME@ALIAS`` or
``models:/NAME/VERSION``, or a bare alias (``champion``) of ``settings.registry_model``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli import atomic, tracking
from revcli.errors import DataError, NotFoundError, TrackingError
from revcli.progress import SILENT, Reporter

if TYPE_CHECKING:
    from revcli.settings import Settings
    from revcli.workspace import Workspace

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
RUN_PREFIX = re.compile(r"^[0-9a-f]{6,31}$")
ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
MODEL_FILE = "model.joblib"
META_FILE = "model.json"
SHA_TAG = "revcli.model_sha256"
STRATEGY_OF_CLASS = {"AllSessions": "all", "ConvertingOnly": "converting_only",
                     "TwoStage": "two_stage"}


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
    run: Any = None  # the MLflow run, when it was consulted

    @property
    def strategy(self) -> str:
        return str(self.meta.get("strategy") or STRATEGY_OF_CLASS[type(self.model).__name__])

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
        return _names(self.meta.get("leakage", self.meta.get("leaks")))

    @property
    def leaks(self) -> list[str]:
        """Flagged features the model's scores rest on. Strategy-aware, as ``revcli train``
        records it: a feature constant on converting sessions (engagement_depth == 7) cannot
        inflate converting_only, which fits and is scored on converters only."""
        if "leaks" in self.meta:
            return _names(self.meta["leaks"])
        if self.meta.get("honest") == "true" or self.strategy == "converting_only":
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


_UNREACHABLE = ("Max retries exceeded", "Connection refused", "NewConnectionError",
                "Failed to establish", "timed out", "Name or service not known")


def tracking_error(uri: str, exc: Exception, what: str = "") -> Exception:
    """One line for an MLflow failure: NotFoundError, an unreachable server, or TrackingError."""
    text = str(exc).strip().splitlines()
    first = text[0][:300] if text else type(exc).__name__
    if any(marker in str(exc) for marker in _UNREACHABLE) or (
            isinstance(exc, OSError) and "RESOURCE_DOES_NOT_EXIST" not in str(exc)):
        return TrackingError(f"MLflow tracking server at {uri} is unreachable; check "
                             "--tracking-uri / MLFLOW_TRACKING_URI and that the server is up")
    if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or (
            "not found" in first.lower()):
        return NotFoundError(f"{what + ': ' if what else ''}{first}")
    return TrackingError(f"MLflow tracking at {uri} failed: {first}")


def resolve_run(uri: str, settings: Settings, workspace: Workspace, ref: str) -> tuple[str, str]:
    """(run id, how it was found) for a reference given on the command line."""
    from mlflow.exceptions import MlflowException

    ref = ref.strip()
    if RUN_ID.match(ref):
        return ref, f"run {ref}"
    if RUN_PREFIX.match(ref) and workspace.models_dir.is_dir():
        matches = sorted(p.name for p in workspace.models_dir.iterdir()
                         if p.name.startswith(ref) and RUN_ID.match(p.name))
        if len(matches) == 1:
            return matches[0], f"run {matches[0]}"
        if len(matches) > 1:
            raise NotFoundError(f"run id prefix {ref!r} is ambiguous ({len(matches)} runs in "
                                f"{workspace.models_dir}); give more characters")
    name, alias, version = settings.registry_model, None, None
    if ref.startswith("models:/"):
        body = ref.removeprefix("models:/")
        if "@" in body:
            name, alias = body.split("@", 1)
        elif "/" in body:
            name, version = body.rsplit("/", 1)
        else:
            raise NotFoundError(f"{ref!r} names no version: use models:/NAME@ALIAS or "
                                "models:/NAME/VERSION")
    elif ALIAS.match(ref):
        alias = ref
    else:
        raise NotFoundError(f"{ref!r} is neither a run id (32 hex characters), a registry alias "
                            "nor models:/NAME@ALIAS; `revcli compare runs` lists recent runs")
    client = tracking.client(uri)
    try:
        mv = (client.get_model_version_by_alias(name, alias) if alias is not None
              else client.get_model_version(name, str(version)))
    except MlflowException as exc:
        label = f"{name}@{alias}" if alias is not None else f"{name}/{version}"
        if "not found" in str(exc).lower() or "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code):
            raise NotFoundError(f"no run {ref!r} and no registered model version {label} in "
                                f"{uri}; give a run id (`revcli compare runs` lists them) or an "
                                "alias that exists") from None
        raise tracking_error(uri, exc, label) from None
    except OSError as exc:
        raise tracking_error(uri, exc) from None
    if not mv.run_id:
        raise NotFoundError(f"registered model version {name}/{mv.version} records no run; "
                            "revcli can only load models it trained")
    how = (f"registry {name}@{alias} (version {mv.version}, run {mv.run_id})" if alias is not None
           else f"registry {name}/{mv.version} (run {mv.run_id})")
    return str(mv.run_id), how


def meta_from_run(run: Any) -> dict[str, Any]:
    """model.json's fields as recorded on the MLflow run (params and revcli.* tags)."""
    params, tags = run.data.params, run.data.tags

    def number(key: str, kind: type) -> Any:
        return kind(params[key]) if params.get(key) not in (None, "", "None") else None

    features = params.get("features")
    dropped = params.get("dropped_features")
    return {
        "run_id": run.info.run_id,
        "strategy": params.get("strategy") or tags.get("revcli.strategy"),
        "estimator": params.get("estimator") or tags.get("revcli.estimator"),
        "features": features.split(",") if features else [],
        "dropped_features": [] if dropped in (None, "", "none") else dropped.split(","),
        "dataset_sha256": tags.get("revcli.dataset_sha256"),
        "split_hash": tags.get("revcli.split_hash"),
        "seed": number("seed", int),
        "test_size": number("test_size", float),
        "combine": params.get("combine", "expected"),
        "threshold": number("threshold", float),
        "model_sha256": tags.get(SHA_TAG),
        "leakage": tags.get("revcli.leakage", ""),
        "honest": tags.get("revcli.honest"),
    }


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


def _workspace_record(path: Path, workspace: Workspace | None) -> tuple[dict[str, Any] | None,
                                                                        Path | None]:
    """model.json of ``path`` when ``path`` is this workspace's own ``models/<run id>/
    model.joblib``: a record revcli wrote itself. A sidecar anywhere else proves nothing (whoever
    wrote the file could write the sidecar too)."""
    if workspace is None:
        return None, None
    try:
        resolved = path.resolve()
        home = workspace.models_dir.resolve()
    except OSError:
        return None, None
    if (resolved.name != MODEL_FILE or resolved.parent.parent != home
            or not RUN_ID.match(resolved.parent.name)):
        return None, None
    meta_path = resolved.parent / META_FILE
    meta = _read_meta(meta_path)
    if meta is None or meta.get("run_id", resolved.parent.name) != resolved.parent.name:
        return None, None
    return meta, meta_path


def _meta_beside(path: Path) -> dict[str, Any]:
    """Metadata beside a file the user vouched for with --trust (features, strategy, ...)."""
    for candidate in dict.fromkeys((path.with_suffix(".json"), path.parent / META_FILE)):
        meta = _read_meta(candidate)
        if meta is not None:
            return meta
    return {}


def _runs_with_sha(uri: str, sha: str) -> list[Any]:
    from mlflow.exceptions import MlflowException

    client = tracking.client(uri)
    try:
        ids = [e.experiment_id for e in client.search_experiments()]
        if not ids:
            return []
        return list(client.search_runs(ids, filter_string=f"tags.`{SHA_TAG}` = '{sha}'",
                                       max_results=5))
    except (MlflowException, OSError) as exc:
        raise tracking_error(uri, exc, "search for the model's run") from None


def _unpickle(path: Path) -> Any:
    import joblib

    from revcli import strategies

    try:
        model = joblib.load(path)
    except Exception as exc:  # a pickle can fail in any way; all of them mean "not ours"
        raise DataError(f"{path} is not a revcli model: it cannot be read as a joblib file "
                        f"({type(exc).__name__})") from None
    if not isinstance(model, (strategies.AllSessions, strategies.ConvertingOnly,
                              strategies.TwoStage)):
        raise DataError(f"{path} holds a {type(model).__module__}.{type(model).__name__}, not a "
                        "revcli model (all, converting_only or two_stage strategy)")
    return model


def _refuse(message: str, trust: bool, reporter: Reporter) -> str:
    if not trust:
        raise DataError(f"{message}; refusing to unpickle it (a pickle can run code): pass "
                        "--trust only if you know where the file came from")
    reporter.warn(f"{message}; loading it anyway (--trust)")
    return "not checked (--trust)"


def load_file(path: str | Path, *, trust: bool = False, uri: str | None = None,
              workspace: Workspace | None = None, run: Any = None,
              reporter: Reporter = SILENT) -> LoadedModel:
    """A model file, unpickled only once its sha256 matches a record revcli wrote itself: the
    ``revcli.model_sha256`` tag of its MLflow run (``run``; else the run named by this
    workspace's ``models/<run id>/model.json`` when the file is that run's ``model.joblib``;
    else a run in ``uri`` tagged with the file's hash). A sidecar file proves nothing: whoever
    wrote the model could write it too. Anything unverified needs ``trust``."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"model file {path} does not exist")
    sha = atomic.sha256_file(path)
    meta, _ = _workspace_record(path, workspace)
    where = f" in {uri}" if uri else ""
    if run is None and uri:
        if meta is not None:
            run = _get_run_or_none(uri, str(meta.get("run_id") or path.parent.name))
        else:
            found = _runs_with_sha(uri, sha)
            run = found[0] if found else None
    tagged = run.data.tags.get(SHA_TAG) if run is not None else None
    if tagged == sha:
        checked = f"sha256 matches MLflow run {run.info.run_id} (tag {SHA_TAG})"
        meta = {**{k: v for k, v in meta_from_run(run).items() if v not in (None, "")},
                **(meta or {})}
    else:
        if run is not None:
            reason = (f"{path} (sha256 {sha[:12]}…) is not the model MLflow run "
                      f"{run.info.run_id} logged ("
                      + (f"{SHA_TAG} {tagged[:12]}…)" if tagged else f"the run has no {SHA_TAG})"))
        elif meta is not None:
            reason = (f"{path} claims to be run {meta.get('run_id') or path.parent.name}, which "
                      f"no MLflow store{where} knows")
        else:
            reason = (f"{path} (sha256 {sha[:12]}…) matches no record revcli wrote: no MLflow "
                      f"run{where} is tagged {SHA_TAG} with that hash (a model.json beside a "
                      "file proves nothing)")
        checked = _refuse(reason, trust, reporter)
        meta = meta or _meta_beside(path)
    run_id = run.info.run_id if run is not None else meta.get("run_id")
    model = _unpickle(path)
    return LoadedModel(model=model, path=path, sha256=sha, meta=dict(meta), run_id=run_id,
                       source=f"file {path}", checked=checked, run=run)


def _get_run_or_none(uri: str, run_id: str) -> Any:
    try:
        return tracking.get_run(uri, run_id)
    except NotFoundError:
        return None


def load_run(settings: Settings, workspace: Workspace, ref: str, *, uri: str | None = None,
             trust: bool = False, reporter: Reporter = SILENT) -> LoadedModel:
    """The model of a run (by id, prefix or registry alias): the workspace's joblib copy,
    checked against the run's ``revcli.model_sha256`` tag before it is unpickled."""
    uri = uri or tracking.tracking_uri(settings, workspace)
    run_id, how = resolve_run(uri, settings, workspace, ref)
    path = workspace.model_dir(run_id) / MODEL_FILE
    run = tracking.get_run(uri, run_id)
    if path.is_file():
        loaded = load_file(path, trust=trust, uri=uri, workspace=workspace, run=run,
                           reporter=reporter)
        loaded.source, loaded.run_id = how, run_id
        return loaded
    # Not trained in this workspace: its MLflow-logged copy carries no hash revcli recorded,
    # so loading it needs --trust.
    meta = meta_from_run(run)
    if not meta.get("strategy"):
        raise NotFoundError(f"run {run_id} was not logged by revcli (no strategy param); revcli "
                            "can only load models it trained")
    if not trust:
        raise NotFoundError(f"run {run_id} has no model in this workspace ({path} is missing: "
                            "it was trained elsewhere); copy its models/<run_id>/ directory "
                            "here, or pass --trust to load the copy logged to MLflow")
    import mlflow

    reporter.warn(f"loading the MLflow-logged model of run {run_id} without a sha256 check "
                  "(--trust)")
    try:
        model = mlflow.sklearn.load_model(f"runs:/{run_id}/model")
    except Exception as exc:  # MLflow raises many kinds here; all mean "cannot load"
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else repr(exc)
        raise NotFoundError(f"cannot load the MLflow-logged model of run {run_id}: "
                            f"{first}") from None
    if type(model).__name__ not in STRATEGY_OF_CLASS:
        raise DataError(f"run {run_id}'s model is a {type(model).__name__}, not a revcli model")
    return LoadedModel(model=model, path=None, sha256=None, meta=meta, run_id=run_id,
                       source=how, checked="not checked (--trust, MLflow-logged copy)", run=run)


def load(settings: Settings, workspace: Workspace, *, run: str | None = None,
         model_file: str | Path | None = None, trust: bool = False, uri: str | None = None,
         reporter: Reporter = SILENT) -> LoadedModel:
    """``--run`` or ``--model``: exactly one of them."""
    from revcli.errors import ConfigError

    if (run is None) == (model_file is None):
        raise ConfigError("give exactly one of --run RUN (a run id or registry alias) and "
                          "--model FILE")
    if run is not None:
        return load_run(settings, workspace, run, uri=uri, trust=trust, reporter=reporter)
    return load_file(model_file, trust=trust, uri=uri, workspace=workspace,  # type: ignore[arg-type]
                     reporter=reporter)
