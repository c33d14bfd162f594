"""Fit times of the current and the proposed defaults on the full demo (random split's training
rows, with calendar features), best of 3, 2 threads (SCRATCH_THREADS) -> results/fit_times.jsonl.

    PYTHONPATH=. python benchmarks/quality_scratch/fit_times.py [strategy:model ...]
"""

from __future__ import annotations

import os
import sys
from typing import Any

import common as c

RUNS: dict[str, tuple[Any, Any]] = {
    "ridge": (c.ridge, c.logistic),
    "xgb (current)": (c.xgb_reg, c.xgb_clf),
    "xgb (proposed)": (lambda: c.xgb_reg(**c.PROPOSED_XGB),
                       lambda: c.xgb_clf(**c.PROPOSED_XGB_CLF)),
    "hgb (current)": (c.hgb_reg, c.hgb_clf),
    "hgb (proposed)": (lambda: c.hgb_reg(**c.PROPOSED_HGB),
                       lambda: c.hgb_clf(**c.PROPOSED_HGB_CLF)),
}


def main(only: list[str]) -> None:
    data = c.demo_data()
    train, test = c.split("random", data.ordered)
    X = data.features(True)
    load = os.getloadavg()[0]
    for strategy in c.STRATEGIES:
        rows = c.scored_rows(strategy, test, data.ordered)
        for name, (reg, clf) in RUNS.items():
            if only and f"{strategy}:{name}" not in only:
                continue
            times = []
            for _ in range(3):
                _, fit = c.fit_predict(strategy, reg, clf, X.iloc[train], data.y[train],
                                       data.ordered[train], X.iloc[rows])
                times.append(fit)
            row = dict(strategy=strategy, model=name, best_s=round(min(times), 3),
                       runs=[round(t, 3) for t in times], threads=c.THREADS,
                       load_before=round(load, 2))
            c.append_result("fit_times", row)
            print(f"{strategy:15} {name:15} best {min(times):.2f}s of {row['runs']}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])  # optionally "strategy:model" pairs only
