"""Fixtures that start real servers: a JuiceFS S3 gateway (session), an MLflow tracking server
with its artifacts on that gateway (session), and a request-logging, fault-injecting proxy."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import invoke  # noqa: F401  (the CLI runner fixture, shared)
from tests.integration.servers import (
    FaultProxy,
    MlflowServer,
    S3Server,
    mlflow_server,
    s3_server,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(scope="session")
def mlflow(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Iterator[MlflowServer]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow"), s3, bucket="mlflow-artifacts") as srv:
        yield srv


@pytest.fixture
def s3_env(isolated: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Credentials of the test server in the environment (no endpoint: tests say which)."""
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    return s3


@pytest.fixture
def bucket(s3: S3Server) -> str:
    """A fresh bucket per test, so tests cannot see each other's objects."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(name)
    return name


@pytest.fixture
def proxy(s3: S3Server) -> Iterator[FaultProxy]:
    p = FaultProxy(upstream_port=s3.port).start()
    yield p
    p.close()
