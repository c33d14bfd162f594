"""Quality targets (the seed's minimum and good levels) and their pass/fail verdicts.

A targets file is TOML: one table per level, each ``metric = "<op> <threshold>"``, plus
``default_level``. Metrics are the scorecard's keys (``rmse``, ``mae``, ``r2``, ``mape`` in
percent, and any other, e.g. ``conv_rmse``); they are checked on the strategy's evaluation rows.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revcli.errors import ConfigError

# The seed task's targets live in revcli/defaults/targets.toml (configs/targets.toml links to it).
BUILTIN = "built-in seed targets"

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


@dataclass(frozen=True)
class Target:
    level: str
    metric: str
    op: str
    threshold: float

    def check(self, value: float | None) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return OPS[self.op](value, self.threshold)


@dataclass(frozen=True)
class Targets:
    source: str
    default_level: str
    levels: dict[str, list[Target]]

    def level(self, name: str | None = None) -> list[Target]:
        name = name or self.default_level
        if name not in self.levels:
            raise ConfigError(f"no targets level {name!r} in {self.source}; levels: "
                              f"{', '.join(self.levels)}")
        return self.levels[name]

    def verdicts(self, metrics: Mapping[str, float | None],
                 level: str | None = None) -> list[dict[str, Any]]:
        """One verdict per target of ``level`` (all levels when ``level`` is "all")."""
        names = list(self.levels) if level == "all" else [level or self.default_level]
        out = []
        for name in names:
            for t in self.level(name):
                value = metrics.get(t.metric)
                out.append({"level": t.level, "metric": t.metric, "op": t.op,
                            "threshold": t.threshold,
                            "value": None if value is None or math.isnan(value) else value,
                            "passed": t.check(value)})
        return out


def _parse(data: Mapping[str, Any], source: str) -> Targets:
    data = dict(data)
    default = data.pop("default_level", None)
    levels: dict[str, list[Target]] = {}
    for level, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: level {level!r} must be a table of metric = \"< value\"")
        targets = []
        for metric, rule in table.items():
            op, _, raw = str(rule).strip().partition(" ")
            if op not in OPS:
                raise ConfigError(f"{source}: {level}.{metric} = {rule!r}: the rule must start "
                                  f"with one of {' '.join(OPS)} and a space, e.g. \"< 25\"")
            try:
                threshold = float(raw)
            except ValueError:
                raise ConfigError(f"{source}: {level}.{metric} = {rule!r}: {raw!r} is not a "
                                  "number") from None
            targets.append(Target(level, metric, op, threshold))
        levels[level] = targets
    if not levels:
        raise ConfigError(f"{source}: no target levels defined")
    default = default or next(iter(levels))
    if default not in levels:
        raise ConfigError(f"{source}: default_level {default!r} is not a level")
    return Targets(source=source, default_level=default, levels=levels)


def load(path: Path | None, fallback: bool = False) -> Targets:
    """Targets from ``path``; with ``fallback``, a missing file means the built-in seed targets."""
    if path is None or (fallback and not Path(path).is_file()):
        import tomllib

        from revcli import defaults

        return _parse(tomllib.loads(defaults.text("targets.toml")), BUILTIN)
    from revcli.settings import read_toml

    return _parse(read_toml(path, "targets file"), str(path))
