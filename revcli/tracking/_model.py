"""Logging a model and its dataset into a run through the client, as MLflow 3's fluent
``mlflow.sklearn.log_model`` does, without its process-global tracking URI and active run.

The sequence is the one ``mlflow.models.Model.log`` follows (MLflow 3.x): create a logged model
for the run, link it as the run's output, save the flavour locally with a ``Model`` that names
the logged model, upload the directory to the logged model's artifact location, and mark it
READY (FAILED if anything on the way fails). The result loads with
``mlflow.pyfunc.load_model("runs:/<run>/model")`` and ``models:/<model id>``, and registers with
``create_model_version(source="models:/<model id>")`` like a fluent-logged one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli.tracking._client import library_versions, model_requirements
from revcli.tracking.registry import MODEL_NAME

if TYPE_CHECKING:
    from revcli.tracking._client import Tracker


def _skip_package_scan() -> None:
    """Spare ``save_model`` MLflow's scan of every installed distribution (~1 s per process).

    MLflow builds a module -> distribution map (``importlib.metadata.packages_distributions``)
    only to warn when a model's pinned requirements differ from the running environment
    (https://github.com/mlflow/mlflow/pull/5368); revcli pins them from that very environment
    (:func:`model_requirements`), so the check cannot find a mismatch, and passing
    ``pip_requirements`` does not skip it. There is no public switch (MLflow 3.17): this is the
    one private MLflow name revcli touches, guarded so that a rename makes it a no-op.
    """
    from mlflow.utils import requirements_utils

    if getattr(requirements_utils, "_MODULES_TO_PACKAGES", False) is None:
        requirements_utils._MODULES_TO_PACKAGES = {}


def table_signature(sample: Any, predictions: Any) -> Any:
    """The signature of a model that takes a table as revcli reads it: inferred from the raw
    rows, with integer columns widened to long and floats to double, so MLflow's schema
    enforcement accepts an int32 or int64, float32 or float64 column alike (an int32 column
    against a float schema is refused: "Can not safely convert int32 to float32"); categorical
    columns are described as strings (MLflow cannot convert a pandas categorical)."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema

    frame = sample.copy()
    for name in frame.columns:
        if str(frame[name].dtype) == "category":
            frame[name] = frame[name].astype(str)
    import warnings

    wider = {"integer": "long", "float": "double"}
    with warnings.catch_warnings():
        # MLflow's hint that integer columns cannot hold missing values: the table's own
        # integer columns are what the model was trained on.
        warnings.simplefilter("ignore", UserWarning)
        inputs = [ColSpec(wider.get(c.type.name, c.type.name), c.name)
                  for c in infer_signature(frame).inputs.inputs]
        outputs = infer_signature(frame, predictions).outputs
    return ModelSignature(Schema(inputs), outputs)


def describe(sample: Any, predictions: Any) -> Any:
    """The model's MLflow signature (:func:`table_signature`) from its input rows ``sample`` and
    its ``predictions`` on them, checked before any run exists: MLflow's failure to describe a
    column is a problem of the data or the model (DataError naming the column), never of the
    tracking store. The model itself is not needed, so the logger process never imports its
    libraries."""
    from revcli.errors import DataError, first_line

    try:
        return table_signature(sample, predictions)
    except Exception as exc:  # MLflow's type inference fails in many ways; all mean the data
        column = _undescribable(sample)
        named = f" (column {column!r})" if column is not None else ""
        raise DataError(f"MLflow cannot describe the model's input{named}: "
                        f"{type(exc).__name__}: {first_line(exc, 160)}; drop or convert that "
                        "column") from None


def _undescribable(sample: Any) -> str | None:
    """The first column MLflow's signature inference fails on alone, if one does."""
    from mlflow.models import infer_signature

    for name in sample.columns:
        frame = sample[[name]]
        if str(frame[name].dtype) == "category":
            frame = frame.astype(str)
        try:
            infer_signature(frame)
        except Exception:
            return str(name)
    return None


def _no_space(exc: OSError, where: Path | str, need: int, what: str) -> Exception:
    """A full disk while logging, named as such: the directory and about how much it needs."""
    from revcli.errors import StorageError

    directory = Path(str(where))
    if directory.name.startswith(".revcli-model-"):  # the staging directory, gone by now
        directory = directory.parent
    return StorageError(f"no space left on the device of {directory} ({what}): the model needs "
                        f"about {need / 1e6:.1f} MB there; free some space")


def _os_cause(exc: BaseException) -> OSError | None:
    """The OSError an exception was raised from (MLflow wraps skops' write errors)."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, OSError):
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def _full(exc: OSError) -> bool:
    import errno

    return exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc)


def _stage_code(directory: Path) -> str:
    """A copy of the few revcli modules a logged model needs at load time
    (:data:`revcli.serialization.MODEL_MODULES`, and the :data:`~revcli.serialization.MODEL_DATA`
    files they read), as a ``revcli`` package under ``directory``: the model's ``code/`` instead
    of the whole package."""
    import shutil

    import revcli
    from revcli.serialization import MODEL_DATA, MODEL_MODULES

    source = Path(revcli.__file__).parent
    target = directory / "revcli"
    for module in MODEL_MODULES:
        relative = Path(*module.split(".")[1:])
        file = (relative / "__init__.py" if (source / relative).is_dir()
                else relative.with_suffix(".py"))
        (target / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / file, target / file)
    for file in MODEL_DATA:
        shutil.copyfile(source / file, target / file)
    return str(target)


def log_model(tracker: Tracker, run_id: str, model_file: str | Path, sample: Any,
              predictions: Any, code_paths: Sequence[str] = (),
              trusted: Sequence[str] | None = None) -> str:
    """Log the skops file ``model_file`` as ``model`` of run ``run_id``; returns
    ``models:/<model id>``.

    The MLflow model is the one ``mlflow.sklearn.save_model(..., serialization_format="skops")``
    writes -- the skops file as ``model.skops``, a sklearn flavour naming it with revcli's
    trusted types, pinned requirements, an input example and a signature from the ``sample``
    rows and the model's ``predictions`` on them -- with a pyfunc flavour whose loader is
    revcli's own (:func:`revcli.serialization._load_pyfunc`: MLflow's sklearn loader refuses
    every format under ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``, taking the trusted types
    from the MLmodel file, which the model's writer controls) and the few revcli modules the
    model's classes live in as its code. It is built around the file the command already wrote
    and hashed, with MLflow's public ``mlflow.pyfunc.save_model`` and ``Model.add_flavor``, so
    this process never loads the model: it imports neither scikit-learn, XGBoost nor skops
    (~1.3 s of the logger process's CPU, issue 19).
    """
    import shutil

    import mlflow.pyfunc
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    from revcli import serialization
    from revcli.errors import DataError, RevcliError, first_line

    model_file = Path(model_file)
    need = model_file.stat().st_size
    versions = library_versions()  # the requirements and the sklearn flavour pin the same
    _skip_package_scan()
    client = tracker.client
    run = client.get_run(run_id)
    logged = client.create_logged_model(run.info.experiment_id, name=MODEL_NAME,
                                        source_run_id=run_id)
    try:
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        description = Model(artifact_path=logged.artifact_location, model_uuid=logged.model_id,
                            run_id=run_id, model_id=logged.model_id)
        signature = describe(sample, predictions)
        # Two rows as a request documents the format beside the signature: MLflow writes them
        # as input_example.json and serving_input_example.json, timestamps as ISO 8601 text
        # (what the served model takes; epoch numbers are refused, revcli.features).
        example = sample.head(2).copy()
        for name in example.columns:
            if str(example[name].dtype) == "category":
                example[name] = example[name].astype(str)
        # In the workspace, not TMPDIR: a full or tiny TMPDIR must not fail a logged run.
        scratch = tracker.workspace.root if tracker.workspace is not None else None
        with tempfile.TemporaryDirectory(prefix=".revcli-model-", dir=scratch) as tmp:
            local = Path(tmp) / MODEL_NAME
            try:
                mlflow.pyfunc.save_model(
                    path=str(local), loader_module=serialization.__name__,
                    mlflow_model=description, signature=signature, input_example=example,
                    pip_requirements=model_requirements(versions),
                    code_paths=[*code_paths, _stage_code(Path(tmp) / "code")])
                shutil.copyfile(model_file, local / serialization.SKOPS_FILE)
                _add_sklearn_flavour(description, local, list(
                    trusted or serialization.trusted_types()), versions["scikit-learn"])
            except OSError as exc:
                if _full(exc):
                    raise _no_space(exc, tmp, need, "saving the MLflow model") from None
                raise
            except RevcliError:
                raise
            except Exception as exc:  # MLflow's model code: a problem of the model ...
                cause = _os_cause(exc)
                if cause is not None and _full(cause):  # ... unless the disk filled under it
                    raise _no_space(cause, tmp, need, "saving the MLflow model") from None
                raise DataError(f"MLflow cannot save the model: {type(exc).__name__}: "
                                f"{first_line(exc, 200)}") from None
            try:
                client.log_model_artifacts(logged.model_id, str(local))
            except OSError as exc:
                if _full(exc):
                    raise _no_space(exc, logged.artifact_location.removeprefix("file://"),
                                    need, "storing the model's artifacts") from None
                raise
    except BaseException:
        import contextlib

        with contextlib.suppress(Exception):
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return f"models:/{logged.model_id}"


def _add_sklearn_flavour(description: Any, local: Path, trusted: list[str],
                         sklearn_version: str) -> None:
    """What ``mlflow.sklearn.save_model`` adds for a skops file beside the pyfunc flavour that
    ``mlflow.pyfunc.save_model`` wrote: the sklearn flavour (``mlflow.sklearn.load_model``
    reads the file with its trusted types), the pyfunc flavour's ``model_path`` and
    ``predict_fn``, and the size of it all; then the MLmodel file is written again."""
    import mlflow.sklearn
    from mlflow.models.model import MLMODEL_FILE_NAME
    from mlflow.pyfunc import FLAVOR_NAME as PYFUNC

    from revcli.serialization import SKOPS_FILE

    code = description.flavors[PYFUNC].get("code")
    description.flavors[PYFUNC].update(model_path=SKOPS_FILE, predict_fn="predict")
    description.add_flavor(mlflow.sklearn.FLAVOR_NAME, pickled_model=SKOPS_FILE,
                           sklearn_version=sklearn_version,
                           serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                           code=code, skops_trusted_types=trusted)
    description.model_size_bytes = sum(f.stat().st_size for f in local.rglob("*")
                                       if f.is_file())
    description.save(str(local / MLMODEL_FILE_NAME))


def log_dataset(tracker: Tracker, run_id: str, *, name: str, digest: str, source: str,
                schema: Mapping[str, str], rows: int, context: str = "training") -> None:
    """The dataset as the run's input: MLflow's Datasets column and lineage show its name,
    digest (the sha256), source and schema."""
    import json

    from mlflow.entities import Dataset, DatasetInput, InputTag

    dataset = Dataset(
        # MLflow keeps at most 36 characters of a digest: the whole sha256 is a tag beside it.
        name=name, digest=digest[:36], source_type="local" if "://" not in source else
        source.split("://", 1)[0], source=json.dumps({"uri": source}),
        schema=json.dumps({"mlflow_colspec": [{"name": k, "type": _mlflow_type(v)}
                                              for k, v in schema.items()]}),
        profile=json.dumps({"num_rows": rows}))
    tracker.client.log_inputs(run_id, datasets=[DatasetInput(
        dataset, tags=[InputTag("mlflow.data.context", context), InputTag("sha256", digest)])])


def _mlflow_type(arrow: str) -> str:
    """An Arrow type name (as a dataset manifest records it) as MLflow's column type."""
    if arrow.startswith("timestamp") or arrow.startswith("date"):
        return "datetime"
    if arrow in ("string", "large_string") or arrow.startswith("dictionary"):
        return "string"
    return {"int64": "long", "int32": "integer", "int16": "integer", "int8": "integer",
            "uint8": "integer", "bool": "boolean", "double": "double",
            "float": "float"}.get(arrow, arrow)


def load_model(tracker: Tracker, run: Any, pickle: bool = False) -> tuple[Any, str | None]:
    """Download the run's logged ``model`` and load it (the tracking URI is passed, never set
    globally): a skops file through :func:`revcli.serialization.load` (trusted types only),
    an older cloudpickle one with MLflow's sklearn flavour (callers decide whether it is
    trusted: ``pickle``). Returns the model and its format (SKOPS or PICKLE), or (None, None)
    for a pickle when ``pickle`` is false."""
    import mlflow.artifacts

    from revcli import serialization
    from revcli.errors import NotFoundError
    from revcli.tracking.registry import logged_model_id

    model_id = logged_model_id(tracker, run)
    if model_id is None:
        raise NotFoundError(f"run {run.run_id} logged no MLflow model named {MODEL_NAME!r}")
    location = tracker.client.get_logged_model(model_id).artifact_location
    with tempfile.TemporaryDirectory(prefix="revcli-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=tmp,
                                                         tracking_uri=tracker.uri))
        if (local / serialization.SKOPS_FILE).is_file():
            return serialization.load(local / serialization.SKOPS_FILE), serialization.SKOPS
        if not pickle:
            return None, None
        import mlflow.sklearn

        return mlflow.sklearn.load_model(str(local)), serialization.PICKLE
