"""``revcli tune``: a resumable Optuna search over a declared space, scored by CV on the training
split, with the best refit and scored once on the holdout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from revcli.cli import _options
from revcli.cli._console import ConsoleReporter, cli_errors, out, print_json, safe, stdout_to_stderr
from revcli.errors import EXIT_INTERRUPTED


def tune(
    strategy: Annotated[str | None, typer.Option(
        "--strategy", "-s", help="all | converting_only | two_stage \\[default: converting_only]",
        show_default=False)] = None,
    estimator: Annotated[str | None, typer.Option(
        "--estimator", "-e", help="An estimator with a search space (xgb, xgb_log, hgb, rf, "
        "ridge, gbr_quantile, ensemble) or 'all' to search across them \\[default: xgb]",
        show_default=False)] = None,
    n_trials: Annotated[int | None, typer.Option(
        "--n-trials", "-n", help="New completed trials to add (pruned and failed ones do not "
        "count) \\[env: REVCLI_N_TRIALS; default: 50, or unlimited with only --timeout]",
        show_default=False)] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", "-t", help="Start no new trial after this many seconds \\[env: "
        "REVCLI_TIMEOUT]", show_default=False)] = None,
    n_jobs: Annotated[int | None, typer.Option(
        "--n-jobs", "-j", help="Trials at a time, each on cores/N threads; 1 makes a seeded "
        "search reproducible \\[default: -1, one trial per core]", show_default=False)] = None,
    metric: Annotated[str | None, typer.Option(
        "--metric", "-m", help="CV metric to minimise: rmse | mae | tweedie_deviance "
        "\\[env: REVCLI_TUNE_METRIC; default: rmse]", show_default=False)] = None,
    folds: Annotated[int | None, typer.Option(
        "--folds", help="Cross-validation folds on the training split \\[env: REVCLI_CV_FOLDS; "
        "default: 3]", show_default=False)] = None,
    space: Annotated[Path | None, typer.Option(
        "--space", help="Spaces file \\[env: REVCLI_SPACES; default: configs/spaces.toml, else "
        "the built-in spaces]", show_default=False)] = None,
    storage: Annotated[str | None, typer.Option(
        "--storage", help="Optuna storage URL shared by workers, e.g. postgresql://user@host/db "
        "\\[env: REVCLI_STORAGE; default: sqlite in the workspace]", show_default=False)] = None,
    study: Annotated[str | None, typer.Option(
        "--study", help="Study name \\[default: derived from strategy, estimator, metric, folds, "
        "dataset, space and setup, so the same command resumes it]", show_default=False)] = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Delete the study's trials and start it over")] = False,
    drop_feature: _options.DropFeature = None,
    combine: _options.Combine = None,
    threshold: _options.Threshold = None,
    top: Annotated[int, typer.Option("--top", help="Trials shown in the table", min=1)] = 5,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the PNG plots")] = False,
    data: _options.Data = None,
    split: _options.SplitKind = None,
    time_column: _options.TimeColumn = None,
    gap: _options.Gap = None,
    test_size: _options.TestSize = None,
    note: _options.Note = None,
    tag: _options.Tag = None,
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
    """Search hyperparameters by cross-validation on the training split; refit the best.

    The study lives in the workspace (or --storage) under a name derived from the setup, so
    running the same command again resumes it, also after Ctrl-C or kill -9: trials left
    running by a dead worker are failed and retried once. Several workers may share a study.
    The holdout is scored once, by the refit best model, beside the baseline. Ctrl-C stops
    after the running trial, refits the best so far and exits 130. With --cluster the
    trials run as tasks on the Dask workers (one at a time on each, the CV folds sent to every
    worker once) against the same study; the refit runs here.

    Examples:

        revcli tune --strategy converting_only --estimator xgb --n-trials 50
        revcli tune --strategy two_stage --estimator all --timeout 600 --n-jobs 2
        revcli tune --storage postgresql://user@db-host/optuna --study nightly
        revcli tune --cluster local --n-trials 40          # a trial per Dask worker at a time
        revcli tune --space my_spaces.toml --metric mae --fresh --json
    """
    from revcli import tuning

    reporter = ConsoleReporter(quiet=quiet)
    with cli_errors(reporter):
        settings = _options.resolve(
            config, workspace=workspace, strategy=strategy, estimator=estimator,
            n_trials=n_trials, timeout=timeout, n_jobs=n_jobs, tune_metric=metric,
            cv_folds=folds, spaces=space, storage=storage, combine=combine,
            threshold=threshold, seed=seed, experiment=experiment, tracking_uri=tracking_uri,
            split=split, time_column=time_column, gap=gap, test_size=test_size,
            cluster=cluster, cluster_workers=cluster_workers, worker_memory=worker_memory)
        with stdout_to_stderr(json):
            result = tuning.tune(settings, data=data, drop_features=drop_feature or [],
                                 study_name=study, fresh=fresh, top=top, plots=not no_plots,
                                 note=note, tags=_options.parse_tags(tag), reporter=reporter)
        reporter.close()
        if json:
            print_json(result.to_dict())
        else:
            _render(result, quiet)
    if result.interrupted:
        raise typer.Exit(code=EXIT_INTERRUPTED)


def _fmt_params(params: dict[str, Any]) -> str:
    def one(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k}={one(v)}" for k, v in params.items())


def _render(result: Any, quiet: bool) -> None:
    from rich.table import Table

    from revcli.cli._render import render_leakage, render_scorecard

    new, totals = result.new, result.totals
    stopped = {"n_trials": "trials done", "timeout": "time is up",
               "interrupted": "interrupted"}.get(result.stop_reason, result.stop_reason)
    if result.top:
        multi = len({t.estimator for t in result.top}) > 1 or result.key["estimator"] == "all"
        table = Table(title=f"top trials of {safe(result.study)} (cv {result.metric}, lower is "
                      "better)",
                      title_justify="left")
        table.add_column("trial", justify="right")
        table.add_column(f"cv {result.metric}", justify="right")
        table.add_column("folds", justify="right")
        if multi:
            table.add_column("estimator")
        table.add_column("params", overflow="fold")
        for t in result.top:
            # enough digits to tell trials apart (a 0.08 % gain is the 4th decimal of $17)
            row = [str(t.number), f"{t.value:.4f}", " ".join(f"{v:.3f}" for v in t.fold_scores)]
            if multi:
                row.append(t.estimator)
            row.append(safe(_fmt_params(t.params)))
            table.add_row(*row)
        out.print(table)
    out.print(f"trials: {new['completed']} new completed, {new['pruned']} pruned, "
              f"{new['failed']} failed ({stopped}) · study: {totals['complete']} completed of "
              f"{totals['total']}")
    engine = result.engine
    if engine.get("kind") == "dask" and not quiet:
        out.print(f"trials ran on Dask ({engine['workers']} workers, "
                  f"{safe(engine['scheduler'])}; dashboard {safe(engine['dashboard'])}); the "
                  "refit ran in this process")
    if result.refit is None:
        out.print("[yellow]no completed trial yet: nothing refit[/]")
        return
    versus = result.versus_default
    if versus is not None:
        _render_versus(versus, result.metric)
    card = result.refit.scorecard
    best = result.best
    which = (f"the defaults (trial {versus['default_trial']})"
             if versus is not None and versus["chosen"] == "default"
             else f"best trial {best.number}")
    title = (f"holdout, scored once: {which} ({result.refit.strategy} / "
             f"{result.refit.estimator}) on {card.population} ({card.rows:,} rows, "
             f"{card.converters:,} converters)")
    render_scorecard(card, title)
    if not quiet:
        render_leakage(result.refit.honesty, result.refit.strategy)
    out.print(f"run [bold]{result.parent_run_id}[/] in {safe(repr(result.experiment))} at "
              f"{safe(result.tracking_uri)}")
    if not quiet:
        out.print(f"study {safe(result.study)} in {safe(result.storage)}")
        out.print(f"model {safe(result.refit.model_path)} "
                  f"(sha256 {result.refit.model_sha256[:12]})")
        for note in result.notes:
            out.print(f"[dim]note: {safe(note)}[/]")


def _render_versus(versus: dict[str, Any], metric: str) -> None:
    """The best trial beside the defaults it started from: CV scores, the gain with its
    fold-to-fold spread, and which of the two was refit."""
    def num(value: Any) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    gain, pct = versus["gain"], versus.get("gain_pct")
    spread = ("" if versus["fold_sd"] is None else
              f", fold-to-fold SD {versus['fold_sd']:.4f}, needed > {num(versus['margin'])}")
    verdict = ("[green]clearly better: the best trial is refit[/]" if versus["clear"] else
               "[yellow]not clearly better: the defaults are refit[/]"
               if versus["best_trial"] != versus["default_trial"] else
               "the defaults are the best trial")
    out.print(f"cv {metric}: best trial {versus['best_trial']} {num(versus['best_cv'])} vs the "
              f"defaults (trial {versus['default_trial']}) {num(versus['default_cv'])}: gain "
              f"{gain:+.4f}" + ("" if pct is None else f" ({pct:+.2f} %)") + spread
              + f"; {verdict}")
