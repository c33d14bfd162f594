"""Where studies live, what they are called, and how a crashed worker's trials are recovered.

Storage. The default is an Optuna RDB storage on sqlite in the workspace
(``studies/optuna.db``); ``--storage URL`` takes any SQLAlchemy URL Optuna's RDBStorage takes
(``postgresql://``, ``mysql+pymysql://``, another ``sqlite:///`` file), so several ``revcli tune``
processes on one machine or many work the same study. Why RDB and not a JournalStorage file,
measured on 2 cores with a trivial objective: the journal file costs ~7 ms of bookkeeping per
trial against ~55 ms for sqlite (~80 ms with two workers on it; the cost is SQLAlchemy's, not
fsync: WAL mode changed nothing), both ran 2 and 4 concurrent workers without a lock error or a
lost trial, but only RDB storages have Optuna's heartbeat, which is what fails the trials of a
worker killed on *another* machine, or one whose process cannot be checked. At ~1 s per trial the
few percent are worth one storage design everywhere (sqlite locally, PostgreSQL across machines,
same code and tests).

Recovery. Every trial records which process runs it (host, boot id, pid namespace, pid, process
start time).
On start, a RUNNING trial whose process provably no longer exists (same host and boot, and the
pid is gone or now belongs to a younger process) is failed at once and retried once; any other
stale trial is failed by the heartbeat after ``GRACE_PERIOD`` seconds without a beat, and
retried once the same way.

Names. A study's name is derived from everything that makes its trials comparable: strategy,
estimator, metric, folds, the dataset's sha256, the space's content hash, and a hash of the rest
of the setup (seed and split, features, fixed parameters, two_stage combine/threshold). The same
command therefore resumes the same study, and a changed setup starts a new one. The full key is
stored with the study; a ``--study NAME`` whose stored key differs is refused.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import inspect
import json
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli import processes, urls
from revcli.errors import ConfigError, StorageError, first_line

if TYPE_CHECKING:
    import optuna

    from revcli.workspace import Workspace

STUDY_DB = "optuna.db"
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 60
MAX_RETRY = 1
KEY_ATTR = "revcli.key"
WORKER_ATTR = "revcli.worker"
SQLITE_BUSY_TIMEOUT = 30
# How long opening a sqlite study storage waits for another process's write lock: workers hold it
# for milliseconds; a lock held longer is a stuck process, and a wait inside sqlite is deaf to
# Ctrl-C.
SQLITE_OPEN_WAIT = 3.0
CONNECT_TIMEOUT = 10
SCHEMA_ATTEMPTS = 5


# -- storage URLs ---------------------------------------------------------------------------------


def default_url(workspace: Workspace) -> str:
    return f"sqlite:///{workspace.studies_dir / STUDY_DB}"


def mask(url: str) -> str:
    """The URL without its password, for messages, tags and JSON."""
    return urls.mask(url)


def normalize(url: str) -> str:
    """``postgresql://`` means the psycopg2 driver to SQLAlchemy; when only psycopg 3 is
    installed (``pip install 'psycopg[binary]'``), use its dialect instead."""
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        if (importlib.util.find_spec("psycopg2") is None
                and importlib.util.find_spec("psycopg") is not None):
            return f"postgresql+psycopg://{rest}"
        if scheme == "postgres":
            return f"postgresql://{rest}"
    return url


def _engine_kwargs(url: str) -> dict[str, Any]:
    """Wait for a busy sqlite file instead of failing; give up on an unreachable server after
    CONNECT_TIMEOUT seconds; re-check pooled connections a long search may have seen dropped."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
    if url.startswith(("postgresql", "mysql")):
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}, "pool_pre_ping": True}
    return {}


def retry_once(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Queue a failed trial's parameters again, once (what Optuna's
    RetryHeartbeatStaleTrialCallback does, with the same ``failed_trial``/``retry_history``
    attributes, minus the dead worker's identity and error, which the retry must not inherit)."""
    import optuna
    from optuna.trial import TrialState

    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRY:
        return
    user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in (WORKER_ATTR, "error")}
    system_attrs = {**trial.system_attrs,
                    "failed_trial": trial.system_attrs.get("failed_trial", trial.number),
                    "retry_history": history}
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs=user_attrs, system_attrs=system_attrs))


def _check_sqlite_lock(path: Path, shown: str) -> None:
    """An existing sqlite study file that another process keeps locked (or that is no database)
    fails in seconds, with the cause, instead of waiting in sqlite."""
    import sqlite3

    if not path.is_file():
        return
    try:
        connection = sqlite3.connect(path, timeout=SQLITE_OPEN_WAIT)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.rollback()
        finally:
            connection.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            raise StorageError(f"the Optuna storage {shown} is locked by another process; wait "
                               "for it to finish, or stop it") from None
        raise StorageError(f"cannot open the Optuna storage {shown}: {first_line(exc)}") from None
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"the Optuna storage {shown} is not an sqlite database "
                           f"({first_line(exc)}); move it aside or choose another "
                           "--storage") from None


def open_storage(url: str, workspace: Workspace | None = None) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeat and retry-once; every failure is one StorageError line."""
    import optuna
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    shown = mask(url)
    if "://" not in url:
        raise ConfigError(f"--storage {shown!r} is not a database URL; use e.g. "
                          "sqlite:///studies.db or postgresql://user@host/db")
    if workspace is not None and url == default_url(workspace):
        try:
            workspace.studies_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {workspace.studies_dir}: {exc.strerror}") from None
    url = normalize(url)
    if url.startswith("sqlite:///"):
        _check_sqlite_lock(Path(url.removeprefix("sqlite:///").split("?")[0]), shown)
    kwargs: dict[str, Any] = {"heartbeat_interval": HEARTBEAT_INTERVAL,
                              "grace_period": GRACE_PERIOD}
    # optuna 4.9 renamed failed_trial_callback to heartbeat_stale_trial_callback.
    if "heartbeat_stale_trial_callback" in inspect.signature(
            optuna.storages.RDBStorage).parameters:
        kwargs["heartbeat_stale_trial_callback"] = retry_once
    else:
        kwargs["failed_trial_callback"] = retry_once
    try:
        for attempt in range(SCHEMA_ATTEMPTS):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url),
                                                      **kwargs)
            except SQLAlchemyError as exc:
                # Another process (a worker, a dashboard) is creating the same schema right
                # now: "table ... already exists" / a duplicate version row. It will be there in
                # a moment.
                text = str(exc).lower()
                racing = "already exists" in text or "unique constraint" in text or (
                    "duplicate" in text)
                if not racing or attempt == SCHEMA_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")
    except ModuleNotFoundError as exc:
        hint = ("pip install 'psycopg[binary]'" if url.startswith("postgresql")
                else f"install the database driver ({exc.name})")
        raise StorageError(f"the driver for {shown} is not installed: {hint}") from None
    except (ArgumentError, SQLAlchemyError, ValueError, OSError) as exc:
        detail = first_line(getattr(exc, "orig", None) or exc)
        raise StorageError(f"cannot open the Optuna storage {shown}: {detail}; check the URL "
                           "and that the database server is running") from None


# -- names ----------------------------------------------------------------------------------------


def _digest(obj: Any, n: int = 8) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


@dataclass(frozen=True)
class StudyKey:
    """Everything that makes two trials comparable."""

    strategy: str
    estimator: str
    metric: str
    folds: int
    dataset_sha256: str
    space_hash: str
    setup: dict[str, Any]

    @property
    def setup_hash(self) -> str:
        return _digest(self.setup)

    def name(self) -> str:
        return (f"{self.strategy}-{self.estimator}-{self.metric}-cv{self.folds}"
                f"-data{self.dataset_sha256[:12]}-space{self.space_hash}-setup{self.setup_hash}")

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "estimator": self.estimator, "metric": self.metric,
                "folds": self.folds, "dataset_sha256": self.dataset_sha256,
                "space_hash": self.space_hash, "setup_hash": self.setup_hash,
                "setup": self.setup}


def _first_difference(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    for key in wanted:
        if key != "setup" and stored.get(key) != wanted[key]:
            return f"{key} {stored.get(key)!r} vs {wanted[key]!r}"
    stored_setup, wanted_setup = stored.get("setup", {}), wanted.get("setup", {})
    for key in sorted(set(stored_setup) | set(wanted_setup)):
        if stored_setup.get(key) != wanted_setup.get(key):
            return f"{key} {stored_setup.get(key)!r} vs {wanted_setup.get(key)!r}"
    return "setup"


LATEST = "latest"


def resolve_name(storage: Any, ref: str, shown: str) -> str:
    """The study ``ref`` names: its whole name, a unique prefix of one (``converting_only-xgb``),
    or ``latest`` (the study created last); NotFoundError naming the candidates otherwise."""
    from revcli.errors import NotFoundError

    ref = ref.strip()
    if ref != LATEST and study_exists(storage, ref):
        return ref
    studies = sorted(storage.get_all_studies(), key=lambda s: s._study_id)
    names = [s.study_name for s in studies]
    if not names:
        raise NotFoundError(f"no study in {shown} yet; `revcli tune` makes one")
    if ref == LATEST:
        return names[-1]
    matches = [n for n in names if n.startswith(ref)] if ref else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown_matches = ", ".join(matches[:3]) + (", ..." if len(matches) > 3 else "")
        raise NotFoundError(f"study prefix {ref!r} is ambiguous ({len(matches)} studies: "
                            f"{shown_matches}); give more characters")
    listed = ", ".join(names[-10:]) + (f" (+{len(names) - 10} more)" if len(names) > 10 else "")
    raise NotFoundError(f"no study {ref!r} in {shown}; studies there: {listed}; give a name, a "
                        "unique prefix or latest")


def study_exists(storage: Any, name: str) -> bool:
    import optuna

    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    except optuna.exceptions.OptunaError:
        return False
    return True


def check_key(storage: Any, name: str, key: StudyKey) -> None:
    """Refuse to resume a study made for another setup (before anything is written)."""
    if not study_exists(storage, name):
        return
    study_id = storage.get_study_id_from_name(name)
    stored = storage.get_study_user_attrs(study_id).get(KEY_ATTR)
    wanted = key.to_dict()
    if stored is not None and stored != json.loads(json.dumps(wanted, default=str)):
        raise ConfigError(f"study {name!r} was made for another setup "
                          f"({_first_difference(stored, wanted)}); choose another --study, or "
                          "--fresh to delete it and start over")


def open_study(storage: Any, name: str, key: StudyKey, sampler: Any, pruner: Any,
               fresh: bool) -> tuple[optuna.Study, bool]:
    """Create or load the study; ``fresh`` deletes it first. Returns (study, resumed)."""
    import optuna

    existed = study_exists(storage, name)
    if fresh and existed:
        optuna.delete_study(study_name=name, storage=storage)
        existed = False
    study = optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                                pruner=pruner, direction="minimize", load_if_exists=True)
    if KEY_ATTR not in study.user_attrs:
        study.set_user_attr(KEY_ATTR, json.loads(json.dumps(key.to_dict(), default=str)))
    return study, existed


# -- which process runs a trial -------------------------------------------------------------------

# One home for process identities (revcli.processes); named here for the callers of this module.
worker = processes.identity
process_gone = processes.gone


def record_worker(trial: Any) -> None:
    """The first thing every trial does, in whichever process runs it: say which one."""
    trial.set_user_attr(WORKER_ATTR, worker())


def _orphaned(trial: optuna.trial.FrozenTrial, now: float) -> bool:
    """A RUNNING trial with no worker recorded, started more than GRACE_PERIOD ago: its process
    died between Optuna creating it and revcli's first line in the trial (which records the
    worker within milliseconds), before any heartbeat was written, so nothing else will ever
    fail it."""
    if trial.user_attrs.get(WORKER_ATTR) or trial.datetime_start is None:
        return False
    # Optuna stores datetime_start as naive local time.
    return now - trial.datetime_start.timestamp() > GRACE_PERIOD


def reap_dead_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[int]:
    """Fail the RUNNING trials of provably dead processes (and those orphaned before they
    recorded a worker) and retry each once, as the heartbeat would, without waiting for its
    grace period; then let the heartbeat fail the stale ones. Returns the trials' numbers.
    ``storage`` is the study's (passed in: Optuna has no public accessor for it)."""
    import optuna
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study.study_name)
    now = time.time()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        gone = process_gone(trial.user_attrs.get(WORKER_ATTR))
        if not gone and not _orphaned(trial, now):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_user_attr(trial_id, "error", "its worker process died" if gone
                                        else "its worker died before the trial began")
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                failed.append(trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first
    numbers = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for trial_id in failed:
            frozen = copy.deepcopy(storage.get_trial(trial_id))
            retry_once(study, frozen)
            numbers.append(frozen.number)
        # Trials whose heartbeat stopped (another host, or a process we cannot check).
        before = {t.number for t in study.get_trials(deepcopy=False,
                                                     states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(study)
        after = {t.number for t in study.get_trials(deepcopy=False,
                                                    states=(TrialState.RUNNING,))}
    return sorted(numbers + sorted(before - after))


# -- sampling -------------------------------------------------------------------------------------


class PerTrialSeedSampler:
    """TPE whose randomness depends on the trial number, not on the process or thread.

    Optuna re-seeds a sampler's RNG per thread when ``n_jobs > 1`` (optuna#4412), and two worker
    processes given the same seed would draw the same "random" start-up trials. Seeding each trial
    with ``seed + trial.number`` (numbers are unique within a study) fixes both: parallel workers
    sample different points, and a sequential run (``--n-jobs 1``) is reproducible, resumed or
    not, because each trial sees the same history and the same seed.
    """

    def __init__(self, seed: int, n_startup_trials: int = 10) -> None:
        self.seed = seed
        self.n_startup_trials = n_startup_trials
        self._samplers: dict[int, Any] = {}
        self._lock = threading.Lock()

    def _for(self, trial: Any) -> Any:
        import optuna

        with self._lock:
            sampler = self._samplers.get(trial.number)
            if sampler is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    sampler = optuna.samplers.TPESampler(
                        seed=(self.seed + trial.number) % 2**32,
                        n_startup_trials=self.n_startup_trials, multivariate=True, group=True,
                        constant_liar=True)
                self._samplers[trial.number] = sampler
            return sampler

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        with _quiet_experimental():
            return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> dict[str, Any]:
        with _quiet_experimental():
            return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, param_name: str,
                           param_distribution: Any) -> Any:
        with _quiet_experimental():
            return self._for(trial).sample_independent(study, trial, param_name,
                                                       param_distribution)

    def before_trial(self, study: Any, trial: Any) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        sampler = self._for(trial)
        with self._lock:
            self._samplers.pop(trial.number, None)
        sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing to re-seed: the seed of each trial is fixed by its number."""


@contextlib.contextmanager
def _quiet_experimental() -> Iterator[None]:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


@functools.cache
def _sampler_class() -> type:
    # A real BaseSampler subclass, made on first use so importing this module stays light.
    from optuna.samplers import BaseSampler

    return type("PerTrialSeedTPESampler", (PerTrialSeedSampler, BaseSampler), {})


def make_sampler(seed: int, n_startup_trials: int = 10) -> Any:
    return _sampler_class()(seed, n_startup_trials)


def make_pruner() -> Any:
    """Median pruning after each fold, once 5 trials have completed."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
