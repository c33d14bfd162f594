"""``revcli runs`` (sync, delete) and ``revcli gc``: looking after runs and their files."""

from __future__ import annotations

from typing import Annotated

import typer

from revcli.cli import _options
from revcli.cli._console import ConsoleReporter, cli_errors, out, print_json, safe

app = typer.Typer(
    help="Look after MLflow runs and their files in the workspace: log runs a dead tracking "
    "store left unlogged, delete runs.\n\nExample: `revcli runs sync`",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


@app.command("sync")
def sync(
    trust: _options.Trust = False,
    tracking_uri: _options.TrackingUri = None,
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
    quiet: _options.Quiet = False,
) -> None:
    """Log the runs whose MLflow logging failed (their models are saved in the workspace).

    When the tracking store stops answering after a fit, revcli keeps the fitted model, its
    scorecard and plots in `models/<run>/` with a `pending.json` of what was still to send;
    this sends it, into the original run when the store has it, else as a new run. A model
    file is loaded only when its run in the store vouches for its sha256 (runs are created with
    it); one whose run never reached the store needs `--trust`.

    Example:

        revcli runs sync --tracking-uri http://mlflow:5000
    """
    from revcli import runs as core

    reporter = ConsoleReporter(quiet=quiet or json)
    with cli_errors(reporter):
        settings = _options.resolve(config, workspace=workspace, tracking_uri=tracking_uri)
        done = core.sync(settings, trust=trust, reporter=reporter)
    reporter.close()
    if json:
        print_json({"synced": [d.to_dict() for d in done]})
        return
    if not done:
        out.print("nothing to sync: every saved model's run is logged")
    for d in done:
        how = "as new run" if d.created else "into run"
        out.print(f"logged {safe(d.directory)} {how} [bold]{d.run_id}[/]")


@app.command("delete")
def delete(
    runs: Annotated[list[str], typer.Argument(
        help="Runs to delete: ids, unique prefixes or names", show_default=False)],
    tracking_uri: _options.TrackingUri = None,
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
    quiet: _options.Quiet = False,
) -> None:
    """Delete runs from MLflow and their models and plots from the workspace.

    MLflow keeps deleted runs restorable (its UI, or `mlflow gc` purges them for good); the
    workspace's model files are removed at once.

    Example:

        revcli runs delete 3f2a9c1e 77d0b2aa
    """
    from revcli import runs as core

    reporter = ConsoleReporter(quiet=quiet or json)
    with cli_errors(reporter):
        settings = _options.resolve(config, workspace=workspace, tracking_uri=tracking_uri)
        result = core.delete(settings, runs, reporter=reporter)
    reporter.close()
    if json:
        print_json(result.to_dict())
        return
    out.print(f"deleted {len(result.runs)} run(s) ({', '.join(r[:8] for r in result.runs)}); "
              f"freed {_size(result.freed)} in the workspace")


def gc(
    tracking_uri: _options.TrackingUri = None,
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
    quiet: _options.Quiet = False,
) -> None:
    """Remove the workspace's files of runs MLflow no longer has, and killed commands' temp files.

    Runs deleted in MLflow (or gone from the store) leave their models and plots behind; runs
    not logged yet (`revcli runs sync`) are kept. Cached datasets: `revcli datasets prune`.

    Example:

        revcli gc
    """
    from revcli import runs as core

    reporter = ConsoleReporter(quiet=quiet or json)
    with cli_errors(reporter):
        settings = _options.resolve(config, workspace=workspace, tracking_uri=tracking_uri)
        result = core.gc(settings, reporter=reporter)
    reporter.close()
    if json:
        print_json(result.to_dict())
        return
    if not result.directories:
        out.print("nothing to collect")
        return
    for path in result.directories:
        out.print(f"removed {safe(path)}")
    out.print(f"freed {_size(result.freed)}")
