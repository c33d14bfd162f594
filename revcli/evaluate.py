"""``revcli evaluate`` as a function: a model, some rows, an honest scorecard and a gate.

The model is a run's (its own holdout, recomputed from the dataset with the recorded seed and test
size and checked against the recorded split hash) or a file checked against its recorded sha256
before it is unpickled (:mod:`revcli.modelref`). Any other parquet with the training schema is
scored on all of its rows. The result holds the foundation's scorecard beside the train-mean
baseline, errors by segment (:mod:`revcli.reports`), permutation importance, calibration by
predicted decile, plots, and the verdict of a quality gate; it is logged as an MLflow run tagged
``revcli.command=evaluate`` and ``revcli.source_run=<run id>``.

A model whose scores rest on a feature the leakage audit flags (strategy-aware, as ``revcli train``
records it), or whose converter RMSE is too good to be true, does not pass a gate, whatever its
scores, unless the caller allows it: a leak is reported, not celebrated.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from revcli import (
    atomic,
    engines,
    leakage,
    metrics,
    modelref,
    pipeline,
    reports,
    targets,
    tracking,
)
from revcli import strategies as strategies_mod
from revcli.errors import ConfigError, DataError, GateFailed, NotFoundError
from revcli.progress import SILENT, Reporter
from revcli.tracking import RunRecord
from revcli.workspace import Workspace

if TYPE_CHECKING:
    from revcli.settings import Settings


@dataclass
class Gate:
    """The verdict of a targets level on a scorecard; a leak fails it unless allowed."""

    source: str
    level: str
    enforced: bool
    verdicts: list[dict[str, Any]]
    leaks: list[str]
    allow_leak: bool
    too_good: str | None = None

    @property
    def failed_targets(self) -> list[dict[str, Any]]:
        return [v for v in self.verdicts if not v["passed"]]

    @property
    def leak_blocks(self) -> bool:
        return bool(self.leaks or self.too_good) and not self.allow_leak

    @property
    def passed(self) -> bool:
        return not self.failed_targets and not self.leak_blocks

    def reasons(self) -> list[str]:
        out = []
        for v in self.failed_targets:
            value = "n/a" if v["value"] is None else f"{v['value']:.4g}"
            out.append(f"{v['metric']} {value} is not {v['op']} {v['threshold']:g}")
        if self.leak_blocks and self.leaks:
            out.append(f"its scores rest on {', '.join(self.leaks)}, which the leakage audit "
                       f"flags (re-train with --drop-feature {self.leaks[0]}, or pass "
                       "--allow-leak)")
        elif self.leak_blocks:
            out.append(f"{self.too_good} (or pass --allow-leak)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "level": self.level, "enforced": self.enforced,
                "passed": self.passed, "verdicts": self.verdicts, "leaks": self.leaks,
                "too_good": self.too_good, "allow_leak": self.allow_leak,
                "reasons": self.reasons()}


@dataclass
class EvalResult:
    model: modelref.LoadedModel
    data: dict[str, Any]
    scorecard: metrics.Scorecard
    baseline_note: str
    segments: list[reports.SegmentRow]
    calibration: list[reports.CalibrationBin]
    importance: dict[str, float]
    gate: Gate
    honesty: leakage.Honesty
    plots: dict[str, Path]
    eval_run_id: str | None
    tracking_uri: str | None
    notes: list[str] = field(default_factory=list)
    # in time order, per --period of each timestamp column; converters by order-value band
    time_segments: list[reports.SegmentRow] = field(default_factory=list)
    value_bands: list[reports.SegmentRow] = field(default_factory=list)
    worst: list[dict[str, Any]] = field(default_factory=list)
    period: str = "month"
    backtest: list[dict[str, Any]] = field(default_factory=list)
    # where the rows were scored (revcli.engines): --json and the evaluation run say so when it
    # was a cluster
    engine: dict[str, Any] = field(default_factory=lambda: {"kind": engines.IN_PROCESS})
    engine_tags: dict[str, str] = field(default_factory=dict)

    @property
    def leak_findings(self) -> list[leakage.LeakFinding]:
        return list(self.honesty.findings)

    @property
    def too_good(self) -> str | None:
        return self.honesty.too_good

    def check_gate(self) -> None:
        """Raise GateFailed (exit 1) when an enforced gate did not pass."""
        if self.gate.enforced and not self.gate.passed:
            raise GateFailed(f"gate {self.gate.level!r} ({self.gate.source}) failed: "
                             + "; ".join(self.gate.reasons()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.to_dict(),
            "data": self.data,
            "scorecard": self.scorecard.to_dict(),
            "baseline_note": self.baseline_note,
            "segments": [s.to_dict() for s in
                         [*self.segments, *self.time_segments, *self.value_bands]],
            "period": self.period,
            "worst": self.worst,
            "backtest": self.backtest,
            "calibration": [b.to_dict() for b in self.calibration],
            "importance": self.importance,
            "gate": self.gate.to_dict(),
            "leakage": [f.to_dict() for f in self.honesty.findings],
            "too_good": self.honesty.too_good,
            "honest": self.honesty.honest,
            "leak_can_inflate": self.honesty.can_inflate,
            "plots": {k: str(v) for k, v in self.plots.items()},
            "eval_run_id": self.eval_run_id,
            "tracking_uri": self.tracking_uri,
            "notes": self.notes,
            **({"engine": self.engine} if self.engine.get("kind") != engines.IN_PROCESS else {}),
        }


@dataclass
class Rows:
    """The rows a model is evaluated on, and the baseline it is judged against."""

    frame: Any
    y: np.ndarray
    X: Any
    population: str
    baselines: metrics.Baselines
    baseline_note: str
    data: dict[str, Any]
    all_X: Any = None
    all_ordered: np.ndarray | None = None


@dataclass
class Scored:
    """What an engine (revcli.engines) hands evaluate: every evaluated row's revenue and the
    model's outputs on it (the scorecard, calibration and order-value bands are computed from
    them), the rows the rest is drawn from (``rows``: segments, importance, plots -- every
    evaluated row in this process, a bounded sample of them on a cluster) with their
    predictions, the largest errors, and the leakage audit's findings on the data's rows."""

    rows: Rows
    y: np.ndarray
    parts: dict[str, np.ndarray]      # Model.predict_parts of every evaluated row
    detail_pred: np.ndarray           # the prediction of each of rows.X
    worst: list[dict[str, Any]]
    findings: list[leakage.LeakFinding]
    notes: list[str] = field(default_factory=list)


def _workspace_dataset(ws: Workspace, sha: str) -> Any:
    try:
        return ws.dataset(sha)
    except NotFoundError:
        raise NotFoundError(f"the model's dataset {sha[:12]} is not in workspace {ws.root}; "
                            "fetch it again (`revcli fetch ...`) or evaluate on a file with "
                            "--data FILE") from None


def model_dataset(ws: Workspace, meta: dict[str, Any]) -> Any:
    """The workspace's record of the dataset the model was trained on (its holdout's)."""
    model_sha = meta.get("dataset_sha256")
    if not model_sha:
        raise ConfigError("the model records no dataset to take a holdout from; give "
                          "--data FILE to evaluate it on")
    return _workspace_dataset(ws, str(model_sha))


def _recorded_split(meta: dict[str, Any], frame: Any, ordered: np.ndarray) -> Any:
    """The model's split recomputed from its dataset, checked against the recorded hash."""
    from revcli.split import recompute

    split = recompute(meta, frame, ordered)
    if meta.get("split_hash") and split.hash != meta["split_hash"]:
        raise DataError(f"the model's holdout does not reproduce: split hash {split.hash} != "
                        f"recorded {meta['split_hash']} (another scikit-learn version?); "
                        "evaluate on a held-out file with --data FILE instead")
    return split


def _recorded_baselines(meta: dict[str, Any], cls: Any) -> metrics.Baselines | None:
    """The train means recorded with the model (model.json), if it has them."""
    value, order_value = meta.get("baseline_value"), meta.get("baseline_order_value")
    if value is None:
        return None
    if cls.scored_on == strategies_mod.CONVERTERS:
        return metrics.Baselines(revenue=math.nan, order_value=float(value))
    return metrics.Baselines(revenue=float(value),
                             order_value=math.nan if order_value is None else float(order_value))


def _select_rows(ws: Workspace, loaded: modelref.LoadedModel, data: str | Path | None,
                 reporter: Reporter) -> Rows:
    from revcli.data import features_for, read_parquet, validate

    meta, cls = loaded.meta, loaded.strategy_class
    model_sha = meta.get("dataset_sha256")
    if data is None:
        record = model_dataset(ws, meta)
        path, data_sha, label = record.path, record.sha256, record.source
    else:
        path = Path(str(data).removeprefix("file://"))
        if path.is_dir():  # a directory of parts: named by its dataset sha256 (revcli.parts)
            from revcli import parts

            data_sha = parts.dataset_sha256(parts.hash_local(path, parts.list_local(path)[0]))
            label = str(path)
        elif not path.is_file():
            raise NotFoundError(f"{path} does not exist")
        else:
            data_sha, label = atomic.sha256_file(path), str(path)
    holdout = bool(model_sha) and data_sha == model_sha
    reporter.step(f"loading {label}")
    frame = read_parquet(path)
    converters_only = cls.scored_on == strategies_mod.CONVERTERS
    table = validate(frame, require_converters=converters_only)
    X_all = features_for(frame, loaded.features)
    if holdout:
        split = _recorded_split(meta, frame, table.ordered)
        rows = split.test
        population = cls.population("test")
        baselines, note = holdout_baselines(meta, cls, metrics.Baselines.of(
            table.y[split.train]), split.hash, reporter)
    else:
        rows = np.arange(table.rows)
        population = other_population(cls, path.name)
        baselines, note = other_baselines(ws, meta, cls, table.y, reporter)
    info = data_info(str(path), data_sha, label, holdout, len(rows), population, model_sha)
    return Rows(frame=frame.iloc[rows].reset_index(drop=True), y=table.y[rows],
                 X=X_all.iloc[rows].reset_index(drop=True), population=population,
                 baselines=baselines, baseline_note=note, data=info, all_X=X_all,
                 all_ordered=table.ordered)


def holdout_baselines(meta: dict[str, Any], cls: Any, derived: metrics.Baselines,
                      split_hash: str, reporter: Reporter) -> tuple[metrics.Baselines, str]:
    """A holdout's baselines: the train means of the model's own training rows, recomputed
    (``derived``), with a warning when they differ from those recorded with the model."""
    recorded = _recorded_baselines(meta, cls)
    if recorded is not None and not math.isclose(
            cls.baseline_of(recorded), cls.baseline_of(derived), rel_tol=1e-9):
        reporter.warn(f"recorded train mean {cls.baseline_of(recorded)} differs from the "
                      f"recomputed {cls.baseline_of(derived)}; using the recomputed one")
    return derived, (f"the train mean (${cls.baseline_of(derived):.2f}) of the model's own "
                     f"training rows (split {split_hash})")


def other_baselines(ws: Workspace, meta: dict[str, Any], cls: Any, y: np.ndarray,
                    reporter: Reporter) -> tuple[metrics.Baselines, str]:
    """The baselines of rows other than the model's holdout (``y``: every evaluated row): the
    train means recorded with the model; else those of its training rows, recomputed from its
    cached dataset (a model from before they were recorded); else the mean of ``y``, said to
    flatter."""
    from revcli.data import read_parquet

    recorded = _recorded_baselines(meta, cls)
    model_sha = meta.get("dataset_sha256")
    if recorded is not None:
        return recorded, (f"the train mean (${cls.baseline_of(recorded):.2f}) recorded with "
                          "the model")
    if model_sha and (model_path := ws.cached_path(str(model_sha))) is not None:
        model_frame = read_parquet(model_path)
        y_model = model_frame["revenue"].to_numpy(dtype=np.float64)
        baselines = metrics.Baselines.of(
            y_model[_recorded_split(meta, model_frame, y_model > 0).train])
        return baselines, (f"the train mean (${cls.baseline_of(baselines):.2f}) of the "
                           "model's training rows (recomputed)")
    baselines = metrics.Baselines.of(y)
    reporter.warn("no train mean recorded for this model: the baseline is the mean of "
                  "the evaluated rows, which flatters it")
    return baselines, (f"the mean (${cls.baseline_of(baselines):.2f}) of the evaluated rows "
                       "themselves: no train mean is recorded for this model, and this baseline "
                       "is flattered (its R² is 0 by construction)")


def other_population(cls: Any, name: str) -> str:
    """The population of every row of a dataset other than the model's own."""
    return (f"converters of {name}" if cls.scored_on == strategies_mod.CONVERTERS
            else f"all sessions of {name}")


def data_info(path: str, sha: str, label: str, holdout: bool, rows: int, population: str,
              model_sha: Any) -> dict[str, Any]:
    """``data`` of the result: what was evaluated."""
    info = {"path": path, "sha256": sha, "source": label, "holdout": holdout, "rows": rows,
            "population": population, "model_dataset_sha256": model_sha}
    if not holdout and model_sha:
        info["note"] = ("not the model's training dataset: all of its rows are scored; make "
                        "sure none of them was used to train the model")
    return info


def score_in_process(ws: Workspace, loaded: modelref.LoadedModel, data: str | Path | None,
                     worst: int, reporter: Reporter) -> Scored:
    """The rows to evaluate, read and scored in this process, the leakage audit on all of the
    data's rows (revcli.engines.InProcess.score_holdout)."""
    rows = _select_rows(ws, loaded, data, reporter)
    reporter.step(f"scoring {len(rows.y):,} rows")
    parts = loaded.model.predict_parts(rows.X)
    pred = np.asarray(parts["prediction"], dtype=np.float64)
    assert rows.all_ordered is not None
    both = rows.all_ordered.any() and not rows.all_ordered.all()
    findings = leakage.audit(rows.all_X, rows.all_ordered) if both else []
    positions = loaded.strategy_class.evaluation_rows(rows.y)
    shown = [c for c in rows.frame.columns if c not in ("revenue", "is_ordered")]
    worst_rows = reports.worst_rows(rows.frame.iloc[positions][shown], rows.y[positions],
                                    pred[positions], worst)
    return Scored(rows=rows, y=rows.y, parts=parts, detail_pred=pred, worst=worst_rows,
                  findings=findings)


def _write_plots(directory: Path, label: str, y: np.ndarray, pred: np.ndarray,
                 importance: pipeline.Importance,
                 time_segments: list[reports.SegmentRow] | None = None) -> dict[str, Path]:
    """train's three plots, then the cumulative-revenue curve, calibration by decile and, with
    a timestamp, actual vs predicted revenue per period."""
    from revcli import atomic, plots

    # All of them or none: drawn in a temp directory renamed into place (a full disk half-way
    # through leaves no half-written set).
    with atomic.atomic_dir(directory) as tmp:
        paths = plots.training_set(tmp, label, y, pred, importance)
        if time_segments:
            group = time_segments[0].group
            rows = [s for s in time_segments if s.group == group]
            paths["by_period"] = plots.by_period(
                [s.level for s in rows], [s.actual_mean * s.rows for s in rows],
                [s.predicted_mean * s.rows for s in rows], tmp / "by_period.png",
                title=f"Actual vs predicted revenue by {group} ({label})")
        paths["lorenz"] = plots.lorenz(y, pred, tmp / "lorenz.png",
                                       title=f"Cumulative revenue curve ({label})")
        paths["calibration"] = plots.calibration(
            y, pred, tmp / "calibration.png", title=f"Calibration by predicted decile ({label})")
    return {name: Path(directory) / path.name for name, path in paths.items()}


def evaluate(settings: Settings, *, run: str | None = None, model: str | Path | None = None,
             data: str | Path | None = None, trust: bool = False,
             gate: str | Path | None = None, level: str | None = None, enforce: bool = False,
             allow_leak: bool = False, plots: bool = True, track: bool = True,
             segment_sort: str = "vs_baseline", period: str = "month", worst: int = 0,
             backtest: int = 0, reporter: Reporter = SILENT) -> EvalResult:
    """Score a model (``run`` reference or ``model`` file) on its holdout or on ``data``.

    ``gate``/``level`` choose the targets (default ``settings.targets`` at
    ``settings.gate_level``); ``enforce`` makes :meth:`EvalResult.check_gate` raise on failure.
    ``track`` logs an evaluation run to MLflow. The result never raises for a failed gate itself.
    """
    if segment_sort not in reports.SEGMENT_SORTS:
        raise ConfigError(f"unknown --segment-sort {segment_sort!r}; choose one of "
                          f"{', '.join(reports.SEGMENT_SORTS)}")
    if period not in reports.PERIODS:
        raise ConfigError(f"unknown --period {period!r}; choose one of "
                          f"{', '.join(reports.PERIODS)}")
    if worst < 0 or backtest < 0:
        raise ConfigError("--worst and --backtest take a number of rows / windows >= 0")
    engines.check_evaluate(settings, backtest=backtest)
    target_set = targets.load(Path(gate) if gate is not None else settings.targets,
                              fallback=gate is None and settings.source_of("targets") == "default")
    level = level or settings.gate_level
    target_set.level(level)  # an unknown level fails before any work

    ws = Workspace(settings.workspace)
    if track or plots:
        ws.ensure()  # it will write (a run, plots): a read-only workspace fails before the work
    # The model is looked up with the store's reader (no MLflow on an sqlite store), in the
    # store as it is now; the evaluation run is logged by the logger process
    # (revcli.tracking._logger), which imports MLflow and opens (or makes) the store beside
    # the loading and scoring (issue 19: 1.9 s of a 4 s evaluate before).
    tracker, _ = tracking.connect(settings, ws, experiment=False, create=False, reading=True)
    store = tracker if not tracker.is_workspace_store or ws.mlflow_db.is_file() else None
    with contextlib.ExitStack() as stack:
        logger = stack.enter_context(tracking.Logger(settings, ws)) if track else None
        result, logged = _evaluate(settings, ws, store, logger, run, model, data, trust,
                                   target_set, level, enforce, allow_leak, plots,
                                   segment_sort, period, worst, backtest, reporter)
        if logger is None:
            return result
        reporter.step("opening the MLflow store")
        remote, experiment_id = logger.result()
        result.tracking_uri = remote.shown
        _log_run(result, ws, remote, experiment_id, plots, *logged, reporter)
    return result


def _evaluate(settings: Settings, ws: Workspace, store: tracking.Tracker | None,
              logger: tracking.Logger | None, run: str | None, model: str | Path | None,
              data: str | Path | None, trust: bool, target_set: Any, level: str,
              enforce: bool, allow_leak: bool, plots: bool, segment_sort: str, period: str,
              worst: int, backtest: int, reporter: Reporter
              ) -> tuple[EvalResult, tuple[str, np.ndarray, np.ndarray]]:
    """:func:`evaluate`'s scoring: the result, and what its run's plots are drawn from (the
    label, the evaluated rows' revenue and predictions)."""
    loaded = modelref.load(settings, ws, run=run, model_file=model, trust=trust, tracker=store,
                           reporter=reporter)
    reporter.note(f"model: {loaded.source} ({loaded.strategy} / {loaded.estimator}); "
                  f"{loaded.checked}")
    engines.check_holdout(settings, loaded.meta, data)  # before a cluster is started
    if logger is not None:
        logger.check()  # a dead store (its cheap check) fails before the scoring
    with engines.open_engine(settings, reporter) as engine:
        scored = engine.score_holdout(settings, ws, loaded, data, worst, reporter)
        ran_on, ran_tags = engine.describe(), engine.tags()
    rows, parts = scored.rows, scored.parts
    fitted, cls = loaded.model, loaded.strategy_class
    pred = np.asarray(parts["prediction"], dtype=np.float64)
    card = metrics.scorecard(cls, scored.y, pred, rows.baselines,
                             proba_order=parts.get("p_order"), population=rows.population,
                             order_value=cls.order_value_of(parts))

    findings = scored.findings
    for finding in findings:
        reporter.warn(f"possible target leak: {finding.feature!r} {finding.detail}")
    # Recorded at training time, or found in these rows: either way the scores rest on it --
    # unless the strategy says such a feature cannot inflate it.
    honesty = leakage.judge(cls, findings, card, recorded=loaded.leaks)
    if honesty.too_good:
        reporter.warn(honesty.too_good)

    X_eval, y_eval, pred_eval = pipeline.evaluation_data(cls, rows.X, rows.y,
                                                         scored.detail_pred)
    positions = cls.evaluation_rows(rows.y)
    frame_eval = rows.frame.iloc[positions]
    plan = getattr(getattr(fitted, "featurizer_", None), "segments_", None)
    notes: list[str] = list(scored.notes)
    if plan is None:
        # a model trained on a cluster (its encoding is fitted from sums, never from the rows
        # segments are decided on) or from before segments were decided at training: no
        # one-hot groups are guessed from these rows (a small file can make two flags look
        # like one group)
        plan = reports.segment_groups(frame_eval[list(loaded.features)], one_hot=False)
        notes.append("this model records no segments (trained on a Dask cluster, or before "
                     "they were decided at training): binary columns are shown as flags, never "
                     "as one-hot groups")
    segments = reports.segment_table(frame_eval, y_eval, pred_eval,
                                     cls.baseline_of(rows.baselines), groups=plan,
                                     sort=segment_sort)
    time_segments = [row for g in plan if g.kind == reports.TIME and g.name in frame_eval
                     for row in reports.time_table(frame_eval[g.name], y_eval, pred_eval,
                                                   cls.baseline_of(rows.baselines), g.name,
                                                   period)]
    order_value = cls.order_value_of(parts)
    value_bands = ([] if order_value is None else reports.order_value_bands(
        scored.y, order_value, rows.baselines.order_value))
    every = cls.evaluation_rows(scored.y)  # calibration: on every evaluated row
    calibration = reports.calibration_bins(scored.y[every], pred[every])
    reporter.step("permutation importance")
    importance = pipeline.importance(fitted, X_eval, y_eval, settings.seed,
                                     method=pipeline.PERMUTATION)

    verdicts = target_set.verdicts(card.metrics, level)
    card.verdicts = verdicts
    verdict = Gate(source=target_set.source, level=level, enforced=enforce, verdicts=verdicts,
                   leaks=list(card.leaks), allow_leak=allow_leak, too_good=honesty.too_good)

    label = f"{cls.name}: {rows.population}"
    result = EvalResult(model=loaded, data=rows.data, scorecard=card,
                        baseline_note=rows.baseline_note, segments=segments,
                        calibration=calibration, importance=importance.values, gate=verdict,
                        honesty=honesty, plots={}, eval_run_id=None,
                        tracking_uri=store.shown if store is not None else None,
                        notes=notes, time_segments=time_segments, value_bands=value_bands,
                        worst=scored.worst, period=period, engine=ran_on,
                        engine_tags=ran_tags)
    if backtest:
        from revcli import backtest as backtests

        result.backtest = backtests.for_loaded(settings, ws, loaded, backtest,
                                               reporter=reporter)
    if logger is None and plots:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        result.plots = _write_plots(ws.plots_dir / f"eval-{stamp}", label, y_eval,
                                    pred_eval, importance, result.time_segments)
    return result, (label, y_eval, pred_eval)


def _log_run(result: EvalResult, ws: Workspace, tracker: tracking.Tracker, experiment_id: str,
             plots: bool, label: str, y_eval: np.ndarray, pred_eval: np.ndarray,
             reporter: Reporter) -> None:
    loaded, card = result.model, result.scorecard
    if loaded.run is not None:
        experiment_id = loaded.run.experiment_id
    source = loaded.run_id or ""
    versions = tracking.library_versions()
    record = RunRecord(
        command=tracking.record.EVALUATE, strategy=loaded.strategy, estimator=loaded.estimator,
        dataset_sha256=result.data["sha256"], population=card.population,
        scored_on=card.scored_on,
        split_hash=(str(loaded.meta["split_hash"]) if result.data["holdout"]
                    and loaded.meta.get("split_hash") else None),
        leakage=sorted({*loaded.flagged, *result.honesty.flagged}), leaks=list(card.leaks),
        too_good=bool(result.honesty.too_good), honest=result.honesty.honest,
        model_sha256=loaded.sha256, version=versions["revcli"],
        extra={"source_run": source, "holdout": "true" if result.data["holdout"] else "false",
               "gate": "pass" if result.gate.passed else "fail",
               "gate_level": result.gate.level, **result.engine_tags})
    short = source[:8] if source else Path(str(loaded.path)).name
    reporter.step("logging the evaluation run")
    from revcli import interrupts

    run_id: str | None = None
    try:
        # A SIGTERM while the run is created is held until its id is known here, inside the
        # try that ends it: never a RUNNING run nobody knows the id of.
        with interrupts.deferred():
            run_id = tracking.start(
                tracker, experiment_id, record, run_name=f"evaluate {short}",
                note=f"Evaluation of {loaded.source} on {card.population} "
                     f"({result.data['source']}).",
                params={"data": result.data["path"], "holdout": result.data["holdout"],
                        "rows": result.data["rows"], "targets": result.gate.source,
                        "gate_level": result.gate.level, "model_source": loaded.source})
            result.eval_run_id = run_id
        if plots:
            measured = pipeline.Importance(result.importance, pipeline.PERMUTATION)
            result.plots = _write_plots(ws.plots_dir / run_id, label, y_eval, pred_eval,
                                        measured, result.time_segments)
        headers, table = segment_rows(
            [*result.segments, *result.time_segments, *result.value_bands])
        texts = {"segments.csv": reports.to_csv(headers, table)}
        if result.worst:
            columns = list(result.worst[0])
            texts["worst.csv"] = reports.to_csv(columns, [[r.get(c) for c in columns]
                                                          for r in result.worst])
        if result.backtest:
            columns = list(result.backtest[0])
            texts["backtest.csv"] = reports.to_csv(columns, [[r.get(c) for c in columns]
                                                             for r in result.backtest])
        scores = tracking.score_metrics(card)
        from revcli import backtest as backtests

        scores.update(backtests.as_metrics(result.backtest))
        tracking.log_training(
            tracker, run_id, record=record, params={}, metrics=scores,
            artifacts=tracking.Artifacts(files=result.plots,
                                         documents={"evaluation.json": result.to_dict()},
                                         texts=texts))
    except BaseException:
        if run_id is not None:
            tracking.fail(tracker, run_id)
        raise
    if source:
        # Link both ways: the source run points at its latest evaluation.
        try:
            tracker.set_tag(source, "revcli.last_evaluation", run_id)
        except Exception as exc:  # a read-only source run must not fail the evaluation
            reporter.warn(f"could not tag source run {source}: {exc}")


def paired(settings: Settings, ws: Workspace, tracker: tracking.Tracker, run_a: str,
           run_b: str, key: str, reporter: Reporter = SILENT) -> metrics.PairedDifference:
    """``key`` of run ``run_a``'s model minus run ``run_b``'s, both scored on the same rows:
    the holdout of their shared dataset and split, each strategy's own evaluation rows (which
    must be the same rows), the conv_* metrics on the converters with the order value each
    predicts. The promotion gate's paired comparison."""
    loaded = [modelref.load_run(settings, ws, ref, tracker, reporter=reporter)
              for ref in (run_a, run_b)]
    if {str(m.meta.get("dataset_sha256")) for m in loaded} != {
            str(loaded[0].meta.get("dataset_sha256"))} or len(
            {str(m.meta.get("split_hash")) for m in loaded}) != 1:
        raise ConfigError("the two models were not trained on the same dataset and split")
    rows = _select_rows(ws, loaded[0], None, reporter)
    preds, ys = [], []
    for m in loaded:
        parts = m.model.predict_parts(rows.X)
        cls = m.strategy_class
        if key.startswith("conv_") or (key in metrics.MAIN_METRICS
                                       and cls.scored_on == strategies_mod.CONVERTERS):
            values = cls.order_value_of(parts)
            if values is None:
                raise ConfigError(f"{m.strategy} predicts no order value, so it has no "
                                  f"{key}")
            conv = rows.y > 0
            ys.append(rows.y[conv])
            preds.append(values[conv])
        else:
            positions = cls.evaluation_rows(rows.y)
            ys.append(rows.y[positions])
            preds.append(np.asarray(parts["prediction"], dtype=np.float64)[positions])
    if len(ys[0]) != len(ys[1]) or not np.array_equal(ys[0], ys[1]):
        raise ConfigError("the two models are scored on different rows")
    return metrics.paired_difference(key, ys[0], preds[0], preds[1])


def segment_rows(segments: list[reports.SegmentRow]) -> tuple[list[str], list[list[Any]]]:
    """The segment table as headers and rows of plain values (for CSV / Markdown)."""
    headers = ["group", "level", "rows", "conversion", "actual_mean", "predicted_mean", "rmse",
               "mae", "total_ratio", "baseline_rmse", "rmse_vs_baseline", "few_rows"]
    return headers, [[getattr(s, h) for h in headers] for s in segments]
