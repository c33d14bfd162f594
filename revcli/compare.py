"""``revcli compare``: runs side by side from MLflow, and the three strategies on one split.

:func:`compare_runs` reads runs with ``MlflowClient.search_runs`` (one call per 1,000 runs, filters
pushed to the store) and returns a :class:`Comparison`: rows with their metrics, params, dataset and
split, sorted best first by a metric's own direction (:data:`revcli.metrics.METRICS`), an optional
pinned baseline run with deltas, and warnings when the runs' scores are not comparable (different
datasets, splits or populations) or not honest (trained with a leaking feature).

:func:`compare_strategies` trains every strategy (for one or more estimators) on one split, logs
each as a run, and scores them all on the same rows: every test session, where
``converting_only`` is paired with the two_stage classifier of its estimator (P(order) x its
order value), and the test converters alone, where ``converting_only`` is scored as the seed
pipeline scored it.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from revcli import metrics, pipeline, runs, strategies, tracking
from revcli.errors import ConfigError, NotFoundError
from revcli.progress import SILENT, Reporter
from revcli.tracking import LoggedRun
from revcli.workspace import Workspace

if TYPE_CHECKING:
    from revcli.settings import Settings

DEFAULT_TOP = 20
MAX_RUNS = tracking.search.MAX_RUNS
# Logged but not worth a column: the feature list is long, dropped_features says what differs.
QUIET_PARAMS = frozenset({"features"})
CONV = metrics.CONVERTER_OF
FORMATS = ("table", "md", "csv", "json")
# Shown beside the main metrics when runs have them (--metric picks any other): the zero-aware
# scores that compare all-sessions runs, and the converter RMSE that compares every strategy.
DEFAULT_EXTRA = ("total_ratio", "gini", "conv_rmse", "conv_r2", "auc")


# -- reading runs -------------------------------------------------------------------------------

@dataclass
class RunRow:
    """One MLflow run as compare shows it."""

    run_id: str
    name: str
    started: dt.datetime | None
    command: str
    strategy: str
    estimator: str
    population: str
    scored_on: str | None
    dataset: str
    split: str
    split_kind: str | None
    leakage: list[str]
    honest: bool | None
    metrics: dict[str, float]
    baseline: dict[str, float]
    params: dict[str, str]
    experiment_id: str
    parent: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    derived: list[str] = field(default_factory=list)  # conv_* filled from its own scores
    # --baseline: the sort metric minus the pinned run's, paired on the same rows (95 %)
    vs_baseline: dict[str, Any] | None = None

    @property
    def short(self) -> str:
        return self.run_id[:8]

    def age(self, now: dt.datetime | None = None) -> str:
        """How long ago the run started, in a few characters: 45s, 3m, 2h, 5d, 3w, 2y."""
        if self.started is None:
            return "-"
        seconds = max(0.0, ((now or dt.datetime.now(dt.UTC)) - self.started).total_seconds())
        for unit, size, below in (("s", 1, 60), ("m", 60, 3600), ("h", 3600, 48 * 3600),
                                  ("d", 86400, 14 * 86400), ("w", 7 * 86400, 365 * 86400)):
            if seconds < below:
                return f"{int(seconds // size)}{unit}"
        return f"{int(seconds // (365 * 86400))}y"

    @property
    def not_honest(self) -> bool:
        """The verdict recorded at training (revcli.honest); runs from before that tag are
        judged by their leakage findings."""
        return self.honest is False or (self.honest is None and bool(self.leakage))

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "name": self.name,
                "started": self.started.isoformat(timespec="seconds") if self.started else None,
                "command": self.command, "strategy": self.strategy, "estimator": self.estimator,
                "population": self.population, "scored_on": self.scored_on,
                "dataset_sha256": self.dataset, "split_hash": self.split,
                "split": self.split_kind, "leakage": self.leakage, "honest": self.honest,
                "metrics": {k: _finite(v) for k, v in self.metrics.items()},
                "baseline": {k: _finite(v) for k, v in self.baseline.items()},
                "params": self.params, "derived_metrics": self.derived,
                "vs_baseline": self.vs_baseline,
                "experiment_id": self.experiment_id, "tags": self.tags}


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def row_from_run(run: LoggedRun) -> RunRow:
    r = run.record
    user_tags = {k: v for k, v in run.raw.data.tags.items()
                 if not k.startswith(("mlflow.", tracking.record.PREFIX))} if run.raw else {}
    return RunRow(
        run_id=run.run_id, name=run.name, started=run.started, command=r.command,
        strategy=run.strategy, estimator=run.estimator, population=r.population or "unknown",
        scored_on=r.scored_on, dataset=r.dataset_sha256 or "", split=r.split_hash or "",
        split_kind=r.split, leakage=r.leakage, honest=r.honest, metrics=dict(run.metrics),
        baseline=dict(run.baseline), params=dict(run.params),
        experiment_id=run.experiment_id, parent=run.parent_id, tags=user_tags)


def derive_converter_metrics(rows: Sequence[RunRow]) -> None:
    """Give runs scored on converters the conv_* metrics of all-sessions runs.

    Their rmse/mae/r2/mape ARE converter scores by the one definition of conv_*
    (revcli.metrics.converter_scores: the order value predicted for a converting session), on
    the same rows as the conv_* of a two_stage run on the same split; with them a mixed list can
    be sorted on something that compares.
    """
    for row in rows:
        if row.scored_on != strategies.CONVERTERS:
            continue
        for main, conv in CONV.items():
            if main in row.metrics and conv not in row.metrics:
                row.metrics[conv] = row.metrics[main]
                row.derived.append(conv)
            if main in row.baseline and conv not in row.baseline:
                row.baseline[conv] = row.baseline[main]


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """A duration ago (:mod:`revcli.durations`: ``2d``, ``12h``, ``90m``, ``1h30m``) or a date /
    ISO datetime (UTC unless it says)."""
    from revcli import durations

    now = now or dt.datetime.now(dt.UTC)
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            return now - durations.parse(text, "--since")
        except ConfigError:
            raise ConfigError(f"--since {text!r}: give a duration ({durations.EXAMPLES}) or a "
                              "date (2026-11-01, 2026-11-01T09:00)") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


# -- the comparison -------------------------------------------------------------------------------

@dataclass
class Comparison:
    experiment: str
    tracking_uri: str
    rows: list[RunRow]
    metrics: list[str]
    params: list[str]
    sort: str | None
    baseline: RunRow | None = None
    side_by_side: bool = False
    reference: dict[str, float] | None = None  # the train-mean baseline, when all rows share it
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    hint: str | None = None

    @property
    def all_rows(self) -> list[RunRow]:
        return ([self.baseline] if self.baseline else []) + self.rows

    def delta(self, row: RunRow, metric: str) -> float | None:
        if self.baseline is None or row is self.baseline:
            return None
        a, b = row.metrics.get(metric), self.baseline.metrics.get(metric)
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
            return None
        return a - b

    def to_dict(self) -> dict[str, Any]:
        def row(r: RunRow) -> dict[str, Any]:
            data = r.to_dict()
            data["pinned"] = r is self.baseline
            if self.baseline is not None and r is not self.baseline:
                data["delta"] = {m: self.delta(r, m) for m in self.metrics}
            return data

        return {"experiment": self.experiment, "tracking_uri": self.tracking_uri,
                "sort": self.sort, "metrics": self.metrics, "params": self.params,
                "baseline_run": self.baseline.run_id if self.baseline else None,
                "runs": [row(r) for r in self.all_rows],
                "reference": ({k: _finite(v) for k, v in self.reference.items()}
                              if self.reference else None),
                "warnings": self.warnings, "notes": self.notes, "hint": self.hint}

    def tabular(self) -> tuple[list[str], list[list[Any]]]:
        """Plain headers and values (for CSV / Markdown): one row per run, or, side by side,
        one row per metric and param with one column per run."""
        if self.side_by_side:
            runs = self.all_rows
            headers = ["", *(f"{r.name or r.short} ({r.short})" for r in runs)]
            body: list[list[Any]] = [
                ["started", *(r.started.strftime("%Y-%m-%d %H:%M") if r.started else ""
                              for r in runs)],
                *([key, *(getattr(r, attr) for r in runs)] for key, attr in (
                    ("strategy", "strategy"), ("estimator", "estimator"),
                    ("population", "population"))),
                ["dataset", *(r.dataset[:12] for r in runs)],
                ["split", *(r.split[:12] for r in runs)],
                ["leakage", *(",".join(r.leakage) or "none" for r in runs)],
            ]
            body += [[m, *(r.metrics.get(m) for r in runs)] for m in self.metrics]
            body += [[f"param {param_label(p)}", *(r.params.get(p, "") for r in runs)]
                     for p in self.params]
            return headers, body
        headers = ["run_id", "name", "started", "command", "strategy", "estimator", "dataset",
                   "split", "leakage", *self.metrics]
        if self.baseline is not None:
            headers += [f"{m}_delta" for m in self.metrics]
        headers += [f"param {param_label(p)}" for p in self.params]
        body = []
        for r in self.all_rows:
            line: list[Any] = [r.run_id, r.name,
                               r.started.strftime("%Y-%m-%d %H:%M") if r.started else "",
                               r.command, r.strategy, r.estimator, r.dataset[:12], r.split[:12],
                               ",".join(r.leakage) or "none",
                               *(r.metrics.get(m) for m in self.metrics)]
            if self.baseline is not None:
                line += [self.delta(r, m) for m in self.metrics]
            line += [r.params.get(p, "") for p in self.params]
            body.append(line)
        return headers, body


def sort_key(metric: str) -> Any:
    """Best first by the metric's own direction; runs without it last."""
    return metrics.sort_key(metric)


def _count(values: Sequence[str]) -> str:
    return ", ".join(f"{(v[:8] or 'unknown')}: {n} runs" for v, n in Counter(values).most_common())


def comparability(rows: Sequence[RunRow]) -> list[str]:
    """Why the scores of ``rows`` cannot be compared with each other, if they cannot."""
    warnings = []
    datasets = [r.dataset for r in rows]
    if len(set(datasets)) > 1:
        warnings.append(f"these runs were trained on {len(set(datasets))} different datasets "
                        f"({_count(datasets)}): their scores are not comparable")
    else:
        splits = [r.split for r in rows]
        if len(set(splits)) > 1:
            warnings.append(f"these runs were scored on {len(set(splits))} different splits "
                            f"({_count(splits)}, e.g. another seed or test size): their scores "
                            "are not comparable")
    populations = Counter(r.population for r in rows)
    if len(populations) > 1:
        listed = ", ".join(f"{p}: {n} runs" for p, n in populations.most_common())
        warnings.append(f"these runs were scored on different rows ({listed}): rmse, mae, r2 "
                        "and mape are not comparable across them; the conv_* columns are "
                        "(the order value each predicts for the test converters: "
                        "converting_only's prediction, two_stage's stage 2; all has none)")
    kinds = Counter(r.split_kind or "random" for r in rows)
    if len(kinds) > 1:
        warnings.append("these runs used different kinds of split ("
                        + ", ".join(f"{k}: {n} runs" for k, n in kinds.most_common())
                        + "): a random split flatters time features, so their scores are not "
                        "comparable")
    dishonest = [r for r in rows if r.not_honest]
    if dishonest:
        names = sorted({f for r in dishonest for f in r.leakage})
        warnings.append(f"{len(dishonest)} of {len(rows)} runs were judged not honest when they "
                        f"were trained (revcli.honest=false"
                        + (f"; their scores rest on {', '.join(names)}" if names else "")
                        + ")")
    return warnings


# How a run logs one hyperparameter twice: ``hyper.<name>`` (what was asked for) and
# ``model.<part>__<name>`` (the fitted estimator's value). The main estimator's part is
# ``estimator`` (or two_stage's ``regressor``), which ``hyper.`` names leave out.
_MAIN_PARTS = ("estimator__", "regressor__")


def param_label(key: str) -> str:
    """The one name of a logged param: ``hyper.max_depth`` and ``model.estimator__max_depth``
    are both ``max_depth``; ``classifier__max_depth`` keeps its part."""
    if key.startswith("hyper."):
        return key.removeprefix("hyper.")
    if key.startswith("model."):
        name = key.removeprefix("model.")
        for part in _MAIN_PARTS:
            if name.startswith(part):
                return name.removeprefix(part)
        return name
    return key


def _param_columns(rows: Sequence[RunRow], only_changed: bool) -> list[str]:
    """Param keys to show, one per hyperparameter: where ``hyper.X`` and ``model.*X`` name the
    same one, the fitted model's value (``model.``) stands for both."""
    keys = sorted({k for r in rows for k in r.params})
    fitted = {param_label(k) for k in keys if k.startswith("model.")}
    keys = [k for k in keys if not (k.startswith("hyper.") and param_label(k) in fitted)]
    if not only_changed:
        return [k for k in keys if k not in QUIET_PARAMS]
    return [k for k in keys if len({r.params.get(k) for r in rows}) > 1]


def _metric_columns(rows: Sequence[RunRow], wanted: Sequence[str] | None) -> list[str]:
    if wanted:
        for m in wanted:
            metrics.get(m)
        return list(wanted)
    present = {k for r in rows for k in r.metrics}
    return [m for m in metrics.METRICS if m in metrics.MAIN_METRICS
            or (m in DEFAULT_EXTRA and m in present)]


def _experiment(tracker: tracking.Tracker, settings: Settings) -> str | None:
    """The experiment's id; None when it does not exist and was not asked for by name."""
    name = settings.experiment
    found = tracker.experiment_id(name, create=False)
    if found is None and settings.source_of("experiment") != "default":
        known = [e.name for e in tracker.experiments(limit=20)]
        raise NotFoundError(f"no experiment {name!r} in {tracker.shown}; experiments there: "
                            f"{', '.join(known) or 'none'}")
    return found


def _tag_filters(tags: Sequence[str]) -> list[str]:
    """``--tag k=v`` (or ``k`` for "has it") as MLflow search filters."""
    filters = []
    for item in tags:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not key or "`" in key:
            raise ConfigError(f"--tag {item!r} is not key=value (or key)")
        filters.append(f"tags.`{key}` = {tracking.search.quote(value.strip())}" if sep
                       else f"tags.`{key}` != ''")
    return filters


def compare_runs(settings: Settings, *, run_ids: Sequence[str] = (), strategy: str | None = None,
                 estimator: str | None = None, since: str | None = None,
                 top: int = DEFAULT_TOP, sort: str | None = None, params: bool = False,
                 only_changed: bool = False, baseline: str | None = None,
                 metric_names: Sequence[str] | None = None, tags: Sequence[str] = (),
                 include_nested: bool = False, reporter: Reporter = SILENT) -> Comparison:
    """The latest ``top`` runs of ``settings.experiment`` (after the filters), best first by
    ``sort``; or exactly ``run_ids``, side by side. ``baseline`` (any run reference, e.g.
    champion) is pinned first and the others get deltas against it. Only reads: a workspace
    without an MLflow store gets none made."""
    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    if sort is not None:
        sort_key(sort)  # unknown metric: fail before any request
    filters = ["attributes.status = 'FINISHED'", *_tag_filters(tags)]
    if since:
        when = parse_since(since)
        filters.append(f"attributes.start_time >= {int(when.timestamp() * 1000)}")
    ws = Workspace(settings.workspace)
    reporter.step("reading MLflow runs")
    tracker, _ = tracking.connect(settings, ws, experiment=False, create=False, reading=True)
    result = Comparison(experiment=settings.experiment, tracking_uri=tracker.shown, rows=[],
                        metrics=[], params=[], sort=sort, side_by_side=bool(run_ids))
    if tracker.is_workspace_store and not ws.mlflow_db.is_file():
        result.hint = (f"no runs yet: the workspace {ws.root} has no MLflow store; "
                       "`revcli train` makes the first run")
        return result

    pinned: RunRow | None = None
    if baseline is not None:
        resolved = tracking.resolve(tracker, baseline, settings.registry_model)
        pinned = row_from_run(tracker.get_run(resolved.run_id))
        if resolved.how != f"run {resolved.run_id}":
            result.notes.append(f"baseline: {resolved.how}")

    if run_ids:
        rows = _explicit_runs(tracker, settings, run_ids)
    else:
        experiment_id = _experiment(tracker, settings)
        if experiment_id is None:
            result.hint = (f"no runs yet: experiment {settings.experiment!r} does not exist in "
                           f"{tracker.shown}; `revcli train` makes the first run")
            return result
        if strategy:
            filters.append(f"tags.`revcli.strategy` = {tracking.search.quote(strategy)}")
        if estimator:
            filters.append(f"tags.`revcli.estimator` = {tracking.search.quote(estimator)}")

        def keep(run: LoggedRun) -> bool:
            return (run.record.command != tracking.record.EVALUATE
                    and (include_nested or run.parent_id is None)
                    and (pinned is None or run.run_id != pinned.run_id))

        found, capped = tracking.search.runs(tracker, [experiment_id], " and ".join(filters),
                                             enough=None if sort else top, keep=keep)
        if capped:
            result.notes.append(f"only the newest {MAX_RUNS:,} runs were read")
        rows = [row_from_run(r) for r in found]
        if not rows and pinned is None:
            what = ", ".join(f for f in (strategy and f"strategy {strategy}",
                                         estimator and f"estimator {estimator}",
                                         since and f"since {since}",
                                         tags and f"tags {', '.join(tags)}") if f)
            result.hint = (f"no finished runs in experiment {settings.experiment!r}"
                           + (f" matching {what}" if what else "")
                           + "; `revcli train` or `revcli compare strategies` makes some")
            return result
        if not sort:
            rows = rows[:top]
        everyone = [*rows, *([pinned] if pinned else [])]
        mixed = len({r.scored_on for r in everyone}) > 1
        if mixed:
            derive_converter_metrics(everyone)
        if not sort:
            sort = settings.promote_metric
            if mixed and sort in CONV:
                result.notes.append(f"sorted by {CONV[sort]}, not {sort}: the runs were scored "
                                    "on different rows, and only their converter scores compare")
                sort = CONV[sort]
        rows = sorted(rows, key=sort_key(sort))[:top]
        result.sort = sort
    everything = [*([pinned] if pinned else []), *rows]
    result.rows, result.baseline = rows, pinned
    result.metrics = _metric_columns(everything, metric_names)
    if params or only_changed or run_ids:
        result.params = _param_columns(everything, only_changed or (bool(run_ids) and not params))
    result.warnings = comparability(everything)
    if not result.warnings and everything and everything[0].baseline:
        result.reference = dict(everything[0].baseline)
    if any(r.derived for r in everything):
        result.notes.append("runs scored on the test converters have conv_* values equal to "
                            "their own rmse/mae/r2/mape")
    if pinned is not None and result.sort and not result.warnings[:1]:
        _paired_with_baseline(settings, ws, tracker, pinned, rows, result, reporter)
    return result


#: compare runs --baseline scores at most this many runs beside the pinned one, row by row.
MAX_PAIRED = 20


def _paired_with_baseline(settings: Settings, ws: Workspace, tracker: tracking.Tracker,
                          pinned: RunRow, rows: Sequence[RunRow], result: Comparison,
                          reporter: Reporter) -> None:
    """Each run's sort metric minus the pinned run's, both models scored on the same rows,
    with its 95 % interval (revcli.evaluate.paired, as the promotion gate). Runs whose model is
    not in this workspace, or not on the pinned run's dataset and split, get none."""
    from revcli import evaluate
    from revcli.errors import RevcliError

    missed = 0
    for row in rows[:MAX_PAIRED]:
        if row.dataset != pinned.dataset or row.split != pinned.split:
            continue
        reporter.step(f"scoring {row.short} and {pinned.short} on the same rows")
        try:
            row.vs_baseline = evaluate.paired(settings, ws, tracker, row.run_id,
                                              pinned.run_id, str(result.sort),
                                              reporter).to_dict()
        except RevcliError:
            missed += 1
    if missed:
        result.notes.append(f"{missed} run(s) could not be scored beside the baseline on the "
                            "same rows (their model is not in this workspace, or they predict "
                            f"no {result.sort}): no interval for them")


def _explicit_runs(tracker: tracking.Tracker, settings: Settings,
                   refs: Sequence[str]) -> list[RunRow]:
    ids = [tracking.resolve(tracker, ref, settings.registry_model).run_id for ref in refs]
    by_id = tracking.search.by_ids(tracker, ids)
    missing = [ref for ref, i in zip(refs, ids, strict=True) if i not in by_id]
    if missing:
        raise NotFoundError(f"no MLflow run {', '.join(map(repr, missing))} in {tracker.shown}; "
                            "`revcli compare runs` lists recent runs")
    return [row_from_run(by_id[i]) for i in dict.fromkeys(ids)]


# -- compare strategies -------------------------------------------------------------------------

LEADERBOARD_METRICS = ("rmse", "mae", "r2", "total_ratio", "gini", "top10_share", "auc",
                       "conv_rmse", "conv_mae", "conv_r2", "conv_mape")


@dataclass
class LeaderRow:
    label: str
    strategy: str
    estimator: str
    run_id: str | None
    metrics: dict[str, float]
    kind: str = "model"  # or "baseline"
    leakage: list[str] = field(default_factory=list)
    note: str = ""
    # An order-value model scored on all sessions paired with a P(order) (see compare_strategies)
    paired: bool = False
    backtest: list[dict[str, Any]] = field(default_factory=list)  # revcli.backtest windows
    # the sort metric minus the best row's, paired on the same rows, with its 95 % interval
    vs_best: dict[str, Any] | None = None
    # predictions on every test session and order values (not shown; for the paired interval)
    predictions: Any = field(default=None, repr=False)
    order_values: Any = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "strategy": self.strategy, "estimator": self.estimator,
                "run_id": self.run_id, "kind": self.kind, "leakage": self.leakage,
                "note": self.note, "paired": self.paired, "backtest": self.backtest,
                "vs_best": self.vs_best,
                "metrics": {k: _finite(v) for k, v in self.metrics.items()}}


@dataclass
class Leaderboard:
    rows: list[LeaderRow]
    sort: str
    dataset: str
    split: dict[str, Any]
    batch: str
    experiment: str
    tracking_uri: str
    features: list[str]
    dropped: list[str]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    backtest: int = 0  # windows each row was backtested on (ranked on their mean)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [r.to_dict() for r in self.rows], "sort": self.sort,
                "backtest_windows": self.backtest,
                "dataset_sha256": self.dataset, "split": self.split, "batch": self.batch,
                "experiment": self.experiment, "tracking_uri": self.tracking_uri,
                "features": self.features, "dropped": self.dropped, "metrics":
                list(LEADERBOARD_METRICS), "warnings": self.warnings, "notes": self.notes}

    def tabular(self) -> tuple[list[str], list[list[Any]]]:
        headers = ["model", "strategy", "estimator", "run_id", "leakage",
                   *LEADERBOARD_METRICS]
        return headers, [[r.label, r.strategy, r.estimator, r.run_id or "",
                          ",".join(r.leakage) or "none",
                          *(r.metrics.get(m) for m in LEADERBOARD_METRICS)] for r in self.rows]


def _all_sessions_and_converters(card: metrics.Scorecard) -> dict[str, float]:
    return {k: v for k, v in card.metrics.items() if k in LEADERBOARD_METRICS}


def compare_strategies(settings: Settings, *, estimator_names: Sequence[str] = (),
                       strategy_names: Sequence[str] | None = None,
                       data: Any = None, drop_features: Sequence[str] = (),
                       sort: str = "rmse", plots: bool = False, backtest: int = 0,
                       classifier: str | None = None, trust: bool = False,
                       reporter: Reporter = SILENT) -> Leaderboard:
    """Train each strategy x estimator on one split, log each run, score all on the same rows.

    Every row is scored on every test session; a strategy whose prediction is an order value
    (not an expected revenue) is paired there with P(order) from the classifier of a strategy
    with one (fitted for the occasion if none is compared) by the two-stage rule, and scored on
    the converters with its own order values, as the seed scored it. ``classifier`` (a
    reference, revcli.tracking.classifier) adds two_stage with that classifier as its first
    stage, for each estimator, beside the others on the same rows.

    ``backtest`` (``--split time``): each model's recipe is also refitted at that many forward
    cut-offs (revcli.backtest) and the rows are ranked on the mean of ``sort`` over the windows
    (``backtest_<sort>``, with its SD); a strategy without that score on its own rows (the
    all-sessions RMSE of converting_only) has none and comes last.
    """
    if backtest and settings.split != "time":
        raise ConfigError("--backtest needs --split time: its windows go forward in time")
    from revcli import engines

    engines.in_process_only(settings, "compare strategies", reporter)
    names = list(dict.fromkeys(estimator_names or [settings.estimator]))
    chosen = list(dict.fromkeys(strategy_names or strategies.names()))
    sort_key(sort)
    if sort not in LEADERBOARD_METRICS:
        raise ConfigError(f"--sort {sort!r} is not a leaderboard column; choose one of "
                          f"{', '.join(LEADERBOARD_METRICS)}")
    hyper = {}
    for name in names:
        hyper[name] = pipeline.hyperparameters(settings, estimator=name)
        for s in chosen:  # bad names and parameters fail before any data is loaded
            pipeline.validate(settings, hyper[name], strategy=s, estimator=name)

    # MLflow in the logger process, beside the load and the fits (see revcli.train)
    with tracking.Logger(settings, Workspace(settings.workspace).ensure(),
                         then=runs.close_dead_runs) as logger:
        prepared = pipeline.prepare(settings, data, drop_features, reporter)
        for s in chosen:
            for name in names:
                prepared.check(s, name, reporter)
        logger.check()
        external = None
        if classifier is not None:
            from revcli.tracking import classifier as classifier_mod

            reporter.step(f"loading the classifier {classifier}")
            # read with MLflow here: the logger process only logs
            local, _ = tracking.connect(settings, prepared.workspace, experiment=False,
                                        create=False)
            external = classifier_mod.load(local, classifier, trust=trust, reporter=reporter)
            external.check_columns(prepared.table.features)
        findings = pipeline.audit(prepared, reporter, judged_for=chosen)
        leaks = [f.feature for f in findings]
        batch = uuid.uuid4().hex[:12]
        y_test = prepared.y_test
        baselines = prepared.baselines
        rows: list[LeaderRow] = []
        fitted_models: dict[tuple[str, str], Any] = {}
        for name in names:
            fitted: dict[str, pipeline.Fitted] = {}
            run_ids: dict[str, str] = {}
            for s in chosen:
                st = settings.replace(strategy=s, estimator=name)
                fitted[s] = pipeline.fit_and_score(prepared, st, hyper[name], reporter)
                result = runs.finish(prepared, st, fitted[s], hyper[name], findings,
                                     logger.result, runs.RunSpec(
                                         command=tracking.record.COMPARE,
                                         run_name=f"compare {s}/{name}",
                                         tags={"compare_batch": batch}, plots=plots),
                                     reporter=reporter)
                run_ids[s] = result.run_id
                fitted_models[(s, name)] = fitted[s].model
            if external is not None:
                staged = next(n for n in strategies.names() if strategies.get(n).has_classifier)
                st = settings.replace(strategy=staged, estimator=name)
                theirs = pipeline.fit_and_score(prepared, st, hyper[name], reporter,
                                                external=external)
                result = runs.finish(prepared, st, theirs, hyper[name], findings,
                                     logger.result, runs.RunSpec(
                                         command=tracking.record.COMPARE,
                                         run_name=f"compare {staged}+classifier/{name}",
                                         tags={"compare_batch": batch, **external.tags()},
                                         params=external.params(), classifier=external.source(),
                                         plots=plots),
                                     reporter=reporter)
                rows.append(LeaderRow(
                    label=f"{staged}+{external.uri} / {name}", strategy=staged,
                    estimator=name, run_id=result.run_id,
                    metrics=_all_sessions_and_converters(theirs.scorecard), leakage=leaks,
                    note=f"stage 1: the classifier {external.uri}"))
            for s in chosen:
                card, cls = fitted[s].scorecard, fitted[s].strategy
                if cls.predicts != strategies.ORDER_VALUE and cls.scored_on == strategies.SESSIONS:
                    rows.append(LeaderRow(label=f"{s} / {name}", strategy=s, estimator=name,
                                          run_id=run_ids[s], metrics=_all_sessions_and_converters(
                                              card), leakage=leaks,
                                          predictions=fitted[s].pred_test,
                                          order_values=fitted[s].order_value_test))
                    continue
                proba = _order_probability(prepared, fitted, name, hyper[name], settings, reporter)
                paired = strategies.expected_revenue(fitted[s].pred_test, proba,
                                                     settings.strategy_options())
                whole = metrics.score(y_test, paired, baselines, scored_on=strategies.SESSIONS,
                                      baseline_value=baselines.revenue, name=s,
                                      population="all test sessions", proba_order=proba)
                scores = _all_sessions_and_converters(whole)
                # On the converters alone it is scored as the seed scored it: its own order values.
                own = card.metrics if cls.scored_on == strategies.CONVERTERS else {}
                scores.update({CONV[k]: v for k, v in own.items() if k in CONV})
                rows.append(LeaderRow(
                    label=f"{s} / {name}", strategy=s, estimator=name, run_id=run_ids[s],
                    metrics=scores, leakage=leaks, paired=True,
                    note="all sessions: x P(order) of a classifier stage; converters: its own "
                         "order values", predictions=paired,
                    order_values=fitted[s].order_value_test))
        if backtest:
            _backtest_rows(prepared, settings, rows, fitted_models, backtest, sort, reporter)
            measure = metrics.get(sort)
            rows.sort(key=lambda r: measure.sort_value(r.metrics.get(f"backtest_{sort}")))
        else:
            rows.sort(key=sort_key(sort))  # type: ignore[arg-type]
        _against_the_best(rows, y_test, sort)
        rows += _baseline_rows(baselines, y_test)
        split = prepared.split_summary()
        tracker, _ = logger.result()  # open since the first run was logged
        board = Leaderboard(rows=rows, sort=sort, dataset=prepared.dataset.sha256, split=split,
                            batch=batch, experiment=settings.experiment, tracking_uri=tracker.shown,
                            features=prepared.table.features, dropped=prepared.table.dropped,
                            backtest=backtest)
        board.notes.extend(prepared.notes)
        board.notes.append(f"every row is scored on the same {split['test_rows']:,} test sessions "
                           f"({split['test_converters']:,} converters) of split {split['hash']}; "
                           "conv_* columns on those converters only, MAPE on converters only")
        if leaks:
            board.warnings.append(f"every model was trained with {', '.join(leaks)}, which gives "
                                  "the order away: the all-sessions scores are not honest; re-run "
                                  f"with --drop-feature {leaks[0]}")
        return board


def _against_the_best(rows: list[LeaderRow], y_test: np.ndarray, sort: str) -> None:
    """Each row's ``sort`` score minus the first (best) row's, paired on the same test rows
    (the converters and their order values for conv_*), with its 95 % interval: whether the
    ranking is more than noise (revcli.metrics.paired_difference, as the promotion gate)."""
    if not rows or sort not in metrics.METRICS or metrics.METRICS[sort].fn is None:
        return

    def scored(row: LeaderRow) -> tuple[np.ndarray, np.ndarray] | None:
        if sort.startswith("conv_"):
            if row.order_values is None:
                return None
            conv = y_test > 0
            return y_test[conv], np.asarray(row.order_values)[conv]
        return None if row.predictions is None else (y_test, np.asarray(row.predictions))

    best = scored(rows[0])
    if best is None:
        return
    for row in rows[1:]:
        mine = scored(row)
        if mine is not None:
            row.vs_best = metrics.paired_difference(sort, best[0], mine[1], best[1]).to_dict()
    for row in rows:
        row.predictions = row.order_values = None  # not kept beyond the ranking


def _backtest_rows(prepared: pipeline.Prepared, settings: Settings, rows: list[LeaderRow],
                   models: dict[tuple[str, str], Any], n: int, sort: str,
                   reporter: Reporter) -> None:
    """Each row's recipe refitted at ``n`` forward cut-offs; the mean and SD of ``sort`` over
    the windows as ``backtest_<sort>`` / ``backtest_<sort>_sd``, on the strategy's own rows
    (conv_* by the one definition: a converting_only window's own scores are its conv_*)."""
    from revcli import backtest as backtests

    split = prepared.split
    for row in rows:
        model = models[(row.strategy, row.estimator)]
        windows = backtests.run(backtests.unfitted(model), prepared.table.X, prepared.table.y,
                                prepared.table.X[split.time_column], n,
                                test_size=settings.test_size, column=str(split.time_column),
                                gap=settings.gap, n_jobs=settings.n_jobs, reporter=reporter)
        cls = strategies.get(row.strategy)
        for w in windows:
            if cls.scored_on == strategies.CONVERTERS:
                w["metrics"] = {CONV[k]: v for k, v in w["metrics"].items() if k in CONV}
        row.backtest = windows
        mean, sd = backtests.summary(windows, sort) if all(
            sort in w["metrics"] for w in windows) else (math.nan, math.nan)
        row.metrics[f"backtest_{sort}"] = mean
        row.metrics[f"backtest_{sort}_sd"] = sd


def _order_probability(prepared: pipeline.Prepared, fitted: dict[str, pipeline.Fitted],
                       name: str, hyper: dict[str, Any], settings: Settings,
                       reporter: Reporter) -> np.ndarray:
    """P(order) on the test rows from a compared strategy with a classifier stage (estimator
    ``name``), else from that estimator's classifier fitted for the occasion."""
    from revcli import estimators, threads

    for f in fitted.values():
        if f.proba_test is not None:
            return np.asarray(f.proba_test)
    from sklearn.pipeline import make_pipeline

    from revcli import features

    reporter.step(f"fitting the classifier of {name} to pair with the order-value model")
    _, clf_params = estimators.split_params(hyper)
    n_threads = threads.resolve(settings.n_jobs, len(prepared.y_train))
    clf = make_pipeline(features.for_estimator(estimators.spec(name).capabilities),
                        estimators.make_classifier(name, clf_params, seed=settings.seed,
                                                   n_jobs=n_threads))
    with threads.limit(n_threads):
        clf.fit(prepared.X_train, (prepared.y_train > 0).astype(np.int64))
        proba = clf.predict_proba(prepared.X_test)
    classes = list(clf.classes_)
    return np.asarray(proba[:, classes.index(1)], dtype=np.float64)


def _baseline_rows(baselines: metrics.Baselines, y_test: np.ndarray) -> list[LeaderRow]:
    mean_revenue, order_value = baselines.revenue, baselines.order_value
    constant = np.full_like(y_test, mean_revenue)
    scores = {**metrics.main_metrics(y_test, constant),
              **metrics.zero_aware_metrics(y_test, constant)}
    conv = y_test > 0
    seed = metrics.main_metrics(y_test[conv], np.full(int(conv.sum()), order_value))
    return [
        LeaderRow(label=f"baseline: train mean revenue (${mean_revenue:.2f})", strategy="-",
                  estimator="mean", run_id=None, kind="baseline",
                  metrics={k: v for k, v in scores.items() if k in LEADERBOARD_METRICS}),
        LeaderRow(label=f"baseline: train mean order value (${order_value:.2f}, the seed's)",
                  strategy="-", estimator="mean", run_id=None, kind="baseline",
                  metrics={CONV[k]: v for k, v in seed.items()},
                  note="converters only"),
    ]
