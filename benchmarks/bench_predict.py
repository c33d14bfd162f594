"""Benchmark of `revcli predict`: wall time and peak RSS against an in-memory reference.

Builds parquet files of N and 2N sessions (the demo table repeated, written row group by row
group so building them takes little memory), trains one model, then measures in fresh processes:

- `revcli predict --run <id> --data big.parquet --out scored.parquet` (batches of --batch-rows);
- the reference: the same work in memory, as a notebook would do it: pandas.read_parquet of the
  whole file, the model's three predictions, DataFrame.to_parquet.

Goal (issue 5): predict's peak RSS stays flat when the file doubles (it is set by the batch size,
not the file), while the reference grows with the file; wall time within ~1.5x of the reference.

    python benchmarks/bench_predict.py                      # 2M and 4M demo rows
    python benchmarks/bench_predict.py --rows 500000 --batch-rows 50000
    python benchmarks/bench_predict.py --data /path/training_data.parquet   # a real table
                                                            # (skipped if it is absent)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _measure import measure  # the script's own folder is on sys.path

REFERENCE = r"""
import sys
from revcli import serialization
import numpy as np
import pandas as pd

model_path, data, out = sys.argv[1:4]
model = serialization.load(model_path)
frame = pd.read_parquet(data)
X = frame[list(model.feature_names_in_)].astype(np.float32)
pd.DataFrame({"session_id": frame["session_id"], "prediction": model.predict(X),
              "p_order": model.predict_proba_order(X),
              "order_value": model.predict_order_value(X)}).to_parquet(out)
"""


def write_sessions(source: Path | None, rows: int, path: Path) -> int:
    """``rows`` sessions (the source table or the demo, repeated) with a session_id column."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from revcli import demo

    base = (pq.read_table(source) if source else
            pa.Table.from_pandas(demo.generate(rows=min(rows, demo.FULL_ROWS), seed=0),
                                 preserve_index=False))
    written = 0
    with pq.ParquetWriter(path, pa.schema([pa.field("session_id", pa.int64()),
                                           *base.schema])) as writer:
        while written < rows:
            part = base.slice(0, min(base.num_rows, rows - written))
            ids = pa.array(np.arange(written, written + part.num_rows), pa.int64())
            writer.write_table(part.add_column(0, "session_id", ids), row_group_size=100_000)
            written += part.num_rows
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the smaller file")
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument("--data", type=Path, help="a real training table (parquet)")
    args = parser.parse_args()
    if args.data is not None and not args.data.is_file():
        print(f"skipped: {args.data} does not exist")
        return
    revcli = [sys.executable, "-m", "revcli"]
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "REVCLI_WORKSPACE": str(root / "ws"),
               "MLFLOW_DISABLE_TELEMETRY": "true"}
        env.pop("MLFLOW_TRACKING_URI", None)
        train_data = root / "train.parquet"
        write_sessions(args.data, 100_000, train_data)
        out = subprocess.run([*revcli, "train", "--data", str(train_data), "--strategy",
                              "two_stage", "--drop-feature", "engagement_depth", "--no-plots",
                              "--json"], env=env, cwd=root, capture_output=True, text=True,
                             check=True)
        trained = json.loads(out.stdout)
        run_id, model_path = trained["run_id"], trained["model"]["path"]
        print(f"model: two_stage / xgb, run {run_id[:12]}; batches of {args.batch_rows:,} rows")
        print(f"{'rows':>12} {'MB':>7} | {'predict s':>9} {'RSS MB':>7} | {'reference s':>11} "
              f"{'RSS MB':>7} | {'time x':>6} {'RSS x':>6}")
        for rows in (args.rows, 2 * args.rows):
            data = root / f"sessions-{rows}.parquet"
            write_sessions(args.data, rows, data)
            size = data.stat().st_size / 1e6
            wall, rss = measure([*revcli, "predict", "--run", run_id, "--data", str(data),
                                 "--out", str(root / "scored.parquet"), "--batch-rows",
                                 str(args.batch_rows), "--quiet"], env, root)
            ref_wall, ref_rss = measure([sys.executable, "-c", REFERENCE, model_path,
                                         str(data), str(root / "reference.parquet")], env, root)
            print(f"{rows:>12,} {size:>7.0f} | {wall:>9.1f} {rss:>7.0f} | {ref_wall:>11.1f} "
                  f"{ref_rss:>7.0f} | {wall / ref_wall:>6.2f} {rss / ref_rss:>6.2f}")
            data.unlink()


if __name__ == "__main__":
    main()
