"""``revcli fetch``: get a training table into the workspace and make it current."""

from __future__ import annotations

from typing import Annotated

import typer

from revcli.cli import _options
from revcli.cli._console import (
    ConsoleReporter,
    cli_errors,
    out,
    print_json,
    safe,
    stdout_to_stderr,
)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def fetch(
    source: Annotated[str | None, typer.Argument(
        help="s3://bucket/key, s3://bucket/prefix/ (parquet parts), a local parquet file or "
        "directory of parts, or a file:// URI \\[env: REVCLI_SOURCE; "
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
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
    quiet: _options.Quiet = False,
) -> None:
    """Cache a training table in the workspace and make it the current dataset.

    From S3 (or MinIO) it sends one HEAD request first: when the object's ETag and size match
    the cached copy, nothing is downloaded ("up to date"). Otherwise the object is streamed into
    the workspace, checked (size, parquet footer, data contract) and cached under its sha256.
    Every table, local ones included, must pass the data contract (a non-negative, finite
    `revenue` target, some orders). A failed fetch changes nothing. `revcli datasets` lists,
    switches, exports and prunes what is cached.

    A prefix (s3://bucket/sessions/, or a key with no object of its own) or a local directory of
    parquet parts is one dataset: Hive `key=value/` directories become columns; `_SUCCESS`,
    `_*` and dotfiles are skipped. A prefix costs one LIST when no part changed; otherwise only
    new or changed parts are downloaded. Every part is checked; a bad one is named.

    Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
    ~/.aws, --profile) and are never printed.

    Examples:

        revcli fetch
        revcli fetch s3://processed-data/training_data.parquet --endpoint-url http://localhost:9000
        revcli fetch ./exports/sessions.parquet
        revcli fetch s3://processed-data/sessions/
        revcli fetch ./exports/sessions/
        revcli fetch --demo --rows 20000 --seed 1
    """
    from revcli import fetch as core
    from revcli.workspace import Workspace

    reporter = ConsoleReporter(quiet=quiet or json)
    with cli_errors(reporter):
        if demo and source is not None:
            raise typer.BadParameter("give a SOURCE or --demo, not both")
        settings = _options.resolve(config, workspace=workspace, demo_rows=rows, demo_seed=seed,
                                    source=source, endpoint_url=endpoint_url,
                                    aws_profile=profile, region=region)
        ws = Workspace(settings.workspace)
        with stdout_to_stderr(json):
            if demo:
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
        shape = f"{record.rows:,} rows, {len(record.columns)} columns"
        if record.is_parts:
            shape += f", {len(record.parts)} parts"
        described = f"dataset [bold]{record.short}[/] ({shape})"
        where = safe(record.source)
        if result.up_to_date:
            out.print(f"{where} is up to date: {described} is current "
                      f"(checked in {result.seconds:.2f} s, nothing downloaded)")
        elif result.downloaded or result.reused_parts:
            speed = result.downloaded / max(result.download_seconds, 1e-9)
            reused = (f"; {result.reused_parts} unchanged part(s) copied from the cache"
                      if result.reused_parts else "")
            which = (f"{result.downloaded_parts} of {len(record.parts)} parts, "
                     if record.is_parts else "")
            out.print(f"{described} from {where} is now current "
                      f"(downloaded {which}{_size(result.downloaded)} in "
                      f"{result.download_seconds:.2f} s, {_size(int(speed))}/s{reused})")
        else:
            out.print(f"{described} from {where} is now current")
