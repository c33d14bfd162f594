"""The ``revcli`` executable's first lines: Ctrl-C is a clean exit from the very start.

Importing the CLI takes a moment (Typer, rich); a Ctrl-C in that moment must not print a Python
traceback. Until a command starts (and installs its own handling, ``cli_errors``), SIGINT prints
one error line and exits 130 (SIGTERM 143, SIGHUP 129, as a shell reports them). Only the
standard library is imported here, and for ``train``, ``compare strategies`` and a tracked
``evaluate`` revcli's MLflow logger process is started (revcli.tracking._logger).
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted(signum: int, frame: object) -> None:
    word = ("interrupted" if signum == signal.SIGINT
            else f"terminated ({signal.Signals(signum).name})")
    sys.stderr.write(f"Error: {word}\n")
    sys.stderr.flush()
    os._exit(130 if signum == signal.SIGINT else 128 + signum)  # nothing written yet


def main() -> None:
    # SIGTERM (Airflow, systemd, Kubernetes) and SIGHUP (a closed terminal) as Ctrl-C.
    for signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if signum is not None:
            signal.signal(signum, _interrupted)
    words = [a for a in sys.argv[1:] if not a.startswith("-")]
    logs_a_run = (words[:1] == ["train"] or words[:2] == ["compare", "strategies"]
                  or (words[:1] == ["evaluate"] and "--no-track" not in sys.argv))
    if logs_a_run and not {"--help", "-h"} & set(sys.argv):
        # the commands that log a run through the logger process: MLflow's import starts
        # beside the CLI's
        from revcli.tracking._logger import prestart

        prestart()
    from revcli.cli import main as cli_main

    cli_main()
