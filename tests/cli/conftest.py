from __future__ import annotations

import pytest
from typer.testing import CliRunner

from revcli.cli import app


@pytest.fixture
def invoke():
    """Run the CLI in-process: invoke("train", "--json") -> result with exit_code/stdout/stderr."""
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, list(args))

    return run
