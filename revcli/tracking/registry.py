"""MLflow Model Registry calls (push): versions of revcli's registered model and its alias."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from revcli.errors import NotFoundError
from revcli.tracking._client import Tracker
from revcli.tracking.record import LoggedRun

CHAMPION = "champion"
MODEL_NAME = "model"  # the name every run logs its model under


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
    outputs = getattr(getattr(run.raw, "outputs", None), "model_outputs", None) or []
    for output in outputs:
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

