"""Search spaces as data: the TOML file that says what `revcli tune` searches, and its loader.

One table per estimator, one entry per hyperparameter::

    [xgb]
    max_depth = { type = "int", low = 2, high = 8 }
    learning_rate = { type = "float", low = 0.01, high = 0.3, log = true }
    objective = { type = "categorical", choices = ["reg:squarederror", "reg:tweedie"],
                  when = { strategy = [<the strategies scored on all sessions>] } }
    tweedie_variance_power = { type = "float", low = 1.05, high = 1.95,
                               when = { objective = "reg:tweedie" } }
    classifier__max_depth = { type = "int", low = 2, high = 8 }

- ``type``: ``int`` or ``float`` (``low`` <= ``high``; ``step`` makes a grid; ``log = true``
  samples on a log scale, needs ``low`` > 0 and no ``step``) or ``categorical`` (``choices``).
- ``when``: the parameter is searched only if every condition holds. A condition names the
  ``strategy`` or an earlier parameter of the same table, with one value or a list of values.
- ``classifier__<name>``: a parameter of a strategy's classifier stage; strategies without one
  skip it.
- top-level ``all_estimators = [...]``: the estimators ``--estimator all`` chooses among (default:
  every table). The choice is itself a parameter (``estimator``), and each estimator's parameters
  are named ``<estimator>.<name>`` in the study, so the space is conditional.

Every parameter name is checked against the estimator's own ``get_params()`` when the file loads
(plus the XGBoost booster keywords that list cannot show, see ``estimators.XGBOOST_KEYWORDS``).
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revcli import estimators, strategies
from revcli.errors import ConfigError, NotFoundError
from revcli.settings import read_toml

ALL = "all"
ESTIMATOR_PARAM = "estimator"
KINDS = ("int", "float", "categorical")
_KEYS = {"type", "low", "high", "step", "log", "choices", "when"}
BUILTIN_SOURCE = "built-in default spaces (revcli/defaults/spaces.toml)"


_MISSING = object()  # a condition on a parameter this trial did not sample


def _fail(source: str, where: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {where}: {message}")


@dataclass(frozen=True)
class Param:
    """One hyperparameter and the distribution it is searched over."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    @property
    def classifier(self) -> bool:
        return self.name.startswith(estimators.CLASSIFIER_PREFIX)

    def example(self) -> Any:
        """A value from the distribution, to check the estimator accepts the parameter."""
        return self.choices[0] if self.kind == "categorical" else self.low

    def active(self, strategy: str, chosen: Mapping[str, Any]) -> bool:
        if self.classifier and not strategies.get(strategy).has_classifier:
            return False
        for name, allowed in self.when:
            value = strategy if name == "strategy" else chosen.get(name, _MISSING)
            if value is _MISSING or value not in allowed:
                return False
        return True

    def clamp(self, value: Any) -> Any:
        """``value`` as a point of this distribution (the nearest one), or None if it has no
        such point (an unlisted choice, a non-number)."""
        if self.kind == "categorical":
            return value if value in self.choices else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        low, high = float(self.low), float(self.high)  # type: ignore[arg-type]
        value = min(max(float(value), low), high)
        if self.step is not None:
            value = low + round((value - low) / self.step) * self.step
            value = min(value, high)
        return round(value) if self.kind == "int" else float(value)

    def suggest(self, trial: Any, name: str) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "int":
            step = 1 if self.step is None else int(self.step)
            return trial.suggest_int(name, int(self.low), int(self.high), step=step, log=self.log)
        return trial.suggest_float(name, float(self.low), float(self.high), step=self.step,
                                   log=self.log)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "type": self.kind}
        if self.kind == "categorical":
            data["choices"] = list(self.choices)
        else:
            data.update(low=self.low, high=self.high, step=self.step, log=self.log)
        if self.when:
            data["when"] = {name: list(values) for name, values in self.when}
        return data


@dataclass(frozen=True)
class EstimatorSpace:
    """The declared hyperparameters of one estimator, in file order."""

    estimator: str
    params: tuple[Param, ...] = ()

    def suggest(self, trial: Any, strategy: str, prefix: str = "") -> dict[str, Any]:
        chosen: dict[str, Any] = {}
        for param in self.params:
            if param.active(strategy, chosen):
                chosen[param.name] = param.suggest(trial, prefix + param.name)
        return chosen

    def defaults(self, strategy: str, known: Mapping[str, Any]) -> dict[str, Any]:
        """The point of this space nearest to the estimator's own defaults (``known``: its
        parameter values by name), following the same conditions as :meth:`suggest`."""
        chosen: dict[str, Any] = {}
        for param in self.params:
            if not param.active(strategy, chosen):
                continue
            value = param.clamp(known.get(param.name))
            if value is not None:
                chosen[param.name] = value
        return chosen

    def to_dict(self) -> dict[str, Any]:
        return {"estimator": self.estimator, "params": [p.to_dict() for p in self.params]}


@dataclass(frozen=True)
class SearchSpace:
    """What one study searches: one estimator's space, or several behind an ``estimator``
    choice (``--estimator all``)."""

    label: str
    strategy: str
    spaces: tuple[EstimatorSpace, ...]

    @property
    def estimators(self) -> list[str]:
        return [s.estimator for s in self.spaces]

    @property
    def conditional(self) -> bool:
        return self.label == ALL

    def suggest(self, trial: Any) -> tuple[str, dict[str, Any]]:
        """Sample one configuration: (estimator, its hyperparameters)."""
        if not self.conditional:
            return self.label, self.spaces[0].suggest(trial, self.strategy)
        name = trial.suggest_categorical(ESTIMATOR_PARAM, self.estimators)
        space = next(s for s in self.spaces if s.estimator == name)
        return name, space.suggest(trial, self.strategy, prefix=f"{name}.")

    def default_trials(self, known: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Optuna params of one trial per estimator at (the nearest point to) its defaults
        (``known[estimator]``: its parameter values): what ``tune`` evaluates first, so a short
        search never misses a family whose defaults already beat everything it sampled."""
        trials = []
        for space in self.spaces:
            values = space.defaults(self.strategy, known.get(space.estimator, {}))
            if not self.conditional:
                trials.append(values)
            else:
                prefix = f"{space.estimator}."
                trials.append({ESTIMATOR_PARAM: space.estimator,
                               **{prefix + k: v for k, v in values.items()}})
        return trials

    def decode(self, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """(estimator, hyperparameters) of a trial's Optuna parameters."""
        if not self.conditional:
            return self.label, dict(params)
        name = str(params[ESTIMATOR_PARAM])
        prefix = f"{name}."
        return name, {k.removeprefix(prefix): v for k, v in params.items()
                      if k.startswith(prefix)}

    def to_dict(self) -> dict[str, Any]:
        return {"estimator": self.label, "spaces": [s.to_dict() for s in self.spaces]}

    @property
    def hash(self) -> str:
        """Short hash of the declared content (part of the study name)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class SpaceFile:
    """A loaded, validated spaces file."""

    source: str
    builtin: bool
    spaces: dict[str, EstimatorSpace]
    all_estimators: tuple[str, ...] = field(default=())

    def search(self, estimator: str, strategy: str) -> SearchSpace:
        """The space of ``estimator`` (or of every ``all_estimators`` entry for ``all``)."""
        strategies.get(strategy)  # unknown names fail with the list of known ones
        if estimator == ALL:
            return SearchSpace(ALL, strategy, tuple(self.spaces[n] for n in self.all_estimators))
        estimators.spec(estimator)  # unknown names fail with the list of known ones
        if estimator not in self.spaces:
            declared = ", ".join(self.spaces) or "none"
            raise ConfigError(f"{self.source} declares no search space for {estimator!r} "
                              f"(declared: {declared}); add a [{estimator}] table or choose "
                              "another --estimator")
        return SearchSpace(estimator, strategy, (self.spaces[estimator],))


def _number(value: Any, source: str, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(source, where, f"{key} must be a finite number, got {value!r}")
    return value


def _parse_when(raw: Any, source: str, where: str, earlier: Mapping[str, Param]) -> tuple[
        tuple[str, tuple[Any, ...]], ...]:
    if not isinstance(raw, dict) or not raw:
        raise _fail(source, where, "when must be a table such as { strategy = \"all\" }")
    conditions = []
    for name, values in raw.items():
        allowed = tuple(values) if isinstance(values, list) else (values,)
        if name == "strategy":
            unknown = [v for v in allowed if v not in strategies.names()]
            if unknown:
                raise _fail(source, where, f"when.strategy names unknown strategy "
                            f"{unknown[0]!r}; known: {', '.join(strategies.names())}")
        elif name not in earlier:
            raise _fail(source, where, f"when.{name}: {name!r} is neither 'strategy' nor a "
                        "parameter declared above it in the same table")
        elif earlier[name].kind == "categorical":
            unknown = [v for v in allowed if v not in earlier[name].choices]
            if unknown:
                raise _fail(source, where, f"when.{name}: {unknown[0]!r} is not one of its "
                            f"choices {list(earlier[name].choices)}")
        conditions.append((name, allowed))
    return tuple(conditions)


def _parse_param(name: str, raw: Any, source: str, where: str,
                 earlier: Mapping[str, Param]) -> Param:
    if not isinstance(raw, dict):
        raise _fail(source, where, "must be a table such as { type = \"int\", low = 1, "
                    "high = 9 }")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise _fail(source, where, f"unknown key {unknown[0]!r}; known keys: "
                    f"{', '.join(sorted(_KEYS))}")
    kind = raw.get("type")
    if kind not in KINDS:
        raise _fail(source, where, f"unknown distribution type {kind!r}; use one of "
                    f"{', '.join(KINDS)} (log scale: log = true)")
    when = _parse_when(raw["when"], source, where, earlier) if "when" in raw else ()
    if kind == "categorical":
        extra = sorted(set(raw) & {"low", "high", "step", "log"})
        if extra:
            raise _fail(source, where, f"a categorical takes choices, not {extra[0]!r}")
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise _fail(source, where, "categorical needs a non-empty list: choices = [...]")
        if any(isinstance(c, (dict, list)) for c in choices):
            raise _fail(source, where, "choices must be strings, numbers or booleans")
        if len(set(map(repr, choices))) != len(choices):
            raise _fail(source, where, "choices repeat a value")
        return Param(name, kind, choices=tuple(choices), when=when)

    if "choices" in raw:
        raise _fail(source, where, f"an {kind} takes low/high, not choices")
    for key in ("low", "high"):
        if key not in raw:
            raise _fail(source, where, f"{kind} needs {key}")
    low = _number(raw["low"], source, where, "low")
    high = _number(raw["high"], source, where, "high")
    step = _number(raw["step"], source, where, "step") if "step" in raw else None
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise _fail(source, where, f"log must be true or false, got {log!r}")
    if kind == "int" and not all(float(v).is_integer() for v in (low, high, step or 1)):
        raise _fail(source, where, "an int needs integer low, high and step")
    if low > high:
        raise _fail(source, where, f"low {low} > high {high}")
    if step is not None and step <= 0:
        raise _fail(source, where, f"step must be positive, got {step}")
    if log and step is not None:
        raise _fail(source, where, "log = true and step cannot be combined")
    if log and low <= 0:
        raise _fail(source, where, f"log = true needs low > 0, got {low}")
    return Param(name, kind, low=low, high=high, step=step, log=log, when=when)


def _check_estimator_takes(space: EstimatorSpace, source: str) -> None:
    """Refuse a parameter the estimator (or its two_stage classifier) does not take, by its
    ``get_params()`` (and the XGBoost booster keywords that list cannot show)."""
    for param in space.params:
        key = param.name.removeprefix(estimators.CLASSIFIER_PREFIX)
        make = estimators.make_classifier if param.classifier else estimators.make_regressor
        label = f"the {'classifier' if param.classifier else 'estimator'} of {space.estimator!r}"
        try:
            estimators.set_params(make(space.estimator, n_jobs=1), {key: param.example()}, label)
        except ConfigError as exc:
            raise _fail(source, f"[{space.estimator}].{param.name}", str(exc)) from None


def parse(data: Mapping[str, Any], source: str, builtin: bool = False) -> SpaceFile:
    """Validate the content of a spaces file (already read from TOML)."""
    data = dict(data)
    listed = data.pop("all_estimators", None)
    spaces: dict[str, EstimatorSpace] = {}
    for estimator, table in data.items():
        if estimator not in estimators.ESTIMATORS:
            raise _fail(source, f"[{estimator}]", f"unknown estimator; known: "
                        f"{', '.join(estimators.ESTIMATORS)}")
        if not isinstance(table, dict):
            raise _fail(source, estimator, "must be a table of parameters, e.g. "
                        f"[{estimator}] max_depth = {{ type = \"int\", low = 2, high = 8 }}")
        params: dict[str, Param] = {}
        for name, raw in table.items():
            params[name] = _parse_param(name, raw, source, f"[{estimator}].{name}", params)
        spaces[estimator] = EstimatorSpace(estimator, tuple(params.values()))
        _check_estimator_takes(spaces[estimator], source)

    if listed is None:
        chosen = tuple(name for name, space in spaces.items() if space.params)
    elif not isinstance(listed, list) or not listed or not all(isinstance(n, str)
                                                               for n in listed):
        raise _fail(source, "all_estimators", "must be a non-empty list of estimator names")
    else:
        missing = [n for n in listed if n not in spaces]
        if missing:
            raise _fail(source, "all_estimators", f"{missing[0]!r} has no table in this file")
        chosen = tuple(dict.fromkeys(listed))
    return SpaceFile(source=source, builtin=builtin, spaces=spaces, all_estimators=chosen)


def _read(path: Path) -> dict[str, Any]:
    return read_toml(path, "spaces file", missing=NotFoundError, missing_hint=(
        "; give one with --space FILE or leave it unset for the built-in spaces"))


def builtin_text() -> str:
    from revcli import defaults

    return defaults.text("spaces.toml")


def load(path: Path | None, fallback: bool = False) -> SpaceFile:
    """The spaces file at ``path``; with ``fallback`` (the path is the default one, not asked
    for), a missing file means the spaces shipped inside the package, so revcli also works
    outside a checkout of its repository."""
    if path is None or (fallback and not Path(path).is_file()):
        return parse(tomllib.loads(builtin_text()), BUILTIN_SOURCE, builtin=True)
    return parse(_read(Path(path)), str(path))
