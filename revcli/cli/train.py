"""``revcli train``: fit one strategy / estimator, score it honestly, log it to MLflow."""

from __future__ import annotations

from typing import Annotated, Any

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


def train(
    strategy: Annotated[str | None, typer.Option(
        "--strategy", "-s", help="all | converting_only | two_stage \\[default: converting_only]",
        show_default=False)] = None,
    estimator: Annotated[str | None, typer.Option(
        "--estimator", "-e", help="mean | ridge | rf | xgb | xgb_log | hgb | gbr_quantile | "
        "ensemble \\[default: xgb]", show_default=False)] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Hyperparameter key=value, repeatable; classifier__key=value for "
        "the two_stage classifier", show_default=False)] = None,
    from_run: Annotated[str | None, typer.Option(
        "--from-run", help="Start from the strategy, estimator and hyperparameters of this run "
        "(an id, a unique prefix, latest, a name or an alias; flags and --param override "
        "them)", show_default=False)] = None,
    from_study: Annotated[str | None, typer.Option(
        "--from-study", help="Start from the best trial of this tune study: its name, a unique "
        "prefix or latest (its storage: --storage / REVCLI_STORAGE, else the workspace's)",
        show_default=False)] = None,
    drop_feature: _options.DropFeature = None,
    classifier: _options.Classifier = None,
    trust: _options.Trust = False,
    combine: _options.Combine = None,
    threshold: _options.Threshold = None,
    data: _options.Data = None,
    split: _options.SplitKind = None,
    time_column: _options.TimeColumn = None,
    gap: _options.Gap = None,
    test_size: _options.TestSize = None,
    seed: _options.Seed = None,
    n_jobs: Annotated[int | None, typer.Option(
        "--n-jobs", help="Threads, -1 for as many as the rows can use \\[default: -1]",
        show_default=False)] = None,
    run_name: Annotated[str | None, typer.Option(
        "--run-name", help="MLflow run name", show_default=False)] = None,
    note: _options.Note = None,
    tag: _options.Tag = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the PNG plots")] = False,
    importance: Annotated[str, typer.Option(
        "--importance", help="native: the estimator's own (XGBoost gain; free) | permutation: "
        "RMSE increase when a column is shuffled (any estimator, seconds)")] = "native",
    backtest: Annotated[int, typer.Option(
        "--backtest", help="With --split time: refit at N forward cut-offs (expanding window, "
        "--gap respected) and score each next window beside its own train mean")] = 0,
    timings: Annotated[bool, typer.Option(
        "--timings", help="Print the seconds each step took (also in --json)")] = False,
    storage: Annotated[str | None, typer.Option(
        "--storage", help="Optuna storage of --from-study \\[env: REVCLI_STORAGE]",
        show_default=False)] = None,
    cluster: _options.Cluster = None,
    cluster_workers: _options.ClusterWorkers = None,
    worker_memory: _options.WorkerMemory = None,
    experiment: _options.Experiment = None,
    tracking_uri: _options.TrackingUri = None,
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
    quiet: _options.Quiet = False,
) -> None:
    """Train a model of session revenue, score it beside the baseline, log an MLflow run.

    Uses the workspace's current dataset; a workspace that never had one gets the full-size
    demo set (said on stderr), and a current dataset that is broken or missing is an error.
    Every strategy shares the split (random and stratified on is_ordered by default; --split
    time trains on the earliest sessions and tests on the latest), the scorecard shows each
    metric beside the train-mean baseline, and a leakage audit names any feature that gives the
    order away. Timestamps become calendar features, text columns categories. With --cluster
    it runs on Dask (xgb, xgb_log), and --data may be a directory or s3:// prefix of parts.

    Examples:

        revcli train --strategy converting_only
        revcli train --strategy two_stage --estimator xgb --split time
        revcli train --strategy all --drop-feature engagement_depth --json
        revcli train -e rf -p max_depth=8 -p n_estimators=100 --note "seed recipe, shallower"
        revcli train --from-study nightly --note "best of the nightly search"
        revcli train --timings --importance permutation
        revcli train --strategy two_stage --split time --gap 7d --backtest 4
        revcli train -s two_stage --cluster local --data ./sessions/
        revcli train --cluster tcp://scheduler:8786 --json
        revcli train -s two_stage --classifier models:/conversion@champion
    """
    from revcli import estimators
    from revcli import train as core

    reporter = ConsoleReporter(quiet=quiet)
    with cli_errors(reporter):
        settings = _options.resolve(
            config, workspace=workspace, strategy=strategy, estimator=estimator,
            combine=combine, threshold=threshold, test_size=test_size, seed=seed, n_jobs=n_jobs,
            split=split, time_column=time_column, gap=gap, storage=storage,
            cluster=cluster, cluster_workers=cluster_workers, worker_memory=worker_memory,
            experiment=experiment, tracking_uri=tracking_uri)
        params = dict(estimators.parse_param(p) for p in (param or []))
        with stdout_to_stderr(json):
            result = core.train(settings, data=data, params=params,
                                drop_features=drop_feature or [], run_name=run_name,
                                plots=not no_plots, importance=importance, note=note,
                                tags=_options.parse_tags(tag),
                                from_run=from_run, from_study=from_study, backtest=backtest,
                                classifier=classifier, trust=trust, reporter=reporter)
        reporter.close()
        if json:
            print_json(result.to_dict())
            return
        _render(result, quiet)
        if timings:
            from revcli.cli._render import render_timings

            render_timings(result.timings)


def _render(result: Any, quiet: bool) -> None:
    from revcli.cli._render import render_leakage, render_scorecard

    card = result.scorecard
    split = result.split
    title = (f"{result.strategy} / {result.estimator} on {card.population} "
             f"({card.rows:,} rows, {card.converters:,} converters)")
    render_scorecard(card, title)
    if not quiet:
        render_leakage(result.honesty, result.strategy)
    out.print(f"run [bold]{result.run_id}[/] in {safe(repr(result.experiment))} at "
              f"{safe(result.tracking_uri)}")
    engine = result.engine
    if engine.get("kind") == "dask" and not quiet:
        out.print(f"trained on Dask ({engine['workers']} workers, {safe(engine['scheduler'])}); "
                  f"dashboard {safe(engine['dashboard'])}")
    if not quiet:
        out.print(f"dataset {result.dataset.short} · split {split['hash']} "
                  f"({split['train_rows']:,} train / {split['test_rows']:,} test; converters "
                  f"{split['train_converters']:,} / {split['test_converters']:,})")
        out.print(f"model {safe(result.model_path)} (sha256 {result.model_sha256[:12]})")
        if result.classifier:
            c = result.classifier
            out.print(f"stage 1: classifier {safe(c['uri'])} (run {c['run_id'] or '?'}, "
                      f"sha256 {c['sha256'][:12]}; embedded in the model)")
        if result.plots:
            out.print(f"plots {safe(next(iter(result.plots.values())).parent)}")
    if result.backtest:
        from revcli.cli._console import output_width, sized_console
        from revcli.cli._render import backtest_table

        width = output_width()
        sized_console(width).print(backtest_table(result.backtest, width))
