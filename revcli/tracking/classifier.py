"""The classification team's conversion model as two_stage's first stage (``--classifier``).

A reference names a model in the tracking store -- ``models:/NAME@ALIAS``,
``models:/NAME/VERSION``, ``runs:/RUN_ID/PATH`` or a bare run id (its logged ``model``) -- of
MLflow's scikit-learn flavour (skops or pickle) or XGBoost flavour. It is loaded without running
code wherever it can be: a skops file with revcli's trusted types only (any other type is
refused naming it), an XGBoost model from XGBoost's own format; a pickle only with ``trust``
(``--trust``: nothing revcli recorded vouches for another team's file). It must be a binary
classifier with ``predict_proba``, and its input columns (its signature, else
``feature_names_in_``) must be features of the table.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli import atomic, serialization
from revcli.errors import ConfigError, DataError, NotFoundError
from revcli.progress import SILENT, Reporter

if TYPE_CHECKING:
    from revcli.tracking import Tracker


@dataclass
class External:
    """A loaded classifier and where it came from."""

    model: Any
    columns: list[str]
    uri: str
    run_id: str | None
    version: str | None
    sha256: str
    flavor: str
    checked: str
    extra: dict[str, Any] = field(default_factory=dict)

    def source(self) -> dict[str, Any]:
        """What the run, the saved model and ``--json`` record: ``classifier``."""
        return {"uri": self.uri, "run_id": self.run_id, "version": self.version,
                "sha256": self.sha256, "flavor": self.flavor, "columns": list(self.columns)}

    def params(self) -> dict[str, str]:
        return {f"classifier.{k}": str(v) for k, v in self.source().items()
                if v is not None and k != "columns"}

    def tags(self) -> dict[str, str]:
        """revcli.* tags (without the prefix, as RunSpec.tags takes them)."""
        return {f"classifier_{k}": str(v) for k, v in self.source().items()
                if v is not None and k in ("uri", "run_id", "version", "sha256")}

    def wrapped(self) -> Any:
        from revcli.strategies._two_stage import ExternalClassifier

        return ExternalClassifier(self.model, tuple(self.columns), self.source())

    def check_columns(self, features: list[str]) -> None:
        missing = [c for c in self.columns if c not in features]
        if missing:
            raise DataError(f"the classifier {self.uri} needs column(s) the table's features "
                            f"lack: {', '.join(missing)}")


def _download_location(tracker: Tracker, ref: str) -> tuple[str, str | None, str | None]:
    """(artifact location of the model, run id, registry version) of reference ``ref``."""
    from revcli.tracking import refs

    client = tracker.client
    ref = ref.strip()
    if ref.startswith("models:/"):
        body = ref.removeprefix("models:/")
        if "@" in body:
            name, alias = body.split("@", 1)
            version = tracker.call(f"read {ref}", client.get_model_version_by_alias, name, alias)
        elif "/" in body:
            name, number = body.rsplit("/", 1)
            version = tracker.call(f"read {ref}", client.get_model_version, name, number)
        else:
            raise ConfigError(f"--classifier {ref!r}: give models:/NAME@ALIAS or "
                              "models:/NAME/VERSION")
        location = tracker.call(f"locate {ref}", client.get_model_version_download_uri,
                                version.name, version.version)
        return str(location), version.run_id or None, str(version.version)
    if ref.startswith("runs:/"):
        run_id, _, path = ref.removeprefix("runs:/").partition("/")
    elif refs.RUN_ID.match(ref):
        run_id, path = ref, "model"
    else:
        raise ConfigError(f"--classifier {ref!r} is not models:/NAME@ALIAS, "
                          "models:/NAME/VERSION, runs:/RUN_ID/PATH or a run id")
    path = path.strip("/") or "model"
    run = tracker.call(f"read run {run_id}", client.get_run, run_id)
    outputs = getattr(getattr(run, "outputs", None), "model_outputs", None) or []
    for output in outputs:
        logged = tracker.call("read the run's logged model", client.get_logged_model,
                              output.model_id)
        if logged.name == path:
            return str(logged.artifact_location), run_id, None
    return f"runs:/{run_id}/{path}", run_id, None


def load(tracker: Tracker, ref: str, *, trust: bool = False,
         reporter: Reporter = SILENT) -> External:
    """The classifier ``ref`` names, loaded safely (see the module docstring)."""
    import mlflow.artifacts

    location, run_id, version = _download_location(tracker, ref)
    with tempfile.TemporaryDirectory(prefix="revcli-classifier-") as tmp:
        local = Path(tracker.call(f"download {ref}", mlflow.artifacts.download_artifacts,
                                  artifact_uri=location, dst_path=tmp,
                                  tracking_uri=tracker.uri))
        if not (local / "MLmodel").is_file():
            raise NotFoundError(f"--classifier {ref}: {location} holds no MLflow model "
                                "(no MLmodel file)")
        from mlflow.models import Model

        description = Model.load(str(local / "MLmodel"))
        model, flavor, data, checked = _load_flavor(ref, local, description.flavors, trust,
                                                    reporter)
        sha = atomic.sha256_file(data)
        columns = _columns(ref, description, model)
    if not callable(getattr(model, "predict_proba", None)):
        raise DataError(f"--classifier {ref}: a {type(model).__name__} has no predict_proba; "
                        "two_stage needs P(order)")
    classes = [c.item() if hasattr(c, "item") else c for c in getattr(model, "classes_", [])]
    if len(classes) != 2 or 1 not in classes:
        raise DataError(f"--classifier {ref}: classes {classes or 'unknown'} are not a binary "
                        "order (1) / no order (0)")
    return External(model=model, columns=columns, uri=ref, run_id=run_id, version=version,
                    sha256=sha, flavor=flavor, checked=checked)


def _load_flavor(ref: str, local: Path, flavors: dict[str, Any], trust: bool,
                 reporter: Reporter) -> tuple[Any, str, Path, str]:
    """(model, flavour, its data file, how it was checked)."""
    if "sklearn" in flavors:
        conf = flavors["sklearn"]
        data = local / conf.get("pickled_model", serialization.SKOPS_FILE)
        fmt = conf.get("serialization_format", "pickle")
        if fmt == "skops" or serialization.format_of(data) == serialization.SKOPS:
            return serialization.load(data), "sklearn/skops", data, "skops, trusted types only"
        if not trust:
            raise DataError(f"--classifier {ref} is a {fmt} file, and unpickling runs code; "
                            "nothing revcli recorded vouches for it: ask its owners for the "
                            "skops format, or pass --trust if you know where it came from")
        reporter.warn(f"unpickling the classifier {ref} without a check (--trust)")
        import mlflow.sklearn

        return (mlflow.sklearn.load_model(str(local)), f"sklearn/{fmt}", data,
                "not checked (--trust)")
    if "xgboost" in flavors:
        conf = flavors["xgboost"]
        data = local / conf["data"]
        model_class = str(conf.get("model_class", ""))
        if not model_class.endswith("XGBClassifier"):
            raise DataError(f"--classifier {ref} is a {model_class or 'XGBoost booster'}, not "
                            "an XGBClassifier with predict_proba")
        from xgboost import XGBClassifier

        model = XGBClassifier()
        model.load_model(str(data))  # XGBoost's own format: no pickle
        return model, "xgboost", data, "XGBoost's own format (no code runs)"
    raise DataError(f"--classifier {ref} is a {', '.join(sorted(flavors)) or 'flavourless'} "
                    "model; revcli takes MLflow's sklearn or xgboost flavour")


def _columns(ref: str, description: Any, model: Any) -> list[str]:
    signature = getattr(description, "signature", None)
    if signature is not None and signature.inputs is not None:
        names = [n for n in signature.inputs.input_names() if isinstance(n, str)]
        if names:
            return names
    names = [str(c) for c in getattr(model, "feature_names_in_", [])]
    if not names:
        booster = getattr(model, "get_booster", None)
        names = list(booster().feature_names or []) if booster else []
    if not names:
        raise DataError(f"--classifier {ref}: cannot tell which columns it reads (no signature, "
                        "no feature names); log it with a signature")
    return names
