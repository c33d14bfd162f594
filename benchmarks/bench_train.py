"""Benchmark of `revcli --help` and `revcli train` on the full-size demo set.

Prints wall time and peak RSS of each command (each in a fresh process, as a user runs it) and
their ratio to a reference measured in the same run on the same machine:

- `--help` against a bare `python -c pass` start-up;
- `train` against the bare work it wraps: read the parquet, fit the same estimator on the same
  training rows and predict the holdout, in one fresh process with the same imports but no
  revcli, MLflow logging, audit, importance or plots.

Goals (issue 2, 2 cores): --help <= 0.3 s, converting_only <= 5 s, two_stage <= 15 s,
peak RSS <= 1 GB.

    python benchmarks/bench_train.py                       # full-size demo data (472,871 rows)
    python benchmarks/bench_train.py --rows 100000
    python benchmarks/bench_train.py --data /path/training_data.parquet   # a real table; the
                                                           # benchmark is skipped if it is absent
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REFERENCE = r"""
import sys
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from xgboost import XGBClassifier, XGBRegressor

strategy, path = sys.argv[1], sys.argv[2]
frame = pd.read_parquet(path)
y = frame.pop("revenue").to_numpy()
X = frame.drop(columns=["is_ordered"]).astype(np.float32)
tr, te = train_test_split(np.arange(len(y)), test_size=0.2, random_state=42, stratify=y > 0)
params = dict(n_estimators=300, learning_rate=0.05, max_depth=6, subsample=0.8,
              colsample_bytree=0.8, tree_method="hist", random_state=42)
conv = tr[y[tr] > 0]
reg = XGBRegressor(**params).fit(X.iloc[conv], y[conv])
if strategy == "two_stage":
    clf = XGBClassifier(**params).fit(X.iloc[tr], (y[tr] > 0).astype(int))
    pred = clf.predict_proba(X.iloc[te])[:, 1] * reg.predict(X.iloc[te])
else:
    pred = reg.predict(X.iloc[te])
"""


def measure(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{stderr}")
    return wall, usage.ru_maxrss / 1024


def best_of(n: int, cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    runs = [measure(cmd, env, cwd) for _ in range(n)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=472_871)
    parser.add_argument("--data", type=Path, help="a real training table (parquet)")
    parser.add_argument("--repeat", type=int, default=2, help="best of N runs")
    args = parser.parse_args()
    if args.data is not None and not args.data.is_file():
        print(f"skipped: {args.data} does not exist")
        return

    python = sys.executable
    revcli = [python, "-m", "revcli"]
    work = Path(tempfile.mkdtemp(prefix="revcli-bench-"))
    env = {**os.environ, "REVCLI_WORKSPACE": str(work / "ws"), "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    try:
        if args.data is not None:
            subprocess.run([*revcli, "fetch", str(args.data), "-q"], env=env, cwd=work, check=True)
            label = str(args.data)
        else:
            subprocess.run([*revcli, "fetch", "--demo", "--rows", str(args.rows), "-q"], env=env,
                           cwd=work, check=True, stdout=subprocess.DEVNULL)
            label = f"demo, {args.rows:,} rows"
        dataset = next((work / "ws" / "datasets").glob("*.parquet"))
        # warm the MLflow store once so its one-time migrations are not billed to a command
        subprocess.run([*revcli, "train", "-e", "mean", "--no-plots", "-q"], env=env, cwd=work,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        rows = []
        ref = best_of(args.repeat, [python, "-c", "pass"], env, work)
        got = best_of(args.repeat, [*revcli, "--help"], env, work)
        rows.append(("revcli --help", got, ref, "python -c pass", 0.3))
        for strategy, goal in (("converting_only", 5.0), ("two_stage", 15.0)):
            ref = best_of(args.repeat, [python, "-c", REFERENCE, strategy, str(dataset)], env,
                          work)
            got = best_of(args.repeat, [*revcli, "train", "-s", strategy, "-q"], env, work)
            rows.append((f"revcli train -s {strategy}", got, ref, "bare xgboost fit", goal))

        print(f"revcli benchmark ({label}; {os.cpu_count()} cores; best of {args.repeat})")
        print(f"{'command':34} {'wall s':>7} {'goal s':>7} {'peak MB':>8} "
              f"{'ref s':>7} {'ratio':>6}  reference")
        for name, (wall, rss), (ref_wall, _), ref_name, goal in rows:
            print(f"{name:34} {wall:7.2f} {goal:7.1f} {rss:8.0f} {ref_wall:7.2f} "
                  f"{wall / ref_wall:6.1f}  {ref_name}")
        peak = max(r[1][1] for r in rows)
        print(f"peak RSS {peak:.0f} MB (goal <= 1024 MB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
