"""Reference: the seed pipeline's recipe, RandomForestRegressor(n_estimators=200, max_depth=20,
min_samples_split=10, n_jobs=-1) on converters.

Read the parquet with pandas, the same split as revcli, fit on the training converters, predict
the test converters. The recipe is fixed (it is what revcli is measured against), so --params is
ignored. Prints one JSON line: rows, converters, fit seconds, RMSE.
"""

from __future__ import annotations

import time

from _reference import arguments, load, report, rmse
from sklearn.ensemble import RandomForestRegressor

args = arguments(__doc__)
X, y, train, test = load(args.data, args.features)
fit_rows, test_rows = train[y[train] > 0], test[y[test] > 0]
start = time.perf_counter()
model = RandomForestRegressor(n_estimators=200, max_depth=20, min_samples_split=10, n_jobs=-1,
                              random_state=42).fit(X.iloc[fit_rows], y[fit_rows])
fit_s = time.perf_counter() - start
pred = model.predict(X.iloc[test_rows])
report(rows=len(y), fit_rows=len(fit_rows), fit_s=round(fit_s, 3),
             rmse=rmse(y[test_rows], pred))
