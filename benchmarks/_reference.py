"""What the reference scripts share, and nothing of revcli: the parquet read with pandas, the
same stratified 80/20 split of all sessions as revcli's (train_test_split on revenue > 0,
random_state 42), an RMSE, and one JSON line of figures on stdout.

Each reference is run as its own process by bench_train.py / bench_scale.py, with the feature
columns and hyperparameters it is given on the command line (bench_train.py reads them from
revcli, so they stay in step):

    python benchmarks/ref_bare_xgb.py DATA --features a,b,c --params '{"max_depth": 6}'
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

TARGET = "revenue"


def arguments(doc: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("data", help="a session table (parquet)")
    parser.add_argument("--features", required=True, help="comma-separated feature columns")
    parser.add_argument("--params", default="{}", help="regressor hyperparameters (JSON)")
    parser.add_argument("--classifier-params", default="{}",
                        help="classifier hyperparameters (JSON)")
    return parser.parse_args()


def load(path: str, features: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """X (float32; a timestamp as seconds, a text column as category codes), y, and the sorted
    train / test row positions."""
    columns = features.split(",")
    frame = pd.read_parquet(path, columns=[*columns, TARGET])
    y = frame[TARGET].to_numpy(dtype=np.float64)
    X = frame[columns]
    for name in columns:  # what a bare script does with a timestamp or a text column
        if pd.api.types.is_datetime64_any_dtype(X[name]):
            X[name] = X[name].astype("int64") // 10**9  # seconds since 1970
        elif not (pd.api.types.is_numeric_dtype(X[name]) or pd.api.types.is_bool_dtype(X[name])):
            X[name] = X[name].astype("category").cat.codes
    X = X.astype(np.float32)
    train, test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=42,
                                   stratify=y > 0)
    return X, y, np.sort(train), np.sort(test)


def rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - pred) ** 2)))


def report(**figures: object) -> None:
    """The figures as one JSON line on stdout (the parent measures wall time and RSS)."""
    print(json.dumps(figures))
