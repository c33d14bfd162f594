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

from revcli.tracking._client import model_requirements
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


def log_model(tracker: Tracker, run_id: str, model: Any, sample: Any,
              code_paths: Sequence[str] = ()) -> str:
    """Log ``model`` (sklearn flavour, cloudpickle, pinned requirements, a signature from the
    ``sample`` rows and the model's own predictions on them) as ``model`` of run ``run_id``;
    returns ``models:/<model id>``."""
    import mlflow.sklearn
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    import revcli

    _skip_package_scan()
    client = tracker.client
    run = client.get_run(run_id)
    logged = client.create_logged_model(run.info.experiment_id, name=MODEL_NAME,
                                        source_run_id=run_id)
    try:
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        description = Model(artifact_path=logged.artifact_location, model_uuid=logged.model_id,
                            run_id=run_id, model_id=logged.model_id)
        signature = table_signature(sample, model.predict(sample))
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
            mlflow.sklearn.save_model(
                model, path=str(local), mlflow_model=description, signature=signature,
                input_example=example,
                # skops refuses tree models without a trusted-types list; the strategies are
                # revcli's own classes, shipped with the model (code_paths).
                serialization_format="cloudpickle",
                pip_requirements=model_requirements(),
                code_paths=[*code_paths, str(Path(revcli.__file__).parent)])
            client.log_model_artifacts(logged.model_id, str(local))
    except BaseException:
        import contextlib

        with contextlib.suppress(Exception):
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return f"models:/{logged.model_id}"


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


def load_model(tracker: Tracker, run: Any) -> Any:
    """Download the run's logged ``model`` from its artifact location and load it with the
    sklearn flavour (the tracking URI is passed, never set globally)."""
    import mlflow.artifacts
    import mlflow.sklearn

    from revcli.errors import NotFoundError
    from revcli.tracking.registry import logged_model_id

    model_id = logged_model_id(tracker, run)
    if model_id is None:
        raise NotFoundError(f"run {run.run_id} logged no MLflow model named {MODEL_NAME!r}")
    location = tracker.client.get_logged_model(model_id).artifact_location
    with tempfile.TemporaryDirectory(prefix="revcli-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=tmp,
                                                    tracking_uri=tracker.uri)
        return mlflow.sklearn.load_model(local)
