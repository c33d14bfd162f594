"""``revcli datasets``: the workspace's cached datasets (list, use, export, prune)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from revcli.cli import _options
from revcli.cli._console import ConsoleReporter, cli_errors, out, print_json, safe

app = typer.Typer(
    help="The workspace's cached datasets: list them, choose the current one, export one, "
    "prune the rest.\n\nExample: `revcli datasets list`",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _workspace(config: Path | None, workspace: Path | None) -> Any:
    from revcli.workspace import Workspace

    return Workspace(_options.resolve(config, workspace=workspace).workspace)


@app.command("list")
def list_(
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
) -> None:
    """List the cached datasets, the current one marked with *.

    Example:

        revcli datasets list --json
    """
    with cli_errors():
        ws = _workspace(config, workspace)
        records = ws.datasets()
        current = ws.current(strict=False)
        broken = ws.broken_datasets()
    sha = current.sha256 if current else None
    if json:
        print_json({"current": sha, "datasets": [r.to_dict() for r in records],
                    "broken": [{"dataset": name, "problem": why} for name, why in broken]})
        return
    _say_broken(broken)
    if not records:
        out.print("no datasets yet: `revcli fetch --demo` makes one" if not broken
                  else "no usable datasets: `revcli fetch` gets one again")
        return
    from revcli.cli._console import output_width
    from revcli.cli._render import FIXED, WRAP, Col, fitted_table, left_out

    width = output_width()
    # A dataset made of parts shows how many; a column only when there is one, and the last
    # to go when the width is short (created first: its age is in --json).
    any_parts = any(r.is_parts for r in records)
    columns = [
        Col("current", "", ["*" if r.sha256 == sha else "" for r in records], fit=FIXED),
        Col("sha256", "sha256", [r.short for r in records], fit=FIXED),
        Col("rows", "rows", [f"{r.rows:,}" for r in records], fit=FIXED, justify="right"),
        *([Col("parts", "parts", [f"{len(r.parts):,}" if r.is_parts else "1"
                                  for r in records], fit=FIXED, justify="right", priority=1)]
          if any_parts else []),
        Col("size", "size", [_size(r.bytes) for r in records], fit=FIXED, justify="right",
            priority=2),
        Col("created", "created", [r.created[:16].replace("T", " ") for r in records],
            fit=WRAP, priority=3),
        Col("source", "source", [safe(r.source) for r in records], fit=WRAP)]
    table, dropped = fitted_table(columns, width, title="datasets in the workspace")
    out.print(table)
    missing = left_out(dropped, width, "--json has every field")
    if missing:
        out.print(missing, highlight=False)


def _say_broken(broken: list[tuple[str, str]]) -> None:
    """A dataset that cannot be used is said (one warning each, on stderr), never hidden."""
    from revcli.cli._console import warn

    for name, why in broken:
        warn(f"dataset {name[:12]} is broken: {why}; `revcli fetch` it again, or delete "
             f"datasets/{name[:12]}*.json and .parquet to drop it")


@app.command("use")
def use(
    dataset: Annotated[str, typer.Argument(help="sha256 of a cached dataset, or a unique prefix "
                                           "(6+ characters)", show_default=False)],
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
) -> None:
    """Make a cached dataset the current one (what train, tune and compare use).

    Example:

        revcli datasets use 4da32aa1e09b
    """
    with cli_errors():
        record = _workspace(config, workspace).use(dataset)
    if json:
        print_json({"current": record.sha256, "dataset": record.to_dict()})
        return
    out.print(f"dataset [bold]{record.short}[/] ({record.rows:,} rows) from "
              f"{safe(record.source)} is now current")


@app.command("export")
def export(
    path: Annotated[Path, typer.Argument(help="Where to write it (.parquet)",
                                         show_default=False)],
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="sha256 or prefix of a cached dataset \\[default: the current one]",
        show_default=False)] = None,
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
) -> None:
    """Write a cached dataset (default: the current one) to a parquet file.

    A dataset made of parts becomes one file: its parts' rows in order, Hive keys as columns.

    Handy to score the demo data with `revcli predict` on a fresh machine.

    Example:

        revcli datasets export sessions.parquet
    """
    with cli_errors():
        record = _workspace(config, workspace).export(path, dataset)
    if json:
        print_json({"path": str(path), "dataset": record.to_dict()})
        return
    out.print(f"wrote dataset {record.short} ({record.rows:,} rows) to {safe(str(path))}")


@app.command("prune")
def prune(
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
    quiet: _options.Quiet = False,
) -> None:
    """Remove every cached dataset but the current one, and temp files of killed downloads.

    Example:

        revcli datasets prune
    """
    from revcli import fetch as core

    reporter = ConsoleReporter(quiet=quiet)
    with cli_errors(reporter):
        result = core.prune(_workspace(config, workspace), reporter=reporter)
    reporter.close()
    if json:
        print_json(result.to_dict())
        return
    if not result.removed and not result.temp_files:
        out.print("nothing to prune: only the current dataset is cached")
        return
    for r in result.removed:
        out.print(f"removed {r.short} ({r.rows:,} rows, {_size(r.bytes)}) from "
                  f"{safe(r.source)}")
    if result.temp_files:
        out.print(f"removed {result.temp_files} temp file(s) of killed downloads")
    kept = f"; kept the current dataset {result.kept.short}" if result.kept else ""
    out.print(f"freed {_size(result.freed)}{kept}")
