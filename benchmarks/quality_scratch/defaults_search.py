"""Looking for default hyperparameters: candidates scored like bench_models (test RMSE, error
against the truth, fit time) per strategy x split x time features.

    PYTHONPATH=. python benchmarks/quality_scratch/defaults_search.py grid      # converting_only
    PYTHONPATH=. python benchmarks/quality_scratch/defaults_search.py check NAME ...
    PYTHONPATH=. python benchmarks/quality_scratch/defaults_search.py seeds 1 2

``grid``: a small grid of xgb regressors on converting_only (random and time split, with and
without calendar features) -> results/grid.jsonl. ``check``: named candidates (CANDIDATES) on
every strategy and split -> results/defaults.jsonl. ``seeds``: ridge, the current xgb default and
the proposals on other demo seeds (random split) -> results/seeds.jsonl.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any

import common as c

BASE = dict(subsample=0.8, colsample_bytree=0.8)

CANDIDATES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # name: (family, regressor params, classifier params)
    "xgb_d3_mcw30": ("xgb", dict(BASE, n_estimators=200, learning_rate=0.05, max_depth=3,
                                 min_child_weight=30.0, reg_lambda=1.0),
                     dict(BASE, n_estimators=200, learning_rate=0.05, max_depth=3,
                          min_child_weight=30.0)),
    "hgb_l8_leaf100": ("hgb", dict(max_iter=200, learning_rate=0.05, max_leaf_nodes=8,
                                   min_samples_leaf=100),
                       dict(max_iter=200, learning_rate=0.05, max_leaf_nodes=8,
                            min_samples_leaf=100)),
    "xgb_d2_n100": ("xgb", dict(BASE, max_depth=2, learning_rate=0.05, n_estimators=100,
                                min_child_weight=100.0),
                    dict(BASE, max_depth=2, learning_rate=0.1, n_estimators=200,
                         min_child_weight=30.0)),
    "xgb_d3_n100": ("xgb", dict(BASE, max_depth=3, learning_rate=0.05, n_estimators=100,
                                min_child_weight=100.0, reg_lambda=5.0),
                    dict(BASE, max_depth=3, learning_rate=0.05, n_estimators=200,
                         min_child_weight=30.0)),
    # the proposal (common.PROPOSED_XGB / PROPOSED_XGB_CLF)
    "xgb_d3_clf_d2": ("xgb", dict(BASE, max_depth=3, learning_rate=0.05, n_estimators=100,
                                  min_child_weight=100.0, reg_lambda=5.0),
                      dict(BASE, max_depth=2, learning_rate=0.1, n_estimators=200,
                           min_child_weight=30.0)),
    "hgb_d3_n100": ("hgb", dict(max_iter=100, learning_rate=0.05, max_depth=3,
                                min_samples_leaf=100, l2_regularization=1.0,
                                early_stopping=False),
                    dict(max_iter=200, learning_rate=0.05, max_depth=3, min_samples_leaf=100,
                         l2_regularization=1.0, early_stopping=False)),
    "hgb_l8_n200_noes": ("hgb", dict(max_iter=200, learning_rate=0.05, max_leaf_nodes=8,
                                     min_samples_leaf=100, early_stopping=False),
                         dict(max_iter=200, learning_rate=0.05, max_leaf_nodes=8,
                              min_samples_leaf=100, early_stopping=False)),
    "hgb_prop": ("hgb", dict(max_iter=100, learning_rate=0.05, max_depth=3,
                             min_samples_leaf=100, l2_regularization=1.0, early_stopping=False),
                 dict(max_iter=200, learning_rate=0.05, max_leaf_nodes=8, min_samples_leaf=100,
                      early_stopping=False)),
    # the proposal (common.PROPOSED_HGB / PROPOSED_HGB_CLF)
    "hgb_prop_clf100": ("hgb", dict(max_iter=100, learning_rate=0.05, max_depth=3,
                                    min_samples_leaf=100, l2_regularization=1.0,
                                    early_stopping=False),
                        dict(max_iter=100, learning_rate=0.1, max_leaf_nodes=8,
                             min_samples_leaf=100, early_stopping=False)),
}


def factories(family: str, reg: dict[str, Any], clf: dict[str, Any]) -> tuple[Any, Any]:
    if family == "ridge":
        return c.ridge, c.logistic
    if family == "xgb":
        return (lambda: c.xgb_reg(**reg)), (lambda: c.xgb_clf(**clf))
    return (lambda: c.hgb_reg(**reg)), (lambda: c.hgb_clf(**clf))


def evaluate(data: c.Data, out: str, name: str, family: str, reg: dict[str, Any],
             clf: dict[str, Any], strategies: tuple[str, ...], splits: tuple[str, ...],
             done: set[tuple[Any, ...]]) -> None:
    make_reg, make_clf = factories(family, reg, clf)
    for split in splits:
        train, test = c.split(split, data.ordered)
        for strategy in strategies:
            rows = c.scored_rows(strategy, test, data.ordered)
            truth = data.truth_value if strategy == "converting_only" else data.truth_revenue
            for tf in (False, True):
                if (strategy, split, tf, name) in done:
                    continue
                X = data.features(tf)
                pred, fit = c.fit_predict(strategy, make_reg, make_clf, X.iloc[train],
                                          data.y[train], data.ordered[train], X.iloc[rows])
                oracle = c.rmse(data.y[rows], truth[rows])
                row = dict(strategy=strategy, split=split, time_features=tf, model=name,
                           family=family, reg=reg, clf=clf, rmse=c.rmse(data.y[rows], pred),
                           oracle_rmse=oracle, rmse_truth=c.rmse(truth[rows], pred),
                           fit_s=round(fit, 3), n_test=len(rows))
                row["ratio"] = row["rmse"] / oracle
                c.append_result(out, row)
                print(f"{split:6} {strategy:15} tf={tf!s:5} {name:40} rmse {row['rmse']:.4f} "
                      f"truth {row['rmse_truth']:.4f} fit {fit:.2f}s", flush=True)


def main() -> None:
    mode, names = sys.argv[1], sys.argv[2:]
    data = c.demo_data() if mode != "seeds" else None
    if mode == "grid":
        done = {(r["strategy"], r["split"], r["time_features"], r["model"])
                for r in c.load_results("grid")}
        grid = itertools.product([2, 3, 4], [0.05, 0.1], [100, 200, 300], [1, 10, 30, 100],
                                 [1.0, 5.0])
        for depth, lr, n, mcw, lam in grid:
            reg = dict(BASE, max_depth=depth, learning_rate=lr, n_estimators=n,
                       min_child_weight=float(mcw), reg_lambda=lam)
            name = f"d{depth}_lr{lr}_n{n}_mcw{mcw}_l{lam}"
            evaluate(data, "grid", name, "xgb", reg, {}, ("converting_only",), c.SPLITS, done)
    elif mode == "seeds":  # other demo seeds, random split: the proposals against ridge
        done = {(r["strategy"], r["split"], r["time_features"], r["model"])
                for r in c.load_results("seeds")}
        runs = {"ridge": ("ridge", {}, {}), "xgb_default": ("xgb", {}, {}),
                "xgb_proposed": ("xgb", c.PROPOSED_XGB, c.PROPOSED_XGB_CLF),
                "hgb_proposed": ("hgb", c.PROPOSED_HGB, c.PROPOSED_HGB_CLF)}
        for seed in [int(n) for n in names]:
            data = c.demo_data(seed)
            for name, (family, reg, clf) in runs.items():
                evaluate(data, "seeds", f"{name}@seed{seed}", family, reg, clf, c.STRATEGIES,
                         ("random",), done)
    else:
        done = {(r["strategy"], r["split"], r["time_features"], r["model"])
                for r in c.load_results("defaults")}
        for name in names:
            family, reg, clf = CANDIDATES[name]
            evaluate(data, "defaults", name, family, reg, clf, c.STRATEGIES, c.SPLITS, done)


if __name__ == "__main__":
    main()
