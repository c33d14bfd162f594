"""``revcli push`` as a function: a trained model to S3 and the MLflow Model Registry, and the
promotion gate that decides whether it becomes the ``champion``.

What one push does, in this order (anything that can fail fast goes first):

1. checks the run's model file in the workspace (skops; ``model.joblib`` of older workspaces)
   against the sha256 its ``model.json`` (and the MLflow run's ``revcli.model_sha256`` tag)
   recorded;
2. with ``promote``, runs the gate (:func:`judge`): the candidate must beat the current champion
   on the chosen metric, scored on the same dataset sha256, split hash and population, and must
   not carry a leakage finding. A refusal or a loss raises :class:`~revcli.errors.GateFailed`
   (exit 1) *before anything is uploaded or registered*, so the S3 key keeps serving the
   champion; ``force`` overrides the gate and says what it overrode;
3. uploads the model with boto3's managed transfer (multipart when large) and
   ``x-amz-meta-sha256``, checking the stored size and sha256 of each object with a HEAD: by
   default (``format="both"``) a joblib pickle at the model URI (``regression_model.pkl``, for
   the consumers that expect one; its sha256 becomes the run's ``revcli.pickle_sha256`` tag, so
   revcli loads it under the sha256 rule) and the skops file beside it
   (``regression_model.skops``, which loads without running code); ``format="skops"`` uploads
   the skops file only;
4. only then registers (or, for a run pushed before, reuses) a version of the registered model
   from the run's logged MLflow model, tagged with dataset sha, split hash, model sha and metric
   values, and uploads the metadata JSON beside the objects, with both sha256s;
5. with ``promote``, moves the ``champion`` alias to the new version if it still points where
   it did when the gate judged (a compare-and-set). A promotion holds the registry's promotion
   lease from step 2 to here, so two promotions started together are judged one after the
   other: the second against the first's result.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli import atomic, metrics, tracking
from revcli.errors import ConfigError, GateFailed, NotFoundError, StorageError
from revcli.progress import SILENT, Reporter
from revcli.storage import Location, S3Storage, parse_uri
from revcli.tracking import LoggedRun
from revcli.tracking.registry import CHAMPION
from revcli.workspace import Workspace

if TYPE_CHECKING:
    from revcli.settings import Settings

WON, FIRST, ALREADY = "won", "first", "already champion"
BOTH, SKOPS_ONLY = "both", "skops"
FORMATS = (BOTH, SKOPS_ONLY)
LOST, INCOMPARABLE, LEAK = "lost", "incomparable", "leak"


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
    def from_run(cls, run: LoggedRun, version: str | None = None) -> RunFacts:
        r = run.record
        return cls(run_id=run.run_id, metrics=dict(run.metrics), dataset_sha256=r.dataset_sha256,
                   split_hash=r.split_hash, population=r.population,
                   leakage=",".join(r.leakage) or "none", version=version,
                   honest=None if r.honest is None else ("true" if r.honest else "false"),
                   too_good=bool(r.too_good))

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
    # candidate - champion on the same rows, with its 95 % interval (metrics.PairedDifference)
    paired: dict[str, Any] | None = None
    margin: str | None = None

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


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"


def parse_margin(text: str | None) -> tuple[float, bool] | None:
    """``--margin``: an absolute gain (``0.05``) or a share of the champion's score (``0.5%``);
    None: the default, a gain clear of the noise."""
    if text is None or str(text).strip() == "":
        return None
    raw = str(text).strip()
    relative = raw.endswith("%")
    try:
        value = float(raw.removesuffix("%"))
    except ValueError:
        raise ConfigError(f"--margin {text!r}: give a gain such as 0.05 (in the metric's unit) "
                          "or 0.5% (of the champion's score)") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"--margin {text!r} must be a number >= 0")
    return value, relative


def judge(candidate: RunFacts, champion: RunFacts | None, metric: str,
          force: bool = False, paired: metrics.PairedDifference | None = None,
          margin: str | None = None, paired_error: str | None = None) -> GateResult:
    """May ``candidate`` replace ``champion``? Refuses to compare scores from different data,
    splits or populations, refuses leaky runs, and needs a gain: by default one clear of the
    noise -- the whole 95 % interval of the paired difference on the same rows (``paired``,
    candidate - champion) is a gain; with ``margin`` (absolute, or ``"0.5%"`` of the champion's
    score) a gain larger than it (``"0"``: any gain)."""
    measure = metrics.get(metric, "the promotion gate")
    direction = measure.direction
    new = candidate.score(metric)
    if not math.isfinite(new):
        known = sorted(k for k in candidate.metrics if k in metrics.METRICS)
        raise ConfigError(f"run {candidate.run_id} has no {metric!r} metric to compare (it has "
                          f"{', '.join(known)}); choose another with --metric")
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
                cut = 12 if what != "population" else None  # hashes short, words whole
                refusals.append((INCOMPARABLE, f"{what} differs (candidate "
                                 f"{str(new_value)[:cut]}, champion {str(old_value)[:cut]}): "
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
        wanted = parse_margin(margin)
        result.margin = margin
        gain = measure.gain(new, old)
        if paired is not None:
            result.paired = paired.to_dict()
        if wanted is not None:
            size = wanted[0] * abs(old) / 100 if wanted[1] else wanted[0]
            won = gain > size
            rule = (f"a gain over --margin {margin}" if size > 0 else "any gain (--margin 0)")
        elif paired is not None and math.isfinite(paired.half_width):
            won = paired.clear() and gain > 0
            rule = "a gain clear of the noise"
        else:
            won = False
            rule = ("a gain clear of the noise, which could not be measured"
                    + (f" ({paired_error})" if paired_error else "")
                    + "; --margin 0 promotes on the recorded scores")
        result.verdict = WON if won else LOST
        relation = ("beats" if won else "ties with" if new == old else
                    "is better than" if gain > 0 else "does not beat")
        text = (f"candidate run {candidate.run_id[:12]} ({metric} {_fmt(new)}) "
                f"{relation} {CHAMPION} v{champion.version} (run "
                f"{champion.run_id[:12]}, {metric} {_fmt(old)}; {direction} is "
                f"better) on dataset {str(candidate.dataset_sha256)[:12]}, split "
                f"{candidate.split_hash}")
        if paired is not None and math.isfinite(paired.half_width):
            verdict = ("a clear gain" if paired.clear() else
                       "not a clear gain" if gain > 0 else "no gain")
            text += (f"; {metric} difference {paired.text()} (candidate - champion, 95 % "
                     f"interval, paired on the same {paired.rows:,} rows): {verdict}")
        if not won and gain > 0:
            text += f"; the gate needs {rule}"
        result.reasons = [text]
    return result


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
    files: list[dict[str, Any]] = field(default_factory=list)  # every object uploaded

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gate"] = self.gate.to_dict() if self.gate else None
        return data


def local_model(workspace: Workspace, run_id: str) -> tuple[Path, dict[str, Any]]:
    """The run's model file and its model.json, after checking the file's sha256."""
    from revcli.runs import META_FILE, model_path

    directory = workspace.model_dir(run_id)
    meta_path, path = directory / META_FILE, model_path(directory)
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


def skops_location(model: Location) -> Location:
    """``models/regression_model.pkl`` -> ``models/regression_model.skops`` (beside it)."""
    stem, dot, _ = model.key.rpartition(".")
    stem = stem if dot and "/" not in model.key[len(stem):] else model.key
    return model.with_key(f"{stem}.skops")


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


def _champion(tracker: tracking.Tracker, name: str) -> RunFacts | None:
    found = tracking.registry.champion(tracker, name)
    if found is None:
        return None
    version, run = found
    if run is None:
        return RunFacts(run_id="", metrics={}, dataset_sha256=None, split_hash=None,
                        population=None, leakage=None, version=version)
    return RunFacts.from_run(run, version=version)


def _paired(settings: Settings, workspace: Workspace, tracker: tracking.Tracker,
            candidate: str, champion: str, metric: str,
            reporter: Reporter) -> tuple[metrics.PairedDifference | None, str | None]:
    """The candidate and the champion scored on the same rows (revcli.evaluate.paired), or
    why they could not be."""
    from revcli import evaluate
    from revcli.errors import RevcliError

    reporter.step("scoring the candidate and the champion on the same rows")
    try:
        return evaluate.paired(settings, workspace, tracker, candidate, champion, metric,
                               reporter), None
    except RevcliError as exc:
        return None, str(exc).splitlines()[0]


def push(settings: Settings, ref: str, *, key: str | None = None, promote: bool = False,
         force: bool = False, margin: str | None = None, note: str | None = None,
         tags: Mapping[str, str] | None = None,
         storage: S3Storage | None = None, fmt: str = BOTH,
         reporter: Reporter = SILENT) -> PushResult:
    """Upload the model of run ``ref`` (any run reference: id, prefix, name, alias) and its
    metadata to S3 and register it; with ``promote``, make it champion if the gate passes (or
    ``force``); ``margin``: the gain the gate asks for (default: clear of the noise, measured
    on the same rows); ``note`` describes the model version; ``fmt`` is BOTH (a pickle at the
    key and the skops file beside it) or SKOPS_ONLY. See the module docstring for the order.
    A promotion holds the registry's promotion lease from the gate to the alias
    (:func:`revcli.tracking.registry.promotion_lease`): a compare-and-set."""
    parse_margin(margin)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    with contextlib.ExitStack() as held:
        return _push(settings, ref, key=key, promote=promote, force=force, margin=margin,
                     note=note, tags=tags, storage=storage, fmt=fmt, reporter=reporter, held=held)


def _push(settings: Settings, ref: str, *, key: str | None, promote: bool, force: bool,
          margin: str | None, note: str | None, tags: Mapping[str, str] | None,
          storage: S3Storage | None, fmt: str, reporter: Reporter,
          held: contextlib.ExitStack) -> PushResult:
    storage = storage or S3Storage.from_settings(settings)
    name = settings.registry_model
    tracking.registry.check_name(name)
    metric = settings.promote_metric
    metrics.get(metric, "the promotion gate")
    location = model_location(settings, key)
    safe_location = skops_location(location)
    if fmt == SKOPS_ONLY:
        location = safe_location
    meta_location = metadata_location(location)

    workspace = Workspace(settings.workspace)
    reporter.step("reading the MLflow run")
    tracker, _ = tracking.connect(settings, workspace, experiment=False, create=False)
    if tracker.is_workspace_store and not workspace.mlflow_db.is_file():
        raise NotFoundError(f"no MLflow store in workspace {workspace.root}, so no run {ref!r}; "
                            "train one with `revcli train`, or give --tracking-uri")
    run_id = tracking.resolve(tracker, ref, name).run_id
    reporter.step(f"checking the model of run {run_id}")
    path, meta = local_model(workspace, run_id)
    model_sha = str(meta["model_sha256"])
    run = tracker.get_run(run_id)
    tagged_sha = run.record.model_sha256
    if tagged_sha != model_sha:
        raise StorageError(f"the model file of run {run_id} (sha256 {model_sha[:12]}) is not the "
                           f"one the MLflow run logged ({(tagged_sha or 'none')[:12]}); re-train")
    facts = RunFacts.from_run(run)
    if not math.isfinite(facts.score(metric)):
        raise ConfigError(f"run {run_id} has no {metric!r} metric; choose another with --metric "
                          "(it has "
                          f"{', '.join(sorted(k for k in facts.metrics if k in metrics.METRICS))})")

    gate = None
    if promote:
        # One promotion at a time per registered model, from this judgement to the alias.
        held.enter_context(tracking.registry.promotion_lease(
            tracker, name, on_wait=lambda holder: reporter.step(
                f"waiting for another push --promote of {name!r} to finish")))
        reporter.step(f"comparing with the {CHAMPION} of {name!r}")
        champion = _champion(tracker, name)
        difference, why = None, None
        if (champion is not None and champion.run_id and champion.run_id != run_id
                and margin is None):
            difference, why = _paired(settings, workspace, tracker, run_id, champion.run_id,
                                      metric, reporter)
        gate = judge(facts, champion, metric, force=force, paired=difference, margin=margin,
                     paired_error=why)
        if not gate.promote:
            raise GateFailed(f"not promoted: {gate.summary()}; nothing was uploaded or "
                             "registered" + ("" if gate.verdict == LOST else
                                             " (--force promotes anyway)"))
        for line in gate.notes:
            reporter.warn(line)
        if not gate.passed:
            reporter.warn(gate.summary())

    reporter.step(f"checking bucket {location.bucket!r}")
    storage.check_bucket(location)

    reporter.step("writing the model's files")
    with _files(workspace, path, fmt) as (skops_file, pickle_file):
        pickle_sha = atomic.sha256_file(pickle_file) if pickle_file is not None else None
        skops_sha = atomic.sha256_file(skops_file)
        scores = {k: v for k, v in run.metrics.items() if math.isfinite(v)}
        version_tags = {
            "revcli.run_id": run_id,
            "revcli.dataset_sha256": facts.dataset_sha256 or "",
            "revcli.split_hash": facts.split_hash or "",
            "revcli.population": facts.population or "",
            "revcli.leakage": facts.leakage or "",
            "revcli.model_sha256": model_sha,
            **({"revcli.pickle_sha256": pickle_sha} if pickle_sha else {}),
            "revcli.skops_sha256": skops_sha,
            "revcli.s3_uri": location.uri,
            **{f"revcli.metric.{k}": f"{v:.6g}" for k, v in scores.items()
               if k in metrics.METRICS},
            **(tags or {}),
        }
        s3_meta = {"revcli-run-id": run_id,
                   "revcli-dataset-sha256": facts.dataset_sha256 or "",
                   "revcli-split-hash": facts.split_hash or "",
                   "revcli-registry": name}
        uploads = ([] if pickle_file is None else [(pickle_file, location, pickle_sha, PICKLE)])
        uploads.append((skops_file, safe_location, skops_sha, SKOPS))
        files = [_upload(storage, *item, s3_meta, reporter) for item in uploads]
    primary = files[0]
    if pickle_sha is not None:
        # The pickle's own record, so revcli loads the pushed .pkl under the sha256 rule; set
        # once it is in place (a failed upload changes nothing in the store).
        from revcli.modelref import PICKLE_SHA_TAG

        tracker.set_tag(run_id, PICKLE_SHA_TAG, pickle_sha)

    # Registered only now that the object is in place and checked: a failed upload leaves no
    # registry version pointing at nothing.
    reporter.step(f"registering run {run_id} as a version of {name!r}")
    version, reused = tracking.registry.register(tracker, name, run, version_tags,
                                                 description=note)

    document = {
        "run_id": run_id,
        "experiment_id": run.experiment_id,
        "tracking_uri": tracker.shown,
        "registry": {"name": name, "version": str(version.version)},
        "model": primary,
        "files": files,
        "strategy": meta.get("strategy"),
        "estimator": meta.get("estimator"),
        "features": meta.get("features"),
        "dropped_features": meta.get("dropped_features"),
        "hyperparameters": meta.get("params"),
        "params": dict(run.params),
        "metrics": scores,
        "population": facts.population,
        "dataset_sha256": facts.dataset_sha256,
        "dataset_source": run.record.dataset_source,
        "split_hash": facts.split_hash,
        "seed": meta.get("seed"),
        "test_size": meta.get("test_size"),
        "leakage": facts.leakage,
        "note": note,
        "versions": run.record.libraries or {"revcli": meta.get("revcli_version")},
        "pushed_with": tracking.library_versions(),
        "pushed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    body = (json.dumps(document, indent=2, sort_keys=True, default=str) + "\n").encode()
    reporter.step(f"uploading {meta_location}")
    storage.put_bytes(meta_location, body, {"sha256": hashlib.sha256(body).hexdigest(),
                                            "model-sha256": primary["sha256"],
                                            "revcli-run-id": run_id})

    champion_version = None
    if promote and gate is not None and gate.promote:
        tracking.registry.promote_if(tracker, name, str(version.version),
                                     gate.champion_version, gate.summary())
        champion_version = str(version.version)
    elif not promote:
        current = _champion(tracker, name)
        champion_version = current.version if current else None
        if current is not None and current.run_id != run_id:
            reporter.warn(f"{location} now holds run {run_id[:12]}, not the {CHAMPION} "
                          f"(v{current.version}, run {current.run_id[:12]}); push with "
                          "--promote to keep the key for the champion, or --key for candidates")

    return PushResult(run_id=run_id, model_uri=primary["uri"], metadata_uri=meta_location.uri,
                      model_sha256=primary["sha256"], model_bytes=primary["bytes"],
                      endpoint=storage.endpoint, tracking_uri=tracker.shown, registry_model=name,
                      version=str(version.version), version_reused=reused,
                      champion=champion_version, gate=gate, metadata=document, files=files)


PICKLE, SKOPS = "pickle", "skops"
_LOADS_WITH = {
    PICKLE: "joblib.load -- runs code: load it only after checking its sha256 against this "
            "JSON's and the MLflow run's revcli.pickle_sha256 tag (revcli does)",
    SKOPS: "revcli.serialization.load, or skops.io.load(file, trusted=<trusted_types here>) "
           "with revcli installed: builds only those types, runs no code of the file",
}


@contextlib.contextmanager
def _files(workspace: Workspace, path: Path, fmt: str) -> Iterator[tuple[Path, Path | None]]:
    """The model as a skops file and (for BOTH) a joblib pickle: the workspace's own file for
    its format, the other written to a temp file in the workspace from the checked model."""
    from revcli import serialization

    kind = serialization.format_of(path)
    with contextlib.ExitStack() as stack:
        model = None
        if kind == serialization.PICKLE or fmt == BOTH:
            # the file's sha256 was checked against model.json and the run (local_model)
            import joblib

            model = (serialization.load(path) if kind == serialization.SKOPS
                     else joblib.load(path))
        if kind == serialization.SKOPS:
            skops_file = path
        else:
            skops_file = stack.enter_context(atomic.temp_path(workspace.root, ".skops"))
            serialization.dump(model, skops_file)
        pickle_file = None
        if fmt == BOTH:
            if kind == serialization.PICKLE:
                pickle_file = path
            else:
                pickle_file = stack.enter_context(atomic.temp_path(workspace.root, ".pkl"))
                serialization.dumps_pickle(model, pickle_file)
        yield skops_file, pickle_file


def _upload(storage: S3Storage, path: Path, location: Location, sha: str, kind: str,
            s3_meta: Mapping[str, str], reporter: Reporter) -> dict[str, Any]:
    """One model file to ``location`` with its sha256 in the object's metadata, checked with a
    HEAD; what the metadata JSON says about it."""
    from revcli import serialization

    size = path.stat().st_size
    with reporter.task(f"uploading {location}", total=size, unit="bytes") as task:
        storage.upload_file(path, location, {"sha256": sha, **s3_meta}, progress=task.advance)
    stored = storage.head(location)
    if stored.size != size or stored.metadata.get("sha256") != sha:
        raise StorageError(f"{location} at {storage.endpoint} does not hold what was uploaded "
                           f"(size {stored.size:,} vs {size:,}, sha256 "
                           f"{stored.metadata.get('sha256', 'missing')[:12]}); push again")
    entry = {"uri": location.uri, "sha256": sha, "bytes": size, "format": kind,
             "loads_with": _LOADS_WITH[kind]}
    if kind == SKOPS:
        entry["trusted_types"] = serialization.trusted_types()
    return entry
