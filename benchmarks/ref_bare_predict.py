"""Reference: a bare load-and-predict script, the work `revcli predict --run R` wraps.

Read the parquet with pandas, load the model file (a pickle with joblib.load, as issue 19's
reference has it; or the skops file revcli saves, every type in it trusted: no checks, no hash),
predict, write the predictions as parquet.
Usage: python benchmarks/ref_bare_predict.py MODEL DATA OUT
"""

from __future__ import annotations

import sys

import pandas as pd

model_path, data, out = sys.argv[1:4]
frame = pd.read_parquet(data)
if model_path.endswith(".skops"):
    import skops.io

    model = skops.io.load(model_path, trusted=skops.io.get_untrusted_types(file=model_path))
else:
    import joblib

    model = joblib.load(model_path)
pd.DataFrame({"prediction": model.predict(frame)}).to_parquet(out)
