"""``revcli fetch``: get a training table into the workspace."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from revcli.cli import _options
from revcli.cli._console import ConsoleReporter, cli_errors, out, print_json, stdout_to_stderr


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _render_list(records: list, current: str | None) -> None:
    from rich.table import Table

    table = Table(title="datasets in the workspace", title_justify="left")
    for col in ("", "sha256", "rows", "size", "created", "source"):
        table.add_column(col, overflow="fold")
    for r in records:
        table.add_row("*" if r.sha256 == current else "", r.short, f"{r.rows:,}",
                      _size(r.bytes), r.created, r.source)
    out.print(table)


def _render_prune(result: Any) -> None:
    if not result.removed and not result.temp_files:
        out.print("nothing to prune: only the current dataset is cached")
        return
    for r in result.removed:
        out.print(f"removed {r.short} ({r.rows:,} rows, {_size(r.bytes)}) from {r.source}")
    if result.temp_files:
        out.print(f"removed {result.temp_files} stale download temp file(s)")
    kept = f"; kept the current dataset {result.kept.short}" if result.kept else ""
    out.print(f"freed {_size(result.freed)}{kept}")


def fetch(
    source: Annotated[str | None, typer.Argument(
        help="s3://bucket/key, a local parquet path or a file:// URI \\[env: REVCLI_SOURCE; "
        "default: s3://processed-data/training_data.parquet]", show_default=False)] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Download again even when the cached copy is up to date")] = False,
    endpoint_url: _options.EndpointUrl = None,
    profile: _options.Profile = None,
    region: _options.Region = None,
    demo: Annotated[bool, typer.Option("--demo", help="Generate the demo table instead")] = False,
    rows: Annotated[int | None, typer.Option(
        "--rows", help="Demo rows \\[env: REVCLI_DEMO_ROWS; default: 472,871]",
        show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Demo generator seed \\[env: REVCLI_DEMO_SEED; default: 0]",
        show_default=False)] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the cached datasets")] = False,
    prune: Annotated[bool, typer.Option(
        "--prune", help="Remove every cached dataset except the current one")] = False,
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
    quiet: _options.Quiet = False,
) -> None:
    """Cache a training table in the workspace and make it the current dataset.

    From S3 (or MinIO) it sends one HEAD request first: when the object's ETag and size match
    the cached copy, nothing is downloaded ("up to date"). Otherwise the object is streamed into
    the workspace, checked (size, parquet footer, data contract) and cached under its sha256.
    Every table, local ones included, must pass the data contract (numeric columns, a
    non-negative `revenue` target, some orders). A failed fetch changes nothing.

    Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
    ~/.aws, --profile) and are never printed.

    Examples:

        revcli fetch
        revcli fetch s3://processed-data/training_data.parquet --endpoint-url http://localhost:9000
        revcli fetch ./exports/sessions.parquet
        revcli fetch --demo --rows 20000 --seed 1
        revcli fetch --list
        revcli fetch --prune
    """
    from revcli import fetch as core
    from revcli.workspace import Workspace

    reporter = ConsoleReporter(quiet=quiet or json)
    with cli_errors(reporter):
        settings = _options.resolve(config, workspace=workspace, demo_rows=rows, demo_seed=seed,
                                    source=source, endpoint_url=endpoint_url,
                                    aws_profile=profile, region=region)
        ws = Workspace(settings.workspace)
        actions = [name for name, given in (("--list", list_), ("--prune", prune),
                                            ("--demo", demo)) if given]
        if len(actions) > 1:
            raise typer.BadParameter(f"give one of {' / '.join(actions)}")
        if (list_ or prune) and source is not None:
            raise typer.BadParameter(f"{actions[0]} takes no SOURCE")
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
        if prune:
            pruned = core.prune(ws, reporter=reporter)
            reporter.close()
            if json:
                print_json(pruned.to_dict())
            else:
                _render_prune(pruned)
            return
        with stdout_to_stderr(json):
            if demo:
                if source is not None:
                    raise typer.BadParameter("give a SOURCE or --demo, not both")
                record = core.fetch_demo(ws.ensure(), rows=settings.demo_rows,
                                         seed=settings.demo_seed, reporter=reporter)
                result = core.FetchResult(record)
            else:
                from revcli.storage import S3Storage

                result = core.fetch(ws.ensure(), settings.source,
                                    storage=S3Storage.from_settings(settings), force=force,
                                    reporter=reporter)
        reporter.close()
        if json:
            print_json(result.to_dict())
            return
        record = result.record
        described = (f"dataset [bold]{record.short}[/] ({record.rows:,} rows, "
                     f"{len(record.columns)} columns)")
        if result.up_to_date:
            out.print(f"{record.source} is up to date: {described} is current "
                      f"(checked in {result.seconds:.2f} s, nothing downloaded)")
        elif result.downloaded:
            speed = result.downloaded / max(result.download_seconds, 1e-9)
            out.print(f"{described} from {record.source} is now current "
                      f"(downloaded {_size(result.downloaded)} in "
                      f"{result.download_seconds:.2f} s, {_size(int(speed))}/s)")
        else:
            out.print(f"{described} from {record.source} is now current")
