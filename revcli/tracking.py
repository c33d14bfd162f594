"""MLflow tracking: where runs go, and how a trained model is logged.

With no tracking URI set, runs go to a sqlite store inside the workspace (``mlflow.db``) and
artifacts to ``mlartifacts/`` beside it, so nothing needs a server. ``MLFLOW_TRACKING_URI`` or
``--tracking-uri`` point it at a real server instead.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli import __version__
from revcli.errors import NotFoundError, TrackingError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from revcli.settings import Settings
    from revcli.workspace import Workspace

TAG_PREFIX = "revcli."

# Libraries whose versions a run records, by distribution name (import name may differ).
_LIBRARIES = ("scikit-learn", "xgboost-cpu", "xgboost", "numpy", "pandas", "pyarrow", "mlflow",
              "optuna", "joblib", "cloudpickle")


def library_versions() -> dict[str, str]:
    versions = {"revcli": __version__}
    for dist in _LIBRARIES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return versions


def model_requirements() -> list[str]:
    """Pinned pip requirements of a logged model (skips MLflow's slow inference)."""
    versions = library_versions()
    return [f"{dist}=={versions[dist]}" for dist in
            ("scikit-learn", "xgboost-cpu" if "xgboost-cpu" in versions else "xgboost", "numpy",
             "pandas", "cloudpickle", "mlflow") if dist in versions]


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def quiet_libraries() -> None:
    """Keep MLflow's and alembic's INFO chatter (store migrations, run URLs) off the terminal."""
    for name in ("mlflow", "alembic", "alembic.runtime.migration", "urllib3", "botocore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # log_model warns on every call that pickles can run code; revcli only loads pickles whose
    # sha256 it recorded, so the warning is noise here.
    logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)


def tracking_uri(settings: Settings, workspace: Workspace) -> str:
    return settings.tracking_uri or workspace.tracking_uri()


def configure(settings: Settings, workspace: Workspace) -> str:
    """Point MLflow at the effective tracking URI and return it."""
    import mlflow

    # A CLI should fail fast on an unreachable server rather than retry for minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    quiet_libraries()
    uri = tracking_uri(settings, workspace)
    if uri.startswith("sqlite:///") and uri == workspace.tracking_uri():
        workspace.ensure()
    # set_tracking_uri also exports MLFLOW_TRACKING_URI; undo that, or the next settings
    # resolution in this process (a PythonOperator training twice) would read it as the user's.
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous
    return uri


def client(uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def ensure_experiment(name: str, uri: str, workspace: Workspace) -> str:
    """The id of experiment ``name``, created (with artifacts in the workspace when the store is
    the workspace's own) if it does not exist yet."""
    from mlflow.exceptions import MlflowException

    try:
        c = client(uri)
        experiment = c.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                raise TrackingError(f"experiment {name!r} is deleted in {uri}; restore it or "
                                    "choose another with --experiment")
            return str(experiment.experiment_id)
        location = workspace.artifact_location() if uri == workspace.tracking_uri() else None
        return str(c.create_experiment(name, artifact_location=location))
    except MlflowException as exc:
        raise TrackingError(f"MLflow tracking at {uri} failed: {_describe(exc)}") from None
    except OSError as exc:
        raise TrackingError(f"MLflow tracking at {uri} is unreachable: {_describe(exc)}") from None


def flat_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Loggable hyperparameters: plain values only (sub-estimator objects are spelled out by
    their own ``name__param`` entries)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[key] = str(value)
        elif callable(value):
            out[key] = getattr(value, "__name__", type(value).__name__)
    return out


@contextlib.contextmanager
def run(experiment_id: str, run_name: str | None, tags: Mapping[str, str],
        uri: str, run_id: str | None = None) -> Iterator[Any]:
    """An MLflow run that ends FAILED if the block raises, translating MLflow errors.

    ``run_id`` resumes an existing run (e.g. a parent created earlier) instead of starting one.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        with mlflow.start_run(run_id=run_id, experiment_id=experiment_id, run_name=run_name,
                              tags=dict(tags)) as active:
            yield active
    except MlflowException as exc:
        raise TrackingError(f"MLflow tracking at {uri} failed: {_describe(exc)}") from None


def _skip_package_scan() -> None:
    """Spare ``log_model`` MLflow's scan of every installed distribution (~1 s).

    MLflow builds a module -> distribution map (importlib_metadata.packages_distributions) only
    to warn when a model's requirements differ from the running environment. Ours are read from
    that very environment (:func:`model_requirements`), so the scan cannot find a mismatch; with
    an empty map MLflow falls back to importlib.metadata.version per package. Guarded: if MLflow
    renames the private attribute this does nothing.
    """
    from mlflow.utils import requirements_utils

    if getattr(requirements_utils, "_MODULES_TO_PACKAGES", False) is None:
        requirements_utils._MODULES_TO_PACKAGES = {}


def log_model(model: Any, X_sample: Any, pred_sample: Any) -> str:
    """Log ``model`` with the sklearn flavour and a signature; return its model URI."""
    import mlflow
    from mlflow.models import infer_signature

    import revcli

    _skip_package_scan()

    signature = infer_signature(X_sample, pred_sample)
    info = mlflow.sklearn.log_model(
        model, name="model", signature=signature,
        # skops refuses tree models without a trusted-types list; the strategies are ours.
        serialization_format="cloudpickle",
        pip_requirements=model_requirements(),
        # The pickled strategies reference revcli's classes: ship the package with the model so
        # `mlflow.pyfunc.load_model` works where revcli is not installed.
        code_paths=[str(Path(revcli.__file__).parent)],
    )
    return str(info.model_uri)


def get_run(uri: str, run_id: str) -> Any:
    """A run by id, or NotFoundError."""
    from mlflow.exceptions import MlflowException

    try:
        return client(uri).get_run(run_id)
    except MlflowException as exc:
        if "not found" in str(exc).lower() or "RESOURCE_DOES_NOT_EXIST" in str(exc):
            raise NotFoundError(f"no MLflow run {run_id!r} in {uri}; `revcli compare runs` "
                                "lists recent runs") from None
        raise TrackingError(f"MLflow tracking at {uri} failed: {_describe(exc)}") from None
