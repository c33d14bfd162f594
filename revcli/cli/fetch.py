"""``revcli fetch``: get a training table into the workspace."""

from __future__ import annotations

from typing import Annotated

import typer

from revcli.cli import _options
from revcli.cli._console import ConsoleReporter, cli_errors, out, print_json, stdout_to_stderr


def _render_list(records: list, current: str | None) -> None:
    from rich.table import Table

    table = Table(title="datasets in the workspace", title_justify="left")
    for col in ("", "sha256", "rows", "size", "created", "source"):
        table.add_column(col, overflow="fold")
    for r in records:
        table.add_row("*" if r.sha256 == current else "", r.short, f"{r.rows:,}",
                      f"{r.bytes / 1e6:.1f} MB", r.created, r.source)
    out.print(table)


def fetch(
    source: Annotated[str | None, typer.Argument(
        help="Local parquet path or file:// URI", show_default=False)] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Generate the demo table instead")] = False,
    rows: Annotated[int | None, typer.Option(
        "--rows", help="Demo rows [env: REVCLI_DEMO_ROWS; default: 472,871]",
        show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Demo generator seed [env: REVCLI_DEMO_SEED; default: 0]",
        show_default=False)] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the cached datasets")] = False,
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
    quiet: _options.Quiet = False,
) -> None:
    """Cache a training table in the workspace and make it the current dataset.

    Every table is checked against the data contract (numeric columns, a non-negative `revenue`
    target, some orders) before it is cached under its sha256.

    Examples:
      revcli fetch --demo --rows 20000 --seed 1
      revcli fetch ./exports/sessions.parquet
      revcli fetch --list
    """
    from revcli import fetch as core
    from revcli.workspace import Workspace

    reporter = ConsoleReporter(quiet=quiet or json)
    with cli_errors(reporter):
        settings = _options.resolve(config, workspace=workspace, demo_rows=rows, demo_seed=seed)
        ws = Workspace(settings.workspace)
        if list_:
            records = ws.datasets()
            current = ws.current()
            if json:
                print_json({"current": current.sha256 if current else None,
                            "datasets": [r.to_dict() for r in records]})
            elif records:
                _render_list(records, current.sha256 if current else None)
            else:
                out.print("no datasets yet: `revcli fetch --demo` makes one")
            return
        with stdout_to_stderr(json):
            if demo:
                if source is not None:
                    raise typer.BadParameter("give a SOURCE or --demo, not both")
                record = core.fetch_demo(ws.ensure(), rows=settings.demo_rows,
                                         seed=settings.demo_seed, reporter=reporter)
            else:
                source = source or settings.source
                if source.startswith("s3://"):
                    from revcli.errors import ConfigError

                    raise ConfigError(f"cannot fetch {source}: S3 sources are not supported by "
                                      "this build; give a local parquet path or --demo")
                record = core.fetch_local(ws.ensure(), source, reporter=reporter)
        reporter.close()
        if json:
            print_json({"dataset": record.to_dict(), "current": True})
        else:
            out.print(f"dataset [bold]{record.short}[/] ({record.rows:,} rows, "
                      f"{len(record.columns)} columns) from {record.source} is now current")
