"""One settings resolver: built-in defaults < config file < ``REVCLI_*`` env < flags.

Every resolved value remembers where it came from, so ``revcli config`` can show it. The config file
is ``configs/revcli.toml`` under the current directory, or ``--config FILE`` / ``REVCLI_CONFIG``.
It holds the same flat keys as below, plus ``[params.<estimator>]`` tables of hyperparameters.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revcli import estimators, strategies
from revcli.data import FULL_ROWS
from revcli.errors import ConfigError, RevcliError

DEFAULT_CONFIG_FILE = Path("configs/revcli.toml")
WORKSPACE_DIR = ".revcli"


def project_root(start: Path | None = None) -> Path:
    """Where a project's relative defaults live, found the way git finds ``.git``: the nearest
    directory, from the current one up, holding a workspace (``.revcli/``) or a config file
    (``configs/revcli.toml``); the current directory when none does. So a command run in a
    subdirectory uses the project's workspace and ``configs/`` instead of making new ones."""
    here = (start or Path.cwd()).absolute()
    for directory in (here, *here.parents):
        if (directory / WORKSPACE_DIR).is_dir() or (directory / DEFAULT_CONFIG_FILE).is_file():
            return directory
    return here


def default_config_file(root: Path | None = None) -> Path:
    return (root or project_root()) / DEFAULT_CONFIG_FILE
CONFIG_ENV = "REVCLI_CONFIG"
ENV_PREFIX = "REVCLI_"

SOURCE_DEFAULT = "default"
# Settings passed to strategies as options (Strategy.option_names says which each takes).
STRATEGY_OPTIONS = ("combine", "threshold")
SOURCE_FLAG = "flag"


def _setting(default: Any, help: str, env: tuple[str, ...] = ()) -> Any:
    return field(default=default, metadata={"help": help, "extra_env": env})


@dataclass(frozen=True)
class Settings:
    """The effective settings of one command. Build it with :func:`resolve`."""

    workspace: Path = _setting(Path(".revcli"), "cached datasets, MLflow store, models, studies")
    tracking_uri: str | None = _setting(
        None, "MLflow tracking URI; unset means a sqlite store in the workspace",
        env=("MLFLOW_TRACKING_URI",))
    experiment: str = _setting("Revenue_Prediction_Regression", "MLflow experiment name")
    strategy: str = _setting(strategies.DEFAULT, "strategy for the zeros, see `revcli train -h`")
    estimator: str = _setting(estimators.DEFAULT, "estimator name, see `revcli train --help`")
    combine: str = _setting("expected", "two_stage: expected (P x value) or threshold")
    threshold: float = _setting(0.5, "two_stage --combine threshold: P(order) cut-off")
    seed: int = _setting(42, "seed of the split and of every estimator")
    test_size: float = _setting(0.2, "holdout share of all sessions")
    split: str = _setting("random", "random (stratified on is_ordered) | time (latest sessions)")
    time_column: str | None = _setting(None, "--split time: the timestamp column (default: the "
                                       "table's only one)")
    gap: str | None = _setting(None, "--split time: time left out between train and test (7d)")
    n_jobs: int = _setting(-1, "threads for estimators; -1 means all cores")
    targets: Path = _setting(Path("configs/targets.toml"), "seed targets (minimum / good)")
    gate_level: str = _setting("minimum", "targets level a gate enforces")
    demo_rows: int = _setting(FULL_ROWS, "rows of the demo data set")
    demo_seed: int = _setting(0, "seed of the demo data generator")
    source: str = _setting("s3://processed-data/training_data.parquet",
                           "where `revcli fetch` reads the training table")
    endpoint_url: str | None = _setting(
        None, "S3 endpoint (MinIO); unset: the AWS profile's endpoint_url, else AWS S3",
        env=("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"))
    aws_profile: str | None = _setting(None, "AWS profile for S3 credentials",
                                       env=("AWS_PROFILE",))
    region: str | None = _setting(None, "S3 region", env=("AWS_DEFAULT_REGION",))
    model_uri: str = _setting("s3://models/regression_model.pkl", "where `revcli push` uploads")
    registry_model: str = _setting("revenue-regression", "MLflow registered model name")
    promote_metric: str = _setting("rmse", "metric the promotion gate compares")
    spaces: Path = _setting(Path("configs/spaces.toml"), "search spaces of `revcli tune`")
    n_trials: int = _setting(50, "new completed trials per `revcli tune`")
    timeout: float | None = _setting(None, "seconds of wall time per `revcli tune`")
    cv_folds: int = _setting(3, "cross-validation folds of `revcli tune`")
    tune_metric: str = _setting("rmse", "metric `revcli tune` minimises")
    storage: str | None = _setting(None, "Optuna storage URL; unset means sqlite in the workspace")
    cluster: str | None = _setting(
        None, "where train / evaluate / predict run: unset = in this process; local = a Dask "
        "LocalCluster revcli starts and stops; tcp://host:8786 = an existing Dask scheduler",
        env=("DASK_SCHEDULER_ADDRESS",))
    cluster_workers: int | None = _setting(None, "--cluster local: worker processes (default: "
                                           "one per core)")
    worker_memory: str | None = _setting(None, "--cluster local: memory limit per worker, e.g. "
                                         "4GB (default: the machine's memory / workers)")

    params: Mapping[str, Mapping[str, Any]] = field(
        default_factory=dict, metadata={"internal": True})
    sources: Mapping[str, str] = field(default_factory=dict, metadata={"internal": True})
    config_file: Path | None = field(default=None, metadata={"internal": True})

    def source_of(self, name: str) -> str:
        return self.sources.get(name, SOURCE_DEFAULT)

    def estimator_params(self, estimator: str) -> dict[str, Any]:
        """Hyperparameters for ``estimator`` from the config file's ``[params.<name>]`` table."""
        return dict(self.params.get(estimator, {}))

    def strategy_options(self) -> dict[str, Any]:
        """Every setting a strategy may take as an option (each strategy picks its own, see
        Strategy.option_names)."""
        return {name: getattr(self, name) for name in STRATEGY_OPTIONS}

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def setting_fields() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(Settings) if not f.metadata.get("internal")]


def env_names(f: dataclasses.Field[Any]) -> tuple[str, ...]:
    return (ENV_PREFIX + f.name.upper(), *f.metadata.get("extra_env", ()))


def _coerce(f: dataclasses.Field[Any], raw: Any, where: str) -> Any:
    kind = str(f.type)
    optional = "None" in kind
    if optional and (raw is None or (isinstance(raw, str) and raw.strip() == "")):
        return None
    try:
        if kind.startswith("Path"):
            return Path(os.path.expanduser(str(raw)))
        if kind.startswith("bool"):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if kind.startswith("int"):
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if kind.startswith("float"):
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        wanted = kind.replace(" | None", "").split(" ")[0]
        raise ConfigError(f"{f.name} from {where} must be {wanted}, got {raw!r}") from None


def read_toml(path: str | os.PathLike[str], what: str, missing_hint: str = "",
              missing: type[RevcliError] = ConfigError) -> dict[str, Any]:
    """A TOML file as a dict; every way it can fail is one line naming ``what`` it was."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise missing(f"{what} {path} does not exist{missing_hint}") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory, not a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {exc.start} is "
                          f"{exc.object[exc.start:exc.start + 1]!r}); TOML files are UTF-8: "
                          "save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


def _relative(path: Path) -> Path:
    """``path`` relative to the current directory when it is inside it (as the defaults always
    were), else absolute: messages stay short in the project root."""
    try:
        return path.relative_to(Path.cwd().absolute())
    except ValueError:
        return path


def read_config_file(path: Path) -> dict[str, Any]:
    return read_toml(path, "config file")


def resolve(
    flags: Mapping[str, Any] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Layer defaults, config file, environment and flags (``None`` flags are "not given")."""
    env = os.environ if env is None else env
    fields = {f.name: f for f in setting_fields()}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    root = project_root()
    explicit = config_file if config_file is not None else env.get(CONFIG_ENV) or None
    path: Path | None = Path(explicit) if explicit else None
    if path is None and default_config_file(root).is_file():
        path = _relative(default_config_file(root))
    # The relative defaults (workspace, targets, spaces) are the project root's.
    for name in ("workspace", "targets", "spaces"):
        default = fields[name].default
        if isinstance(default, Path) and not default.is_absolute():
            values[name] = _relative(root / default)
    params: dict[str, dict[str, Any]] = {}
    if path is not None:
        data = read_config_file(path)
        raw_params = data.pop("params", {})
        if not isinstance(raw_params, dict) or not all(
                isinstance(v, dict) for v in raw_params.values()):
            raise ConfigError(f"{path}: [params.<estimator>] must be tables of hyperparameters")
        params = {name: dict(table) for name, table in raw_params.items()}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f"{path}: unknown setting {unknown[0]!r}; "
                              f"known settings: {', '.join(sorted(fields))}")
        for name, raw in data.items():
            values[name] = _coerce(fields[name], raw, str(path))
            sources[name] = f"file:{path}"

    for name, f in fields.items():
        for var in env_names(f):
            if env.get(var) not in (None, ""):
                values[name] = _coerce(f, env[var], f"${var}")
                sources[name] = f"env:{var}"
                break

    for name, raw in (flags or {}).items():
        if raw is None:
            continue
        if name not in fields:
            raise ConfigError(f"unknown setting {name!r}")
        values[name] = _coerce(fields[name], raw, f"--{name.replace('_', '-')}")
        sources[name] = SOURCE_FLAG

    return Settings(**values, params=params, sources=sources, config_file=path)
