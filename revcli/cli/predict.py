"""``revcli predict``: batch scoring of a parquet file with a run's, alias's or file's model."""

from __future__ import annotations

from pathlib import Path
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
from revcli.cli.evaluate import ModelFile, Run


def predict(
    data: Annotated[str, typer.Option(
        "--data", help="Parquet file (or directory of parts) of sessions to score (any "
        "columns; the model's features must be there); with --cluster also an s3:// prefix",
        show_default=False)],
    out_path: Annotated[Path, typer.Option(
        "--out", "-o", help="Where to write the predictions: .parquet or .csv (written to a temp "
        "file and renamed when complete); with --cluster a new directory gets one part per "
        "input part", show_default=False)],
    run: Run = None,
    model: ModelFile = None,
    trust: _options.Trust = False,
    batch_rows: Annotated[int, typer.Option(
        "--batch-rows", help="Rows scored per batch (memory use scales with it)")] = 100_000,
    cluster: _options.Cluster = None,
    cluster_workers: _options.ClusterWorkers = None,
    worker_memory: _options.WorkerMemory = None,
    tracking_uri: _options.TrackingUri = None,
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
    quiet: _options.Quiet = False,
) -> None:
    """Score every row of a parquet file with a model and write the predictions.

    The output has the input's rows in the input's order, its id columns (`id` or `*_id`; without
    any, a `row` column with the input row number) and `prediction`; two_stage models add
    `p_order` and `order_value`. The input is read in batches, so a file larger than memory
    works. Columns the model does not use are ignored (and named); missing ones are an error.

    Examples:

        revcli predict --run 3f2a9c1e --data sessions.parquet --out scored.parquet
        revcli predict --run champion --data s3-export.parquet --out scored.csv --json
        revcli predict --model models/model.joblib --data sessions.parquet --out scored.parquet
        revcli predict --run 3f2a9c1e --cluster local --data ./sessions/ --out ./scored/
        revcli predict --model regression_model.skops --data sessions.parquet --out scored.parquet
    """
    from revcli import predict as core

    reporter = ConsoleReporter(quiet=quiet)
    with cli_errors(reporter):
        settings = _options.resolve(config, workspace=workspace, tracking_uri=tracking_uri,
                                    cluster=cluster, cluster_workers=cluster_workers,
                                    worker_memory=worker_memory)
        with stdout_to_stderr(json):
            result = core.predict(settings, data=data, out=out_path, run=run, model=model,
                                  trust=trust, batch_rows=batch_rows, reporter=reporter)
        reporter.close()
        if json:
            print_json(result.to_dict())
            return
        out.print(f"wrote {result.rows:,} predictions to {safe(result.output)} "
                  f"({safe(', '.join(result.columns))}) in {result.seconds:.1f} s")
        if not quiet:
            out.print(f"prediction: {safe(result.prediction)}")
            out.print(f"model {safe(result.model.source)} · {safe(result.model.checked)}")
