"""Benchmark of `revcli --help` and `revcli train` against bare reference scripts, at 1x and 10x.

Every command runs as a fresh process, as a user runs it; each is measured --repeat times
(round-robin, so a busy spell hits every command alike) and the medians of wall time and peak RSS
are shown, with the ratio to its reference measured in the same run:

- `python -c pass` (the floor) for `revcli --help`;
- ref_bare_xgb.py (pandas read, the same stratified 80/20 split, XGBRegressor with revcli's
  default hyperparameters, read from revcli.estimators, on the training converters, predict the
  test converters) for `train -s converting_only`;
- ref_seed_rf.py (the seed's RandomForest: 200 trees, depth 20, min_samples_split 10,
  n_jobs=-1) for `train -s converting_only --no-plots`, with both RMSEs;
- ref_two_model_xgb.py (classifier on all sessions x regressor on converters) for
  `train -s two_stage`, and the same without engagement_depth for `--drop-feature
  engagement_depth`.

Goals (issues 12 and 19, 2 cores): --help <= 10x python -c pass; converting_only <= 1.5x bare
XGBoost; two_stage <= 2x the bare two-model script; --no-plots >= 3x faster than the seed RF at
a lower RMSE; peak RSS <= 1.5 GB at 10x. Then the per-step seconds of each train from its --json
`timings`, and how much of the wall time they leave to start-up and imports.

Each child gets a fresh workspace holding the dataset as current and an MLflow store created
beforehand (what every run after a user's first finds; --new-store bills its creation to each
train), REVCLI_WORKSPACE set, MLFLOW_DISABLE_TELEMETRY=true and no MLFLOW_TRACKING_URI.

    python benchmarks/bench_train.py                        # 1x and 10x, median of 3 (~30 min)
    python benchmarks/bench_train.py --scale 1 --repeat 2   # ~5 min
    python benchmarks/bench_train.py --scale 10 --repeat 1
    python benchmarks/bench_train.py --data /path/sessions.parquet   # a real session table,
                                                            # skipped if it is absent
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import _measure as m

HERE = Path(__file__).resolve().parent
RSS_GOAL_MB = 1536
DROP = "engagement_depth"
NESTED = {"log_model": "log"}  # timings inside another timing (log_model is part of log)
# timings of work in another process beside the steps (MLflow's logger, issue 19): only what
# was waited for of it (tracking_wait) adds to the command's time
BESIDE = {"tracking": "the logger process"}


def xgb_params() -> tuple[dict, dict]:
    """revcli's default XGBoost hyperparameters (regressor, classifier), without the Nones."""
    from revcli import estimators

    def plain(model: object) -> dict:
        return {k: v for k, v in model.get_params().items() if v is not None}

    return (plain(estimators.make_regressor("xgb", seed=42, n_jobs=-1)),
            plain(estimators.make_classifier("xgb", seed=42, n_jobs=-1)))


def reference(script: str, data: Path, features: list[str], params: dict,
              classifier_params: dict | None = None) -> list[str]:
    cmd = [sys.executable, str(HERE / script), str(data), "--features", ",".join(features),
           "--params", json.dumps(params)]
    if classifier_params is not None:
        cmd += ["--classifier-params", json.dumps(classifier_params)]
    return cmd


def rmse_of(measured: m.Measured) -> float | None:
    """RMSE from a revcli --json output (scorecard) or a reference's JSON line."""
    return measured.median_of(lambda out: out["scorecard"]["metrics"]["rmse"]
                              if "scorecard" in out else out["rmse"])


def run_scale(scale: int, args: argparse.Namespace, tmp: Path) -> None:
    base = tmp / f"scale-{scale}"
    base.mkdir()
    data = base / "sessions.parquet"
    print(f"\n== {scale}x: writing the table ...", file=sys.stderr, flush=True)
    rows = m.write_scaled(args.data, args.rows, scale, data)
    source = f"{args.data} x{scale}" if args.data else f"demo:rows={rows},seed=0"
    features = m.session_features(data)
    drop_features = m.session_features(data, [DROP]) if DROP in features else None
    reg, clf = xgb_params()
    ws = m.FreshWorkspace(base / "ws", data, source, new_store=args.new_store)
    env, cwd = m.child_env(ws.root), base  # cwd has no configs/: built-in defaults

    def train(*flags: str) -> list[str]:
        return [*m.revcli(), "train", *flags, "-q", "--json"]

    C = m.Command
    commands = [
        C("python -c pass", [sys.executable, "-c", "pass"], env, cwd),
        C("revcli --help", [*m.revcli(), "--help"], env, cwd),
        C("ref: bare XGBoost", reference("ref_bare_xgb.py", data, features, reg), env, cwd),
        C("ref: seed RandomForest", reference("ref_seed_rf.py", data, features, {}), env, cwd),
        C("ref: bare two-model XGBoost",
          reference("ref_two_model_xgb.py", data, features, reg, clf), env, cwd),
    ]
    if drop_features is not None:
        commands.append(C(f"ref: bare two-model XGBoost, no {DROP}",
                          reference("ref_two_model_xgb.py", data, drop_features, reg, clf),
                          env, cwd))
    trains = {
        "train -s converting_only": ("converting_only", "ref: bare XGBoost", 1.5),
        # issue 19: 3x faster than the seed's recipe
        "train -s converting_only --no-plots": ("co --no-plots", "ref: seed RandomForest", 1 / 3),
        "train -s two_stage": ("two_stage", "ref: bare two-model XGBoost", 2.0),
    }
    if drop_features is not None:
        trains[f"train -s two_stage --drop-feature {DROP}"] = (
            f"two_stage -{DROP[:6]}", f"ref: bare two-model XGBoost, no {DROP}", 2.0)
    if args.converting_only:  # issue 19's pairs only
        trains = {k: v for k, v in trains.items() if "converting_only" in k}
        needed = {ref for _, ref, _ in trains.values()}
        commands = [c for c in commands if not c.name.startswith("ref:") or c.name in needed]
    for name in trains:
        commands.append(C(name, train(*name.split()[1:]), env, cwd, ws.reset))
    results = m.interleaved(commands, args.repeat)

    # -- the table -------------------------------------------------------------------------
    converters = results["ref: bare XGBoost"].median_of(lambda out: out["fit_rows"])
    print(f"\n{scale}x: {source}, {rows:,} rows"
          + (f" ({converters:,.0f} training converters)" if converters else "")
          + f"; {m.cores()} cores; median of {args.repeat}; "
          + ("MLflow store created by each train" if args.new_store
             else "MLflow store created beforehand"))
    print(f"{'command':52} {'wall s':>7} {'ratio':>6} {'peak MB':>8} {'RMSE':>7}  goal")
    rf_rmse = rmse_of(results["ref: seed RandomForest"])
    goals: dict[str, tuple[str, float]] = {"revcli --help": ("python -c pass", 10.0)}
    goals.update({name: (ref, limit) for name, (_, ref, limit) in trains.items()})
    for c in commands:
        r = results[c.name]
        if r.failed:
            print(f"{c.name:52} FAILED after {len(r.runs)} run(s): {r.failed.error}")
            continue
        rmse = rmse_of(r)
        ratio, goal = "", ""
        if c.name in goals:
            ref_name, limit = goals[c.name]
            ref = results[ref_name]
            if ref.failed or not ref.runs:
                goal = f"(reference {ref_name} failed)"
            else:
                ratio = f"{r.wall / ref.wall:5.2f}x"
                met = r.wall / ref.wall <= limit
                goal = f"<= {limit:.2g}x {ref_name.removeprefix('ref: ')}"
                if c.name.endswith("--no-plots"):
                    better = rmse is not None and rf_rmse is not None and rmse < rf_rmse
                    met = met and better
                    goal += f" at a lower RMSE ({'lower' if better else 'NOT lower'})"
                goal += f": {'met' if met else 'NOT met'}"
        rmse_text = "" if rmse is None else f"{rmse:7.3f}"
        print(f"{c.name:52} {r.wall:7.2f} {ratio:>6} {r.rss_mb:8.0f} {rmse_text:>7}  {goal}")
    train_rss = [results[n].rss_mb for n in trains if results[n].runs and not results[n].failed]
    if train_rss:
        peak = max(train_rss)
        verdict = (("met" if peak <= RSS_GOAL_MB else "NOT met") if scale == 10
                   else "the goal is set at 10x")
        print(f"peak RSS of revcli train: {peak:.0f} MB (goal <= {RSS_GOAL_MB} MB at 10x: "
              f"{verdict})")

    # -- per-step seconds ----------------------------------------------------------------
    done = {name: results[name] for name in trains if results[name].outputs()}
    if not done:
        return
    steps: dict[str, dict[str, float]] = {}
    for name, r in done.items():
        outs = [o for o in r.outputs() if o and "timings" in o]
        keys = sorted({k for o in outs for k in o["timings"]})
        steps[name] = {k: statistics.median(o["timings"][k] for o in outs if k in o["timings"])
                       for k in keys}
    first = next(iter(steps.values()))
    keys = sorted({k for s in steps.values() for k in s} - {"total"},
                  key=lambda k: -first.get(k, 0.0))
    width = max(10, *(len(trains[n][0]) for n in done))
    print(f"\nper-step seconds of revcli train (its --json timings, median; "
          f"{', '.join(f'{k} is inside {v}' for k, v in NESTED.items())}; "
          f"{', '.join(f'{k} runs in {v}' for k, v in BESIDE.items())})")
    print(f"{'step':36}" + "".join(f"{trains[n][0]:>{width + 1}}" for n in done))

    def row(label: str, values: list[float | None]) -> None:
        print(f"{label:36}" + "".join(
            f"{'' if v is None else f'{v:.2f}':>{width + 1}}" for v in values))

    for k in keys:
        row(k + (f" (in {NESTED[k]})" if k in NESTED else " (beside)" if k in BESIDE else ""),
            [steps[n].get(k) for n in done])
    sums = [sum(v for k, v in steps[n].items()
                if k != "total" and k not in NESTED and k not in BESIDE)
            for n in done]
    totals = [steps[n].get("total") for n in done]
    walls = [done[n].wall for n in done]
    row("sum of the steps", sums)
    row("total (train() as a whole)", totals)
    row("  untimed inside train()", [None if t is None else t - s
                                     for t, s in zip(totals, sums, strict=True)])
    row("wall time of the process", walls)
    row("  outside train(): start-up, imports", [None if t is None else w - t
                                                 for w, t in zip(walls, totals, strict=True)])
    for ref_name in ("ref: bare XGBoost", "ref: bare two-model XGBoost"):
        if ref_name not in results:
            continue
        fit = results[ref_name].median_of(lambda out: out["fit_s"])
        if fit is not None:
            print(f"{ref_name.removeprefix('ref: ')}: the fit alone {fit:.2f} s of "
                  f"{results[ref_name].wall:.2f} s wall")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help="rows of the 1x demo table "
                        "(default: the full demo set, 472,871)")
    parser.add_argument("--scale", default="1,10", help="comma-separated multiples of the table")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (median)")
    parser.add_argument("--data", type=Path, help="a session table (parquet) instead of the demo")
    parser.add_argument("--converting-only", action="store_true",
                        help="only the converting_only trains and their references")
    parser.add_argument("--new-store", action="store_true",
                        help="no MLflow store beforehand: each train creates its own")
    args = parser.parse_args()
    if args.data is not None and not args.data.is_file():
        print(f"skipped: {args.data} does not exist")
        return 0
    if args.data is not None:
        try:
            m.session_features(args.data)
        except Exception as exc:  # a DataError: not a session table revcli can train on
            print(f"skipped: {args.data} is not a session table revcli can train on: {exc}")
            return 0
    if args.rows is None:
        from revcli.data import FULL_ROWS

        args.rows = FULL_ROWS
    scales = [int(s) for s in args.scale.split(",") if s.strip()]
    commit = subprocess.run(["git", "-C", str(m.ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    print(f"revcli train benchmark: {m.ROOT} at {commit or '?'}; python {sys.version.split()[0]}; "
          f"{m.cores()} cores; {m.load()}")
    with tempfile.TemporaryDirectory(prefix="revcli-bench-train-") as tmp:
        for scale in scales:
            run_scale(scale, args, Path(tmp))
    print(f"\nat the end: {m.load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
