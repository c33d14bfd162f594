"""How many trials a minute `revcli tune` runs, against one fit of the same model.

    python benchmarks/bench_tune.py                         # full-size demo set (472,871 rows)
    python benchmarks/bench_tune.py --data training_data.parquet --trials 60 --n-jobs 2
    python benchmarks/bench_tune.py --json                  # one JSON line

The goal (issue 4): >= 60 trials per minute for converting_only + xgb, 3-fold CV, on the full
demo set, on 2 cores. Wall-clock figures depend on the machine and on whatever else runs on it,
so the script also prints ratios against a reference measured in the same process:

- ``reference fit``: one fit of the default converting_only / xgb model (300 trees, depth 6) on
  the whole training split, with all cores, as `revcli train` does it;
- ``trial / reference``: the mean trial's cost in reference fits (a trial is 3 fits on 2/3 of
  the rows with the space's sizes, and a prediction per fold);
- ``bookkeeping``: per trial, search wall time not spent inside trials (Optuna storage and
  sampler, the progress callback), and the background MLflow logger's time per trial.

A missing --data path is reported and skipped (exit 0), as the benchmarks do.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="parquet training table (default: the demo)")
    parser.add_argument("--rows", type=int, default=472_871, help="demo rows without --data")
    parser.add_argument("--trials", type=int, default=60, help="completed trials to run")
    parser.add_argument("--n-jobs", type=int, default=-1,
                        help="trials at a time (-1: one per core)")
    parser.add_argument("--strategy", default="converting_only")
    parser.add_argument("--estimator", default="xgb")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.data is not None and not args.data.is_file():
        print(f"skipped: {args.data} does not exist", file=sys.stderr)
        return 0

    root = Path(tempfile.mkdtemp(prefix="revcli-bench-tune-"))
    try:
        figures = _measure(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))
    else:
        width = max(map(len, figures))
        for key, value in figures.items():
            print(f"{key:<{width}}  {value}")
        goal = "met" if figures["trials_per_minute"] >= 60 else "NOT met"
        print(f"goal >= 60 trials/minute: {goal}")
    return 0


def _measure(args: argparse.Namespace, root: Path) -> dict[str, object]:
    from revcli import demo, pipeline, settings
    from revcli.tuning import tune
    from revcli.workspace import Workspace

    workspace = Workspace(root / "ws")
    if args.data is not None:
        workspace.register_file(args.data, source=str(args.data))
    else:
        workspace.write_dataset(demo.generate(rows=args.rows, seed=0), source="demo:bench")
    os.chdir(root)  # no configs/ here: the built-in default spaces, as after `pip install`
    base = {"workspace": str(workspace.root), "strategy": args.strategy}

    # Reference: one fit of the default model on the whole training split, all cores.
    s = settings.resolve(flags={**base, "estimator": "xgb"}, env={})
    prepared = pipeline.prepare(s)
    start = time.perf_counter()
    pipeline.fit_and_score(prepared, s, {})
    reference = time.perf_counter() - start

    s = settings.resolve(flags={**base, "estimator": args.estimator, "n_trials": args.trials,
                                "n_jobs": args.n_jobs}, env={})
    result = tune(s, plots=False)
    search = result.timings["search"]
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=result.study, storage=result.storage)
    durations = [t.duration.total_seconds() for t in study.get_trials(deepcopy=False)
                 if t.duration is not None]
    finished = len(durations)
    mean_trial = sum(durations) / finished
    figures: dict[str, object] = {
        "rows": prepared.table.rows,
        "train_converters": int((prepared.y_train > 0).sum()),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "trials_at_a_time": result.parallel,
        "threads_per_trial": result.threads_per_trial,
        "completed": result.new["completed"],
        "pruned": result.new["pruned"],
        "failed": result.new["failed"],
        "search_seconds": round(search, 2),
        "trials_per_minute": round(60.0 * finished / search, 1),
        "completed_per_minute": round(60.0 * result.new["completed"] / search, 1),
        "reference_fit_seconds": round(reference, 3),
        "mean_trial_seconds": round(mean_trial, 3),
        "trial_over_reference": round(mean_trial / reference, 2),
        "bookkeeping_ms_per_trial": round(
            1000.0 * (search - sum(durations) / result.parallel) / finished, 1),
        "mlflow_logger_ms_per_trial": round(result.timings.get("mlflow_ms_per_trial", 0.0), 1),
        "best_cv_rmse": round(result.best.value, 3),
        "holdout_rmse": round(result.refit.scorecard.metrics["rmse"], 3),
        "holdout_baseline_rmse": round(result.refit.scorecard.baseline["rmse"], 3),
    }
    return figures


if __name__ == "__main__":
    sys.exit(main())
