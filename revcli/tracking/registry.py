"""MLflow Model Registry calls (push): versions of revcli's registered model and its alias."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

from revcli.errors import GateFailed, NotFoundError, TrackingError
from revcli.tracking._client import Tracker
from revcli.tracking.record import LoggedRun

CHAMPION = "champion"
MODEL_NAME = "model"  # the name every run logs its model under
# The promotion lease: a registered model of this name beside the real one exists while a
# `push --promote` judges and moves the alias (see promotion_lease).
LEASE_SUFFIX = ".promotion-lease"
LEASE_OWNER_TAG = "revcli.lease.owner"
LEASE_WAIT = 600.0  # seconds a promotion waits for another one to finish
LEASE_STALE = 1800.0  # a lease this old is taken over (its holder cannot still be promoting)


def champion(tracker: Tracker, name: str) -> tuple[str, LoggedRun | None] | None:
    """(version, its run) behind the registered model's ``champion`` alias, or None. The run
    is None when the version records none."""
    client = tracker.client
    try:
        registered = tracker.call(f"read model {name!r}", client.get_registered_model, name)
    except NotFoundError:
        return None
    version = (registered.aliases or {}).get(CHAMPION)
    if version is None:
        return None
    mv = tracker.call(f"read {name} v{version}", client.get_model_version, name, str(version))
    if not mv.run_id:
        return str(version), None
    return str(version), tracker.get_run(mv.run_id)


def logged_model_id(tracker: Tracker, run: LoggedRun) -> str | None:
    """The id of the MLflow model the run logged as ``model`` (MLflow 3 logged models)."""
    outputs = getattr(getattr(run.raw, "outputs", None), "model_outputs", None)
    if outputs is None:  # a run read without MLflow (revcli.tracking._reader) has no outputs
        raw = tracker.call("read the run", tracker.client.get_run, run.run_id)
        outputs = getattr(getattr(raw, "outputs", None), "model_outputs", None)
    for output in outputs or []:
        logged = tracker.call("read the run's logged model", tracker.client.get_logged_model,
                              output.model_id)
        if logged.name == MODEL_NAME:
            return str(logged.model_id)
    return None


def register(tracker: Tracker, name: str, run: LoggedRun, tags: Mapping[str, str],
             description: str | None = None) -> tuple[Any, bool]:
    """(model version, reused): a version of ``name`` for ``run``, created from the run's logged
    model, or the one an earlier push of the same run created (tags refreshed)."""
    from mlflow.exceptions import MlflowException

    client = tracker.client

    def create_model() -> None:
        try:
            client.create_registered_model(name, description="revcli: session revenue models")
        except MlflowException as exc:
            if getattr(exc, "error_code", "") not in ("RESOURCE_ALREADY_EXISTS",
                                                       "ALREADY_EXISTS"):
                raise

    tracker.call(f"create model {name!r}", create_model)
    existing = tracker.call("search model versions", client.search_model_versions,
                            f"name = '{name}' and run_id = '{run.run_id}'")
    if existing:
        version = max(existing, key=lambda v: int(v.version))
        for key, value in tags.items():
            tracker.call("tag the model version", client.set_model_version_tag, name,
                         version.version, key, value)
        if description:
            describe(tracker, name, str(version.version), description)
        return version, True
    model_id = logged_model_id(tracker, run)
    if model_id is None:
        raise NotFoundError(f"run {run.run_id} has no logged MLflow model named {MODEL_NAME!r} "
                            "to register; runs of `revcli train` log one")
    # A server resolves "models:/<id>" itself. A local (sqlite) registry resolves it through
    # the process-global tracking URI (a TODO in MLflow's sqlalchemy_store.
    # create_model_version), which revcli never sets: there the source is the logged model's
    # artifact location, and the link the UI shows is the tag the server would have written.
    remote = tracker.uri.startswith(("http://", "https://", "databricks"))
    source = f"models:/{model_id}" if remote else tracker.call(
        "read the run's logged model", client.get_logged_model, model_id).artifact_location
    version = tracker.call(f"register a version of {name!r}", client.create_model_version,
                           name, source=source, run_id=run.run_id, tags=dict(tags),
                           model_id=model_id, description=description)
    if not remote:
        import json

        tracker.call("link the logged model", client.set_logged_model_tags, model_id,
                     {"mlflow.modelVersions": json.dumps([{"name": name,
                                                            "version": str(version.version)}])})
    return version, False


def describe(tracker: Tracker, name: str, version: str, description: str) -> None:
    tracker.call("describe the model version", tracker.client.update_model_version, name,
                 version, description=description)


def promote(tracker: Tracker, name: str, version: str, reason: str) -> None:
    """Move the ``champion`` alias to ``version`` and record why on it."""
    client = tracker.client
    tracker.call(f"set alias {CHAMPION}", client.set_registered_model_alias, name, CHAMPION,
                 version)
    tracker.call("tag the model version", client.set_model_version_tag, name, version,
                 "revcli.promotion", reason[:4000])


def check_name(name: str) -> None:
    if not name or "'" in name:
        from revcli.errors import ConfigError

        raise ConfigError(f"registered model name {name!r} is not usable; set registry_model")



def lease_name(name: str) -> str:
    return f"{name}{LEASE_SUFFIX}"


@contextlib.contextmanager
def promotion_lease(tracker: Tracker, name: str, wait: float = LEASE_WAIT,
                    on_wait: Any = None) -> Iterator[None]:
    """Hold the promotion lease of registered model ``name`` for the block: one promotion at a
    time, registry-side, so two `push --promote` started together are judged one after the
    other and the second is judged against the first's result.

    The lease is a registered model ``<name>.promotion-lease``: creating a registered model is
    atomic in every MLflow store (a unique name; a second create fails with
    RESOURCE_ALREADY_EXISTS), on a local sqlite file and behind ``mlflow server`` alike, and
    needs no lock service. It is tagged with its holder's process identity and deleted when the
    block ends. A lease whose holder provably died (same host) or older than LEASE_STALE is
    taken over; a live one is waited for up to ``wait`` seconds (``on_wait(holder)`` is called
    once), then the push fails with exit 2 naming the holder."""
    from mlflow.exceptions import MlflowException

    from revcli import processes

    client = tracker.client
    lock = lease_name(name)
    me = processes.identity()
    owner = json.dumps(me, sort_keys=True)
    deadline = time.monotonic() + wait
    said = False

    def create() -> bool:
        try:
            client.create_registered_model(
                lock, tags={LEASE_OWNER_TAG: owner},
                description="revcli: held while `revcli push --promote` moves the champion "
                            f"alias of {name!r}; deleted when it ends (safe to delete if its "
                            "holder is gone)")
            return True
        except MlflowException as exc:
            if getattr(exc, "error_code", "") in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                return False
            raise

    while not tracker.call(f"take the promotion lease of {name!r}", create):
        holder, age = _lease_holder(tracker, lock)
        if holder is None and age is None:
            continue  # released between our create and this read: try again at once
        if processes.gone(holder) or (age is not None and age > LEASE_STALE):
            with contextlib.suppress(NotFoundError, TrackingError):
                tracker.call("take over a dead promotion lease", client.delete_registered_model,
                             lock)
            continue
        if time.monotonic() > deadline:
            who = (f"pid {holder.get('pid')} on {holder.get('host')}" if holder
                   else "another process")
            raise TrackingError(f"another `push --promote` of {name!r} ({who}) has held the "
                                f"promotion lease for {age or 0:.0f} s; try again when it "
                                f"ends, or delete the registered model {lock!r} if it is gone")
        if not said and on_wait is not None:
            on_wait(holder)
            said = True
        time.sleep(0.2)
    try:
        yield
    finally:
        with contextlib.suppress(NotFoundError, TrackingError):
            if (_lease_holder(tracker, lock)[0] or {}) == json.loads(owner):
                tracker.call("release the promotion lease", client.delete_registered_model,
                             lock)


def _lease_holder(tracker: Tracker, lock: str) -> tuple[dict[str, Any] | None, float | None]:
    """(holder identity, age in seconds) of the lease, (None, None) when there is none."""
    try:
        model = tracker.call("read the promotion lease", tracker.client.get_registered_model,
                             lock)
    except NotFoundError:
        return None, None
    try:
        holder = json.loads((model.tags or {}).get(LEASE_OWNER_TAG, ""))
    except ValueError:
        holder = None
    created = getattr(model, "creation_timestamp", None)
    age = time.time() - created / 1000.0 if created else None
    return (holder if isinstance(holder, dict) else None), age


def promote_if(tracker: Tracker, name: str, version: str, expected: str | None,
               reason: str) -> None:
    """Compare-and-set of the ``champion`` alias: move it to ``version`` only if it still
    points at ``expected`` (the version the gate judged against; None: no champion), else
    GateFailed (exit 1) naming what changed. Called under :func:`promotion_lease`, so only a
    writer that does not take the lease (an older revcli, a hand edit) can make it fail."""
    current = champion(tracker, name)
    now = current[0] if current else None
    if now != expected and now != version:
        was = f"v{expected}" if expected else "no champion"
        raise GateFailed(f"not promoted: the {CHAMPION} of {name!r} changed to v{now} while "
                         f"this push was judged against {was}; the model was uploaded and "
                         "registered, push again with --promote to be judged against the new "
                         f"{CHAMPION}")
    promote(tracker, name, version, reason)
