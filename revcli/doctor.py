"""``revcli doctor``: is this machine ready to run revcli? One line per check, each ok, warn or
problem, and for a problem the fix.

Checks, in the order a command meets them: the config file, where the settings come from, the
workspace (a directory that exists or can be made, writable, free disk space, the cached datasets
and the current one whole), S3 (only when an endpoint or credentials are configured: one HEAD
with short timeouts), the MLflow tracking store (the workspace's sqlite file, or GET /health of a
server), the Optuna study storage and its driver, and the versions of the key libraries.

Everything here only reads: no store, directory or study is created, no network request is
retried, and no credential is shown (URLs through :func:`revcli.urls.mask`).
"""

from __future__ import annotations

import base64
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revcli import __version__
from revcli import settings as settings_mod
from revcli.errors import ConfigError, DataError, RevcliError, first_line
from revcli.progress import SILENT, Reporter
from revcli.urls import mask

OK, WARN, PROBLEM = "ok", "warn", "problem"
NETWORK_TIMEOUT = 3.0
LOW_DISK = 1_000_000_000  # warn below 1 GB free
NO_DISK = 100_000_000  # a problem below 100 MB: a dataset and a model need tens of MB
SQLITE_HEADER = b"SQLite format 3\x00"
# Distribution names whose versions are shown; the first group must be installed.
REQUIRED = ("mlflow", "optuna", "scikit-learn", "pandas", "pyarrow", "boto3")
OPTIONAL = ("optuna-dashboard", "psycopg")
# SQLAlchemy dialect -> (module of its driver, what to install).
_DRIVERS = {
    "postgresql": ("psycopg2", "pip install 'revcli[postgres]'"),
    "postgresql+psycopg": ("psycopg", "pip install 'revcli[postgres]'"),
    "postgresql+psycopg2": ("psycopg2", "pip install psycopg2-binary"),
    "mysql": ("MySQLdb", "pip install mysqlclient"),
    "mysql+mysqldb": ("MySQLdb", "pip install mysqlclient"),
    "mysql+pymysql": ("pymysql", "pip install pymysql"),
}


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail,
                "fix": self.fix or None}


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    versions: dict[str, str | None] = field(default_factory=dict)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.status == PROBLEM]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == WARN]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": len(self.problems), "warnings": len(self.warnings),
                "checks": [c.to_dict() for c in self.checks], "versions": self.versions}


# -- helpers --------------------------------------------------------------------------------------


def _size(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or "/")


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


def _sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///").split("?")[0])


def _sqlite_header(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(len(SQLITE_HEADER))


def _query_sqlite(path: Path, *queries: str) -> list[int]:
    """Counts from an sqlite file opened read-only (nothing is created or changed)."""
    connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                                 timeout=NETWORK_TIMEOUT)
    try:
        return [int(connection.execute(q).fetchone()[0]) for q in queries]
    finally:
        connection.close()


def _password(url: str) -> tuple[str, ...]:
    try:
        secret = urllib.parse.urlsplit(url).password
    except ValueError:
        return ()
    return (urllib.parse.unquote(secret),) if secret else ()


def _clean(text: str, url: str) -> str:
    """A library's message about ``url`` without its password (or any AWS credential)."""
    from revcli.storage import scrub

    return scrub(text.replace(url, mask(url)), _password(url))


# -- config and settings ---------------------------------------------------------------------------


def _config_path(config_file: str | os.PathLike[str] | None,
                 env: Mapping[str, str]) -> tuple[Path | None, bool]:
    """(the config file resolve() reads, whether it was named explicitly)."""
    explicit = config_file if config_file is not None else env.get(settings_mod.CONFIG_ENV)
    if explicit:
        return Path(explicit), True
    default = settings_mod.default_config_file()
    return (default, False) if default.is_file() else (None, False)


def check_config(config_file: str | os.PathLike[str] | None,
                 env: Mapping[str, str]) -> tuple[Check, Path | None]:
    """The config file's check, and the file to resolve settings with (None when it is
    unusable)."""
    path, explicit = _config_path(config_file, env)
    if path is None:
        return Check("config", OK, f"no config file ({settings_mod.DEFAULT_CONFIG_FILE} not "
                     "found): built-in defaults, REVCLI_* env and flags"), None
    how = "named by --config / REVCLI_CONFIG" if explicit else "found"
    if not path.exists():
        return Check("config", PROBLEM, f"config file {path} ({how}) does not exist",
                     "create it, or name another with --config / REVCLI_CONFIG"), None
    try:
        resolved = settings_mod.resolve(config_file=path, env={})
    except ConfigError as exc:
        return Check("config", PROBLEM, str(exc),
                     f"fix {path} (`revcli config -c {path}` shows what it sets)"), None
    keys = sorted(name for name, source in resolved.sources.items()
                  if source.startswith("file:"))
    params = sorted(resolved.params)
    detail = f"{path} ({how}): valid, sets {', '.join(keys) if keys else 'nothing'}"
    if params:
        detail += f"; hyperparameters for {', '.join(params)}"
    return Check("config", OK, detail), path


def check_sources(settings: settings_mod.Settings) -> Check:
    """Where the effective settings come from (one line; `revcli config` has the detail)."""
    groups: dict[str, list[str]] = {}
    for f in settings_mod.setting_fields():
        source = settings.source_of(f.name)
        if source == settings_mod.SOURCE_DEFAULT:
            continue
        label = ("flags" if source == settings_mod.SOURCE_FLAG
                 else "the environment" if source.startswith("env:") else "the config file")
        shown = f.name + (f" ({source[4:]})" if source.startswith("env:") else "")
        groups.setdefault(label, []).append(shown)
    if not groups:
        return Check("settings", OK, "all built-in defaults")
    parts = [f"from {label}: {', '.join(names)}" for label, names in groups.items()]
    return Check("settings", OK, "; ".join(parts) + "; the rest defaults (`revcli config` "
                 "shows each)")


# -- the workspace -------------------------------------------------------------------------------


def check_workspace(workspace: Any) -> list[Check]:
    """The workspace directory, the disk it is on, and its datasets."""
    from revcli.errors import StorageError

    root = workspace.root
    fix = "choose another with --workspace or REVCLI_WORKSPACE"
    try:
        workspace.check_readable()
    except StorageError as exc:
        return [Check("workspace", PROBLEM, str(exc), fix)]
    checks = []
    if root.exists():
        if _read_only(root) or not os.access(root, os.W_OK | os.X_OK):
            reason = "read-only" if _read_only(root) else "not writable"
            checks.append(Check("workspace", PROBLEM, f"{root} is {reason}",
                                f"make it writable, or {fix}"))
        else:
            checks.append(Check("workspace", OK, f"{root}: a writable directory"))
    else:
        parent = _existing_ancestor(root)
        if _read_only(parent) or not os.access(parent, os.W_OK | os.X_OK):
            checks.append(Check("workspace", PROBLEM, f"{root} does not exist and cannot be "
                                f"made ({parent} is not writable)", fix))
        else:
            checks.append(Check("workspace", OK, f"{root} does not exist yet; the first command "
                                "that writes makes it"))
    try:
        usage = shutil.disk_usage(_existing_ancestor(root))
    except OSError as exc:
        checks.append(Check("disk", WARN, f"cannot tell the free space: {exc.strerror}"))
    else:
        detail = f"{_size(usage.free)} free of {_size(usage.total)}"
        if usage.free < NO_DISK:
            checks.append(Check("disk", PROBLEM, detail,
                                f"free some space, or {fix}"))
        elif usage.free < LOW_DISK:
            checks.append(Check("disk", WARN, detail + " (a full-size dataset, its models and "
                                "the stores need a few hundred MB)", "free some space"))
        else:
            checks.append(Check("disk", OK, detail))
    checks.append(check_datasets(workspace))
    return checks


def check_datasets(workspace: Any) -> Check:
    try:
        current = workspace.current(strict=True)
    except DataError as exc:
        return Check("datasets", PROBLEM, str(exc))
    records = workspace.datasets()
    others = [r for r in records if current is None or r.sha256 != current.sha256]
    damaged = [r.short for r in others if not workspace.is_whole(r)]
    total = sum(r.bytes for r in records)
    if current is None:
        if not records:
            return Check("datasets", WARN, "no datasets yet",
                         "`revcli fetch --demo` (synthetic) or `revcli fetch` (the real table)")
        return Check("datasets", WARN, f"{len(records)} cached ({_size(total)}), none current",
                     "`revcli datasets use <sha256>` (`revcli datasets list` shows them)")
    detail = (f"current {current.short} ({current.source}, {current.rows:,} rows) is whole; "
              f"{len(records)} cached, {_size(total)}")
    if damaged:
        return Check("datasets", WARN, detail + f"; damaged: {', '.join(damaged)}",
                     "`revcli datasets prune` removes every dataset but the current one")
    return Check("datasets", OK, detail)


# -- S3 -----------------------------------------------------------------------------------------


def _s3_configured(settings: settings_mod.Settings, env: Mapping[str, str]) -> bool:
    if settings.endpoint_url or settings.aws_profile:
        return True
    if any(env.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE",
                                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")):
        return True
    shared = env.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.expanduser("~/.aws/credentials")
    return Path(shared).is_file()


def check_s3(settings: settings_mod.Settings, env: Mapping[str, str],
             reporter: Reporter = SILENT) -> Check:
    """One HEAD on the ``source`` object (or, when the source is a local file, on the bucket of
    ``model_uri``), asked once with short timeouts."""
    from revcli.storage import S3Storage, parse_uri, safe_endpoint

    if not _s3_configured(settings, env):
        return Check("s3", OK, "not configured (no endpoint or credentials): skipped; "
                     "`revcli fetch --demo` needs none")
    endpoint = safe_endpoint(settings.endpoint_url)
    try:
        storage = S3Storage.from_settings(settings, timeout=NETWORK_TIMEOUT)
        if settings.source.startswith("s3://"):
            location = parse_uri(settings.source, prefix=True)
            if location.is_prefix:  # a prefix of parquet parts (revcli.parts)
                return _check_prefix(storage, location, endpoint, reporter)
            reporter.step(f"S3: HEAD {location} at {endpoint}")
            info = storage.head(location)
            return Check("s3", OK, f"{location} at {storage.endpoint}: {_size(info.size)}, "
                         f"modified {info.last_modified[:16].replace('T', ' ')}")
        location = parse_uri(settings.model_uri)
        reporter.step(f"S3: HEAD bucket {location.bucket} at {endpoint}")
        storage.check_bucket(location)
        return Check("s3", OK, f"bucket {location.bucket} at {storage.endpoint} answers "
                     "(the source is not on S3)")
    except RevcliError as exc:
        return Check("s3", PROBLEM, str(exc))


def _check_prefix(storage: Any, location: Any, endpoint: str, reporter: Reporter) -> Check:
    """One LIST page (1,000 keys) of a ``source`` that is a prefix of parquet parts."""
    from revcli import parts

    reporter.step(f"S3: LIST {location} at {endpoint}")
    objects = storage.list(location, limit=PREFIX_KEYS)
    found = [o for o in objects if parts.is_part(o.location.key[len(location.key):])]
    if not found:
        return Check("s3", PROBLEM, f"no parquet parts under {location} at {storage.endpoint} "
                     f"({len(objects)} objects listed)", "check the source prefix")
    more = f" in its first {PREFIX_KEYS:,} keys" if len(objects) >= PREFIX_KEYS else ""
    return Check("s3", OK, f"{location} at {storage.endpoint}: {len(found):,} parquet parts"
                 f"{more}, {_size(sum(o.size for o in found))}")


# A source prefix is listed this far by doctor: enough to see parts are there, quickly.
PREFIX_KEYS = 1000


# -- tracking and study storages ------------------------------------------------------------------


def _http_health(uri: str) -> tuple[int | None, str, float]:
    """(HTTP status or None, why not, seconds) of GET <uri>/health, asked once."""
    parts = urllib.parse.urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    url = urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/") + "/health", "",
                                   ""))
    request = urllib.request.Request(url)
    user = urllib.parse.unquote(parts.username or "") or os.environ.get(
        "MLFLOW_TRACKING_USERNAME", "")
    password = urllib.parse.unquote(parts.password or "") or os.environ.get(
        "MLFLOW_TRACKING_PASSWORD", "")
    if user:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    elif os.environ.get("MLFLOW_TRACKING_TOKEN"):
        request.add_header("Authorization", f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=NETWORK_TIMEOUT) as response:
            return response.status, "", time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, "", time.monotonic() - started
    except urllib.error.URLError as exc:
        reason = exc.reason
        why = (reason.strerror or str(reason)) if isinstance(reason, OSError) else str(reason)
        return None, why, time.monotonic() - started
    except TimeoutError:
        return None, f"no answer within {NETWORK_TIMEOUT:.0f} s", time.monotonic() - started
    except (OSError, ValueError) as exc:
        return None, first_line(exc), time.monotonic() - started


def _database(name: str, url: str, shown: str) -> Check:
    """A database server behind a SQLAlchemy URL: its driver is installed, and it accepts a
    connection within NETWORK_TIMEOUT."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    dialect = url.partition("://")[0]
    module, install = _DRIVERS.get(dialect, (None, ""))
    if module is not None and importlib.util.find_spec(module) is None:
        return Check(name, PROBLEM, f"{shown}: its driver ({module}) is not installed", install)
    driver = f"{dialect} ({module} {_version(module.split('.')[0])})" if module else dialect
    kwargs: dict[str, Any] = {"poolclass": NullPool}
    if dialect.startswith(("postgresql", "mysql")):
        kwargs["connect_args"] = {"connect_timeout": int(NETWORK_TIMEOUT)}
    started = time.monotonic()
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        return Check(name, PROBLEM, f"{shown} is not a usable database URL: "
                     f"{_clean(first_line(exc), url)}",
                     "write it as postgresql://user@host/db or sqlite:///path")
    except ModuleNotFoundError as exc:
        return Check(name, PROBLEM, f"{shown}: its driver ({exc.name}) is not installed",
                     install or f"install the database driver ({exc.name})")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        detail = _clean(first_line(getattr(exc, "orig", None) or exc), url)
        return Check(name, PROBLEM, f"cannot connect to {shown} with {driver}: {detail}",
                     "check the URL, the credentials and that the server is running")
    finally:
        engine.dispose()
    return Check(name, OK, f"{shown}: connected with {driver} in "
                 f"{(time.monotonic() - started) * 1000:.0f} ms")


def _version(dist: str) -> str:
    for name in (dist, {"psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient"}.get(dist, "")):
        if not name:
            continue
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "?"


def check_tracking(settings: settings_mod.Settings, workspace: Any,
                   reporter: Reporter = SILENT) -> Check:
    """The MLflow tracking store: its sqlite file, its server's /health, or its database."""
    from revcli.storage import scrub
    from revcli.tracking._client import check_sqlite, tracking_uri

    uri = tracking_uri(settings, workspace)
    shown = mask(uri)
    scheme = _scheme(uri).split("+")[0]
    fix = ("point --tracking-uri / MLFLOW_TRACKING_URI at a working store (unset, it is the "
           "workspace's sqlite file)")
    if scheme in ("http", "https"):
        reporter.step(f"tracking: GET {shown}/health")
        status, why, seconds = _http_health(uri)
        if status == 200:
            return Check("tracking", OK, f"{shown}: the server answers /health in "
                         f"{seconds * 1000:.0f} ms")
        if status in (401, 403):
            return Check("tracking", WARN, f"{shown} answers but wants credentials "
                         f"(HTTP {status})", "set MLFLOW_TRACKING_USERNAME and "
                         "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)")
        if status is not None:
            return Check("tracking", PROBLEM, f"{shown}/health answered HTTP {status}: not an "
                         "MLflow server, or a failing one", fix)
        return Check("tracking", PROBLEM, f"the tracking server {shown} does not answer "
                     f"({scrub(why)})", f"start it, or {fix}")
    if scheme == "sqlite":
        if not uri.startswith("sqlite:///"):
            return Check("tracking", PROBLEM, f"{shown} names no sqlite file",
                         "write it as sqlite:///path/to/mlflow.db")
        path = _sqlite_path(uri)
        own = uri == workspace.tracking_uri()
        if not path.exists():
            where = "the workspace's store" if own else "the store"
            return Check("tracking", OK, f"{shown}: {where} does not exist yet; the first "
                         "`revcli train` creates it")
        try:
            check_sqlite(path, shown)
        except RevcliError as exc:
            # Its message ends with the fix ("...; move it aside ..."): the fix column has it.
            return Check("tracking", PROBLEM, str(exc).split("; ")[0],
                         f"move {path.name} aside (e.g. `mv {path} {path}.bad`) to start a new "
                         f"store, or {fix}")
        try:
            runs, experiments = _query_sqlite(
                path, "SELECT count(*) FROM runs",
                "SELECT count(*) FROM experiments WHERE lifecycle_stage = 'active'")
        except sqlite3.Error as exc:
            text = first_line(exc)
            if "no such table" in text:
                return Check("tracking", WARN, f"{shown}: an sqlite file without MLflow's "
                             "tables; MLflow sets them up on first use")
            if "locked" in text:
                return Check("tracking", WARN, f"{shown} is locked by another process",
                             "wait for it to finish")
            return Check("tracking", PROBLEM, f"cannot read the MLflow store {shown}: {text}",
                         f"move {path.name} aside to start a new store, or {fix}")
        return Check("tracking", OK, f"{shown}: an MLflow store, {_count(runs, 'run')} in "
                     f"{_count(experiments, 'experiment')}")
    if scheme in ("postgresql", "postgres", "mysql", "mssql"):
        from revcli.tuning._study import normalize

        reporter.step(f"tracking: connecting to {shown}")
        return _database("tracking", normalize(uri), shown)
    return Check("tracking", WARN, f"{shown}: not checked (revcli checks sqlite, database and "
                 "http(s) stores)")


def check_study_storage(settings: settings_mod.Settings, workspace: Any,
                        reporter: Reporter = SILENT) -> Check:
    """The Optuna storage of `revcli tune`: its sqlite file, or its database and driver."""
    from revcli.tuning._study import default_url, normalize

    url = settings.storage or default_url(workspace)
    shown = mask(url)
    fix = "choose a working one with --storage / REVCLI_STORAGE (unset, it is sqlite in the " \
          "workspace)"
    if "://" not in url:
        return Check("study storage", PROBLEM, f"{shown!r} is not a database URL",
                     "use e.g. sqlite:///studies.db or postgresql://user@host/db")
    if url.startswith("sqlite"):
        if not url.startswith("sqlite:///"):
            return Check("study storage", PROBLEM, f"{shown} names no sqlite file",
                         "write it as sqlite:///path/to/optuna.db")
        path = _sqlite_path(url)
        if not path.exists():
            return Check("study storage", OK, f"{shown}: no studies yet; the first "
                         "`revcli tune` creates it")
        try:
            if not path.is_file():
                raise IsADirectoryError(path)
            head = _sqlite_header(path)
        except OSError as exc:
            return Check("study storage", PROBLEM, f"cannot read the Optuna storage {shown}: "
                         f"{exc.strerror or 'not a file'}", fix)
        if head and head != SQLITE_HEADER:
            return Check("study storage", PROBLEM, f"the Optuna storage {shown} is not an "
                         "sqlite database", f"move {path.name} aside, or {fix}")
        try:
            studies, trials = _query_sqlite(path, "SELECT count(*) FROM studies",
                                            "SELECT count(*) FROM trials")
        except sqlite3.Error as exc:
            text = first_line(exc)
            if "no such table" in text:
                return Check("study storage", WARN, f"{shown}: an sqlite file without "
                             "Optuna's tables; `revcli tune` sets them up")
            if "locked" in text:
                return Check("study storage", WARN, f"{shown} is locked by another process "
                             "(a running `revcli tune`?)", "wait for it, or stop it")
            return Check("study storage", PROBLEM, f"cannot read the Optuna storage {shown}: "
                         f"{text}", fix)
        return Check("study storage", OK, f"{shown}: {_count(studies, 'study', 'studies')}, "
                     f"{_count(trials, 'trial')}")
    reporter.step(f"study storage: connecting to {shown}")
    return _database("study storage", normalize(url), shown)


# -- versions ---------------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    """Python, revcli and the key libraries; None for one not installed."""
    found: dict[str, str | None] = {"python": platform.python_version(), "revcli": __version__}
    for dist in (*REQUIRED[:3], "xgboost", *REQUIRED[3:], *OPTIONAL):
        if dist == "xgboost":
            for name in ("xgboost-cpu", "xgboost"):
                try:
                    found["xgboost"] = f"{importlib.metadata.version(name)} ({name})"
                    break
                except importlib.metadata.PackageNotFoundError:
                    found["xgboost"] = None
            continue
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = None
    return found


def _too_old(found: Mapping[str, str | None]) -> list[str]:
    """'mlflow 2.9.0 (needs >=3.1)' for each installed requirement of revcli out of range
    (empty when revcli's metadata or ``packaging`` is not available)."""
    try:
        from packaging.requirements import Requirement
        from packaging.version import InvalidVersion, Version

        required = importlib.metadata.requires("revcli") or []
    except (ImportError, importlib.metadata.PackageNotFoundError):
        return []
    wrong = []
    for line in required:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            continue
        try:
            if not requirement.specifier.contains(Version(installed), prereleases=True):
                wrong.append(f"{requirement.name} {installed} (needs {requirement.specifier})")
        except InvalidVersion:
            continue
    return wrong


def check_versions(found: Mapping[str, str | None]) -> Check:
    missing = [d for d in (*REQUIRED, "xgboost") if not found.get(d)]
    shown = ", ".join(f"{name} {version}" for name, version in found.items() if version)
    absent = [d for d in OPTIONAL if not found.get(d)]
    if absent:
        shown += f"; not installed (optional): {', '.join(absent)}"
    if missing:
        return Check("versions", PROBLEM, f"not installed: {', '.join(missing)}",
                     "pip install -e . (or pip install revcli) in this environment")
    old = _too_old(found)
    if old:
        return Check("versions", PROBLEM, f"out of range: {'; '.join(old)}",
                     "pip install -U revcli's requirements (pip install -e .)")
    return Check("versions", OK, shown)


# -- all of it ----------------------------------------------------------------------------------


def _settings(flags: Mapping[str, Any], config: Path | None,
              env: Mapping[str, str]) -> tuple[settings_mod.Settings, Check | None]:
    """The effective settings, and a problem when the environment or a flag is invalid (the
    remaining checks then use the settings without the offending layer)."""
    no_file = os.devnull if config is None else config
    try:
        return settings_mod.resolve(flags=flags, config_file=no_file, env=env), None
    except ConfigError as exc:
        problem = Check("settings", PROBLEM, str(exc), "fix that variable or flag "
                        "(`revcli config` shows every setting and where it comes from)")
    names = {n for f in settings_mod.setting_fields() for n in settings_mod.env_names(f)}
    bad = set()
    for name in names & set(env):
        try:
            settings_mod.resolve(config_file=os.devnull, env={name: env[name]})
        except ConfigError:
            bad.add(name)
    good_env = {k: v for k, v in env.items() if k not in bad}
    for given in (flags, {}):
        try:
            return settings_mod.resolve(flags=given, config_file=no_file,
                                        env=good_env), problem
        except ConfigError:
            continue
    return settings_mod.Settings(), problem


def diagnose(flags: Mapping[str, Any] | None = None,
             config_file: str | os.PathLike[str] | None = None,
             env: Mapping[str, str] | None = None, reporter: Reporter = SILENT) -> Report:
    """Every check, in order; never raises for what it finds (a problem is a line of the
    report). ``flags`` are settings given on the command line (None: not given)."""
    from revcli.workspace import Workspace

    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    report = Report()
    config_check, config = check_config(config_file, env)
    report.checks.append(config_check)
    settings, problem = _settings(flags, config, env)
    report.checks.append(problem or check_sources(settings))
    workspace = Workspace(settings.workspace)
    report.checks += check_workspace(workspace)
    report.checks.append(check_s3(settings, env, reporter))
    report.checks.append(check_tracking(settings, workspace, reporter))
    report.checks.append(check_study_storage(settings, workspace, reporter))
    report.versions = versions()
    report.checks.append(check_versions(report.versions))
    return report
