"""Benchmark of the model file formats: size and load time of skops vs joblib pickle.

Trains each setup on the demo table (``--rows``), writes its model both ways (skops with
revcli's trusted types, as revcli saves it; joblib, as it did), and loads each file ``--repeat``
times in this process: sizes and the median load time, skops as a ratio of the pickle.

    python benchmarks/bench_serialization.py                 # 100,000 demo rows
    python benchmarks/bench_serialization.py --rows 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

SETUPS = (("converting_only", "xgb"), ("two_stage", "xgb"), ("converting_only", "rf"),
          ("two_stage", "rf"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import joblib

    from revcli import demo, estimators, serialization, strategies
    from revcli.features import for_estimator
    from revcli.model import RevenueModel

    frame = demo.generate(rows=args.rows, seed=0)
    X, y = frame.drop(columns=["revenue", "is_ordered"]), frame["revenue"].to_numpy()
    print(f"{args.rows:,} demo rows; median of {args.repeat} loads")
    print(f"{'setup':<22} {'pickle':>10} {'skops':>10} {'size x':>7} "
          f"{'load pkl':>9} {'load skops':>10} {'time x':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for strategy, estimator in SETUPS:
            model = RevenueModel(
                featurizer=for_estimator(estimators.spec(estimator).capabilities),
                strategy=strategies.build(strategy, estimator, {}, n_jobs=2)).fit(X, y)
            pkl, sk = Path(tmp) / "m.joblib", Path(tmp) / "m.skops"
            joblib.dump(model, pkl)
            serialization.dump(model, sk)
            times = {}
            for name, path, load in (("pkl", pkl, joblib.load),
                                     ("skops", sk, serialization.load)):
                runs = []
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    load(path)
                    runs.append(time.perf_counter() - start)
                times[name] = statistics.median(runs)
            a, b = pkl.stat().st_size, sk.stat().st_size
            print(f"{strategy + ' ' + estimator:<22} {a / 1e6:>8.2f}MB {b / 1e6:>8.2f}MB "
                  f"{b / a:>6.2f}x {times['pkl'] * 1e3:>7.1f}ms {times['skops'] * 1e3:>8.1f}ms "
                  f"{times['skops'] / times['pkl']:>6.2f}x")


if __name__ == "__main__":
    main()
