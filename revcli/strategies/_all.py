from __future__ import annotations

from revcli.strategies._base import OneRegressor


class AllSessions(OneRegressor):
    """One regressor fitted on every session, zeros included."""

    name = "all"
    summary = "one regressor on every session"
