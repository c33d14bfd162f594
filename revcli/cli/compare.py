"""``revcli compare runs`` and ``revcli compare strategies``."""

from __future__ import annotations

import math
import sys
from typing import Annotated, Any

import typer

from revcli.cli import _options
from revcli.cli._console import (
    ConsoleReporter,
    cli_errors,
    err,
    output_width,
    print_json,
    safe,
    sized_console,
    stdout_to_stderr,
)

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


# What `--columns` may name in `compare runs` (besides any metric key) and in the leaderboard.
RUN_COLUMNS = ("run", "name", "age", "started", "command", "strategy", "estimator", "dataset",
               "split", "leak", "honest")
BOARD_COLUMNS = ("model", "run", "strategy", "estimator", "leak")
WIDE = 120  # compare runs shows more default columns from this width on
MAIN_METRICS = ("rmse", "mae", "r2")
CHOOSE = "choose with --columns, or see them all with --format csv or json"


def _check_columns(values: list[str] | None, known: tuple[str, ...],
                   metric_keys: tuple[str, ...]) -> list[str] | None:
    """``--columns`` as a list of names, each a known column or metric key (ConfigError
    otherwise); None when not given."""
    from revcli.errors import ConfigError

    names = list(dict.fromkeys(_split_list(values)))
    if not values:
        return None
    unknown = [n for n in names if n not in known and n not in metric_keys]
    if unknown or not names:
        raise ConfigError(f"unknown --columns {', '.join(map(repr, unknown)) or 'value'}; choose "
                          f"among {', '.join(known)} or a metric ({', '.join(metric_keys)})")
    return names


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
        "--metric", "-m", help="Metrics to show (repeatable or comma-separated): columns of the "
        "table, and the metrics of md/csv/json \\[default: the table shows the sort metric; "
        "md/csv/json rmse, mae, r2, mape; total_ratio, gini, conv_rmse, conv_r2, auc when "
        "present]", show_default=False)] = None,
    columns: Annotated[list[str] | None, typer.Option(
        "--columns", help="Table columns, in order (comma-separated): run, name, age, started, "
        "command, strategy, estimator, dataset, split, leak, honest or any metric key; the run "
        "id always comes first; those that do not fit the width are left out and named "
        "\\[default: run, name, strategy, estimator, the sort metric with its delta against the "
        "train-mean baseline, honest when a run is not, age]", show_default=False)] = None,
    nested: Annotated[bool, typer.Option(
        "--nested", help="Include nested runs (e.g. tuning trials)")] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Say every caveat and note in full under the table (default: "
        "one summary line)")] = False,
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", help="Only runs with this tag: key=value, or key for any value; repeatable",
        show_default=False)] = None,
    fmt: Format = "table",
    experiment: _options.Experiment = None,
    tracking_uri: _options.TrackingUri = None,
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
    quiet: _options.Quiet = False,
) -> None:
    """List runs of the experiment best first, or compare given runs side by side.

    Reads MLflow (the workspace's store or --tracking-uri). The table fits the terminal: run
    id, name, strategy, estimator, the sort metric with its delta against the train-mean
    baseline, and age; --columns and --metric choose others, and what does not fit is named
    under the table (--format csv or json has every column). When the runs were trained on
    different data, splits or rows it says so above the table: their scores are not
    comparable. Evaluation runs and nested runs are left out.

    Examples:

        revcli compare runs
        revcli compare runs -s two_stage --sort mae --only-changed --baseline champion -f md
        revcli compare runs --tag team=growth --columns run,name,rmse,r2,age
        revcli compare runs 3f2a9c1e 77d0b2aa --format json
    """
    from revcli import compare as core
    from revcli.metrics import METRICS

    reporter = ConsoleReporter(quiet=quiet)
    with cli_errors(reporter):
        fmt = _check_format(fmt, json)
        chosen = _check_columns(columns, RUN_COLUMNS, tuple(METRICS))
        settings = _options.resolve(config, workspace=workspace, experiment=experiment,
                                    tracking_uri=tracking_uri)
        with stdout_to_stderr(fmt == "json"):
            result = core.compare_runs(
                settings, run_ids=run_ids or [], strategy=strategy, estimator=estimator,
                since=since, top=top, sort=sort, params=params, only_changed=only_changed,
                baseline=baseline, metric_names=_split_list(metric_names) or None,
                tags=tag or [], include_nested=nested, reporter=reporter)
        reporter.close()
        _emit(result, fmt, quiet, lambda width: _runs_table(
            result, width, chosen, _split_list(metric_names)),
              caveats="below" if verbose else "summary")


def _caveat(warning: str) -> str:
    """A warning's first clause: what is wrong, without the why."""
    import re

    return re.split(r"[:(;]", warning, maxsplit=1)[0].strip()


def _emit(result: Any, fmt: str, quiet: bool, table: Any = None, caveats: str = "above") -> None:
    """``table(width) -> (rich table, left-out line or None)`` renders ``--format table``.
    ``caveats``: ``summary`` -- the table first, then one line naming the caveats; ``below`` --
    the table, then each warning and note in full; ``above`` -- the warnings above the table,
    the notes under it."""
    from revcli import reports

    if fmt == "json":
        print_json(result.to_dict())
        return
    hint = getattr(result, "hint", None)
    if hint:
        err.print(safe(hint), highlight=False)
        return
    warnings, notes = result.warnings, [] if quiet else result.notes
    if fmt == "table" and caveats in ("summary", "below"):
        width = output_width()
        console = sized_console(width)
        rendered, missing = table(width)
        console.print(rendered)
        if missing:
            console.print(missing, highlight=False)
        if caveats == "below":
            for w in warnings:
                console.print(f"[bold yellow]Warning:[/] {safe(w)}", highlight=False)
            for n in notes:
                console.print(f"[dim]{safe(n)}[/]", highlight=False)
        elif warnings and quiet:
            console.print(f"[bold yellow]Warning:[/] {safe('; '.join(warnings))}",
                          highlight=False)
        elif warnings or notes:
            caveats = "; ".join(_caveat(w) for w in warnings)
            more = f"{len(notes)} note{'s' if len(notes) != 1 else ''}" if notes else ""
            line = (f"[bold yellow]Caveats:[/] {safe(caveats)}" if caveats else "")
            line += (" — " if line and more else "") + (f"[dim]{more}[/]" if more else "")
            console.print(f"{line} [dim](--verbose says more)[/]", highlight=False)
        return
    if fmt == "table":
        width = output_width()
        console = sized_console(width)
        for w in warnings:
            console.print(f"[bold yellow]Warning:[/] {safe(w)}", highlight=False)
        rendered, missing = table(width)
        console.print(rendered)
        if missing:
            console.print(missing, highlight=False)
        for n in notes:
            console.print(f"[dim]{safe(n)}[/]", highlight=False)
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


MINUS = "\u2212"  # a real minus sign (U+2212) for deltas


def _signed(value: float, digits: int = 3) -> str:
    """+0.012 / -0.012, the minus a real minus sign (U+2212)."""
    return ("+" if value >= 0 else MINUS) + f"{abs(value):.{digits}f}"


def _value(key: str, value: float | None, delta: float | None) -> str:
    """A metric as the table shows it, with ``delta`` (value minus what it is compared with)
    beside it in green when better, red when worse by the metric's own direction."""
    from revcli.cli._render import _delta, _fmt
    from revcli.metrics import METRICS

    text = _fmt(key, value)
    if delta is None or value is None or key not in METRICS or not math.isfinite(delta):
        return text
    verdict = _delta(METRICS[key], value, value - delta)
    colour = "green" if "better" in verdict else "red" if "worse" in verdict else "dim"
    sign = "+" if delta >= 0 else MINUS
    shown = _fmt(key, abs(delta)) if key not in ("top10_share",) else f"{abs(delta) * 100:.1f}"
    return f"{text} [{colour}]({sign}{shown})[/]"


def _mean_delta(row: Any, metric: str) -> float | None:
    """``metric`` of the run minus its train-mean baseline on the same rows (logged with it as
    ``baseline_<metric>``)."""
    value, base = row.metrics.get(metric), row.baseline.get(metric)
    if value is None or base is None or not (math.isfinite(value) and math.isfinite(base)):
        return None
    return value - base


def _run_cell(key: str, row: Any, result: Any, now: Any) -> str:
    if key == "run":
        return f"{'★ ' if row is result.baseline else ''}{row.short}"
    if key == "name":
        return safe(row.name or "-")
    if key == "age":
        return row.age(now)
    if key == "started":
        return row.started.astimezone().strftime("%Y-%m-%d %H:%M") if row.started else "-"
    if key in ("dataset", "split"):
        return getattr(row, key)[:8] or "-"
    if key == "leak":
        return f"[yellow]{safe(', '.join(row.leakage))}[/]" if row.leakage else "-"
    if key == "honest":
        return "[yellow]no[/]" if row.not_honest else "yes" if row.honest else "-"
    if key in ("command", "strategy", "estimator"):
        return safe(getattr(row, key) or "-")
    if key == "vs_baseline":
        d = row.vs_baseline
        if row is result.baseline:
            return "-"
        if not d or d.get("half_width") is None:
            return "n/a"
        text = f"{_signed(d['difference'])} ± {d['half_width']:.3f}"
        return text if d["clear"] else f"[dim]{text}[/]"
    # a metric: deltas against the pinned run, or, for the sort metric, the train mean
    if result.baseline is not None:
        delta = result.delta(row, key)
    else:
        delta = _mean_delta(row, key) if key == result.sort else None
    return _value(key, row.metrics.get(key), delta)


def _runs_table(result: Any, width: int, chosen: list[str] | None,
                metric_flags: list[str]) -> tuple[Any, str | None]:
    """``compare runs`` laid out for ``width``: the chosen (or default) columns, then the
    --metric and param columns; what does not fit is left out and named under the table."""
    import datetime as dt

    from revcli.cli._render import CUT, Col, fitted_table, left_out
    from revcli.compare import param_label
    from revcli.metrics import METRICS

    if result.side_by_side:
        return _side_by_side(result, width)
    rows = result.all_rows
    sort = result.sort
    if chosen is None:
        keys = ["run", "name", "strategy", "estimator", *([sort] if sort else [])]
        if any(r.vs_baseline for r in rows):
            keys.append("vs_baseline")
        keys += [m for m in metric_flags if m not in keys]
        if any(r.not_honest for r in rows):
            keys.append("honest")
        rank = {"run": 0, sort: 1, "vs_baseline": 1.5, "strategy": 2, "estimator": 3,
                "honest": 4, "age": 6, "name": 8}
        if width >= WIDE:
            # A wide terminal shows more than a narrow one: the other main scores, then where
            # the runs came from (the first to go when even these do not fit).
            extra = [m for m in MAIN_METRICS if m != sort and m not in keys
                     and any(m in r.metrics for r in rows)] + ["dataset", "split"]
            keys += extra
            rank.update({k: 9 + i / 100 for i, k in enumerate(extra)})
        keys.append("age")
        priority = {k: rank.get(k, 5 + i / 100) for i, k in enumerate(keys)}
    else:
        # the user's order is their priority, but the metric the rows are sorted by goes last
        keys = list(dict.fromkeys(["run", *chosen, *metric_flags]))
        priority = {k: 0.5 if k == sort else float(i) for i, k in enumerate(keys)}
    now = dt.datetime.now(dt.UTC)
    cols = []
    for key in keys:
        metric = (key in METRICS and key not in RUN_COLUMNS) or key == "vs_baseline"
        header = (f"{sort} vs ★ (95 %)" if key == "vs_baseline" else
                  key + (" ▲" if key == sort else ""))
        cols.append(Col(key, header, [_run_cell(key, r, result, now) for r in rows],
                        priority=priority[key], justify="right" if metric else "left",
                        fit=CUT if key in ("name", "strategy", "estimator", "leak", "command")
                        else "fixed", shrink_to=10 if key == "name" else 9))
    # params last (strategy and estimator are logged as params too: they have their columns)
    for i, p in enumerate(p for p in result.params if p not in RUN_COLUMNS):
        cols.append(Col(f"param {p}", safe(param_label(p)),
                        [safe(r.params.get(p, "-")) for r in rows], priority=7 + i / 100,
                        fit=CUT, shrink_to=8))
    sorted_by = f"best first by {sort}" if sort else ""
    table, dropped = fitted_table(
        cols, width, title=f"runs of {safe(result.experiment)} ({len(result.all_rows)}; "
        f"{sorted_by})", caption=_reference_caption(result, [c.key for c in cols]),
        row_styles=["bold" if r is result.baseline else None for r in rows])
    return table, left_out(dropped, width, CHOOSE)


def _reference_caption(result: Any, keys: list[str]) -> str | None:
    from revcli.cli._render import _fmt

    parts = []
    if result.baseline is not None:
        parts.append(f"★ pinned baseline run {result.baseline.short}; (±) deltas against it"
                     + ("; vs ★: both models scored on the same rows, the difference with its "
                        "95 % interval, dim within the noise"
                        if any(r.vs_baseline for r in result.rows) else ""))
    elif result.sort in keys and not result.side_by_side:
        parts.append(f"({result.sort} ±) against each run's train-mean baseline on the same rows")
    if result.reference:
        shown = ", ".join(f"{m} {_fmt(m, result.reference[m])}" for m in keys
                          if m in result.reference)
        if shown:
            parts.append(f"train-mean baseline on the same rows: {shown}")
    return "\n".join(parts) or None


def _side_by_side(result: Any, width: int) -> tuple[Any, str | None]:
    """One column per run (header: its 8-character id), one row per field, metric and param;
    text is cut with … to fit, metric values never."""
    import datetime as dt

    from revcli.cli._render import CUT, CUT_START, Col, _fmt, cell_width, fitted_table, left_out

    _, body = result.tabular()
    body = [row for row in body if row[0] != "started"]  # the table shows the age
    runs = result.all_rows
    labels = ["name", "age", *(str(row[0]) for row in body)]
    numeric = [False, False, *(any(isinstance(v, float) for v in row[1:]) for row in body)]
    cols = [Col("", "", [safe(k) for k in labels], priority=0, fit=CUT_START, shrink_to=14)]
    now = dt.datetime.now(dt.UTC)
    for i, run in enumerate(runs):
        cells = [safe(run.name or "-"), run.age(now)]
        for row in body:
            v = row[1 + i]
            if row[0] in ("dataset", "split"):
                v = str(v or "")[:8]  # as the list shows them
            cells.append(_fmt(str(row[0]), v) if isinstance(v, float)
                         else safe(str(v) if v not in (None, "") else "-"))
        header = f"{'★ ' if run is result.baseline else ''}{run.short}"
        floor = max([8, cell_width(header), *(cell_width(c) for c, n in zip(cells, numeric,
                                                                             strict=True) if n)])
        # equal priority: the widest run gives up width first, the last one is left out first
        cols.append(Col(run.short, header, cells, priority=1, fit=CUT, shrink_to=floor))
    table, dropped = fitted_table(
        cols, width, title=f"{len(runs)} runs side by side", caption=_reference_caption(
            result, list(result.metrics)),
        row_styles=[None] * len(labels))
    return table, left_out(dropped, width, "compare fewer runs at once, or see them all with "
                           "--format csv or json", what="run")


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
    classifier: _options.Classifier = None,
    trust: _options.Trust = False,
    combine: Annotated[str | None, typer.Option(
        "--combine", help="two_stage (and the converting_only pairing): expected or threshold",
        show_default=False)] = None,
    split: _options.SplitKind = None,
    time_column: _options.TimeColumn = None,
    gap: _options.Gap = None,
    test_size: _options.TestSize = None,
    seed: _options.Seed = None,
    n_jobs: Annotated[int | None, typer.Option(
        "--n-jobs", help="Threads, -1 for all cores \\[default: -1]", show_default=False)] = None,
    plots: Annotated[bool, typer.Option("--plots", help="Write and log each run's plots")
    ] = False,
    backtest: Annotated[int, typer.Option(
        "--backtest", help="With --split time: refit each model at N forward cut-offs and rank "
        "on the mean of --sort over the windows")] = 0,
    columns: Annotated[list[str] | None, typer.Option(
        "--columns", help="Leaderboard columns, in order (comma-separated): model, run, "
        "strategy, estimator, leak or a leaderboard metric (rmse, mae, r2, total_ratio, gini, "
        "top10_share, auc, conv_rmse, conv_mae, conv_r2, conv_mape); the model always comes "
        "first; those that do not fit the width are left out and named \\[default: model, run, "
        "the sort metric with its delta against the baseline row, rmse, conv_rmse]",
        show_default=False)] = None,
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
        revcli compare strategies --split time --backtest 3 --sort conv_rmse
        revcli compare strategies --classifier models:/conversion@champion
    """
    from revcli import compare as core
    from revcli.compare import LEADERBOARD_METRICS

    reporter = ConsoleReporter(quiet=quiet)
    with cli_errors(reporter):
        fmt = _check_format(fmt, json)
        chosen = _check_columns(columns, BOARD_COLUMNS, LEADERBOARD_METRICS)
        settings = _options.resolve(config, workspace=workspace, experiment=experiment,
                                    tracking_uri=tracking_uri, combine=combine,
                                    test_size=test_size, seed=seed, n_jobs=n_jobs, split=split,
                                    time_column=time_column, gap=gap)
        strategy_names = _split_list(strategy)
        with stdout_to_stderr(fmt == "json"):
            board = core.compare_strategies(
                settings, estimator_names=_split_list(estimator),
                **({"strategy_names": strategy_names} if strategy_names else {}),
                data=data, drop_features=drop_feature or [],
                sort=sort, plots=plots, backtest=backtest, classifier=classifier,
                trust=trust, reporter=reporter)
        reporter.close()
        _emit(board, fmt, quiet, lambda width: _board_table(board, width, chosen))
        if fmt == "table" and not quiet:
            sized_console().print(f"runs logged to {safe(board.experiment)} at "
                                  f"{safe(board.tracking_uri)} (tag revcli.compare_batch="
                                  f"{board.batch})", highlight=False)


def _board_table(board: Any, width: int, chosen: list[str] | None) -> tuple[Any, str | None]:
    """The leaderboard laid out for ``width``: model, run, the sort metric with its delta
    against the baseline row, rmse and conv_rmse (or the --columns); what does not fit is left
    out and named under the table."""
    from revcli.cli._render import CUT, FIXED, WRAP, Col, _fmt, fitted_table, left_out
    from revcli.compare import LEADERBOARD_METRICS

    sort = board.sort
    if chosen is None:
        ranked = f"backtest_{sort}" if board.backtest else sort
        keys = list(dict.fromkeys(["model", "run", ranked, sort, "vs_best", "rmse",
                                   "conv_rmse"]))
        rank = {"model": 0, "run": 0, ranked: 1, sort: 1, "vs_best": 1.5}
        priority = {k: rank.get(k, 2 + i / 100) for i, k in enumerate(keys)}
    else:
        keys = list(dict.fromkeys(["model", *chosen]))
        priority = {k: 0.0 if k == "model" else float(i) for i, k in enumerate(keys)}
    bases = [r for r in board.rows if r.kind == "baseline"]

    def cell(key: str, row: Any) -> str:
        if key == "model":
            return safe(row.label) + (" †" if row.paired else "") + (
                " [yellow](leak)[/]" if row.leakage else "")
        if key == "run":
            return (row.run_id or "-")[:8]
        if key == "leak":
            return f"[yellow]{safe(', '.join(row.leakage))}[/]" if row.leakage else "-"
        if key in ("strategy", "estimator"):
            return safe(getattr(row, key) or "-")
        if key == "vs_best":
            d = row.vs_best
            if not d or d.get("half_width") is None:
                return "best" if row is board.rows[0] else "-"
            text = f"{_signed(d['difference'])} ± {d['half_width']:.3f}"
            return text if d["clear"] or not math.isfinite(d["half_width"]) else \
                f"[dim]{text}[/]"
        if key.startswith("backtest_"):
            mean, sd = row.metrics.get(key), row.metrics.get(f"{key}_sd")
            if mean is None or not math.isfinite(mean):
                return "-"
            return f"{_fmt(sort, mean)} ± {_fmt(sort, sd)}"
        value = row.metrics.get(key)
        if value is None:
            return "-"
        base = next((b.metrics[key] for b in bases if key in b.metrics), None)
        delta = (value - base if key == sort and row.kind != "baseline" and base is not None
                 and math.isfinite(base) else None)
        return _value(key, value, delta) if delta is not None else _fmt(key, value)

    ranked_by = f"backtest_{sort}" if board.backtest else sort
    headers = {"vs_best": f"{sort} vs best (95 %)"}
    cols = [Col(k, headers.get(k) or (f"{sort} over {board.backtest} windows"
                                      if k.startswith("backtest_") else k)
                + (" ▲" if k == ranked_by else ""), [cell(k, r) for r in board.rows],
                priority=priority[k], justify="right" if k in LEADERBOARD_METRICS
                or k.startswith("backtest_") or k == "vs_best" else "left",
                fit=WRAP if k == "model" else CUT if k in ("strategy", "estimator", "leak")
                else FIXED, shrink_to=9) for k in keys]
    split = board.split
    caption = (f"({sort} ±) against the baseline row; all test sessions: "
               + ", ".join(m for m in LEADERBOARD_METRICS if not m.startswith("conv_"))
               + "; test converters only: conv_* (the order value each predicts for a "
               "converter; all has none)\n† converting_only: on all sessions its "
               "order value x P(order) of the two_stage classifier of its estimator; on the "
               "converters its own order values (as the seed scored it)\nvs best: minus the "
               "best row's, paired on the same rows, with its 95 % interval; dim when it is "
               "within the noise")
    table, dropped = fitted_table(
        cols, width, title=f"strategies on one split ({split['hash']}; dataset "
        f"{board.dataset[:12]}), best first by {sort}", caption=caption,
        row_styles=["dim" if r.kind == "baseline" else None for r in board.rows])
    return table, left_out(dropped, width, CHOOSE)
