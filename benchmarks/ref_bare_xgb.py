"""Reference: bare XGBoost on converters, the work `revcli train -s converting_only` wraps.

Read the parquet with pandas, the same split as revcli, fit XGBRegressor with the given
hyperparameters (revcli's defaults, passed by the benchmark) on the training converters, predict
the test converters. Prints one JSON line: rows, converters, fit seconds, RMSE.
"""

from __future__ import annotations

import json
import time

from _reference import arguments, load, report, rmse
from xgboost import XGBRegressor

args = arguments(__doc__)
X, y, train, test = load(args.data, args.features)
fit_rows, test_rows = train[y[train] > 0], test[y[test] > 0]
start = time.perf_counter()
model = XGBRegressor(**json.loads(args.params)).fit(X.iloc[fit_rows], y[fit_rows])
fit_s = time.perf_counter() - start
pred = model.predict(X.iloc[test_rows])
report(rows=len(y), fit_rows=len(fit_rows), fit_s=round(fit_s, 3),
             rmse=rmse(y[test_rows], pred))
