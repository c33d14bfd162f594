"""An interrupt revcli handled ends in its exit code (130, 143, 129), not in death by SIGINT."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# A KeyboardInterrupt escaping code run through PyRun_* (as when Ctrl-C cuts the import of a
# compiled module) is recorded by CPython, which then kills the process with SIGINT at exit.
SCRIPT = """
import ctypes, sys
import revcli.cli as cli

def app():
    ctypes.pythonapi.PyRun_SimpleString(b"raise KeyboardInterrupt")
    raise SystemExit({code})  # what cli_errors does once it has cleaned up

cli.app = app
{call}
"""


def _run(tmp_path: Path, code: int, call: str) -> int:
    # Run as ``python -m`` (as ``python -m revcli`` is): there CPython acts on the record at
    # exit (``python -c`` and a console script exit from inside SystemExit's handling).
    (tmp_path / "interrupted_app.py").write_text(SCRIPT.format(code=code, call=call))
    done = subprocess.run([sys.executable, "-m", "interrupted_app"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    return done.returncode


@pytest.mark.parametrize("code", [130, 143, 129])
def test_a_handled_interrupt_exits_with_its_code(tmp_path: Path, code: int) -> None:
    assert _run(tmp_path, code, "cli.main()") == code


def test_without_main_cpython_dies_of_sigint(tmp_path: Path) -> None:
    # The control: the same interrupt outside main() ends in signal 2, so the test above
    # measures main()'s handling and not a CPython that no longer behaves this way.
    assert _run(tmp_path, 130, "cli.app()") == -2
