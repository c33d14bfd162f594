"""The shape of the code, checked: one home per concept.

- Strategy names appear as string literals only in revcli/strategies/ (and the CLI's help
  text): every other module asks the strategy, never its name.
- mlflow is imported only under revcli/tracking/.
- Importing the CLI loads none of the heavy libraries (``revcli --help`` stays instant).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "revcli"
STRATEGY_NAMES = ("all", "converting_only", "two_stage")


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _is_help_text(node: ast.Constant, parents: dict[ast.AST, ast.AST]) -> bool:
    """A literal inside a typer.Option/Argument(help=...) or a docstring."""
    parent = parents.get(node)
    while parent is not None and not isinstance(parent, ast.Call):
        if isinstance(parent, ast.keyword) and parent.arg == "help":
            return True
        parent = parents.get(parent)
    return False


def _literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef,
                                    ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr)
                  and isinstance(n.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in docstrings and not _is_help_text(node, parents)):
            found.append((node.lineno, node.value))
    return found


def test_strategy_names_live_in_revcli_strategies_only() -> None:
    offenders = []
    for path in _modules():
        rel = path.relative_to(PACKAGE.parent)
        if rel.parts[1] == "strategies":
            continue
        for line, value in _literals(path):
            # "all" is also --estimator all and a targets level: only the two unambiguous
            # names are searched everywhere, "all" where it is compared with a strategy.
            if value in ("converting_only", "two_stage"):
                offenders.append(f"{rel}:{line}: {value!r}")
    assert offenders == []


def test_no_comparison_with_a_strategy_name() -> None:
    offenders = []
    for path in _modules():
        rel = path.relative_to(PACKAGE.parent)
        if rel.parts[1] == "strategies":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                names = [n for n in ast.walk(node) if isinstance(n, ast.Constant)
                         and n.value in STRATEGY_NAMES]
                text = ast.unparse(node)
                if names and "strateg" in text:
                    offenders.append(f"{rel}:{node.lineno}: {text}")
    assert offenders == []


def test_mlflow_is_imported_only_under_revcli_tracking() -> None:
    offenders = []
    for path in _modules():
        rel = path.relative_to(PACKAGE.parent)
        if rel.parts[1] == "tracking":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "mlflow" or n.startswith("mlflow.") for n in names):
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize("module", ["revcli.cli", "revcli.strategies", "revcli.settings",
                                    "revcli.tracking", "revcli.metrics", "revcli.engines"])
def test_light_modules_import_no_heavy_library(module: str) -> None:
    heavy = ("mlflow", "sklearn", "xgboost", "optuna", "boto3", "matplotlib", "pandas",
             "pyarrow", "dask", "distributed")
    code = (f"import sys, {module}; print(','.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    # revcli.metrics works on numpy arrays; numpy is allowed, the rest are not
    assert out == ""
