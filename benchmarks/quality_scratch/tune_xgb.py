"""The "tuned" xgb: a 40-trial Optuna search (TPE, seed 42, median pruner) on 3-fold CV of the
training split only, per strategy x split x {with, without calendar features}; the best trial's
parameters refit on the whole training split and scored once on the test split.

    PYTHONPATH=. python benchmarks/quality_scratch/tune_xgb.py [--strategies ...] [--splits ...]

The space is revcli's ``[xgb]`` table of configs/spaces.toml (objective only for all/two_stage,
classifier__ parameters only for two_stage). Folds: stratified for the random split,
forward-chaining time blocks for the time split. Resumable: the studies live in an sqlite file
outside the repo (``SCRATCH_OPTUNA``, default /tmp/quality_scratch_optuna.db); results go to
results/tuned.jsonl.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import common as c
import numpy as np
import optuna

TRIALS = 40
STORAGE = os.environ.get("SCRATCH_OPTUNA", "sqlite:////tmp/quality_scratch_optuna.db")


def suggest(trial: optuna.Trial, strategy: str) -> tuple[dict[str, Any], dict[str, Any]]:
    reg = dict(
        n_estimators=trial.suggest_int("n_estimators", 50, 300, step=25),
        max_depth=trial.suggest_int("max_depth", 2, 8),
        learning_rate=trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        min_child_weight=trial.suggest_float("min_child_weight", 1.0, 100.0, log=True),
        subsample=trial.suggest_float("subsample", 0.5, 1.0),
        colsample_bytree=trial.suggest_float("colsample_bytree", 0.5, 1.0),
        reg_lambda=trial.suggest_float("reg_lambda", 0.001, 10.0, log=True),
    )
    if strategy in ("all", "two_stage"):
        reg["objective"] = trial.suggest_categorical(
            "objective", ["reg:squarederror", "reg:tweedie", "count:poisson"])
        if reg["objective"] == "reg:tweedie":
            reg["tweedie_variance_power"] = trial.suggest_float("tweedie_variance_power",
                                                                1.05, 1.95)
    clf: dict[str, Any] = {}
    if strategy == "two_stage":
        clf = dict(
            n_estimators=trial.suggest_int("classifier__n_estimators", 50, 300, step=25),
            max_depth=trial.suggest_int("classifier__max_depth", 2, 8),
            learning_rate=trial.suggest_float("classifier__learning_rate", 0.01, 0.3, log=True),
            min_child_weight=trial.suggest_float("classifier__min_child_weight", 1.0, 100.0,
                                                 log=True),
        )
    return reg, clf


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    reg = {k: v for k, v in params.items() if not k.startswith("classifier__")}
    clf = {k.removeprefix("classifier__"): v for k, v in params.items()
           if k.startswith("classifier__")}
    return reg, clf


def tune(data: c.Data, strategy: str, split: str, tf: bool) -> dict[str, Any]:
    train, test = c.split(split, data.ordered)
    X = data.features(tf)
    # the rows a fold is cut from: the training converters for converting_only
    pool = train[data.ordered[train] == 1] if strategy == "converting_only" else train
    folds = c.cv_folds(split, data.ordered[pool])
    X_pool, y_pool, o_pool = X.iloc[pool], data.y[pool], data.ordered[pool]

    def objective(trial: optuna.Trial) -> float:
        reg, clf = suggest(trial, strategy)
        scores = []
        for step, (a, b) in enumerate(folds):
            pred, _ = c.fit_predict(strategy, lambda: c.xgb_reg(**reg), lambda: c.xgb_clf(**clf),
                                    X_pool.iloc[a], y_pool[a], o_pool[a], X_pool.iloc[b])
            scores.append(c.rmse(y_pool[b], pred))
            trial.report(float(np.mean(scores)), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(scores))

    name = f"{strategy}-{split}-{'time' if tf else 'notime'}"
    study = optuna.create_study(study_name=name, storage=STORAGE, load_if_exists=True,
                                direction="minimize",
                                sampler=optuna.samplers.TPESampler(seed=c.SEED),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=5))
    start = time.perf_counter()
    finished = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                       optuna.trial.TrialState.PRUNED)]
    if len(finished) < TRIALS:
        study.optimize(objective, n_trials=TRIALS - len(finished))
    search_s = time.perf_counter() - start
    states = [t.state for t in study.trials]
    reg, clf = split_params(study.best_params)
    rows = c.scored_rows(strategy, test, data.ordered)
    truth = data.truth_value if strategy == "converting_only" else data.truth_revenue
    pred, fit = c.fit_predict(strategy, lambda: c.xgb_reg(**reg), lambda: c.xgb_clf(**clf),
                              X.iloc[train], data.y[train], data.ordered[train], X.iloc[rows])
    oracle = c.rmse(data.y[rows], truth[rows])
    row = dict(strategy=strategy, split=split, time_features=tf, model="xgb_tuned", leak=False,
               rmse=c.rmse(data.y[rows], pred), oracle_rmse=oracle,
               rmse_truth=c.rmse(truth[rows], pred),
               pred_over_actual=float(pred.sum() / data.y[rows].sum()), fit_s=round(fit, 3),
               n_test=len(rows), cv_rmse=study.best_value, params=study.best_params,
               trials_complete=states.count(optuna.trial.TrialState.COMPLETE),
               trials_pruned=states.count(optuna.trial.TrialState.PRUNED),
               search_s=round(search_s, 1))
    row["ratio"] = row["rmse"] / oracle
    return row


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ap = argparse.ArgumentParser()
    ap.add_argument("--strategies", nargs="*", default=["converting_only", "all", "two_stage"])
    ap.add_argument("--splits", nargs="*", default=list(c.SPLITS))
    ap.add_argument("--time-features", nargs="*", default=["no", "yes"])
    args = ap.parse_args()
    data = c.demo_data()
    done = {(r["strategy"], r["split"], r["time_features"]) for r in c.load_results("tuned")}
    for strategy in args.strategies:
        for split in args.splits:
            for tf in [t == "yes" for t in args.time_features]:
                if (strategy, split, tf) in done:
                    continue
                row = tune(data, strategy, split, tf)
                c.append_result("tuned", row)
                print(f"{split:6} {strategy:15} tf={tf!s:5} tuned rmse {row['rmse']:.4f} "
                      f"ratio {row['ratio']:.4f} truth {row['rmse_truth']:.4f} "
                      f"cv {row['cv_rmse']:.4f} search {row['search_s']:.0f}s "
                      f"params {row['params']}", flush=True)


if __name__ == "__main__":
    main()
