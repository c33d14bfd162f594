"""Every command documents itself, and `revcli --help` loads no ML library."""

from __future__ import annotations

import subprocess
import sys

import pytest

from revcli.cli import app

COMMANDS = sorted(c.name for c in app.registered_commands)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(invoke, command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_root_help_and_version(invoke) -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output
    from revcli import __version__

    assert invoke("--version").stdout.strip() == f"revcli {__version__}"


def test_help_imports_no_ml_library() -> None:
    heavy = ["pandas", "numpy", "pyarrow", "sklearn", "xgboost", "mlflow", "optuna", "boto3",
             "matplotlib", "joblib"]
    code = ("import sys; from revcli.cli import app\n"
            "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_python_dash_m_works() -> None:
    out = subprocess.run([sys.executable, "-m", "revcli", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("revcli ")
