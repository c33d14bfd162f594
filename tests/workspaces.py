"""Workspaces for tests: an empty, already migrated MLflow store, and a workspace with one run.

A new sqlite store runs MLflow's ~50 alembic migrations on first use (2 s idle, 7 s on a busy
2-core CI machine); a copy of a migrated one opens in ~0.2 s. Built once per test process.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

_TEMPLATE: list[Path] = []


def seed_store(workspace: Path) -> None:
    """Put an empty migrated ``mlflow.db`` in ``workspace`` unless it has one."""
    from mlflow import MlflowClient

    target = Path(workspace) / "mlflow.db"
    if target.exists():
        return
    if not _TEMPLATE:
        directory = Path(tempfile.mkdtemp(prefix="revcli-mlflow-template-"))
        atexit.register(shutil.rmtree, directory, True)
        MlflowClient(tracking_uri=f"sqlite:///{directory / 'mlflow.db'}").search_experiments()
        _TEMPLATE.append(directory / "mlflow.db")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(_TEMPLATE[0], target)


def train_in(root: Path, frame: Any, **flags: Any) -> tuple[Any, Any]:
    """(settings, TrainResult) of one run trained on ``frame`` in a new workspace under
    ``root`` (no plots; ``flags`` are settings such as strategy and estimator)."""
    from revcli import settings, train
    from revcli.workspace import Workspace

    seed_store(root / "ws")
    Workspace(root / "ws").write_dataset(frame, source="demo:test")
    config = root / "empty.toml"
    config.write_text("")
    s = settings.resolve(flags={"workspace": str(root / "ws"), **flags}, config_file=config,
                         env={})
    return s, train.train(s, plots=False)
