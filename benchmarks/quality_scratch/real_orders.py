"""The real orders as sessions (benchmarks/_real_orders.py): what a time feature buys, under a
random and a time split.

    PYTHONPATH=. python benchmarks/quality_scratch/real_orders.py [--orders PATH] [--tune]

Converters under four splits (see PROTOCOLS): the seed pipeline's split of the converters table,
revcli's split of all sessions (both 25,850 / 6,463 converters, different rows), the earliest
80 % of converters, the earliest 80 % of sessions. Features: ``month`` (month index since
2012-03) or ``calendar`` (month index, day of week, hour). Also the all-sessions strategies
(every session scored). The real data is read from its path, never copied.
Results: results/real.jsonl.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import common as c
import numpy as np
import pandas as pd
from _real_orders import build_sessions

ORDERS = "/work/shared/data/mff_orders.parquet"


# (split, strategy). converting_only is measured under four splits:
# seed      the seed pipeline's: the converters table split 80/20, random_state=42 (what the facts'
#           $17.66 / $16.78 were measured on: 25,850 / 6,463 converters)
# random    revcli's: all sessions, stratified on is_ordered, seed 42 (the same counts, other rows)
# time_conv the earliest 80 % of converters train, the latest 20 % test (the issue's $21.17)
# time      the earliest 80 % of sessions train, the latest 20 % test
PROTOCOLS = [(s, "converting_only") for s in ("seed", "random", "time_conv", "time")] + [
    (s, strategy) for strategy in ("all", "two_stage") for s in ("random", "time")]


def protocol_rows(split: str, ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training and test rows (sessions; converters only for seed and time_conv)."""
    from sklearn.model_selection import train_test_split

    if split in ("random", "time"):
        return c.split(split, ordered)
    conv = np.flatnonzero(ordered == 1)
    if split == "seed":
        train, test = train_test_split(conv, test_size=0.2, random_state=c.SEED)
        return np.sort(train), np.sort(test)
    cut = round(0.8 * len(conv))
    return conv[:cut], conv[cut:]


def month_means(month_tr: np.ndarray, y_tr: np.ndarray, month_te: np.ndarray,
                fallback: str) -> np.ndarray:
    """Each test row gets its month's training mean; a month unseen in training gets the last
    seen month's mean (``carry``) or the overall training mean (``mean``)."""
    table = pd.Series(y_tr).groupby(month_tr).mean()
    out = pd.Series(month_te).map(table)
    if fallback == "carry":
        last = table.loc[table.index <= month_te.min()]
        carry = last.iloc[-1] if len(last) else table.iloc[-1]
        return out.fillna(carry).to_numpy()
    return out.fillna(y_tr.mean()).to_numpy()


def tune_converters(X: pd.DataFrame, y: np.ndarray, split: str) -> tuple[dict[str, Any], float]:
    """40 TPE trials of revcli's xgb space on 3-fold CV of the training converters."""
    import optuna
    from tune_xgb import split_params, suggest

    folds = c.cv_folds(split, np.ones(len(y), dtype=np.int64))

    def objective(trial: optuna.Trial) -> float:
        params, _ = suggest(trial, "converting_only")
        scores = []
        for a, b in folds:
            model = c.xgb_reg(**params).fit(X.iloc[a], y[a])
            scores.append(c.rmse(y[b], model.predict(X.iloc[b])))
        return float(np.mean(scores))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize",
                                sampler=optuna.samplers.TPESampler(seed=c.SEED))
    study.optimize(objective, n_trials=40)
    return split_params(study.best_params)[0], study.best_value


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", default=ORDERS)
    ap.add_argument("--tune", action="store_true", help="also a 40-trial tuned xgb (converters)")
    ap.add_argument("--out", default="real")
    args = ap.parse_args()

    sessions = build_sessions(args.orders)
    cal = c.calendar(sessions.created_at)
    y = sessions.revenue.to_numpy()
    ordered = sessions.is_ordered.to_numpy()
    feature_sets = {"month": ["month_index"], "calendar": c.CALENDAR_FEATURES}
    done = {(r["strategy"], r["split"], r["features"], r["model"])
            for r in c.load_results(args.out)}

    def record(strategy: str, split: str, features: str, model: str, y_te: np.ndarray,
               pred: np.ndarray, fit: float, **extra: Any) -> None:
        row = dict(strategy=strategy, split=split, features=features, model=model,
                   rmse=c.rmse(y_te, pred), mae=float(np.mean(np.abs(y_te - pred))),
                   mean_pred=float(np.mean(pred)), mean_actual=float(np.mean(y_te)),
                   fit_s=round(fit, 3), n_test=len(y_te), **extra)
        c.append_result(args.out, row)
        print(f"{split:6} {strategy:15} {features:8} {model:22} rmse {row['rmse']:.4f} "
              f"mae {row['mae']:.3f} mean pred {row['mean_pred']:.2f} vs {row['mean_actual']:.2f}"
              f" fit {fit:.2f}s", flush=True)

    models: dict[str, tuple[Any, Any]] = {
        "ridge": (c.ridge, c.logistic),
        "xgb": (c.xgb_reg, c.xgb_clf),
        "hgb": (c.hgb_reg, c.hgb_clf),
        "xgb_proposed": (lambda: c.xgb_reg(**c.PROPOSED_XGB),
                         lambda: c.xgb_clf(**c.PROPOSED_XGB_CLF)),
        "hgb_proposed": (lambda: c.hgb_reg(**c.PROPOSED_HGB),
                         lambda: c.hgb_clf(**c.PROPOSED_HGB_CLF)),
    }
    for split, strategy in PROTOCOLS:
        train, test = protocol_rows(split, ordered)
        conv_tr, conv_te = train[ordered[train] == 1], test[ordered[test] == 1]
        rows = conv_te if strategy == "converting_only" else test
        y_te = y[rows]
        if (strategy, split, "-", "mean") not in done:
            print(f"{split}: {len(train):,} / {len(test):,} training / test rows, "
                  f"{len(conv_tr):,} / {len(conv_te):,} converters", flush=True)
            base = y[conv_tr] if strategy == "converting_only" else y[train]
            record(strategy, split, "-", "mean", y_te, np.full(len(rows), base.mean()), 0.0,
                   n_train_converters=len(conv_tr), n_test_converters=len(conv_te))
        fit_rows = conv_tr if strategy == "converting_only" else train
        for fallback in ("carry", "mean"):
            name = f"month_mean_{fallback}"
            if strategy == "two_stage" or (strategy, split, "month", name) in done:
                continue
            if not split.startswith("time") and fallback == "mean":
                continue  # every month is seen under a random split
            start = time.perf_counter()
            pred = month_means(cal.month_index.to_numpy()[fit_rows], y[fit_rows],
                               cal.month_index.to_numpy()[rows], fallback)
            record(strategy, split, "month", name, y_te, pred, time.perf_counter() - start)
        for fname, cols in feature_sets.items():
            X = cal[cols]
            for name, (reg, clf) in models.items():
                if (strategy, split, fname, name) in done:
                    continue
                pred, fit = c.fit_predict(strategy, reg, clf, X.iloc[train], y[train],
                                          ordered[train], X.iloc[rows])
                record(strategy, split, fname, name, y_te, pred, fit)
            if args.tune and strategy == "converting_only" and (
                    strategy, split, fname, "xgb_tuned") not in done:
                kind = "time" if split.startswith("time") else "random"
                params, cv = tune_converters(X.iloc[conv_tr], y[conv_tr], kind)
                pred, fit = c.fit_predict(strategy, lambda p=params: c.xgb_reg(**p), None,
                                          X.iloc[train], y[train], ordered[train],
                                          X.iloc[rows])
                record(strategy, split, fname, "xgb_tuned", y_te, pred, fit, params=params,
                       cv_rmse=cv)

if __name__ == "__main__":
    main()
