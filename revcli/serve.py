"""``revcli serve``: a run's logged model behind MLflow's scoring server (``mlflow models
serve``) on the effective tracking store, as a child process.

The server machinery (a free port, a process group, a log in the workspace, waiting until it
answers, stopping it) is :mod:`revcli.ui`'s: one home for revcli's child servers. This module
adds what serving needs: the run reference resolved once (:func:`revcli.tracking.resolve`), the
model's URI, and a request with one real row of the run's dataset (timestamps as ISO 8601 text)
so the printed ``curl`` line works as it is.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli import ui
from revcli.errors import NotFoundError
from revcli.progress import SILENT, Reporter
from revcli.urls import mask

if TYPE_CHECKING:
    from revcli.settings import Settings

DEFAULT_PORT = 5001  # beside `revcli ui`'s 5000
REQUEST_FILE = "request.json"
SERVE_DIR = "serve"  # <workspace>/serve: the server's log and the example request


@dataclass
class ServeHandle:
    """What :func:`start` started: the server, the model it serves and a request that works."""

    tracking_uri: str  # masked
    run_id: str
    how: str  # how the reference was resolved
    model_uri: str
    server: ui.Server
    request: dict[str, Any] | None = None  # one row of the run's dataset, or None
    request_file: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def running(self) -> list[ui.Server]:
        return [self.server] if self.server.started else []

    def exited(self) -> ui.Server | None:
        return self.server if self.server.exit_code() is not None else None

    def curl(self) -> str:
        """A curl line that scores the example request (or says what to send)."""
        body = f"@{self.request_file}" if self.request_file else "'{\"dataframe_split\": ...}'"
        return (f"curl -s {self.url}/invocations -H 'Content-Type: application/json' "
                f"-d {body}")

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "invocations": f"{self.url}/invocations",
                "pid": self.server.pid, "log": str(self.server.log) if self.server.log else None,
                "run_id": self.run_id, "resolved": self.how, "model_uri": self.model_uri,
                "tracking_uri": self.tracking_uri, "curl": self.curl(),
                "request": self.request,
                "request_file": str(self.request_file) if self.request_file else None}


def _store(settings: Settings, workspace: Any) -> tuple[str, str]:
    """(tracking URI, masked); a workspace store that does not exist yet is refused (serving
    never creates one)."""
    from revcli.tracking import tracking_uri

    uri = tracking_uri(settings, workspace)
    if uri == workspace.tracking_uri() and not workspace.mlflow_db.is_file():
        raise NotFoundError(f"no MLflow store in {workspace.root} yet; `revcli train` makes one")
    return uri, mask(uri)


def example_request(workspace: Any, meta: dict[str, Any]) -> dict[str, Any] | None:
    """``{"dataframe_split": ...}`` with the first row of the run's dataset (its features,
    timestamps as ISO 8601 text), or None when the dataset is not in this workspace."""
    import pyarrow.parquet as pq

    sha, features = meta.get("dataset_sha256"), meta.get("features")
    if not sha or not features:
        return None
    path = workspace.dataset_path(str(sha))
    if not path.is_file():
        return None
    names = set(pq.read_schema(path).names)
    columns = [str(f) for f in features if f in names]
    frame = pq.ParquetFile(path).read_row_group(0, columns=columns).slice(0, 1).to_pandas()
    split = json.loads(frame.to_json(orient="split", date_format="iso", index=False))
    return {"dataframe_split": {"columns": split["columns"], "data": split["data"]}}


def start(settings: Settings, run: str, *, host: str = ui.DEFAULT_HOST,
          port: int = DEFAULT_PORT, reporter: Reporter = SILENT,
          timeout: float = ui.READY_TIMEOUT) -> ServeHandle:
    """Resolve ``run``, start ``mlflow models serve`` on its logged model (the current
    interpreter's environment, ``--env-manager local``), wait until ``/ping`` answers and return
    the handle; :func:`revcli.ui.stop` ends it. Nothing is left running when this fails."""
    from revcli import tracking
    from revcli.tracking.registry import MODEL_NAME, logged_model_id
    from revcli.workspace import Workspace

    workspace = Workspace(settings.workspace).check_readable()
    uri, shown = _store(settings, workspace)
    port = ui._bindable(host, port, "--port")
    tracker, _ = tracking.connect(settings, workspace, experiment=False, create=False)
    resolved = tracking.resolve(tracker, run, settings.registry_model)
    logged = tracker.get_run(resolved.run_id)
    model_id = logged_model_id(tracker, logged)
    if model_id is None:
        raise NotFoundError(f"run {resolved.run_id} logged no MLflow model named "
                            f"{MODEL_NAME!r}; serve a run `revcli train` made")
    model_uri = f"models:/{model_id}"
    logs = ui._log_dir(workspace, SERVE_DIR)
    request = example_request(workspace, logged.model_meta())
    handle = ServeHandle(tracking_uri=shown, run_id=resolved.run_id, how=resolved.how,
                         model_uri=model_uri, request=request,
                         server=ui.Server("MLflow's scoring server", ui._url(host, port),
                                          log=logs / "serve.log"))
    if request is not None:
        handle.request_file = logs / REQUEST_FILE
        handle.request_file.write_text(json.dumps(request) + "\n")
    else:
        handle.notes.append("the run's dataset is not in this workspace: no example request")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_REGISTRY_STORE_URI"}
    # The store through the environment: a password never shows in `ps`.
    env["MLFLOW_TRACKING_URI"] = uri
    # MLflow execs `uvicorn` by name: this interpreter's scripts first, even from an
    # unactivated virtualenv (else "exit code 127").
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([scripts, *[p for p in env.get("PATH", "").split(os.pathsep)
                                               if p and p != scripts]])
    env["MLFLOW_DISABLE_TELEMETRY"] = env.get("MLFLOW_DISABLE_TELEMETRY", "true")
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
               "--env-manager", "local", "--host", host, "--port", str(port), "--workers", "1"]
    try:
        ui._launch(handle.server, command, env, logs)
        reporter.step(f"starting MLflow's scoring server for run {resolved.run_id} "
                      "(10-30 s on a busy machine)")
        ui._wait_ready(handle.server, f"{handle.url}/ping", True, timeout)
    except BaseException:
        ui.stop(handle)  # type: ignore[arg-type]
        raise
    return handle

