"""Shared fixtures: every test runs in its own directory with its own workspace and no
inherited REVCLI_*, MLFLOW_* or AWS_* settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from revcli import demo, settings

SMALL_ROWS = 20_000


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith(("REVCLI_", "MLFLOW_", "AWS_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.chdir(tmp_path)
    workspace = tmp_path / "ws"
    monkeypatch.setenv("REVCLI_WORKSPACE", str(workspace))
    return workspace


@pytest.fixture(scope="session")
def small_demo():
    """A 20,000-row demo frame, built once."""
    return demo.generate(rows=SMALL_ROWS, seed=0)


@pytest.fixture
def demo_parquet(tmp_path: Path, small_demo) -> Path:
    path = tmp_path / "sessions.parquet"
    small_demo.to_parquet(path, index=False)
    return path


@pytest.fixture
def small_settings(isolated: Path, small_demo) -> settings.Settings:
    """Settings whose workspace already holds the small demo set as current dataset."""
    from revcli.workspace import Workspace

    Workspace(isolated).write_dataset(small_demo, source="demo:test")
    return settings.resolve(flags={"workspace": str(isolated)}, env={})


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, small_demo):
    """One converting_only/xgb training run on the small demo set, shared read-only by tests."""
    from revcli import train
    from revcli.workspace import Workspace

    root = tmp_path_factory.mktemp("trained")
    Workspace(root / "ws").write_dataset(small_demo, source="demo:test")
    config = root / "empty.toml"
    config.write_text("")
    s = settings.resolve(flags={"workspace": str(root / "ws")}, config_file=config, env={})
    return train.train(s)
