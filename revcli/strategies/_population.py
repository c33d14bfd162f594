"""Words shared by strategies and the records of their runs (no heavy imports)."""

#: A strategy is scored on every session, or on the converting ones only.
SESSIONS = "sessions"
CONVERTERS = "converters"
#: A strategy's prediction is a session's expected revenue, or its order value if it orders.
REVENUE = "revenue"
ORDER_VALUE = "order_value"
