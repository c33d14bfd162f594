"""The ``revcli`` executable's first lines: Ctrl-C is a clean exit from the very start.

Importing the CLI takes a moment (Typer, rich); a Ctrl-C in that moment must not print a Python
traceback. Until a command starts (and installs its own handling, ``cli_errors``), SIGINT prints
one error line and exits 130. Only the standard library is imported here, and for ``train`` and
``compare strategies`` revcli's MLflow logger process is started (revcli.tracking._logger).
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
    words = [a for a in sys.argv[1:] if not a.startswith("-")]
    logs_a_model = words[:1] == ["train"] or words[:2] == ["compare", "strategies"]
    if logs_a_model and not {"--help", "-h"} & set(sys.argv):
        # the commands that log a trained model: MLflow's import starts beside the CLI's
        from revcli.tracking._logger import prestart

        prestart()
    from revcli.cli import main as cli_main

    cli_main()
