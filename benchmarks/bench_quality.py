"""How close revcli's models get to the truth: RMSE / oracle RMSE and RMSE against the truth.

The demo generator knows, per session, E[revenue | x] and E[order value | x, order]
(``revcli.demo.generate(with_truth=True)``). No model can beat that oracle on realised revenue,
so ``RMSE / oracle`` (1.000 is perfect) and ``RMSE against the truth`` (0 is perfect) say how
much of the learnable signal a model found, which RMSE alone cannot on data this noisy.

For each split (random, time) and strategy, the script runs what a user runs, through revcli's
own functions: ``train`` with the default estimator, ``tune`` for --tune-seconds (default 60,
as ``revcli tune --timeout 60``), and ``train`` with ``ridge`` and ``mean`` beside them; every
model without ``engagement_depth`` (the leak; with it the oracle is beaten, which is the leak,
not skill). Rows scored: the strategy's evaluation rows of the holdout (converters for
converting_only, whose oracle is the order value).

With --real PATH (the real orders, ``mff_orders.parquet``; skipped when absent, never copied),
it also trains and tunes on the real sessions (only a timestamp as feature) and prints RMSE
beside the mean predictor's, on converters and on all sessions.

    python benchmarks/bench_quality.py                           # full demo, ~25 min on 2 cores
    python benchmarks/bench_quality.py --rows 100000 --tune-seconds 15 --strategies converting_only
    python benchmarks/bench_quality.py --real ../shared/data/mff_orders.parquet
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

LEAK = "engagement_depth"
MODELS = ("mean", "ridge", "default", "tuned")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=472_871, help="demo rows")
    parser.add_argument("--seed", type=int, default=0, help="demo seed")
    parser.add_argument("--tune-seconds", type=float, default=60.0)
    parser.add_argument("--splits", default="random,time")
    parser.add_argument("--strategies", default="converting_only,all,two_stage")
    parser.add_argument("--real", type=Path, help="mff_orders.parquet (skipped if absent)")
    parser.add_argument("--json", action="store_true", help="one JSON line per result")
    parser.add_argument("--drift", action="store_true",
                        help="only the drifting warehouse-style table (random, time, backtest)")
    parser.add_argument("--windows", type=int, default=3, help="backtest windows (--drift)")
    parser.add_argument("--estimators", default="mean,ridge,xgb-flat,xgb",
                        help="estimators of the drifting table (--drift; xgb-flat: the default "
                        "xgb without its line in time, as before the trend fix)")
    args = parser.parse_args()
    if args.drift:
        drifting(args)
        return 0

    from revcli import demo

    root = Path(tempfile.mkdtemp(prefix="revcli-bench-quality-"))
    try:
        table, truth = demo.generate(rows=args.rows, seed=args.seed, with_truth=True)
        path = root / "demo.parquet"
        table.to_parquet(path, index=False)
        print(f"revcli quality benchmark: demo {args.rows:,} rows (seed {args.seed}), tune "
              f"{args.tune_seconds:g} s per cell, without {LEAK}", flush=True)
        for split in args.splits.split(","):
            rows = [measure(root, path, table, truth, split, strategy, model,
                            args.tune_seconds)
                    for strategy in args.strategies.split(",") for model in MODELS]
            report(f"demo, {split} split", rows, args.json, oracle=True)
        if args.real is not None:
            if not args.real.is_file():
                print(f"skipped the real orders: {args.real} does not exist", file=sys.stderr)
            else:
                real_orders(root, args.real, args.tune_seconds, args.json)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def settings_for(root: Path, strategy: str, estimator: str, split: str, **extra: Any) -> Any:
    from revcli import settings

    config = root / "empty.toml"
    config.write_text("")
    return settings.resolve(flags={"workspace": str(root / "ws"), "strategy": strategy,
                                   "estimator": estimator, "split": split, **extra},
                            config_file=config, env={})


def fit(root: Path, path: Path, split: str, strategy: str, model: str,
        tune_seconds: float, drop: tuple[str, ...] = (LEAK,)) -> tuple[Any, Any, float]:
    """(fitted model, its settings, seconds): the model as `train` or `tune` leaves it."""
    from revcli import serialization, train
    from revcli.tuning import tune

    start = time.perf_counter()
    if model == "tuned":
        s = settings_for(root, strategy, "xgb", split, n_trials=100_000, timeout=tune_seconds)
        result = tune(s, data=path, drop_features=list(drop), plots=False, fresh=True)
        assert result.refit is not None
        model_path = result.refit.model_path
    else:
        s = settings_for(root, strategy, {"default": "xgb"}.get(model, model), split)
        model_path = train.train(s, data=path, drop_features=list(drop), plots=False).model_path
    return serialization.load(model_path), s, time.perf_counter() - start


def holdout(s: Any, table: Any, strategy: str) -> tuple[np.ndarray, Any, np.ndarray, Any]:
    """(positions in the table, features, revenue) of the strategy's evaluation rows, and the
    split they come from (the one train and tune made: same settings, same rows)."""
    from revcli import pipeline, strategies

    ordered = table["is_ordered"].to_numpy()
    split = pipeline.make(s, table, ordered)
    y = table["revenue"].to_numpy(dtype=np.float64)[split.test]
    keep = split.test[strategies.get(strategy).evaluation_rows(y)]
    X = table.drop(columns=["revenue", "is_ordered", LEAK], errors="ignore").iloc[keep]
    return keep, X, table["revenue"].to_numpy(dtype=np.float64)[keep], split


def measure(root: Path, path: Path, table: Any, truth: Any, split: str, strategy: str,
            model: str, tune_seconds: float) -> dict[str, Any]:
    from revcli import metrics, strategies

    fitted, s, seconds = fit(root, path, split, strategy, model, tune_seconds)
    keep, X, y, _ = holdout(s, table, strategy)
    pred = fitted.predict(X)
    column = "order_value" if strategies.get(strategy).predicts == strategies.ORDER_VALUE \
        else "revenue"
    oracle = truth[column].to_numpy(dtype=np.float64)[keep]
    oracle_rmse = metrics.rmse(y, oracle)
    rmse = metrics.rmse(y, pred)
    return {"split": split, "strategy": strategy, "model": model, "rows": len(y),
            "rmse": rmse, "oracle_rmse": oracle_rmse, "ratio": rmse / oracle_rmse,
            "vs_truth": metrics.rmse(pred, oracle), "seconds": seconds}


def report(title: str, rows: list[dict[str, Any]], as_json: bool, oracle: bool) -> None:
    if as_json:
        for row in rows:
            print(json.dumps({"table": title, **row}))
        return
    print(f"\n{title}: RMSE / oracle RMSE (RMSE against the truth) [seconds]" if oracle else
          f"\n{title}: RMSE (mean predictor's RMSE) [seconds]")
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    cells = {(r["strategy"], r["model"]): r for r in rows}
    head = "model".ljust(9) + "".join(
        (f"{s} (oracle {cells[(s, MODELS[0])]['oracle_rmse']:.3f})" if oracle else s).rjust(34)
        for s in strategies)
    print(head)
    for model in dict.fromkeys(r["model"] for r in rows):
        line = model.ljust(9)
        for s in strategies:
            r = cells.get((s, model))
            text = "" if r is None else (
                f"{r['ratio']:.4f} ({r['vs_truth']:.3f}) [{r['seconds']:.0f}]" if oracle else
                f"{r['rmse']:.3f} ({r['baseline_rmse']:.3f}) [{r['seconds']:.0f}]")
            line += text.rjust(34)
        print(line, flush=True)


def real_orders(root: Path, orders: Path, tune_seconds: float, as_json: bool) -> None:
    """The real sessions (a timestamp is their only feature), default and tuned xgb."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _real_orders import build_sessions

    from revcli import metrics

    sessions = build_sessions(orders)
    path = root / "real.parquet"
    sessions.to_parquet(path, index=False)
    for split in ("random", "time"):
        rows = []
        for strategy in ("converting_only", "all"):
            for model in ("default", "tuned"):
                fitted, s, seconds = fit(root, path, split, strategy, model, tune_seconds,
                                         drop=())
                _, X, y, made = holdout(s, sessions, strategy)
                # the train-mean predictor of the same rows: order value, or revenue
                seen = sessions["revenue"].to_numpy(dtype=np.float64)[made.train]
                baseline = float(seen[seen > 0].mean() if strategy == "converting_only"
                                 else seen.mean())
                rows.append({"split": split, "strategy": strategy, "model": model,
                             "rows": len(y), "rmse": metrics.rmse(y, fitted.predict(X)),
                             "baseline_rmse": metrics.rmse(y, np.full(len(y), baseline)),
                             "seconds": seconds})
        report(f"real orders, {split} split", rows, as_json, oracle=False)


def warehouse(rows: int, seed: int) -> tuple[Any, Any]:
    """The demo table as a warehouse exports it, with its truth: ``session_start`` (the
    demo's created_at), ``utm_source``, ``device_type`` and ``landing_page`` as text, flags, an
    id. It drifts as the real data does (revcli.demo: each month's conversion is the real one,
    rising from 3 % in 2012 to 8.4 % in 2015; the basket mix follows the product eras, the mean
    order value rising from $49.99 to ~$64)."""
    import pandas as pd

    from revcli import demo

    t, truth = demo.generate(rows=rows, seed=seed, with_truth=True)
    src = np.where(t["utm_source_gsearch"], "gsearch",
                   np.where(t["utm_source_socialbook"], "socialbook", "bsearch_or_direct"))
    page = np.full(len(t), "/home", dtype=object)
    for c in [c for c in t.columns if c.startswith("landing_page_")]:
        page[t[c].to_numpy().astype(bool)] = c.removeprefix("landing_page_")
    table = pd.DataFrame({
        "session_id": np.arange(len(t)), "session_start": t["created_at"], "utm_source": src,
        "device_type": np.where(t["device_type_mobile"], "mobile", "desktop"),
        "landing_page": page, "is_repeat_session": t["is_repeat_session"],
        "is_weekend": t["is_weekend"], "hour_of_day": t["hour_of_day"],
        "is_ordered": t["is_ordered"], "revenue": t["revenue"]})
    return table, truth


def drifting(args: Any) -> None:
    """RMSE ÷ oracle and predicted ÷ actual total of each strategy x estimator on the drifting
    table: the random split, the time split, and --windows backtest windows (revcli.backtest's
    forward cut-offs), each model fitted through revcli's own pipeline."""
    from revcli import backtest, metrics, pipeline, strategies
    from revcli.data import validate

    root = Path(tempfile.mkdtemp(prefix="revcli-bench-drift-"))
    try:
        if args.real is not None:
            sys.path.insert(0, str(Path(__file__).parent))
            from _real_orders import build_sessions

            table, truth = build_sessions(args.real), None
            time_column = "created_at"
            print("real orders (a timestamp is their only feature); RMSE ÷ the train mean's "
                  "RMSE | predicted ÷ actual total, on each strategy's own rows", flush=True)
        else:
            table, truth = warehouse(args.rows, args.seed)
            time_column = "session_start"
            print(f"drifting warehouse table: {args.rows:,} rows (seed {args.seed}); RMSE ÷ "
                  "oracle RMSE | predicted ÷ actual total, on each strategy's own rows",
                  flush=True)
        valid = validate(table)
        X, y = valid.X, valid.y
        for strategy in args.strategies.split(","):
            cls = strategies.get(strategy)
            oracle_column = "order_value" if cls.predicts == strategies.ORDER_VALUE else "revenue"
            oracle_all = (None if truth is None
                          else truth[oracle_column].to_numpy(dtype=np.float64))
            s = settings_for(root, strategy, "xgb", "time", time_column=time_column)
            cuts = {"random": pipeline.make(s.replace(split="random"), table, valid.ordered),
                    "time": pipeline.make(s, table, valid.ordered)}
            for k, made in enumerate(backtest.windows(table[time_column], valid.ordered,
                                                      args.windows, s.test_size,
                                                      time_column, None), start=1):
                cuts[f"window {k}"] = made
            for shown in args.estimators.split(","):
                # "xgb-flat": the default xgb as it was before the trend fix (no line in time)
                estimator = shown.removesuffix("-flat")
                extra = ({"trend": False, **({"classifier__trend": False}
                                              if cls.has_classifier else {})}
                         if shown.endswith("-flat") else {})
                cells = []
                for label, made in cuts.items():
                    start = time.perf_counter()
                    model = pipeline.build(s.replace(estimator=estimator),
                                           {**pipeline.hyperparameters(s, estimator=estimator),
                                            **extra}, estimator=estimator)
                    pipeline.fit(model, X.iloc[made.train], y[made.train], 2)
                    test = made.test[cls.evaluation_rows(y[made.test])]
                    pred = model.predict(X.iloc[test])
                    seen = y[made.train]
                    if oracle_all is None:  # the real orders: beside the train mean instead
                        mean = float(seen[seen > 0].mean() if cls.scored_on ==
                                     strategies.CONVERTERS else seen.mean())
                        reference = np.full(len(test), mean)
                    else:
                        reference = oracle_all[test]
                    ratio = metrics.rmse(y[test], pred) / metrics.rmse(y[test], reference)
                    total = metrics.total_ratio(y[test], pred)
                    cells.append({"cut": label, "rmse_vs_oracle": ratio, "total_ratio": total,
                                  "oracle_total": metrics.total_ratio(y[test], reference),
                                  "vs_expected_total": float(pred.sum() / reference.sum()),
                                  "rmse": metrics.rmse(y[test], pred),
                                  "seconds": time.perf_counter() - start})
                if args.json:
                    for c in cells:
                        print(json.dumps({"table": "drift", "strategy": strategy,
                                          "estimator": shown, **c}), flush=True)
                else:
                    print(f"{strategy:>15} {shown:<8}" + "".join(
                        f" {c['cut']}: {c['rmse_vs_oracle']:.4f} | {c['total_ratio']:.3f};"
                        for c in cells), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
