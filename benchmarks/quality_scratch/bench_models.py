"""Fixed (untuned) models per strategy x split x {with, without calendar features} on the demo.

    PYTHONPATH=. python benchmarks/quality_scratch/bench_models.py [--strategies ...] [--models ...]

Appends one JSON line per (strategy, split, time_features, model) to results/models.jsonl and
skips those already there (delete the file to start over). RMSE is against realised revenue on the
strategy's test rows; ``rmse_truth`` against E[revenue | x] (E[order value | x, order] for
converting_only); ``ratio`` = rmse / the oracle's rmse.
"""

from __future__ import annotations

import argparse
from typing import Any

import common as c
import numpy as np


def candidates(strategy: str) -> dict[str, tuple[Any, Any]]:
    from sklearn.dummy import DummyClassifier, DummyRegressor

    models: dict[str, tuple[Any, Any]] = {
        "mean": (lambda: DummyRegressor(), lambda: DummyClassifier(strategy="prior")),
        "ridge": (c.ridge, c.logistic),
        "xgb": (c.xgb_reg, c.xgb_clf),
        "hgb": (c.hgb_reg, c.hgb_clf),
        "xgb_log": (lambda: c.LogTarget(c.xgb_reg(), smear=False), c.xgb_clf),
        "xgb_log_smear": (lambda: c.LogTarget(c.xgb_reg(), smear=True), c.xgb_clf),
    }
    if strategy == "converting_only":
        models["rf"] = (c.rf, None)
    return models


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--strategies", nargs="*", default=["converting_only", "all", "two_stage"])
    ap.add_argument("--splits", nargs="*", default=list(c.SPLITS))
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--out", default="models")
    args = ap.parse_args()

    data = c.demo_data()
    done = {(r["strategy"], r["split"], r["time_features"], r["model"])
            for r in c.load_results(args.out)}
    for split in args.splits:
        train, test = c.split(split, data.ordered)
        for strategy in args.strategies:
            rows = c.scored_rows(strategy, test, data.ordered)
            truth = data.truth_value if strategy == "converting_only" else data.truth_revenue
            y_te, t_te = data.y[rows], truth[rows]
            oracle = c.rmse(y_te, t_te)
            for tf in (False, True):
                runs = dict(candidates(strategy))
                if strategy == "all" and not tf:
                    runs["xgb+leak"] = runs["xgb"]  # the leak, for reference only
                for name, (reg, clf) in runs.items():
                    if args.models and name not in args.models:
                        continue
                    key = (strategy, split, tf, name)
                    if key in done:
                        continue
                    X = data.features(tf, leak=name.endswith("+leak"))
                    X_tr, X_te = X.iloc[train], X.iloc[rows]
                    pred, fit = c.fit_predict(strategy, reg, clf, X_tr, data.y[train],
                                              data.ordered[train], X_te)
                    row = dict(strategy=strategy, split=split, time_features=tf, model=name,
                               leak=name.endswith("+leak"), rmse=c.rmse(y_te, pred),
                               oracle_rmse=oracle, rmse_truth=c.rmse(t_te, pred),
                               pred_over_actual=float(pred.sum() / y_te.sum()),
                               fit_s=round(fit, 3), n_test=len(rows))
                    row["ratio"] = row["rmse"] / oracle
                    c.append_result(args.out, row)
                    print(f"{split:6} {strategy:15} tf={tf!s:5} {name:14} rmse {row['rmse']:.4f} "
                          f"ratio {row['ratio']:.4f} truth {row['rmse_truth']:.4f} "
                          f"fit {fit:.2f}s", flush=True)
            # the oracle itself, once per strategy x split
            key = (strategy, split, None, "oracle")
            if key not in done and (not args.models or "oracle" in args.models):
                c.append_result(args.out, dict(strategy=strategy, split=split, time_features=None,
                                               model="oracle", leak=False, rmse=oracle,
                                               oracle_rmse=oracle, rmse_truth=0.0, ratio=1.0,
                                               pred_over_actual=float(t_te.sum() / y_te.sum()),
                                               fit_s=0.0, n_test=len(rows)))
                print(f"{split:6} {strategy:15} oracle rmse {oracle:.4f}", flush=True)
    np.seterr(all="warn")


if __name__ == "__main__":
    main()
