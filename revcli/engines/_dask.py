"""The cluster engine: the pipeline's steps on a Dask cluster (``--cluster``).

Nothing of the table passes through this process: each worker reads its own parquet parts (a
local path every worker sees, or ``s3://`` with the endpoint and region of revcli's settings and
each worker's own AWS credential chain), checks them against the data contract
(:func:`revcli.data.validate`, part by part, a bad part named), and decides each row's side of the
split from a hash of its id (:func:`revcli.split.hash_test_mask`). What comes back are sums:

- the encoding's statistics (each category's level counts, which columns have gaps), from which
  :meth:`revcli.features.Featurizer.fit_statistics` fits the same encoding object as in-process;
- the baselines' sums (:meth:`revcli.metrics.Baselines.from_sums`), the split's counts and hash;
- the leakage audit's orders and other sessions per distinct value of each column, ranked by
  :func:`revcli.leakage.auc_of_counts` (the in-process audit's own arithmetic);
- the holdout's (revenue, prediction, P(order)) -- 24 bytes a test row, not the table -- scored
  by :func:`revcli.metrics.scorecard`, the one definition of every metric;
- a bounded sample of test rows (SAMPLE_ROWS) for the plots and the logged signature.

XGBoost trains with ``xgboost.dask`` (each worker a rank of XGBoost's collective); the booster is
then moved into the in-process estimator of the same hyperparameters (``load_model`` of its raw
bytes), so the model saved and logged is an ordinary :class:`revcli.model.RevenueModel` that
loads, predicts, pushes and serves without Dask.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from revcli import atomic, leakage, metrics, pipeline, strategies, threads
from revcli import split as split_mod
from revcli.data import ORDER_FLAG, TARGET
from revcli.engines._base import DASK, LOCAL_CLUSTER
from revcli.errors import (
    ClusterError,
    ConfigError,
    DataError,
    NotFoundError,
    RevcliError,
    StorageError,
    first_line,
)
from revcli.progress import SILENT, Reporter
from revcli.strategies._base import CONVERTING_ROWS, ORDERED_TARGET
from revcli.workspace import DatasetRecord, Workspace

if TYPE_CHECKING:
    import pandas as pd

    from revcli.predict import PredictResult
    from revcli.settings import Settings

_MEMORY = "out of memory? give each worker more --worker-memory, or use more workers"
#: What a failed command left behind, as its cluster errors end (revcli.tuning says otherwise).
NOTHING_SAVED = "nothing was saved"
_MISMATCH = ("the Dask scheduler or workers cannot load revcli's tasks: they need the same revcli "
             "(and library) versions as this process; pip install 'revcli[dask]' there, the "
             "same version, and restart them")
#: Test rows brought to this process for the plots, permutation importance and the signature.
SAMPLE_ROWS = 20_000
#: Columns the cluster engine adds to each part: the row's side of the split.
IS_TEST = "__test__"
CONNECT_TIMEOUT = "5s"
PARQUET_SUFFIXES = (".parquet", ".pq")


# -- where the parts are -----------------------------------------------------------------------

@dataclass(frozen=True)
class Parts:
    """A dataset as a list of parquet files: one file, or every ``*.parquet`` under a
    directory or an S3 prefix (Hive-style ``key=value/`` directories become columns)."""

    url: str                      # as given: a local path or s3://bucket/prefix
    root: str                     # the filesystem's path of it
    files: tuple[str, ...]        # the filesystem's paths, sorted
    protocol: str                 # "file" or "s3"
    options: dict[str, Any] = field(default_factory=dict)   # fsspec storage_options
    # Hive keys (key=value directories) and their types, as the whole dataset types them
    # (revcli.data.parts_dataset): every part reads them alike, as in-process.
    hive: Any = None              # pyarrow schema of the keys, or None

    @property
    def is_directory(self) -> bool:
        return not (len(self.files) == 1 and self.files[0] == self.root)

    @property
    def local(self) -> bool:
        return self.protocol == "file"

    def name(self, file: str) -> str:
        """A part as users name it: relative to the dataset's root."""
        if file == self.root:
            return self.url
        return f"{self.url.rstrip('/')}/{file[len(self.root):].lstrip('/')}"

    def filesystem(self) -> Any:
        import fsspec

        return fsspec.filesystem(self.protocol, **self.options)


def _list_parts(url: str, options: dict[str, Any]) -> Parts:
    """The parts of ``url`` by revcli.parts' rule (``*.parquet``, no ``_``/``.`` names, sorted
    by relative path), and their Hive keys typed as revcli.data.parts_dataset types them."""
    import fsspec

    from revcli import parts as parts_mod

    url = str(url).removeprefix("file://")
    if url.startswith("s3:/") and not url.startswith("s3://"):  # it went through a Path
        url = "s3://" + url[len("s3:/"):]
    is_s3 = url.startswith("s3://")
    try:
        fs, root = fsspec.core.url_to_fs(url, **(options if is_s3 else {}))
        root = root.rstrip("/")
        if fs.isdir(root):
            if is_s3:
                relatives = sorted(r for r in (f[len(root):].lstrip("/") for f in fs.find(root))
                                   if parts_mod.is_part(r))
            else:
                relatives, _ = parts_mod.list_local(Path(root))
            if not relatives:
                raise NotFoundError(f"{url} holds no parquet parts (*.parquet files outside _ "
                                    "and . names)")
            files = [f"{root}/{r}" for r in relatives]
        elif fs.isfile(root):
            relatives, files = [], [root]
        else:
            raise NotFoundError(f"{url} does not exist")
        hive = None
        keys = parts_mod.hive_keys(relatives)
        if keys:
            import pyarrow.dataset as ds

            dataset = ds.dataset(files, filesystem=fs if is_s3 else None, format="parquet",
                                 partition_base_dir=root, partitioning=(
                                     ds.HivePartitioning.discover(infer_dictionary=False)))
            import pyarrow as pa

            hive = pa.schema([dataset.schema.field(k) for k in keys])
    except RevcliError:
        raise
    except Exception as exc:  # s3fs / botocore / arrow: unreachable endpoint, access denied
        raise StorageError(f"cannot list {url}: {first_line(exc)}") from None
    return Parts(url=url, root=root, files=tuple(files), protocol="s3" if is_s3 else "file",
                 options=options if is_s3 else {}, hive=hive)


def _read_part(file: str, parts: Parts, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """One part as pandas, on a worker, its Hive keys as columns after the file's. A part that
    went missing is named."""
    import pyarrow.dataset as ds

    try:
        fs = None if parts.local else parts.filesystem()
        if parts.hive is not None:
            dataset = ds.dataset([file], filesystem=fs, format="parquet",
                                 partition_base_dir=parts.root,
                                 partitioning=ds.HivePartitioning(parts.hive))
        else:
            dataset = ds.dataset(file, filesystem=fs, format="parquet")
        table = dataset.to_table(columns=[c for c in columns if c in dataset.schema.names]
                                 if columns is not None else None)
    except FileNotFoundError:
        raise DataError(f"part {parts.name(file)} is missing (deleted or moved since the "
                        "dataset was listed); fetch the dataset again") from None
    except OSError as exc:
        raise DataError(f"part {parts.name(file)} is not a readable parquet file "
                        f"({first_line(exc)})") from None
    return table.to_pandas()


def _empty_part(file: str, parts: Parts) -> pd.DataFrame:
    """The columns and dtypes of a part, read on a worker (no rows come back)."""
    return _read_part(file, parts).iloc[:0]


def _dataset_record(parts: Parts, known: DatasetRecord | None) -> DatasetRecord:
    """The record of a dataset given as ``--data`` (``known``: the workspace's own). A local
    file or directory hashes as the in-process path hashes it (the same sha256: comparable
    runs; cached once the run succeeded, as in-process); an S3 prefix its keys, sizes and
    ETags (read where it is)."""
    import pyarrow.parquet as pq

    from revcli import parts as parts_mod

    if known is not None:
        return known
    fs = parts.filesystem()
    rows, sizes, schema = [], [], None
    for file in parts.files:
        sizes.append(int(fs.info(file).get("size") or 0))
        with fs.open(file, "rb") as fh:
            meta = pq.read_metadata(fh)
        rows.append(meta.num_rows)
        schema = schema or meta.schema.to_arrow_schema()
    assert schema is not None
    if parts.hive is not None:
        for key in parts.hive:
            schema = schema.append(key)
    columns = [{"name": n, "dtype": str(t)} for n, t in zip(schema.names, schema.types,
                                                            strict=True)]
    common = {"path": Path(parts.root), "rows": sum(rows), "columns": columns, "created": "",
              "bytes": sum(sizes)}
    if parts.local and not parts.is_directory:
        return DatasetRecord(sha256=atomic.sha256_file(parts.root),
                             source=str(Path(parts.root).resolve()), extra={"pending": True},
                             mtime_ns=Path(parts.root).stat().st_mtime_ns, **common)
    relatives = [f[len(parts.root):].lstrip("/") for f in parts.files]
    if parts.local:
        shas = parts_mod.hash_local(Path(parts.root), relatives)
        entries = [parts_mod.Part(path=r, bytes=b, rows=n, sha256=h)
                   for (r, h), b, n in zip(shas, sizes, rows, strict=True)]
        return DatasetRecord(sha256=parts_mod.dataset_sha256(shas),
                             source=str(Path(parts.root).resolve()) + "/",
                             extra={"pending": True}, parts=[p.to_dict() for p in entries],
                             **common)
    digest = hashlib.sha256()
    for file, size in zip(parts.files, sizes, strict=True):
        digest.update(f"{parts.name(file)}\0{size}\0{fs.info(file).get('ETag', '')}\n"
                      .encode())
    return DatasetRecord(sha256=digest.hexdigest(), source=parts.url,
                         extra={"parts": len(parts.files)}, **common)


# -- on the workers: one part at a time -----------------------------------------------------------

def _check_part(frame: pd.DataFrame, name: str, drop: Sequence[str]) -> dict[str, int]:
    """The data contract on one part (revcli.data.validate; a breach names the part)."""
    from revcli import data

    if len(frame) == 0:
        return {"rows": 0}
    try:
        table = data.validate(frame, drop_features=drop, require_converters=False)
    except DataError as exc:
        raise DataError(f"part {name}: {exc}") from None
    return {"rows": len(frame), "converters": int(table.ordered.sum())}


def _split_part(frame: pd.DataFrame, offset: int, key: str, seed: int, test_size: float,
                features: Sequence[str]) -> pd.DataFrame:
    """The part's features, target and side of the split (IS_TEST)."""
    keys = (np.arange(offset, offset + len(frame), dtype=np.int64)
            if key == split_mod.ROW_POSITION else frame[key].to_numpy())
    out = frame[list(features)].copy()
    out[TARGET] = frame[TARGET].to_numpy(dtype=np.float64)
    out[IS_TEST] = split_mod.hash_test_mask(keys, seed, test_size)
    out["__hash__"] = split_mod.row_hashes(keys, seed)
    return out.reset_index(drop=True)


def _part_sums(frame: pd.DataFrame, features: Sequence[str], medians: bool) -> dict[str, Any]:
    """What the split, the baselines and the encoding need of one part, as sums."""
    from revcli import features as features_mod

    test = frame[IS_TEST].to_numpy()
    y = frame[TARGET].to_numpy()
    train = frame.loc[~test, list(features)]
    return {
        "train_rows": int((~test).sum()), "test_rows": int(test.sum()),
        "train_converters": int((y[~test] > 0).sum()),
        "test_converters": int((y[test] > 0).sum()),
        "train_revenue": float(y[~test].sum()),
        "fingerprint": int(np.sum(frame["__hash__"].to_numpy()[test], dtype=np.uint64)),
        "columns": features_mod.column_statistics(train, medians=medians),
    }


def _audit_counts(frame: pd.DataFrame, features: Sequence[str],
                  train_only: bool = True) -> dict[str, pd.DataFrame]:
    """Per feature, the orders and the sessions at each distinct value on this part's training
    rows (``train_only`` False: on all its rows, as evaluate audits the data it is given) (a
    category: at each level; a timestamp: at each day since 1970, as the in-process audit ranks
    it); a gap is its own value (NaN)."""
    import pandas as pd

    from revcli.features import CATEGORY, as_text, audit_columns, kind

    train = frame.loc[~frame[IS_TEST].to_numpy()] if train_only else frame
    ordered = (train[TARGET].to_numpy() > 0).astype(np.float64)
    out = {}
    for name in features:
        values = train[name]
        if kind(values.dtype) == CATEGORY:
            keys: Any = as_text(values).to_numpy()
        else:
            keys = next(audit_columns(train[[name]], ordered))[1]
        counts = pd.DataFrame({"value": keys, "pos": ordered, "n": 1.0}).groupby(
            "value", dropna=False, sort=False).sum()
        out[name] = counts
    return out


def _score_part(frame: pd.DataFrame, model: Any, features: Sequence[str]) -> pd.DataFrame:
    """The holdout's revenue and the model's predictions on this part."""
    import pandas as pd

    test = frame.loc[frame[IS_TEST].to_numpy()]
    with threads.limit(1):
        parts = model.predict_parts(test[list(features)])
    value = strategies.of(model).order_value_of(parts)  # what conv_* scores (NaN: none)
    return pd.DataFrame({"y": test[TARGET].to_numpy(dtype=np.float64),
                         "prediction": parts["prediction"],
                         "p_order": parts.get("p_order", np.full(len(test), np.nan)),
                         "order_value": np.full(len(test), np.nan) if value is None else value})


def _predict_part(file: str, parts: Parts, model: Any, features: Sequence[str],
                  ids: Sequence[str], offset: int, outputs: Sequence[str]) -> Any:
    """predict: one input part scored on a worker, rows in the part's order, as arrow."""
    import pyarrow as pa

    from revcli.data import features_for

    frame = _read_part(file, parts, [*features, *ids])
    try:
        X = features_for(frame, features)
    except DataError as exc:
        raise DataError(f"part {parts.name(file)}: {exc}") from None
    with threads.limit(1):
        predicted = model.predict_parts(X)
    columns = {c: frame[c].to_numpy() for c in ids} if ids else {
        "row": np.arange(offset, offset + len(frame), dtype=np.int64)}
    columns.update({name: np.asarray(predicted[name], dtype=np.float64) for name in outputs})
    return pa.table(columns)


#: evaluate's sample: its key (the low 32 bits of a row's hash; the high ones decide its side)
#: and each row's position in the table (the sample is shown in the table's order).
SAMPLE_KEY, POSITION, PREDICTION = "__sample__", "__position__", "__prediction__"


def _evaluate_part(file: str, parts: Parts, offset: int, recipe: tuple[str, int, float],
                   model: Any, features: Sequence[str], shown: Sequence[str],
                   worst: int) -> dict[str, Any]:
    """evaluate, on a worker: one part read, checked against the data contract, split by the
    model's ``recipe`` (key, seed, test size; a test size of 1: every row is evaluated) and its
    test rows scored. What comes back: the split's sums, each test row's revenue and the
    model's outputs (:meth:`revcli.model.RevenueModel.predict_parts`), the leakage audit's
    counts on all the part's rows, its ``worst`` largest errors, and its SAMPLE_ROWS evaluated
    rows of smallest SAMPLE_KEY (a bottom-k sample: the client keeps the SAMPLE_ROWS smallest of
    every part's, a uniform sample of all evaluated rows, the same whatever the parts)."""
    from revcli import reports
    from revcli.data import features_for

    frame = _read_part(file, parts)
    facts = _check_part(frame, parts.name(file), ())
    out: dict[str, Any] = {"facts": facts}
    if not len(frame):
        return out
    features = list(features)
    try:
        features_for(frame, features)
    except DataError as exc:
        raise DataError(f"part {parts.name(file)}: {exc}") from None
    key, seed, test_size = recipe
    frame = _split_part(frame, offset, key, seed, test_size, shown)
    test = frame.loc[frame[IS_TEST].to_numpy()]
    y = test[TARGET].to_numpy(dtype=np.float64)
    with threads.limit(1):
        outputs = {k: np.asarray(v, dtype=np.float64)
                   for k, v in model.predict_parts(test[features]).items()}
    rows = strategies.of(model).evaluation_rows(y)
    evaluated = test.iloc[rows]
    predicted = outputs["prediction"][rows]
    sample = evaluated[[*shown, TARGET]].assign(**{
        SAMPLE_KEY: evaluated["__hash__"].to_numpy() & np.uint64(0xFFFFFFFF),
        POSITION: offset + evaluated.index.to_numpy(), PREDICTION: predicted})
    sample = sample.nsmallest(SAMPLE_ROWS, SAMPLE_KEY, keep="first")
    out.update(sums=_part_sums(frame, [], medians=False), y=y, outputs=outputs,
               audit=_audit_counts(frame, features, train_only=False),
               worst=reports.worst_rows(evaluated[list(shown)], y[rows], predicted, worst),
               sample=sample)
    return out


# -- the prepared dataset ---------------------------------------------------------------------

@dataclass
class Columns:
    """The table's columns as runs.finish reads them (``prepared.table``)."""

    features: list[str]
    dropped: list[str]


@dataclass
class ClusterPrepared:
    """A dataset held by the cluster, split: what :class:`revcli.pipeline.Prepared` is for the
    in-process engine, with the same attributes runs.finish reads. ``X_test``/``y_test`` are a
    bounded sample of the test rows (plots, importance, the logged signature); the scores are
    computed on every test row."""

    workspace: Workspace
    dataset: DatasetRecord
    parts: Parts
    frame: Any                  # dask DataFrame: features, revenue, IS_TEST; persisted
    table: Columns
    split: split_mod.Split
    counts: dict[str, int]
    baselines: metrics.Baselines
    column_stats: list[Any]
    sample: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def X_test(self) -> pd.DataFrame:
        return self.sample[self.table.features]

    @property
    def y_test(self) -> np.ndarray:
        return self.sample[TARGET].to_numpy(dtype=np.float64)

    def split_summary(self) -> dict[str, Any]:
        return {"hash": self.split.hash, "kind": self.split.kind, "seed": self.split.seed,
                "test_size": self.split.test_size, "key": self.split.key, **self.counts,
                "sample_rows": len(self.sample)}

    def check(self, strategy: str, estimator: str | None = None,
              reporter: Reporter = SILENT) -> None:
        # The strategy's own check, on two rows that have what the training split has.
        n, conv = self.counts["train_rows"], self.counts["train_converters"]
        proxy = np.r_[np.ones(min(conv, 1)), np.zeros(min(n - conv, 1))]
        strategies.get(strategy).check_data(proxy)

    def commit(self) -> DatasetRecord:
        """A local ``--data`` file or directory is cached once the run succeeded, as
        in-process; an S3 prefix is read where it is (``revcli fetch`` caches it)."""
        if self.dataset.extra.get("pending"):
            return pipeline.Prepared.commit(self)  # type: ignore[arg-type]
        return self.dataset


# -- the engine --------------------------------------------------------------------------------

def _quiet_logs() -> None:
    for name in ("distributed", "distributed.worker", "distributed.scheduler",
                 "distributed.nanny", "distributed.core", "distributed.client"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _memory_limit(text: str | None) -> Any:
    if not text:
        return "auto"
    from dask.utils import parse_bytes

    try:
        return parse_bytes(text)
    except (ValueError, TypeError):
        raise ConfigError(f"--worker-memory {text!r}: give a size such as 2GB or 512MiB") from None


class DaskEngine:
    """The pipeline's steps on a Dask cluster (see the module docstring)."""

    kind = DASK

    def __init__(self, client: Any, cluster: Any, settings: Settings) -> None:
        self.client = client
        self.cluster = cluster          # a LocalCluster revcli started, else None
        self.settings = settings
        self.reporter: Reporter = SILENT

    @classmethod
    def connect(cls, settings: Settings, reporter: Reporter = SILENT) -> DaskEngine:
        """Start a LocalCluster (``local``) or connect to the scheduler at ``settings.cluster``;
        an unreachable scheduler is one ClusterError line."""
        try:
            import dask  # noqa: F401
            import distributed
            import xgboost.dask  # noqa: F401
        except ImportError as exc:
            raise ConfigError(f"--cluster needs Dask ({exc.name} is not installed): pip install "
                              "'revcli[dask]'") from None
        _quiet_logs()
        address = str(settings.cluster)
        cluster = None
        try:
            if address == LOCAL_CLUSTER:
                workers = settings.cluster_workers or threads.cores()
                if workers < 1:
                    raise ConfigError(f"--cluster-workers must be at least 1, got {workers}")
                reporter.step(f"starting a local Dask cluster of {workers} workers")
                cluster = distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True,
                    memory_limit=_memory_limit(settings.worker_memory),
                    dashboard_address=":0", silence_logs=logging.CRITICAL)
                client = distributed.Client(cluster, set_as_default=True)
            else:
                if not address.startswith(("tcp://", "tls://", "ucx://", "ws://", "wss://")):
                    raise ConfigError(f"--cluster {address!r}: give local or a scheduler "
                                      "address such as tcp://host:8786")
                reporter.step(f"connecting to the Dask scheduler at {address}")
                client = distributed.Client(address, timeout=CONNECT_TIMEOUT,
                                            set_as_default=True)
        except RevcliError:
            if cluster is not None:
                cluster.close()
            raise
        except (OSError, TimeoutError) as exc:
            if cluster is not None:
                cluster.close()
            raise ClusterError(f"cannot reach the Dask scheduler at {address}: "
                               f"{first_line(exc)}; start it (dask scheduler) or fix --cluster "
                               "/ DASK_SCHEDULER_ADDRESS") from None
        engine = cls(client, cluster, settings)
        engine.reporter = reporter
        reporter.note(f"Dask dashboard: {engine.dashboard}")
        return engine

    @property
    def dashboard(self) -> str:
        return str(self.client.dashboard_link)

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def describe(self) -> dict[str, Any]:
        return {"kind": DASK, "cluster": LOCAL_CLUSTER if self.cluster is not None
                else "external", "scheduler": str(self.client.scheduler.address),
                "workers": self.workers, "dashboard": self.dashboard}

    def tags(self) -> dict[str, str]:
        info = self.describe()
        return {"engine": DASK, "dask.cluster": info["cluster"],
                "dask.scheduler": info["scheduler"], "dask.workers": str(info["workers"]),
                "dask.dashboard": info["dashboard"]}

    def search_trials(self, study: Any, objective: Any, budget: Any, stop: Any, *,
                      url: str, seed: int) -> str:
        """A tune's trials as tasks on the workers (revcli.tuning._cluster)."""
        from revcli.tuning import _cluster

        return _cluster.search(self, study, objective, budget, stop, url=url, seed=seed)

    def close(self) -> None:
        # revcli stops only what it started; an existing cluster is only disconnected from.
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()

    # -- running tasks ---------------------------------------------------------------------

    def compute(self, *things: Any, label: str | None = None) -> Any:
        """``dask.compute`` on this cluster, a worker's death or a lost part as one line;
        with ``label``, a progress bar that follows the tasks (one per part) as they finish."""
        import dask
        from distributed import as_completed

        try:
            if label is None:
                return dask.compute(*things, scheduler=self.client)
            futures = self.client.compute(list(things))
            with self.reporter.task(label, total=len(futures), unit="parts") as task:
                for _ in as_completed(futures):
                    task.advance(1)
            return tuple(f.result() for f in futures)
        except Exception as exc:
            fault = self.explain_fault(exc, label or "running revcli's tasks")
            if fault is None or fault is exc:
                raise
            raise fault from None

    def _live_workers(self) -> set[str]:
        """The addresses of the workers the scheduler has now."""
        return set(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def _scheduler_lost(self, exc: BaseException) -> bool:
        from distributed.client import FutureCancelledError

        if isinstance(exc, FutureCancelledError) and "scheduler" in str(exc.reason):
            return True
        return self.client.status != "running"

    def explain_fault(self, exc: Exception, doing: str, workers: set[str] | None = None,
                      then: str = NOTHING_SAVED) -> Exception | None:
        """What a failure of the cluster's work means, as one line that names the cause: a
        part gone, a worker that died (which, running what), the scheduler lost, revcli's tasks
        that the workers cannot load; None when ``exc`` is none of these. ``workers``: the
        workers' addresses when the work began, so a worker that died under XGBoost's collective
        (whose other ranks then fail with a socket error, not a KilledWorker) is named too;
        ``then``: what the failure left, said at the end of the line."""
        from distributed.client import FutureCancelledError, FuturesCancelledError
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker

        if isinstance(exc, FuturesCancelledError):  # distributed.wait's: one for many futures
            groups = exc.error_groups
            exc = (groups[0].errors[0] if groups and groups[0].errors
                   else FutureCancelledError("tasks", "unknown"))
        if isinstance(exc, RevcliError):
            return exc
        if isinstance(exc, FileNotFoundError):
            return DataError(f"a part is missing: {first_line(exc)}")
        if isinstance(exc, KilledWorker):
            from dask.utils import key_split

            return ClusterError(
                f"Dask workers died while {doing}: the task {key_split(exc.task)} killed each "
                f"of the {exc.allowed_failures + 1} workers that ran it (the last "
                f"{exc.last_worker.address}); {self._memory_hint()}; {then}")
        address = self.client.scheduler.address
        said = exc.reason if isinstance(exc, FutureCancelledError) else first_line(exc)
        if isinstance(exc, FutureCancelledError | CommClosedError | OSError) and (
                self._scheduler_lost(exc)):
            return ClusterError(f"lost the Dask scheduler at {address} while {doing} ({said}): "
                                f"it stopped or is unreachable; {then}")
        if workers is not None:
            gone = self._workers_gone(workers)
            if gone:
                named = ", ".join(sorted(gone))
                return ClusterError(
                    f"the Dask worker{'s' if len(gone) > 1 else ''} {named} died while {doing}; "
                    f"XGBoost's training needs every worker it started on ({self._memory_hint()}"
                    f"); {then}")
        if isinstance(exc, FutureCancelledError | CommClosedError | OSError):
            return ClusterError(f"the Dask cluster failed while {doing}: {said}; {then}")
        if isinstance(exc, RuntimeError) and "deserializ" in str(exc):
            return ClusterError(_MISMATCH)
        return None

    def _workers_gone(self, before: set[str], wait: float = 3.0) -> set[str]:
        """The workers of ``before`` the scheduler no longer has. The other ranks of XGBoost's
        collective fail the moment a peer's socket closes, maybe before the scheduler has
        removed the dead worker: ask again for up to ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while True:
            try:
                now = self._live_workers()
            except Exception:  # the scheduler itself is gone: said by the caller
                return set()
            gone = before - now
            if gone or time.monotonic() > deadline:
                return gone
            time.sleep(0.1)

    def _memory_hint(self) -> str:
        if self.cluster is not None and self.settings.worker_memory:
            return f"{_MEMORY} (each has --worker-memory {self.settings.worker_memory})"
        return _MEMORY

    # -- prepare ---------------------------------------------------------------------------

    def _parts(self, settings: Settings, data: str | Path | None,
               reporter: Reporter) -> tuple[Workspace, DatasetRecord, Parts, list[str]]:
        from revcli import fetch
        from revcli.storage import Connection

        workspace = Workspace(settings.workspace).ensure()
        options = Connection.from_settings(settings).fsspec_options()
        notes: list[str] = []
        known = None
        if data is None:
            known, note = fetch.current_or_demo(workspace, rows=settings.demo_rows,
                                                seed=settings.demo_seed, reporter=reporter)
            notes = [note] if note else []
            url = str(known.path)
        else:
            url = str(data)
        parts = _list_parts(url, options)
        return workspace, _dataset_record(parts, known), parts, notes

    def prepare(self, settings: Settings, data: str | Path | None,
                drop_features: Sequence[str], reporter: Reporter) -> ClusterPrepared:
        import dask
        import dask.dataframe as dd
        import pandas as pd

        from revcli.data import is_id_column

        workspace, record, parts, notes = self._parts(settings, data, reporter)
        reporter.step(f"checking {record.short} on the cluster ({len(parts.files)} part(s), "
                      f"{record.rows:,} rows)")
        drop = list(dict.fromkeys(drop_features))
        (meta,) = self.compute(dask.delayed(_empty_part)(parts.files[0], parts))
        read = [dask.delayed(_read_part)(f, parts) for f in parts.files]
        facts = self.compute(*[dask.delayed(_check_part)(p, parts.name(f), drop)
                               for p, f in zip(read, parts.files, strict=True)],
                             label="reading and checking the parts")
        rows = sum(f["rows"] for f in facts)
        if rows == 0:
            raise DataError(f"{parts.url} has no rows")
        if sum(f.get("converters", 0) for f in facts) == 0:
            raise DataError(f"no converting sessions ({TARGET} > 0): there are no order values "
                            "to learn from")
        # The columns, as revcli.data.validate chooses them on a part.
        ids = [c for c in meta.columns if is_id_column(str(c))]
        features = [str(c) for c in meta.columns
                    if c not in ids and c not in (TARGET, ORDER_FLAG) and c not in drop]
        key = split_mod.hash_key_of(meta.columns)
        offsets = np.r_[0, np.cumsum([f["rows"] for f in facts])[:-1]]
        seed, test_size = settings.seed, settings.test_size
        if not 0.0 < test_size < 1.0:
            raise ConfigError(f"test_size must be between 0 and 1, got {test_size}")
        hashed = "the row position" if key == split_mod.ROW_POSITION else key
        reporter.step(f"splitting by the hash of {hashed}; the encoding's statistics")
        split_meta = _split_part(meta, 0, key, seed, test_size, features)
        frame = dd.from_delayed(
            [dask.delayed(_split_part)(p, int(o), key, seed, test_size, features)
             for p, o in zip(read, offsets, strict=True)], meta=split_meta, verify_meta=False)
        frame = self.client.persist(frame)
        spec = self._featurizer_spec(settings)
        sums = self.compute(*[dask.delayed(_part_sums)(p, features, not spec.handles_missing)
                              for p in frame.to_delayed()], label="splitting; encoding statistics")
        split, counts = _hash_split(sums, rows, key, seed, test_size)
        baselines = metrics.Baselines.from_sums(sum(s["train_revenue"] for s in sums),
                                                counts["train_rows"], counts["train_converters"])
        stats = _combine_statistics([s["columns"] for s in sums])
        n_test = counts["test_rows"]
        test = frame[frame[IS_TEST]]
        sample = test if n_test <= SAMPLE_ROWS else test.sample(frac=SAMPLE_ROWS / n_test,
                                                                random_state=seed)
        (sample,) = self.compute(sample)
        sample = pd.DataFrame(sample).reset_index(drop=True)
        record = dataclasses.replace(record, rows=rows)
        if record.is_parts and record.extra.get("pending"):
            # checked on the cluster: caching the parts (commit) need not read them again
            record = dataclasses.replace(record, parts=[
                {**p, "converters": f.get("converters", 0)}
                for p, f in zip(record.parts, facts, strict=True)])
        return ClusterPrepared(workspace=workspace, dataset=record, parts=parts, frame=frame,
                               table=Columns(features, drop), split=split, counts=counts,
                               baselines=baselines, column_stats=stats, sample=sample,
                               notes=notes)

    def _featurizer_spec(self, settings: Settings) -> Any:
        from revcli import estimators, features

        return features.for_estimator(estimators.spec(settings.estimator).capabilities)

    # -- audit -----------------------------------------------------------------------------

    def audit(self, prepared: ClusterPrepared, reporter: Reporter,
              judged_for: Sequence[str] = ()) -> list[leakage.LeakFinding]:
        import dask

        features = prepared.table.features
        per_part = self.compute(*[dask.delayed(_audit_counts)(p, features)
                                  for p in prepared.frame.to_delayed()],
                                label="leakage audit")
        findings = _audit_findings(per_part, prepared.frame.dtypes, features,
                                   prepared.counts["train_converters"])
        pipeline.warn_findings(findings, judged_for, reporter)
        return findings

    # -- evaluate --------------------------------------------------------------------------

    def score_holdout(self, settings: Settings, workspace: Workspace, loaded: Any,
                      data: str | Path | None, worst: int, reporter: Reporter) -> Any:
        """evaluate's rows scored part by part on the workers (:func:`_evaluate_part`): the
        model's own holdout -- the hash split it was trained on, made again by each worker for
        its own parts and checked against the recorded split hash -- or every row of another
        ``data``. The scorecard, calibration, order-value bands and largest errors are of every
        evaluated row (their revenue and the model's outputs come back, 8 bytes a value); the
        segments, importance and plots of a bounded sample (SAMPLE_ROWS) of them."""
        import dask
        import pandas as pd
        import pyarrow.parquet as pq

        from revcli import evaluate
        from revcli.data import features_for
        from revcli.storage import Connection

        meta, cls = loaded.meta, loaded.strategy_class
        model_sha = meta.get("dataset_sha256")
        known = evaluate.model_dataset(workspace, meta) if data is None else None
        parts = _list_parts(str(known.path if known is not None else data),
                            Connection.from_settings(settings).fsspec_options())
        record = _dataset_record(parts, known)
        holdout = bool(model_sha) and record.sha256 == model_sha
        # the model's own hash split; any other data: every row (a test size of 1)
        recipe = (split_mod.hash_recipe(meta) if holdout
                  else (split_mod.ROW_POSITION, settings.seed, 1.0))
        (empty,) = self.compute(dask.delayed(_empty_part)(parts.files[0], parts))
        features_for(empty, loaded.features)  # a missing feature: before any part is scored
        shown = [str(c) for c in empty.columns if c not in (TARGET, ORDER_FLAG)]
        offsets = [0] * len(parts.files)
        if recipe[0] == split_mod.ROW_POSITION and len(parts.files) > 1:
            fs = parts.filesystem()
            lengths = []
            for file in parts.files:
                with fs.open(file, "rb") as fh:
                    lengths.append(pq.read_metadata(fh).num_rows)
            offsets = [int(o) for o in np.r_[0, np.cumsum(lengths)[:-1]]]
        label = known.source if known is not None else parts.url
        reporter.step(f"scoring {label} on the cluster ({len(parts.files)} part(s), "
                      f"{record.rows:,} rows)")
        model = self.client.scatter(loaded.model, broadcast=True, hash=False)
        results = self.compute(*[dask.delayed(_evaluate_part)(f, parts, o, recipe, model,
                                                              loaded.features, shown, worst)
                                 for f, o in zip(parts.files, offsets, strict=True)],
                               label="scoring the parts")
        scored = [r for r in results if "y" in r]
        rows = sum(r["facts"]["rows"] for r in results)
        converters = sum(r["facts"].get("converters", 0) for r in results)
        if not rows:
            raise DataError("the table is empty (no rows or no columns)")
        if cls.scored_on == strategies.CONVERTERS and not converters:
            raise DataError(f"no converting sessions ({TARGET} > 0): there are no order values "
                            "to learn from")
        y = np.concatenate([r["y"] for r in scored])
        outputs = {k: np.concatenate([r["outputs"][k] for r in scored])
                   for k in scored[0]["outputs"]}
        if holdout:
            key, seed, test_size = recipe
            split, counts = _hash_split([r["sums"] for r in scored], rows, key, seed, test_size)
            if meta.get("split_hash") and split.hash != meta["split_hash"]:
                raise DataError(f"the model's holdout does not reproduce on the cluster: split "
                                f"hash {split.hash} != recorded {meta['split_hash']}; evaluate "
                                "it without --cluster")
            population = cls.population("test")
            baselines, note = evaluate.holdout_baselines(meta, cls, metrics.Baselines.from_sums(
                sum(r["sums"]["train_revenue"] for r in scored), counts["train_rows"],
                counts["train_converters"]), split.hash, reporter)
        else:
            population = evaluate.other_population(cls, Path(parts.url.rstrip("/")).name)
            baselines, note = evaluate.other_baselines(workspace, meta, cls, y, reporter)
        findings = (_audit_findings([r["audit"] for r in scored], empty.dtypes,
                                    loaded.features, converters)
                    if 0 < converters < rows else [])
        sample = pd.concat([r["sample"] for r in scored], ignore_index=True)
        evaluated = len(cls.evaluation_rows(y))
        sample = sample.nsmallest(SAMPLE_ROWS, SAMPLE_KEY, keep="first").sort_values(
            POSITION).reset_index(drop=True)
        notes = [] if len(sample) == evaluated else [
            f"segments, importance and plots: a uniform sample of {len(sample):,} of the "
            f"{evaluated:,} rows scored on the cluster; the scorecard, calibration, "
            "order-value bands and largest errors: every row"]
        worst_rows = sorted((w for r in scored for w in r["worst"]),
                            key=lambda w: -abs(w["error"]))[:worst]
        info = evaluate.data_info(str(known.path) if known is not None else parts.url,
                                  record.sha256, label, holdout, len(y), population, model_sha)
        detail = evaluate.Rows(frame=sample[[*shown, TARGET]],
                               y=sample[TARGET].to_numpy(np.float64),
                               X=features_for(sample, loaded.features), population=population,
                               baselines=baselines, baseline_note=note, data=info)
        return evaluate.Scored(rows=detail, y=y, parts=outputs,
                               detail_pred=sample[PREDICTION].to_numpy(np.float64),
                               worst=worst_rows, findings=findings, notes=notes)

    # -- fit and score -----------------------------------------------------------------------

    def fit_and_score(self, prepared: ClusterPrepared, settings: Settings,
                      params: Mapping[str, Any], reporter: Reporter,
                      external: Any = None) -> pipeline.Fitted:
        if external is not None:
            raise ConfigError("--classifier runs in-process only: drop --cluster to train "
                              "two_stage on a classifier fitted elsewhere")
        features = prepared.table.features
        model = pipeline.build(settings, params, n_jobs=threads.resolve(
            settings.n_jobs, prepared.counts["train_rows"]))
        featurizer = model.featurizer.fit_statistics(prepared.column_stats)
        train = prepared.frame[~prepared.frame[IS_TEST]]
        encoded_meta = featurizer.transform(prepared.frame._meta[features])
        X = train[features].map_partitions(featurizer.transform, meta=encoded_meta)
        y = train[TARGET]
        strategy = model.strategy
        start = time.perf_counter()
        fitted_stages = {}
        for stage in strategy.stages():
            keep = (y > 0) if stage.rows == CONVERTING_ROWS else None
            X_stage = X if keep is None else X[keep]
            y_stage = (y if keep is None else y[keep])
            if stage.target == ORDERED_TARGET:
                y_stage = (y_stage > 0).astype(np.int64)
            doing = (f"fitting the {stage.name} of {settings.strategy} / "
                     f"{settings.estimator}")
            reporter.step(f"{doing} on the cluster")
            fitted_stages[stage.name] = self._fit_estimator(stage.estimator, X_stage, y_stage,
                                                            doing)
        seconds = time.perf_counter() - start
        from sklearn.base import clone

        fitted_strategy = clone(strategy).with_stages(fitted_stages, encoded_meta)
        model.fitted_from(featurizer, fitted_strategy, features)
        reporter.step("scoring the holdout on the cluster")
        scored = self.compute(prepared.frame.map_partitions(
            _score_part, model, features,
            meta={"y": "f8", "prediction": "f8", "p_order": "f8", "order_value": "f8"}))[0]
        cls = strategies.of(model)
        proba = scored["p_order"].to_numpy() if cls.has_classifier else None
        value = scored["order_value"].to_numpy()
        card = metrics.scorecard(cls, scored["y"].to_numpy(), scored["prediction"].to_numpy(),
                                 prepared.baselines, proba_order=proba,
                                 order_value=None if np.isnan(value).all() else value)
        parts = model.predict_parts(prepared.X_test)
        return pipeline.Fitted(model=model, scorecard=card, pred_test=parts["prediction"],
                               proba_test=parts.get("p_order"), fit_seconds=seconds,
                               threads=1)

    def _fit_estimator(self, estimator: Any, X: Any, y: Any,
                       doing: str = "fitting XGBoost") -> Any:
        """``estimator`` (unfitted, in-process) fitted on the cluster, returned in-process
        (``doing``: what it is, for an error)."""
        from sklearn.base import clone

        from revcli.log_target import LogTargetRegressor

        if isinstance(estimator, LogTargetRegressor):
            target = np.log1p(y)
            inner = self._fit_estimator(estimator.regressor, X, target, doing)
            fitted = clone(estimator)
            fitted.regressor_ = inner
            if estimator.smearing:
                residual = (target - X.map_partitions(_predict_with, inner, meta=("p", "f8")))
                (mean,) = self.compute(np.exp(residual).mean())
                fitted.smearing_factor_ = float(mean)
            else:
                fitted.smearing_factor_ = 1.0
            fitted.n_features_in_ = inner.n_features_in_
            return fitted
        if not hasattr(estimator, "get_booster"):
            raise ConfigError(f"{type(estimator).__name__} does not train on a cluster")
        import xgboost.dask as dxgb
        from sklearn.base import is_classifier

        params = estimator.get_params()
        params["n_jobs"] = None  # each worker's own threads
        dask_cls = dxgb.DaskXGBClassifier if is_classifier(estimator) else dxgb.DaskXGBRegressor
        distributed_model = dask_cls(**params)
        distributed_model.client = self.client
        workers = self._live_workers()
        try:
            distributed_model.fit(X, y)
        except Exception as exc:
            collective = _collective_failure(exc)
            if isinstance(exc, ValueError | TypeError) and collective is None:
                raise DataError(f"XGBoost cannot be fitted on these rows: "
                                f"{first_line(exc)}") from None
            fault = self.explain_fault(exc, doing, workers)
            if fault is None and collective is not None:
                fault = ClusterError(f"XGBoost's collective failed while {doing}: "
                                     f"{collective}; {NOTHING_SAVED}")
            if fault is None or fault is exc:
                raise
            raise fault from None
        local = clone(estimator)
        local.load_model(bytearray(distributed_model.get_booster().save_raw("ubj")))
        return local

    # -- predict ---------------------------------------------------------------------------

    def predict(self, settings: Settings, *, data: str | Path, out: str | Path,
                run: str | None, model: str | Path | None, trust: bool, batch_rows: int,
                reporter: Reporter) -> PredictResult:
        """Every part scored on a worker; the predictions (ids and outputs, not the table)
        come back part by part and are written in the parts' order: a directory of parts
        (``--out dir``, one output part per input part) or one file (``--out x.parquet``)."""
        import dask
        import pyarrow.parquet as pq

        from revcli import predict as predict_mod
        from revcli.storage import Connection

        start = time.perf_counter()
        out = Path(out)
        single = out.suffix != ""
        fmt = predict_mod.output_format(out) if single else "parquet"
        parts = _list_parts(str(data), Connection.from_settings(settings).fsspec_options())
        if parts.local and out.resolve() == Path(parts.root).resolve():
            raise ConfigError(f"--out {out} is the input; write the predictions elsewhere")
        if not single and out.exists():
            raise ConfigError(f"--out {out} exists; give a new directory (or a .parquet file)")
        loaded = predict_mod.load_model(settings, run=run, model=model, trust=trust,
                                        reporter=reporter)
        fs = parts.filesystem()
        footers = []
        for file in parts.files:
            with fs.open(file, "rb") as fh:
                footers.append(pq.ParquetFile(fh).schema_arrow)
        lengths = []
        for file in parts.files:
            with fs.open(file, "rb") as fh:
                lengths.append(pq.read_metadata(fh).num_rows)
        names = [*footers[0].names, *(parts.hive.names if parts.hive is not None else [])]
        features = loaded.features
        ids, ignored = predict_mod.columns_of(parts.url, names, features, reporter)
        schema = predict_mod.output_schema(loaded, [
            footers[0].field(c) if c in footers[0].names else parts.hive.field(c) for c in ids])
        outputs = loaded.model.output_columns()
        offsets = np.r_[0, np.cumsum(lengths)[:-1]]
        tasks = [dask.delayed(_predict_part)(f, parts, loaded.model, features, ids, int(o),
                                             outputs)
                 for f, o in zip(parts.files, offsets, strict=True)]
        futures = self.client.compute(tasks)
        done = 0
        with reporter.task(f"scoring {len(parts.files)} part(s) on the cluster",
                           total=sum(lengths), unit="rows") as task:
            if single:
                with atomic.atomic_path(out, suffix=out.suffix) as tmp:
                    writer = predict_mod._Writer(tmp, fmt, schema)
                    try:
                        for future in futures:
                            table = self._result(future).cast(schema)
                            writer.write(table)
                            done += table.num_rows
                            task.advance(table.num_rows)
                    finally:
                        writer.close()
            else:
                with atomic.atomic_dir(out) as tmp:
                    width = max(5, len(str(len(futures))))
                    for i, future in enumerate(futures):
                        table = self._result(future).cast(schema)
                        pq.write_table(table, tmp / f"part-{i:0{width}d}.parquet")
                        done += table.num_rows
                        task.advance(table.num_rows)
        from revcli.predict import PredictResult

        return PredictResult(model=loaded, input=Path(parts.url), output=out, format=fmt,
                             rows=done, batches=len(parts.files),
                             columns=[f.name for f in schema], id_columns=ids, ignored=ignored,
                             prediction=loaded.model.meaning(),
                             seconds=time.perf_counter() - start)

    def _result(self, future: Any) -> Any:
        try:
            return future.result()
        except Exception as exc:
            fault = self.explain_fault(exc, "scoring the parts")
            if fault is None or fault is exc:
                raise
            raise fault from None


def _collective_failure(exc: BaseException) -> str | None:
    """What XGBoost's collective (the ranks' sockets) says went wrong, when ``exc`` is that
    (a peer died or vanished mid-fit), else None. XGBoost raises it as a ValueError like a bad
    row; its first line is a source position, the cause a ``- [file:line|time]: ...`` line."""
    text = str(exc)
    if not any(word in text for word in ("collective", "allreduce", "allgather", "Socket",
                                         "socket", "tracker", "Poll error")):
        return None
    causes = [line.split("]: ", 1)[1].strip() for line in text.splitlines()
              if line.startswith("- [") and "]: " in line]
    return "; ".join(c for c in causes if c) or first_line(exc)


def _audit_findings(per_part: Sequence[dict[str, pd.DataFrame]], dtypes: Any,
                    features: Sequence[str], n_orders: int) -> list[leakage.LeakFinding]:
    """The leakage audit's findings from each part's counts (:func:`_audit_counts`), ranked by
    the in-process audit's own arithmetic (revcli.leakage.auc_of_counts)."""
    import pandas as pd

    from revcli.features import CATEGORY, kind

    findings = []
    for name in features:
        counts = pd.concat([p[name] for p in per_part]).groupby(
            level=0, dropna=False, sort=False).sum()
        if kind(dtypes[name]) == CATEGORY:
            # a level ranks by its order rate, as the in-process audit ranks it
            counts.index = counts["pos"] / counts["n"]
            counts = counts.groupby(level=0, sort=False).sum()
        values = counts.index.to_numpy(dtype=np.float64)
        gaps = np.isnan(values)
        low = np.nanmin(values) - 1 if (~gaps).any() else 0.0
        values = np.where(gaps, low, values)   # a gap ranks as its own lowest value
        order = np.argsort(values, kind="stable")
        values = values[order]
        pos = counts["pos"].to_numpy()[order]
        neg = counts["n"].to_numpy()[order] - pos
        auc, marks = leakage.auc_of_counts(pos, neg)
        found = leakage.finding(name, auc, marks, values[np.flatnonzero(pos)[0]]
                                if marks else None, n_orders)
        if found is not None:
            findings.append(found)
    return findings


def _predict_with(X: pd.DataFrame, estimator: Any) -> np.ndarray:
    with threads.limit(1):
        return np.asarray(estimator.predict(X), dtype=np.float64)


def _hash_split(sums: Sequence[dict[str, Any]], rows: int, key: str, seed: int,
                test_size: float) -> tuple[split_mod.Split, dict[str, int]]:
    """The hash split (its hash; no row positions: the parts hold them) and its counts, from
    each part's :func:`_part_sums`; a side without converters is refused, as in-process."""
    counts = {k: sum(s[k] for s in sums) for k in
              ("train_rows", "test_rows", "train_converters", "test_converters")}
    if not counts["train_converters"] or not counts["test_converters"]:
        raise DataError("the split leaves no converting session in the "
                        f"{'training' if not counts['train_converters'] else 'test'} part; "
                        "the table has too few orders")
    fingerprint = sum(s["fingerprint"] for s in sums) % 2**64
    digest = split_mod.hash_split_hash(rows, counts["test_rows"], fingerprint, key, seed,
                                       test_size)
    return split_mod.Split(train=np.empty(0, np.int64), test=np.empty(0, np.int64),
                           test_size=test_size, seed=seed, hash=digest, kind=split_mod.HASH,
                           key=key), counts


def _combine_statistics(per_part: list[list[Any]]) -> list[Any]:
    """The encoding's statistics of the whole training split from those of its parts: rows
    and level counts add up, gaps anywhere are gaps, timestamp windows span them all (levels
    most frequent first, ties by name, so the levels kept do not depend on the parts' order)."""
    import pandas as pd

    first = per_part[0]
    combined = []
    for i, stat in enumerate(first):
        column = [part[i] for part in per_part]
        merged = dataclasses.replace(stat, rows=sum(s.rows for s in column),
                                     gaps=any(s.gaps for s in column))
        if stat.counts is not None:
            counts = pd.concat([s.counts for s in column if s.counts is not None])
            counts = counts.groupby(level=0).sum()
            merged.counts = counts.sort_index().sort_values(ascending=False, kind="stable")
        windows = [s.window for s in column if s.window is not None]
        if windows:  # a timestamp's training window: the earliest start, the latest end
            merged.window = (min(w[0] for w in windows), max(w[1] for w in windows))
        if any(s.median is not None for s in column):
            # An exact median does not add up over parts; the cluster's estimators take gaps
            # as they are (EstimatorSpec.handles_missing), so none asks for it.
            raise ConfigError("an imputed encoding (a median of each gap) is not fitted on a "
                              "cluster; use xgb or xgb_log")
        combined.append(merged)
    return combined
