from __future__ import annotations

from revcli.strategies._base import OneRegressor
from revcli.strategies._population import CONVERTERS, ORDER_VALUE


class ConvertingOnly(OneRegressor):
    """A regressor of the order value, fitted on the rows with revenue > 0 and scored on them
    (the seed pipeline's setup).

    ``fit`` accepts all sessions and keeps the converters itself, so it can be cross-validated on
    the same folds as the other strategies.
    """

    name = "converting_only"
    summary = "order value of converting sessions, scored on converters"
    scored_on = CONVERTERS
    predicts = ORDER_VALUE
