"""``revcli push`` as a function: a trained model to S3 and the MLflow Model Registry, and the
promotion gate that decides whether it becomes the ``champion``.

What one push does, in this order (anything that can fail fast goes first):

1. checks the run's joblib file in the workspace against the sha256 its ``model.json`` (and the
   MLflow run's ``revcli.model_sha256`` tag) recorded;
2. with ``promote``, runs the gate (:func:`judge`): the candidate must beat the current champion
   on the chosen metric, scored on the same dataset sha256, split hash and population, and must
   not carry a leakage finding. A refusal or a loss raises :class:`~revcli.errors.GateFailed`
   (exit 1) *before anything is uploaded or registered*, so the S3 key keeps serving the
   champion; ``force`` overrides the gate and says what it overrode;
3. registers (or, for a run pushed before, reuses) a version of the registered model from the
   run's logged MLflow model, tagged with dataset sha, split hash, model sha and metric values;
4. uploads the joblib file with boto3's managed transfer (multipart when large) and
   ``x-amz-meta-sha256``, checks the stored size and sha256 with a HEAD, then uploads the
   metadata JSON beside it;
5. with ``promote``, moves the ``champion`` alias to the new version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import urllib.parse
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli import atomic, tracking
from revcli.errors import ConfigError, GateFailed, NotFoundError, StorageError, TrackingError
from revcli.metrics import HIGHER, LOWER, METRICS
from revcli.progress import SILENT, Reporter
from revcli.storage import Location, S3Storage, parse_uri
from revcli.workspace import Workspace

if TYPE_CHECKING:
    from revcli.settings import Settings

CHAMPION = "champion"
MODEL_NAME = "model"  # the name revcli.tracking.log_model logs every model under

WON, FIRST, ALREADY = "won", "first", "already champion"
LOST, INCOMPARABLE, LEAK = "lost", "incomparable", "leak"


def _safe_uri(uri: str) -> str:
    """A tracking URI fit to print or store: no user:password@."""
    parts = urllib.parse.urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


# -- the gate --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFacts:
    """What the gate needs to know about one run (read from its MLflow tags and metrics)."""

    run_id: str
    metrics: Mapping[str, float]
    dataset_sha256: str | None
    split_hash: str | None
    population: str | None
    leakage: str | None
    version: str | None = None
    # revcli.honest: "false" when the scores rest on a leaking feature (strategy-aware: a feature
    # constant on converters cannot inflate converting_only) or are too good to be true.
    honest: str | None = None
    too_good: bool = False

    @classmethod
    def from_run(cls, run: Any, version: str | None = None) -> RunFacts:
        tags = run.data.tags
        return cls(run_id=run.info.run_id, metrics=dict(run.data.metrics),
                   dataset_sha256=tags.get("revcli.dataset_sha256"),
                   split_hash=tags.get("revcli.split_hash"),
                   population=tags.get("revcli.population"),
                   leakage=tags.get("revcli.leakage"), version=version,
                   honest=tags.get("revcli.honest"),
                   too_good=tags.get("revcli.too_good") == "true")

    @property
    def leaks(self) -> list[str]:
        return [f for f in (self.leakage or "").split(",") if f and f != "none"]

    def score(self, metric: str) -> float:
        value = self.metrics.get(metric)
        return float(value) if value is not None else math.nan

    @property
    def label(self) -> str:
        return (f"v{self.version}, run {self.run_id[:12]}" if self.version
                else f"run {self.run_id[:12]}")


@dataclass
class GateResult:
    """The promotion gate's verdict; ``promote`` says whether the alias moves."""

    metric: str
    direction: str
    verdict: str
    reasons: list[str]
    candidate: float
    champion: float | None = None
    champion_version: str | None = None
    champion_run: str | None = None
    forced: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict in (WON, FIRST, ALREADY)

    @property
    def promote(self) -> bool:
        return self.passed or self.forced

    def summary(self) -> str:
        text = "; ".join(self.reasons)
        if self.forced and not self.passed:
            return f"promoted by --force over the gate: {text}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "promote": self.promote}


def _better(direction: str, new: float, old: float) -> bool:
    if direction == LOWER:
        return new < old
    if direction == HIGHER:
        return new > old
    return abs(new - 1.0) < abs(old - 1.0)  # "closer to 1"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"


def judge(candidate: RunFacts, champion: RunFacts | None, metric: str,
          force: bool = False) -> GateResult:
    """May ``candidate`` replace ``champion``? Refuses to compare scores from different data,
    splits or populations, refuses leaky runs, and needs a strict improvement."""
    if metric not in METRICS:
        raise ConfigError(f"unknown promotion metric {metric!r}; choose one of "
                          f"{', '.join(METRICS)}")
    direction = METRICS[metric][1]
    new = candidate.score(metric)
    if not math.isfinite(new):
        raise ConfigError(f"run {candidate.run_id} has no {metric!r} metric to compare (it has "
                          f"{', '.join(sorted(k for k in candidate.metrics if k in METRICS))}); "
                          "choose another with --metric")
    result = GateResult(metric=metric, direction=direction, verdict=WON, reasons=[],
                        candidate=new, forced=force)
    if champion is not None:
        result.champion = champion.score(metric)
        result.champion_version = champion.version
        result.champion_run = champion.run_id

    refusals = []
    leaks = candidate.leaks
    # Runs logged before the revcli.honest tag existed are judged by their leakage tag alone.
    dishonest = candidate.honest == "false" or (candidate.honest is None and bool(leaks))
    if dishonest and leaks:
        refusals.append((LEAK, f"run {candidate.run_id[:12]} was trained with leaking "
                               f"feature(s) {','.join(leaks)} and its scores rest on them (tags "
                               f"revcli.leakage, revcli.honest); re-train with --drop-feature "
                               f"{leaks[0]}"))
    elif dishonest:
        refusals.append((LEAK, f"run {candidate.run_id[:12]} scores too good to be true for "
                               "this data (tag revcli.too_good); check it for leakage"))
    elif leaks:
        result.notes.append(f"the leakage audit of run {candidate.run_id[:12]} named "
                            f"{','.join(leaks)}, which cannot inflate its scores (constant on "
                            f"the rows it is scored on; tag revcli.honest=true)")
    if champion is not None and champion.run_id != candidate.run_id:
        for what, new_value, old_value in (
                ("dataset sha256", candidate.dataset_sha256, champion.dataset_sha256),
                ("split hash", candidate.split_hash, champion.split_hash),
                ("population", candidate.population, champion.population)):
            if new_value != old_value:
                refusals.append((INCOMPARABLE, f"{what} differs (candidate "
                                 f"{str(new_value)[:12]}, champion {str(old_value)[:12]}): "
                                 f"{metric} scores are not comparable"))
        if not refusals and not math.isfinite(result.champion or math.nan):
            refusals.append((INCOMPARABLE, f"champion ({champion.label}) has no {metric!r} "
                                           "metric"))
    if refusals:
        result.verdict = refusals[0][0]
        result.reasons = [text for _, text in refusals]
        return result

    if champion is None:
        result.verdict = FIRST
        result.reasons = [f"no {CHAMPION} yet: the first pushed model becomes {CHAMPION} "
                          f"({metric} {_fmt(new)})"]
    elif champion.run_id == candidate.run_id:
        result.verdict = ALREADY
        result.reasons = [f"run {candidate.run_id[:12]} already is {CHAMPION} "
                          f"(v{champion.version})"]
    else:
        old = result.champion
        assert old is not None
        won = _better(direction, new, old)
        result.verdict = WON if won else LOST
        relation = ("beats" if won else "ties with" if new == old else "does not beat")
        result.reasons = [f"candidate run {candidate.run_id[:12]} ({metric} {_fmt(new)}) "
                          f"{relation} {CHAMPION} v{champion.version} (run "
                          f"{champion.run_id[:12]}, {metric} {_fmt(old)}; {direction} is "
                          f"better) on dataset {str(candidate.dataset_sha256)[:12]}, split "
                          f"{candidate.split_hash}"]
    return result


# -- the registry ----------------------------------------------------------------------------


def _mlflow_call(uri: str, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return fn(*args, **kwargs)
    except MlflowException as exc:
        raise TrackingError(f"MLflow registry at {_safe_uri(uri)} failed to {what}: "
                            f"{tracking._describe(exc)}") from None
    except OSError as exc:
        raise TrackingError(f"MLflow registry at {_safe_uri(uri)} is unreachable ({what}): "
                            f"{tracking._describe(exc)}") from None


def _is_missing(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower()


def current_champion(client: Any, uri: str, name: str) -> RunFacts | None:
    """The run behind the registered model's ``champion`` alias, or None."""
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(name)
    except MlflowException as exc:
        if _is_missing(exc):
            return None
        raise TrackingError(f"MLflow registry at {_safe_uri(uri)} failed to read model "
                            f"{name!r}: {tracking._describe(exc)}") from None
    version = (registered.aliases or {}).get(CHAMPION)
    if version is None:
        return None
    mv = _mlflow_call(uri, f"read {name} v{version}", client.get_model_version, name,
                      str(version))
    if not mv.run_id:
        return RunFacts(run_id="", metrics={}, dataset_sha256=None, split_hash=None,
                        population=None, leakage=None, version=str(version))
    run = _mlflow_call(uri, f"read the run of {name} v{version}", client.get_run, mv.run_id)
    return RunFacts.from_run(run, version=str(version))


def _logged_model_id(client: Any, uri: str, run: Any) -> str | None:
    """The id of the MLflow model the run logged as ``model`` (MLflow 3 logged models)."""
    outputs = getattr(getattr(run, "outputs", None), "model_outputs", None) or []
    for output in outputs:
        logged = _mlflow_call(uri, "read the run's logged model", client.get_logged_model,
                              output.model_id)
        if logged.name == MODEL_NAME:
            return str(logged.model_id)
    return None


def register(client: Any, uri: str, name: str, run: Any,
             tags: Mapping[str, str]) -> tuple[Any, bool]:
    """(model version, reused): a version of ``name`` for ``run``, created from the run's logged
    model, or the one an earlier push of the same run created (tags refreshed)."""
    from mlflow.exceptions import MlflowException

    run_id = run.info.run_id
    try:
        client.create_registered_model(name, description="revcli: session revenue models")
    except MlflowException as exc:
        if getattr(exc, "error_code", "") not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise TrackingError(f"MLflow registry at {_safe_uri(uri)} failed to create model "
                                f"{name!r}: {tracking._describe(exc)}") from None
    existing = _mlflow_call(uri, "search model versions", client.search_model_versions,
                            f"name = '{name}' and run_id = '{run_id}'")
    if existing:
        version = max(existing, key=lambda v: int(v.version))
        for key, value in tags.items():
            _mlflow_call(uri, "tag the model version", client.set_model_version_tag, name,
                         version.version, key, value)
        return version, True
    model_id = _logged_model_id(client, uri, run)
    if model_id is None:
        raise NotFoundError(f"run {run_id} has no logged MLflow model named {MODEL_NAME!r} to "
                            "register; runs of `revcli train` log one")
    version = _mlflow_call(uri, f"register a version of {name!r}", client.create_model_version,
                           name, source=f"models:/{model_id}", run_id=run_id, tags=dict(tags),
                           model_id=model_id)
    return version, False


# -- push ------------------------------------------------------------------------------------


@dataclass
class PushResult:
    run_id: str
    model_uri: str
    metadata_uri: str
    model_sha256: str
    model_bytes: int
    endpoint: str
    tracking_uri: str
    registry_model: str
    version: str
    version_reused: bool
    champion: str | None
    gate: GateResult | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gate"] = self.gate.to_dict() if self.gate else None
        return data


def local_model(workspace: Workspace, run_id: str) -> tuple[Path, dict[str, Any]]:
    """The run's joblib file and its model.json, after checking the file's sha256."""
    directory = workspace.model_dir(run_id)
    meta_path, path = directory / "model.json", directory / "model.joblib"
    if not meta_path.is_file() or not path.is_file():
        raise NotFoundError(f"no model of run {run_id!r} in {workspace.models_dir}; push from "
                            "the workspace that trained it (--workspace), or train one with "
                            "`revcli train`")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read {meta_path}: {exc}") from None
    expected = meta.get("model_sha256")
    actual = atomic.sha256_file(path)
    if actual != expected:
        raise StorageError(f"{path} has sha256 {actual[:12]}, but model.json recorded "
                           f"{str(expected)[:12]}: the file changed after training; re-train "
                           "the model instead of pushing it")
    return path, meta


def metadata_location(model: Location) -> Location:
    """``models/regression_model.pkl`` -> ``models/regression_model.json`` (beside it)."""
    stem, dot, _ = model.key.rpartition(".")
    key = f"{stem}.json" if dot and "/" not in model.key[len(stem):] else f"{model.key}.json"
    if key == model.key:
        key = f"{model.key}.metadata.json"
    return model.with_key(key)


def model_location(settings: Settings, key: str | None = None) -> Location:
    location = parse_uri(settings.model_uri)
    return location.with_key(key) if key else location


def push(settings: Settings, run_id: str, *, key: str | None = None, promote: bool = False,
         force: bool = False, storage: S3Storage | None = None,
         reporter: Reporter = SILENT) -> PushResult:
    """Upload run ``run_id``'s model and metadata to S3 and register it; with ``promote``, make
    it champion if the gate passes (or ``force``). See the module docstring for the order."""
    storage = storage or S3Storage.from_settings(settings)
    name = settings.registry_model
    if not name or "'" in name:
        raise ConfigError(f"registered model name {name!r} is not usable; set registry_model")
    metric = settings.promote_metric
    if metric not in METRICS:
        raise ConfigError(f"unknown promotion metric {metric!r}; choose one of "
                          f"{', '.join(METRICS)}")
    location = model_location(settings, key)
    meta_location = metadata_location(location)

    workspace = Workspace(settings.workspace)
    reporter.step(f"checking the model of run {run_id}")
    path, meta = local_model(workspace, run_id)
    model_sha = str(meta["model_sha256"])

    reporter.step("reading the MLflow run")
    uri = tracking.configure(settings, workspace)
    client = tracking.client(uri)
    run = tracking.get_run(uri, run_id)
    tagged_sha = run.data.tags.get("revcli.model_sha256")
    if tagged_sha and tagged_sha != model_sha:
        raise StorageError(f"the model file of run {run_id} (sha256 {model_sha[:12]}) is not the "
                           f"one the MLflow run logged ({tagged_sha[:12]}); re-train")
    facts = RunFacts.from_run(run)
    if not math.isfinite(facts.score(metric)):
        raise ConfigError(f"run {run_id} has no {metric!r} metric; choose another with --metric "
                          f"(it has {', '.join(sorted(k for k in facts.metrics if k in METRICS))})")

    gate = None
    if promote:
        reporter.step(f"comparing with the {CHAMPION} of {name!r}")
        champion = current_champion(client, uri, name)
        gate = judge(facts, champion, metric, force=force)
        if not gate.promote:
            raise GateFailed(f"not promoted: {gate.summary()}; nothing was uploaded or "
                             "registered" + ("" if gate.verdict == LOST else
                                             " (--force promotes anyway)"))
        for note in gate.notes:
            reporter.warn(note)
        if not gate.passed:
            reporter.warn(gate.summary())

    reporter.step(f"checking bucket {location.bucket!r}")
    storage.check_bucket(location)

    metrics = {k: v for k, v in run.data.metrics.items() if math.isfinite(v)}
    version_tags = {
        "revcli.run_id": run_id,
        "revcli.dataset_sha256": facts.dataset_sha256 or "",
        "revcli.split_hash": facts.split_hash or "",
        "revcli.population": facts.population or "",
        "revcli.leakage": facts.leakage or "",
        "revcli.model_sha256": model_sha,
        "revcli.s3_uri": location.uri,
        **{f"revcli.metric.{k}": f"{v:.6g}" for k, v in metrics.items() if k in METRICS},
    }
    reporter.step(f"registering run {run_id} as a version of {name!r}")
    version, reused = register(client, uri, name, run, version_tags)

    size = path.stat().st_size
    s3_meta = {"sha256": model_sha, "revcli-run-id": run_id,
               "revcli-dataset-sha256": facts.dataset_sha256 or "",
               "revcli-split-hash": facts.split_hash or "",
               "revcli-registry": f"{name}/{version.version}"}
    with reporter.task(f"uploading {location}", total=size, unit="bytes") as task:
        storage.upload_file(path, location, s3_meta, progress=task.advance)
    stored = storage.head(location)
    if stored.size != size or stored.metadata.get("sha256") != model_sha:
        raise StorageError(f"{location} at {storage.endpoint} does not hold what was uploaded "
                           f"(size {stored.size:,} vs {size:,}, sha256 "
                           f"{stored.metadata.get('sha256', 'missing')[:12]}); push again")

    versions = {k.removeprefix("revcli.lib."): v for k, v in run.data.tags.items()
                if k.startswith("revcli.lib.")}
    document = {
        "run_id": run_id,
        "experiment_id": run.info.experiment_id,
        "tracking_uri": _safe_uri(uri),
        "registry": {"name": name, "version": str(version.version)},
        "model": {"uri": location.uri, "sha256": model_sha, "bytes": size,
                  "format": "joblib", "loads_with": "joblib.load (revcli installed)"},
        "strategy": meta.get("strategy"),
        "estimator": meta.get("estimator"),
        "features": meta.get("features"),
        "dropped_features": meta.get("dropped_features"),
        "hyperparameters": meta.get("params"),
        "params": dict(run.data.params),
        "metrics": metrics,
        "population": facts.population,
        "dataset_sha256": facts.dataset_sha256,
        "dataset_source": run.data.tags.get("revcli.dataset_source"),
        "split_hash": facts.split_hash,
        "seed": meta.get("seed"),
        "test_size": meta.get("test_size"),
        "leakage": facts.leakage,
        "versions": versions or {"revcli": meta.get("revcli_version")},
        "pushed_with": tracking.library_versions(),
        "pushed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    body = (json.dumps(document, indent=2, sort_keys=True, default=str) + "\n").encode()
    reporter.step(f"uploading {meta_location}")
    storage.put_bytes(meta_location, body, {"sha256": hashlib.sha256(body).hexdigest(),
                                            "model-sha256": model_sha,
                                            "revcli-run-id": run_id})

    champion_version = None
    if promote and gate is not None and gate.promote:
        _mlflow_call(uri, f"set alias {CHAMPION}", client.set_registered_model_alias, name,
                     CHAMPION, str(version.version))
        _mlflow_call(uri, "tag the model version", client.set_model_version_tag, name,
                     str(version.version), "revcli.promotion", gate.summary()[:4000])
        champion_version = str(version.version)
    elif not promote:
        current = current_champion(client, uri, name)
        champion_version = current.version if current else None
        if current is not None and current.run_id != run_id:
            reporter.warn(f"{location} now holds run {run_id[:12]}, not the {CHAMPION} "
                          f"(v{current.version}, run {current.run_id[:12]}); push with "
                          "--promote to keep the key for the champion, or --key for candidates")

    return PushResult(run_id=run_id, model_uri=location.uri, metadata_uri=meta_location.uri,
                      model_sha256=model_sha, model_bytes=size, endpoint=storage.endpoint,
                      tracking_uri=_safe_uri(uri), registry_model=name,
                      version=str(version.version), version_reused=reused,
                      champion=champion_version, gate=gate, metadata=document)
