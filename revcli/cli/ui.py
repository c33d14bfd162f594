"""``revcli ui``: MLflow's UI (and optuna-dashboard) on the workspace's stores, until Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from revcli.cli import _options
from revcli.cli._console import ConsoleReporter, cli_errors, out, print_json, safe


@contextlib.contextmanager
def _hangup_is_ctrl_c() -> Iterator[None]:
    """SIGTERM (a supervisor) and SIGHUP (the terminal closed) stop the servers like Ctrl-C:
    they run in their own sessions, so nothing else would."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    saved = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def ui(
    port: Annotated[int, typer.Option(
        "--port", "-p", help="Port of MLflow's UI; 0 picks a free one")] = 5000,
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on; 0.0.0.0 opens it to the network (no "
        "authentication!)")] = "127.0.0.1",
    browser: Annotated[bool, typer.Option(
        "--browser/--no-browser", help="Open the UI in a web browser (default: only print "
        "the URL)")] = False,
    optuna: Annotated[bool, typer.Option(
        "--optuna", help="Also start optuna-dashboard on the study storage (pip install "
        "'revcli\\[ui]')")] = False,
    optuna_port: Annotated[int, typer.Option(
        "--optuna-port", help="Port of optuna-dashboard; 0 picks a free one")] = 8080,
    storage: Annotated[str | None, typer.Option(
        "--storage", help="Optuna storage URL \\[env: REVCLI_STORAGE; default: sqlite in the "
        "workspace]", show_default=False)] = None,
    stop_stale: Annotated[bool | None, typer.Option(
        "--stop-stale/--keep-stale", help="Stop (or keep) servers a killed `revcli ui` of this "
        "workspace left running \\[default: ask at a terminal, else keep and say so]",
        show_default=False)] = None,
    tracking_uri: _options.TrackingUri = None,
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
    quiet: _options.Quiet = False,
) -> None:
    """Start MLflow's UI on the workspace's tracking store and print its URL; Ctrl-C stops it.

    The server runs in the background of this command (its log in `<workspace>/ui/`). When the
    tracking URI is already a server (http/https), that URL is printed and nothing starts.
    Exit codes: 0 stopped with Ctrl-C (or nothing to start), 2 no store yet, a port taken, the
    server failed to start or stopped on its own.

    Example:

        revcli ui --port 0 --optuna
    """
    from revcli import ui as core
    from revcli.errors import TrackingError

    reporter = ConsoleReporter(quiet=quiet)
    with cli_errors(reporter):
        settings = _options.resolve(config, workspace=workspace, tracking_uri=tracking_uri,
                                    storage=storage)
        _stale(core, settings, stop_stale, reporter)
        handle = core.start(settings, host=host, port=port, optuna=optuna,
                            optuna_port=optuna_port, reporter=reporter)
        try:
            reporter.close()
            if json:
                print_json(handle.to_dict())
            else:
                what = "MLflow" if handle.mlflow.started else "MLflow (already a server)"
                out.print(f"{what}: {safe(handle.mlflow.url)}", highlight=False)
                if handle.optuna is not None:
                    out.print(f"Optuna: {safe(handle.optuna.url)}", highlight=False)
            if not handle.running:
                return
            logs = ", ".join(str(s.log) for s in handle.running)
            reporter.note(f"serving until Ctrl-C (logs: {logs})")
            if host not in ("127.0.0.1", "localhost", "::1"):
                reporter.warn(f"listening on {host}: anyone who can reach this machine can "
                              "read and change the runs (the UI has no authentication)")
            if browser:
                import webbrowser

                with contextlib.suppress(Exception):
                    webbrowser.open(handle.servers[0].url if handle.mlflow.started
                                    else handle.running[0].url)
            try:
                with _hangup_is_ctrl_c():
                    gone = core.wait(handle)
            except KeyboardInterrupt:
                reporter.note("stopping (Ctrl-C again to kill at once)")
                try:
                    core.stop(handle)
                except KeyboardInterrupt:
                    core.stop(handle, grace=0)
                reporter.note("stopped")
                return
            if gone is not None:
                raise TrackingError(f"{gone.name} stopped on its own (exit code "
                                    f"{gone.exit_code()}); see its log: {gone.log}")
        finally:
            core.stop(handle)


def _stale(core: Any, settings: Any, stop: bool | None, reporter: ConsoleReporter) -> None:
    """Servers a killed `revcli ui` of this workspace left running: stopped with --stop-stale
    (or when the person at the terminal says yes), else named with the way to stop them."""
    import sys

    stale = core.stale_servers(settings)
    if not stale:
        return
    listing = ", ".join(f"{s.name} at {s.url} (pid {s.pid})" for s in stale)
    if stop is None and sys.stdin.isatty() and sys.stderr.isatty():
        reporter.close()
        stop = typer.confirm(f"a killed `revcli ui` left {listing} running; stop "
                             f"{'it' if len(stale) == 1 else 'them'}?", default=True,
                             err=True)
    if stop:
        core.stop_stale(settings, stale)
        reporter.note(f"stopped what a killed `revcli ui` left running: {listing}")
    else:
        reporter.warn(f"a killed `revcli ui` left {listing} running; `revcli ui --stop-stale` "
                      "stops it")
