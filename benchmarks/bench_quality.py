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
    args = parser.parse_args()

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


if __name__ == "__main__":
    sys.exit(main())
