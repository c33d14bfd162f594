"""Strategies for the zeros: ways to turn a regressor into a session-revenue model.

93 % of sessions earn $0. Each strategy is a scikit-learn meta-estimator subclassing
:class:`Strategy` (``_base.py``), one private module each, found by name in the registry here
(Optuna's ``samplers/`` pattern):

- ``all`` (``_all.py``): one regressor on every session;
- ``converting_only`` (``_converting_only.py``): a regressor of the order value, fitted on and
  scored on converting sessions (the seed pipeline's setup);
- ``two_stage`` (``_two_stage.py``): P(order) from a classifier times E[revenue | order].

A strategy owns every decision that depends on which one it is (rows, baseline, meaning, leak
rule, stages); the rest of revcli asks the strategy, never its name. A new strategy is a
:class:`Strategy` subclass passed to :func:`register`; nothing else needs editing.

The built-in classes are imported on first use: importing this package (settings, the CLI) stays
free of scikit-learn.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from revcli.errors import ConfigError
from revcli.strategies._population import CONVERTERS, ORDER_VALUE, REVENUE, SESSIONS

if TYPE_CHECKING:
    import numpy as np

    from revcli.strategies._base import Strategy

__all__ = ["CONVERTERS", "DEFAULT", "ORDER_VALUE", "REVENUE", "SESSIONS", "Strategy", "build",
           "expected_revenue", "get", "names", "of", "register", "unregister"]

#: The strategy of ``--strategy`` when none is given: the seed pipeline's.
DEFAULT = "converting_only"

# name -> "module:Class", imported by get(); registered classes are kept in _REGISTERED.
_BUILTIN: dict[str, str] = {
    "all": "revcli.strategies._all:AllSessions",
    "converting_only": "revcli.strategies._converting_only:ConvertingOnly",
    "two_stage": "revcli.strategies._two_stage:TwoStage",
}
_REGISTERED: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Make ``cls`` (a :class:`Strategy` subclass with a unique ``name``) available by name to
    every command. Usable as a class decorator."""
    from revcli.strategies._base import Strategy

    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise TypeError(f"{cls!r} is not a revcli.strategies.Strategy subclass")
    if not cls.name or not cls.name.isidentifier():
        raise ValueError(f"{cls.__name__}.name must be an identifier, got {cls.name!r}")
    if cls.name in names() and get(cls.name) is not cls:
        raise ValueError(f"a strategy named {cls.name!r} is already registered")
    _REGISTERED[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Forget a strategy :func:`register` added (built-in ones stay)."""
    _REGISTERED.pop(name, None)


def names() -> list[str]:
    """Every strategy name, built-in ones first."""
    return [*_BUILTIN, *(n for n in _REGISTERED if n not in _BUILTIN)]


def get(name: str) -> type[Strategy]:
    """The strategy class called ``name``, or a ConfigError listing the known ones."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in _BUILTIN:
        raise ConfigError(f"unknown strategy {name!r}; choose one of {', '.join(names())}")
    module, _, attr = _BUILTIN[name].partition(":")
    cls: type[Strategy] = getattr(importlib.import_module(module), attr)
    _REGISTERED[name] = cls
    return cls


def of(model: Any) -> type[Strategy]:
    """The strategy class of a (fitted) model -- a strategy, or a revcli.model.RevenueModel
    around one -- or a ConfigError when it is none of revcli's."""
    from revcli.strategies._base import Strategy

    inner = getattr(model, "strategy_class", None)
    if isinstance(inner, type) and issubclass(inner, Strategy):
        return inner
    if not isinstance(model, Strategy):
        raise ConfigError(f"a {type(model).__module__}.{type(model).__name__} is not a revcli "
                          f"strategy ({', '.join(names())})")
    return type(model)


def build(name: str, estimator: str, params: Mapping[str, Any] | None = None, *,
          seed: int = 42, n_jobs: int = -1,
          options: Mapping[str, Any] | None = None) -> Strategy:
    """The unfitted strategy ``name`` around estimator ``estimator``, for names from the command
    line; bad names, parameters and options fail here, before any data is read."""
    return get(name).from_estimator(estimator, dict(params or {}), seed=seed, n_jobs=n_jobs,
                                    options=dict(options or {}))


def expected_revenue(order_value: np.ndarray, p_order: np.ndarray,
                     options: Mapping[str, Any] | None = None) -> np.ndarray:
    """An order value paired with a P(order) by the two-stage rule (see ``_two_stage.combine``):
    how an order-value prediction is scored on all sessions."""
    from revcli.strategies._two_stage import combine

    options = dict(options or {})
    return combine(p_order, order_value, options.get("combine", "expected"),
                   options.get("threshold", 0.5))


def __getattr__(attr: str) -> Any:
    # Strategy and the built-in classes, imported when first asked for.
    if attr == "Strategy":
        from revcli.strategies._base import Strategy

        return Strategy
    for name, target in _BUILTIN.items():
        if target.endswith(f":{attr}"):
            return get(name)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
