"""``revcli compare runs`` and ``revcli compare strategies``."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from revcli.cli import _options
from revcli.cli._console import (
    ConsoleReporter,
    cli_errors,
    err,
    out,
    print_json,
    safe,
    stdout_to_stderr,
)

# Piped output (CI logs, files) is not squeezed into 80 columns; a terminal's width is respected.
PIPE_WIDTH = 220


def print_wide(renderable: Any) -> None:
    """Print a wide table to stdout: at the terminal's width, or up to PIPE_WIDTH columns when
    stdout is a pipe or file (where rich would assume 80) unless COLUMNS says otherwise."""
    import os

    from rich.console import Console

    if out.is_terminal or os.environ.get("COLUMNS"):
        out.print(renderable)
    else:
        Console(soft_wrap=True, width=PIPE_WIDTH).print(renderable)


app = typer.Typer(
    help="Compare MLflow runs side by side, or train the three strategies on one split.\n\n"
    "Example: `revcli compare runs --strategy two_stage --sort mae`",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

Format = Annotated[str, typer.Option(
    "--format", "-f", help="table | md | csv | json (warnings go above a table and into "
    "Markdown; to stderr for csv)")]


def _check_format(fmt: str, json: bool) -> str:
    from revcli.compare import FORMATS
    from revcli.errors import ConfigError

    fmt = "json" if json else fmt
    if fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def _split_list(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@app.command("runs")
def runs(
    run_ids: Annotated[list[str] | None, typer.Argument(
        help="Compare exactly these runs side by side (ids, unique prefixes or registry "
        "aliases)", show_default=False)] = None,
    strategy: Annotated[str | None, typer.Option(
        "--strategy", "-s", help="Only runs of this strategy", show_default=False)] = None,
    estimator: Annotated[str | None, typer.Option(
        "--estimator", "-e", help="Only runs of this estimator", show_default=False)] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only runs started after a date (2026-11-01) or within a duration "
        "(30m, 12h, 2d, 1w)", show_default=False)] = None,
    top: Annotated[int, typer.Option(
        "--top", "-n", help="How many runs: the latest N, best first (with --sort: the best N "
        "of all matching runs)")] = 20,
    sort: Annotated[str | None, typer.Option(
        "--sort", help="Metric to rank by, best first in its own direction (rmse, mae, r2, "
        "mape, gini, conv_rmse, ...) \\[default: the promote metric, rmse]",
        show_default=False)] = None,
    params: Annotated[bool, typer.Option("--params", help="Show every param")] = False,
    only_changed: Annotated[bool, typer.Option(
        "--only-changed", help="Show only the params whose values differ between the runs")
    ] = False,
    baseline: Annotated[str | None, typer.Option(
        "--baseline", help="Pin this run (id or registry alias, e.g. champion) first; the "
        "others show deltas against it", show_default=False)] = None,
    metric_names: Annotated[list[str] | None, typer.Option(
        "--metric", "-m", help="Metric columns to show (repeatable or comma-separated) "
        "\\[default: rmse, mae, r2, mape; total_ratio, gini, conv_rmse, conv_r2, auc when present]",
        show_default=False)] = None,
    nested: Annotated[bool, typer.Option(
        "--nested", help="Include nested runs (e.g. tuning trials)")] = False,
    fmt: Format = "table",
    experiment: _options.Experiment = None,
    tracking_uri: _options.TrackingUri = None,
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
    quiet: _options.Quiet = False,
) -> None:
    """List runs of the experiment best first, or compare given runs side by side.

    Reads MLflow (the workspace's store or --tracking-uri): run, start time, strategy,
    estimator, metrics, dataset and split. When the runs were trained on different data, splits
    or rows it says so above the table: their scores are not comparable. Evaluation runs and
    nested runs are left out.

    Examples:

        revcli compare runs
        revcli compare runs -s two_stage --sort mae --only-changed --baseline champion -f md
        revcli compare runs 3f2a9c1e 77d0b2aa --format json
    """
    from revcli import compare as core

    reporter = ConsoleReporter(quiet=quiet or json or fmt == "json")
    with cli_errors(reporter):
        fmt = _check_format(fmt, json)
        settings = _options.resolve(config, workspace=workspace, experiment=experiment,
                                    tracking_uri=tracking_uri)
        with stdout_to_stderr(fmt == "json"):
            result = core.compare_runs(
                settings, run_ids=run_ids or [], strategy=strategy, estimator=estimator,
                since=since, top=top, sort=sort, params=params, only_changed=only_changed,
                baseline=baseline, metric_names=_split_list(metric_names) or None,
                include_nested=nested, reporter=reporter)
        reporter.close()
        _emit(result, fmt, quiet)


def _emit(result: Any, fmt: str, quiet: bool) -> None:
    from revcli import reports

    if fmt == "json":
        print_json(result.to_dict())
        return
    hint = getattr(result, "hint", None)
    if hint:
        err.print(safe(hint), highlight=False)
        return
    warnings, notes = result.warnings, [] if quiet else result.notes
    if fmt == "table":
        for w in warnings:
            out.print(f"[bold yellow]Warning:[/] {safe(w)}", highlight=False)
        print_wide(_rich_table(result))
        for n in notes:
            out.print(f"[dim]{safe(n)}[/]", highlight=False)
        return
    headers, rows = result.tabular()
    if fmt == "csv":
        for w in warnings:
            err.print(f"[yellow]Warning:[/] {safe(w)}", highlight=False)
        sys.stdout.write(reports.to_csv(headers, rows))
        return
    text = "".join(f"> **Warning:** {w}\n>\n" for w in warnings)
    text += ("\n" if warnings else "") + reports.to_markdown(headers, _md_cells(result, rows))
    text += "".join(f"\n_{n}_\n" for n in notes)
    sys.stdout.write(text)


def _md_cells(result: Any, rows: list[list[Any]]) -> list[list[Any]]:
    """Markdown is for people: numbers rounded like the table's."""
    from revcli.cli._render import _fmt

    headers, _ = result.tabular()
    metric_of = {i: h.removesuffix("_delta") for i, h in enumerate(headers)}
    if getattr(result, "side_by_side", False):
        return [[row[0], *(_fmt(row[0], v) if isinstance(v, float) else v for v in row[1:])]
                for row in rows]
    return [[_fmt(metric_of[i], v) if isinstance(v, float) else v for i, v in enumerate(row)]
            for row in rows]


def _value(key: str, value: float | None, delta: float | None) -> str:
    from revcli.cli._render import _delta, _fmt
    from revcli.metrics import METRICS

    text = _fmt(key, value)
    if delta is None or value is None or key not in METRICS:
        return text
    verdict = _delta(METRICS[key], value, value - delta)
    colour = "green" if "better" in verdict else "red" if "worse" in verdict else "dim"
    sign = "+" if delta >= 0 else "-"
    shown = _fmt(key, abs(delta)) if key not in ("top10_share",) else f"{abs(delta) * 100:.1f}"
    return f"{text} [{colour}]({sign}{shown})[/]"


def _rich_table(result: Any) -> Any:
    from rich.table import Table

    if result.side_by_side:
        return _side_by_side(result)
    sort = f"best first by {result.sort}" if result.sort else ""
    table = Table(title=f"runs of {safe(result.experiment)} ({len(result.all_rows)}; {sort})",
                  title_justify="left", caption=_reference_caption(result),
                  caption_justify="left")
    table.add_column("run", no_wrap=True)
    table.add_column("name", overflow="ellipsis", no_wrap=True, max_width=24)
    for col in ("started", "strategy", "estimator"):
        table.add_column(col, no_wrap=True)
    for m in result.metrics:
        table.add_column(m + (" ▲" if m == result.sort else ""), justify="right", no_wrap=True)
    for col in ("data", "split", "leak"):
        table.add_column(col, no_wrap=True)
    for p in result.params:
        table.add_column(safe(p.removeprefix("model.")), overflow="fold")
    for row in result.all_rows:
        pinned = row is result.baseline
        cells = [f"{'★ ' if pinned else ''}{row.short}", safe(row.name or "-"),
                 row.started.astimezone().strftime("%Y-%m-%d %H:%M") if row.started else "-",
                 safe(row.strategy), safe(row.estimator)]
        cells += [_value(m, row.metrics.get(m), result.delta(row, m))
                  for m in result.metrics]
        cells += [row.dataset[:8] or "-", row.split[:8] or "-",
                  f"[yellow]{safe(','.join(row.leakage))}[/]" if row.leakage else "-"]
        cells += [safe(_short(row.params.get(p, "-"))) for p in result.params]
        table.add_row(*cells, style="bold" if pinned else None)
    return table


def _reference_caption(result: Any) -> str | None:
    from revcli.cli._render import _fmt

    parts = []
    if result.baseline is not None:
        parts.append(f"★ pinned baseline run {result.baseline.short}; (±) deltas against it")
    if result.reference:
        shown = ", ".join(f"{m} {_fmt(m, result.reference[m])}" for m in result.metrics
                          if m in result.reference)
        parts.append(f"train-mean baseline on the same rows: {shown}")
    return "\n".join(parts) or None


def _short(value: str, width: int = 40) -> str:
    return value if len(value) <= width else value[:width - 1] + "…"


def _side_by_side(result: Any) -> Any:
    from rich.table import Table

    from revcli.cli._render import _fmt

    headers, rows = result.tabular()
    table = Table(title=f"{len(result.all_rows)} runs side by side", title_justify="left",
                  caption=_reference_caption(result), caption_justify="left")
    for h in headers:
        table.add_column(safe(h), overflow="fold")
    for row in rows:
        key = str(row[0])
        cells = [_fmt(key, v) if isinstance(v, float) else safe(_short(str(v or "-")))
                 for v in row[1:]]
        table.add_row(safe(key), *cells)
    return table


@app.command("strategies")
def strategies_(
    estimator: Annotated[list[str] | None, typer.Option(
        "--estimator", "-e", help="Estimator(s), repeatable or comma-separated \\[default: xgb]",
        show_default=False)] = None,
    strategy: Annotated[list[str] | None, typer.Option(
        "--strategy", "-s", help="Strategies to compare \\[default: all, converting_only, "
        "two_stage]", show_default=False)] = None,
    drop_feature: Annotated[list[str] | None, typer.Option(
        "--drop-feature", "-d", help="Leave this column out of the features, repeatable",
        show_default=False)] = None,
    sort: Annotated[str, typer.Option(
        "--sort", help="Leaderboard column to rank by (rmse, mae, r2, gini, conv_rmse, ...)")
    ] = "rmse",
    data: _options.Data = None,
    combine: Annotated[str | None, typer.Option(
        "--combine", help="two_stage (and the converting_only pairing): expected or threshold",
        show_default=False)] = None,
    test_size: Annotated[float | None, typer.Option(
        "--test-size", help="Holdout share \\[default: 0.2]", show_default=False)] = None,
    seed: _options.Seed = None,
    n_jobs: Annotated[int | None, typer.Option(
        "--n-jobs", help="Threads, -1 for all cores \\[default: -1]", show_default=False)] = None,
    plots: Annotated[bool, typer.Option("--plots", help="Write and log each run's plots")
    ] = False,
    fmt: Format = "table",
    experiment: _options.Experiment = None,
    tracking_uri: _options.TrackingUri = None,
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
    quiet: _options.Quiet = False,
) -> None:
    """Train every strategy on one split and rank them on the same rows.

    Each model is logged as an MLflow run (revcli.command=compare). The leaderboard scores all
    of them on every test session (converting_only paired with the two_stage classifier of its
    estimator: P(order) x order value) and on the test converters alone (converting_only on its
    own, as the seed scored it), beside the train-mean baselines.

    Examples:

        revcli compare strategies --estimator xgb
        revcli compare strategies -e ridge,xgb --drop-feature engagement_depth --format md
    """
    from revcli import compare as core

    reporter = ConsoleReporter(quiet=quiet or json or fmt == "json")
    with cli_errors(reporter):
        fmt = _check_format(fmt, json)
        settings = _options.resolve(config, workspace=workspace, experiment=experiment,
                                    tracking_uri=tracking_uri, combine=combine,
                                    test_size=test_size, seed=seed, n_jobs=n_jobs)
        strategy_names = _split_list(strategy)
        with stdout_to_stderr(fmt == "json"):
            board = core.compare_strategies(
                settings, estimator_names=_split_list(estimator),
                **({"strategy_names": strategy_names} if strategy_names else {}),
                data=data, drop_features=drop_feature or [],
                sort=sort, plots=plots, reporter=reporter)
        reporter.close()
        if fmt == "table":
            _leaderboard(board, quiet)
        else:
            _emit(board, fmt, quiet)


def _leaderboard(board: Any, quiet: bool) -> None:
    from rich.table import Table

    from revcli.cli._render import _fmt
    from revcli.compare import LEADERBOARD_METRICS

    for w in board.warnings:
        out.print(f"[bold yellow]Warning:[/] {safe(w)}", highlight=False)
    split = board.split
    table = Table(title=f"strategies on one split ({split['hash']}; dataset {board.dataset[:12]})"
                  f", best first by {board.sort}", title_justify="left",
                  caption="all test sessions: " + ", ".join(
                      m for m in LEADERBOARD_METRICS if not m.startswith("conv_"))
                  + "; test converters only: conv_*\n† converting_only: on all sessions its "
                  "order value x P(order) of the two_stage classifier of its estimator; on the "
                  "converters its own order values (as the seed scored it)",
                  caption_justify="left")
    table.add_column("model")
    table.add_column("run")
    for m in LEADERBOARD_METRICS:
        table.add_column(m + (" ▲" if m == board.sort else ""), justify="right", no_wrap=True)
    for row in board.rows:
        label = safe(row.label) + (" †" if row.paired else "") + (
            " [yellow](leak)[/]" if row.leakage else "")
        table.add_row(label, (row.run_id or "")[:8],
                      *(_fmt(m, row.metrics.get(m)) if m in row.metrics else "-"
                        for m in LEADERBOARD_METRICS),
                      style="dim" if row.kind == "baseline" else None)
    print_wide(table)
    if not quiet:
        for n in board.notes:
            out.print(f"[dim]{safe(n)}[/]", highlight=False)
        out.print(f"runs logged to {safe(board.experiment)} at {board.tracking_uri} "
                  f"(tag revcli.compare_batch={board.batch})")
