"""Reference: bare two-model XGBoost, the work `revcli train -s two_stage` wraps.

Read the parquet with pandas, the same split as revcli; an XGBClassifier of "ordered"
(revenue > 0) on all training sessions and an XGBRegressor on the training converters, with the
given hyperparameters (revcli's defaults); the prediction is P(order) x order value on every
test session. Prints one JSON line: rows, fit seconds, RMSE on all test sessions.
"""

from __future__ import annotations

import json
import time

from _reference import arguments, load, report, rmse
from xgboost import XGBClassifier, XGBRegressor

args = arguments(__doc__)
X, y, train, test = load(args.data, args.features)
converters = train[y[train] > 0]
start = time.perf_counter()
classifier = XGBClassifier(**json.loads(args.classifier_params))
classifier.fit(X.iloc[train], (y[train] > 0).astype(int))
regressor = XGBRegressor(**json.loads(args.params)).fit(X.iloc[converters], y[converters])
fit_s = time.perf_counter() - start
X_test = X.iloc[test]
pred = classifier.predict_proba(X_test)[:, 1] * regressor.predict(X_test)
report(rows=len(y), fit_rows=len(train), fit_s=round(fit_s, 3), rmse=rmse(y[test], pred))
