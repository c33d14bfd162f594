"""``revcli evaluate``: a model's scorecard on its holdout or any data, segments, plots, a gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from revcli.cli import _options
from revcli.cli._console import ConsoleReporter, cli_errors, out, print_json, safe, stdout_to_stderr

Run = Annotated[str | None, typer.Option(
    "--run", "-r", help="MLflow run id (or a unique prefix), a registry alias of the registered "
    "model (e.g. champion) or models:/NAME@ALIAS", show_default=False)]
ModelFile = Annotated[Path | None, typer.Option(
    "--model", "-m", help="A model file written by revcli: skops (model.skops, .skops) loads "
    "with revcli's trusted types only; a pickle (.joblib, .pkl) only once its MLflow run "
    "vouches for its sha256 (or --trust)", show_default=False)]


def evaluate(
    run: Run = None,
    model: ModelFile = None,
    data: Annotated[Path | None, typer.Option(
        "--data", help="Score all rows of this parquet file or directory of parts (training "
        "schema) instead of the "
        "model's own holdout (given the model's own dataset: its holdout); with --cluster also "
        "an s3:// prefix", show_default=False)] = None,
    gate: Annotated[Path | None, typer.Option(
        "--gate", help="Enforce the targets in this TOML file: exit 1 when one fails "
        "(--level alone enforces configs/targets.toml, or the built-in seed targets when it is "
        "absent)",
        show_default=False)] = None,
    level: Annotated[str | None, typer.Option(
        "--level", help="Targets level, minimum | good; giving it enforces the gate "
        "\\[shown level: REVCLI_GATE_LEVEL / gate_level; default: minimum]",
        show_default=False)] = None,
    allow_leak: Annotated[bool, typer.Option(
        "--allow-leak", help="Let a model whose scores rest on a leaking feature (or are too "
        "good to be true) pass the gate; the leak is still reported")] = False,
    trust: _options.Trust = False,
    segment_sort: Annotated[str, typer.Option(
        "--segment-sort", help="Rank segments by vs_baseline (model RMSE ÷ baseline RMSE), "
        "rmse, mae or bias (|log predicted ÷ actual total|)")] = "vs_baseline",
    segments: Annotated[int, typer.Option(
        "--segments", help="Segment rows to show, worst first; 0 for all (JSON has all)")] = 12,
    period: Annotated[str, typer.Option(
        "--period", help="Time segment of a timestamp column: week, month or quarter")] = "month",
    worst: Annotated[int, typer.Option(
        "--worst", help="List the N sessions with the largest absolute error (ids, features, "
        "actual, predicted); logged as worst.csv")] = 0,
    backtest: Annotated[int, typer.Option(
        "--backtest", help="Refit the run's recipe at N forward cut-offs (expanding window, its "
        "--gap) and score each next window beside its own train mean")] = 0,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the PNG plots")] = False,
    no_track: Annotated[bool, typer.Option(
        "--no-track", help="Do not log an evaluation run to MLflow")] = False,
    cluster: _options.Cluster = None,
    cluster_workers: _options.ClusterWorkers = None,
    worker_memory: _options.WorkerMemory = None,
    seed: _options.Seed = None,
    experiment: _options.Experiment = None,
    tracking_uri: _options.TrackingUri = None,
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
    quiet: _options.Quiet = False,
) -> None:
    """Evaluate a model: scorecard beside the baseline, errors by segment, plots, quality gate.

    With --run, the model is scored on its own holdout (recomputed from its dataset and checked
    against the recorded split hash); with --data, on every row of that file. The model file's
    sha256 is checked against its record before it is unpickled. Plots go to the workspace
    (`plots/<eval-run-id>/`) and to an MLflow evaluation run linked to the source run.

    --gate FILE or --level LEVEL enforce the targets: exit 1 when one fails, or when the scores
    rest on a feature the leakage audit flags or are too good to be true (unless --allow-leak).
    Without them the verdicts are shown and the exit code is 0.

    With --cluster, a cluster-trained run's holdout (its hash split) is scored part by part on
    the workers: the same scorecard and gate; segments, importance and plots from a sample.

    Examples:

        revcli evaluate --run 3f2a9c1e
        revcli evaluate --run champion --level good
        revcli evaluate --run 3f2a9c1e --period week --worst 10
        revcli evaluate --run 3f2a9c1e --backtest 4
        revcli evaluate --run 3f2a9c1e --cluster local --gate configs/targets.toml
        revcli evaluate --model model.skops --data other.parquet --gate configs/targets.toml
    """
    from revcli import evaluate as core

    reporter = ConsoleReporter(quiet=quiet)
    with cli_errors(reporter):
        settings = _options.resolve(config, workspace=workspace, seed=seed, gate_level=level,
                                    experiment=experiment, tracking_uri=tracking_uri,
                                    cluster=cluster, cluster_workers=cluster_workers,
                                    worker_memory=worker_memory)
        with stdout_to_stderr(json):
            result = core.evaluate(settings, run=run, model=model, data=data, trust=trust,
                                   gate=gate, level=level, enforce=gate is not None or
                                   level is not None, allow_leak=allow_leak,
                                   plots=not no_plots, track=not no_track,
                                   segment_sort=segment_sort, period=period, worst=worst,
                                   backtest=backtest, reporter=reporter)
        reporter.close()
        if json:
            print_json(result.to_dict())
        else:
            _render(result, segments, quiet)
        result.check_gate()


def _render(result: Any, limit: int, quiet: bool) -> None:

    from revcli.cli._console import output_width, sized_console
    from revcli.cli._render import render_leakage, scorecard_table, verdicts_table

    card, gate, model = result.scorecard, result.gate, result.model
    width = output_width()
    wide = sized_console(width)
    title = (f"{model.strategy} / {model.estimator} on {card.population} ({card.rows:,} rows, "
             f"{card.converters:,} converters)")
    wide.print(scorecard_table(card, title, baseline_note=result.baseline_note))
    engine = result.engine
    on_dask = engine.get("kind") == "dask"
    if not quiet:
        if on_dask:  # what the tables below are drawn from (a sample of the rows scored)
            for note in result.notes:
                out.print(f"[yellow]note:[/] {safe(note)}")
        table, missing = _segment_table(result.segments, limit, width)
        wide.print(table)
        if missing:
            wide.print(missing, highlight=False)
        for rows, title, caption, keys in (
                (result.time_segments, "errors by {group}, in time order",
                 "pred ÷ actual drifting from 1: the model loses a trend",
                 _TIME_COLUMNS),
                (result.value_bands, "converters by actual order value",
                 "the order value predicted for a converting session, beside the train mean "
                 "order value", _BAND_COLUMNS)):
            if rows:
                title = title.format(group=rows[0].group)
                table, missing = _segment_table(rows, 0, width, title=title, caption=caption,
                                                keys=keys)
                wide.print(table)
                if missing:
                    wide.print(missing, highlight=False)
        if result.worst:
            wide.print(_worst_table(result.worst, width))
        if result.backtest:
            from revcli.cli._render import backtest_table

            wide.print(backtest_table(result.backtest, width))
        top = sorted(result.importance.items(), key=lambda kv: -kv[1])[:5]
        out.print("permutation importance (RMSE increase when shuffled): "
                  + ", ".join(f"{safe(k)} {v:+.2f}" for k, v in top))
        render_leakage(result.honesty, model.strategy)
    state = "enforced" if gate.enforced else "shown, not enforced (--gate or --level enforce it)"
    out.print(verdicts_table(gate.verdicts, title=f"gate {gate.level} ({safe(gate.source)}): "
                             f"{state}", leaks=gate.leaks))
    if gate.passed:
        out.print(f"[green]gate {safe(gate.level)}: pass[/]")
    else:
        out.print(f"[red]gate {safe(gate.level)}: FAIL[/] — " + safe("; ".join(gate.reasons())))
    if not quiet:
        out.print(f"model {safe(model.source)} · {safe(model.checked)}")
        data = result.data
        holdout = ", the model's own holdout" if data["holdout"] else ""
        out.print(f"data {safe(data['source'])} (sha256 {data['sha256'][:12]}{holdout})")
        if data.get("note"):
            out.print(f"[yellow]note:[/] {safe(data['note'])}")
        if result.plots:
            out.print(f"plots {safe(next(iter(result.plots.values())).parent)}")
        if on_dask:
            out.print(f"scored on Dask ({engine['workers']} workers, "
                      f"{safe(engine['scheduler'])}); dashboard {safe(engine['dashboard'])}")
    if result.eval_run_id:
        out.print(f"evaluation run [bold]{result.eval_run_id}[/] at "
                  f"{safe(result.tracking_uri)}")


# The segment table's columns, most important first where the width runs out: segment, level,
# rows and RMSE ÷ baseline always; then RMSE, conversion, predicted mean, actual mean,
# predicted ÷ actual, MAE.
_SEGMENT_PRIORITY = {"segment": 0, "level": 0, "rows": 1, "RMSE ÷ baseline": 1, "RMSE": 2,
                     "conv.": 3, "pred. mean": 4, "actual mean": 5, "pred ÷ actual": 6,
                     "MAE": 7}


_TIME_COLUMNS = ("level", "rows", "actual mean", "pred. mean", "pred ÷ actual",
                 "RMSE ÷ baseline", "RMSE", "conv.")
_BAND_COLUMNS = ("level", "rows", "actual mean", "pred. mean", "RMSE", "RMSE ÷ baseline", "MAE")


def _segment_table(segments: list[Any], limit: int, width: int, title: str | None = None,
                   caption: str | None = None,
                   keys: tuple[str, ...] | None = None) -> tuple[Any, str | None]:
    """Errors by segment laid out for ``width`` (labels wrap between words, numbers never);
    with the columns that did not fit named under it."""
    from revcli.cli._render import FIXED, WRAP, Col, fitted_table, left_out

    shown = segments if limit <= 0 else segments[:limit]

    def num(value: float, fmt: str) -> str:
        return "n/a" if value is None or value != value else format(value, fmt)

    def ratio(s: Any) -> str:
        text = num(s.rmse_vs_baseline, ".3f")
        worse = s.rmse_vs_baseline == s.rmse_vs_baseline and s.rmse_vs_baseline > 1
        return f"[red]{text}[/]" if worse else text

    cells = {"segment": lambda s: safe(s.group), "level": lambda s: safe(s.level),
             "rows": lambda s: f"{s.rows:,}", "conv.": lambda s: f"{s.conversion * 100:.1f} %",
             "actual mean": lambda s: num(s.actual_mean, ".2f"),
             "pred. mean": lambda s: num(s.predicted_mean, ".2f"),
             "RMSE": lambda s: num(s.rmse, ".2f"), "MAE": lambda s: num(s.mae, ".2f"),
             "pred ÷ actual": lambda s: num(s.total_ratio, ".3f"), "RMSE ÷ baseline": ratio}
    order = keys or tuple(cells)
    cols = [Col(name, name, [cells[name](s) for s in shown],
                priority=_SEGMENT_PRIORITY[name] if keys is None else min(i, 1 + i // 2),
                fit=WRAP if name in ("segment", "level") else FIXED,
                justify="left" if name in ("segment", "level") else "right")
            for i, name in enumerate(order)]
    table, dropped = fitted_table(
        cols, width, title=title or f"errors by segment, worst first ({len(shown)} of "
        f"{len(segments)})",
        caption=caption or "RMSE ÷ baseline above 1: the model is worse than the train mean "
        "there; dim rows have too few rows to judge",
        row_styles=["dim" if s.few_rows else None for s in shown])
    return table, left_out(dropped, width, "a wider terminal (or COLUMNS) or --json shows them")


def _worst_table(worst: list[dict[str, Any]], width: int) -> Any:
    """The sessions with the largest absolute error: actual, predicted, then the ids and
    features that fit."""
    from revcli.cli._render import CUT, FIXED, Col, fitted_table

    def text(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.2f}" if value == value else "n/a"
        return safe(str(value))

    keys = ["actual", "predicted", *(k for k in worst[0] if k not in
                                     ("actual", "predicted", "error"))]
    cols = [Col(k, k, [text(r.get(k)) for r in worst], priority=0 if i < 2 else i,
                fit=FIXED if i < 2 else CUT, justify="right" if i < 2 else "left",
                shrink_to=6)
            for i, k in enumerate(keys)]
    table, _ = fitted_table(cols, width, title=f"the {len(worst)} largest errors",
                            caption="every column: --json, or worst.csv of the evaluation run")
    return table
