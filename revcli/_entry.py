"""The ``revcli`` executable's first lines: Ctrl-C is a clean exit from the very start.

Importing the CLI takes a moment (Typer, rich); a Ctrl-C in that moment must not print a Python
traceback. Until a command starts (and installs its own handling, ``cli_errors``), SIGINT prints
one error line and exits 130. Only the standard library is imported here.
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted(signum: int, frame: object) -> None:
    sys.stderr.write("Error: interrupted\n")
    sys.stderr.flush()
    os._exit(130)  # nothing has been written yet: there is nothing to clean up


def main() -> None:
    signal.signal(signal.SIGINT, _interrupted)
    from revcli.cli import main as cli_main

    cli_main()
