"""``revcli serve``: a run's model behind MLflow's scoring server, until Ctrl-C."""

from __future__ import annotations

from typing import Annotated

import typer

from revcli.cli import _options
from revcli.cli._console import ConsoleReporter, cli_errors, out, print_json, safe
from revcli.cli.ui import _hangup_is_ctrl_c


def serve(
    run: Annotated[str, typer.Option(
        "--run", "-r", help="Run id, unique prefix (8 characters), `latest`, run name or "
        "registry alias (champion)", show_default=False)],
    port: Annotated[int, typer.Option(
        "--port", "-p", help="Port to listen on; 0 picks a free one")] = 5001,
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on; 0.0.0.0 opens it to the network (no "
        "authentication!)")] = "127.0.0.1",
    tracking_uri: _options.TrackingUri = None,
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
    quiet: _options.Quiet = False,
) -> None:
    """Serve a run's logged model with `mlflow models serve` on the workspace's tracking
    store; prints the URL and a curl line that scores one row; Ctrl-C stops it.

    The model is the whole fitted model (encoding and strategy): POST the table's feature
    columns to /invocations as `dataframe_split` or `dataframe_records`, timestamps as ISO 8601
    text (pandas: `to_json(orient="split", date_format="iso")`). Epoch numbers where a
    timestamp was trained are refused (400), never scored. Exit codes: 0 stopped with Ctrl-C,
    2 unknown run, no store, a port taken, the server failed or stopped on its own.

    Example:

        revcli serve --run latest --port 0
    """
    from revcli import serve as core
    from revcli import ui as servers
    from revcli.errors import TrackingError

    reporter = ConsoleReporter(quiet=quiet)
    with cli_errors(reporter):
        settings = _options.resolve(config, workspace=workspace, tracking_uri=tracking_uri)
        handle = core.start(settings, run, host=host, port=port, reporter=reporter)
        try:
            reporter.close()
            if json:
                print_json(handle.to_dict())
            else:
                out.print(f"serving run {safe(handle.run_id)}", highlight=False)
                out.print(safe(f"{handle.url}/invocations"), highlight=False)
                out.print("try it:", highlight=False)
                # a command to paste: whole on one line, like a URL, never wrapped
                out.print(safe(handle.curl()), highlight=False, soft_wrap=True)
            for note in handle.notes:
                reporter.note(note)
            reporter.note(f"serving until Ctrl-C (log: {handle.server.log})")
            if host not in ("127.0.0.1", "localhost", "::1"):
                reporter.warn(f"listening on {host}: anyone who can reach this machine can "
                              "score with the model (no authentication)")
            try:
                with _hangup_is_ctrl_c():
                    gone = servers.wait(handle)  # type: ignore[arg-type]
            except KeyboardInterrupt:
                reporter.note("stopping (Ctrl-C again to kill at once)")
                try:
                    servers.stop(handle)  # type: ignore[arg-type]
                except KeyboardInterrupt:
                    servers.stop(handle, grace=0)  # type: ignore[arg-type]
                reporter.note("stopped")
                return
            if gone is not None:
                raise TrackingError(f"{gone.name} stopped on its own (exit code "
                                    f"{gone.exit_code()}); see its log: {gone.log}")
        finally:
            servers.stop(handle)  # type: ignore[arg-type]
