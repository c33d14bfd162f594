"""Reference: a bare load-and-predict script, the work `revcli predict --run R` wraps.

Read the parquet with pandas, joblib.load the model file revcli saved, predict, write the
predictions as parquet. Usage: python benchmarks/ref_bare_predict.py MODEL DATA OUT
"""

from __future__ import annotations

import sys

import joblib
import pandas as pd

model_path, data, out = sys.argv[1:4]
frame = pd.read_parquet(data)
model = joblib.load(model_path)
pd.DataFrame({"prediction": model.predict(frame)}).to_parquet(out)
