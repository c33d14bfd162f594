"""One train/test split for every strategy, named by a hash of its test rows.

Two kinds, one contract: the split is over all sessions, so the converters of the training and
test parts are the same whichever strategy uses them (``converting_only`` trains and scores on the
converters of each part, the others on every row), and two runs whose ``split_hash`` agree were
scored on exactly the same rows.

- **random** (the default): stratified on ``is_ordered``, ``test_size`` of the sessions, ``seed``;
  on the real table's counts (472,871 sessions, 32,313 orders, test 20 %, seed 42) it gives the
  seed pipeline's 25,850 / 6,463 converters.
- **time**: the earliest sessions train, the latest ``test_size`` are the test, optionally with a
  ``gap`` of time between them left out. A random split flatters any time feature (on the real
  orders a month index lowers RMSE from $17.66 to $16.78 at random, and barely at all forward in
  time); a time split asks what a deployed model meets: the future.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from math import ceil
from typing import Any

import numpy as np

RANDOM, TIME, HASH = "random", "time", "hash"
KINDS = (RANDOM, TIME)
#: The split a cluster makes (``--cluster``): each row decides for itself, so no worker needs
#: another's rows. In-process commands recompute it for models trained on a cluster.
ROW_POSITION = "__row__"


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    test: np.ndarray
    test_size: float
    seed: int
    hash: str
    kind: str = RANDOM
    # time splits: the column, the gap left out, and the boundaries (ISO timestamps)
    time_column: str | None = None
    gap: str | None = None
    bounds: dict[str, str] = field(default_factory=dict)
    # time splits: the training rows in time order (tune's forward-chaining folds use it)
    train_in_time: np.ndarray | None = field(default=None, compare=False, repr=False)

    # hash splits: the column whose hash decides (ROW_POSITION: the row's position)
    key: str | None = None

    def summary(self, ordered: np.ndarray) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "kind": self.kind,
            "seed": self.seed,
            "test_size": self.test_size,
            "train_rows": len(self.train),
            "test_rows": len(self.test),
            "train_converters": int(ordered[self.train].sum()),
            "test_converters": int(ordered[self.test].sum()),
            **({"time_column": self.time_column, "gap": self.gap, **self.bounds}
               if self.kind == TIME else {}),
            **({"key": self.key} if self.kind == HASH else {}),
        }

    def describe(self) -> dict[str, Any]:
        """What it takes to make this split again (recorded with every model)."""
        return {"kind": self.kind, "test_size": self.test_size, "seed": self.seed,
                "time_column": self.time_column, "gap": self.gap,
                **({"key": self.key} if self.kind == HASH else {})}


def split_hash(n_rows: int, test: np.ndarray, kind: str = RANDOM) -> str:
    digest = hashlib.sha256(np.int64(n_rows).tobytes())
    digest.update(np.sort(test).astype(np.int64).tobytes())
    if kind != RANDOM:  # random splits keep the hashes they always had
        digest.update(kind.encode())
    return digest.hexdigest()[:16]


def _check_test_size(test_size: float) -> None:
    from revcli.errors import ConfigError

    if not 0.0 < test_size < 1.0:
        raise ConfigError(f"test_size must be between 0 and 1, got {test_size}")


def _check_converters(ordered: np.ndarray, train: np.ndarray, test: np.ndarray) -> None:
    from revcli.errors import DataError

    if not ordered[train].any() or not ordered[test].any():
        raise DataError(f"the split leaves no converting session in the "
                        f"{'training' if not ordered[train].any() else 'test'} part; "
                        "the table has too few orders")


def _stratified(ordered: np.ndarray, n_test: int,
                seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The rows of ``train_test_split(rows, test_size=test_size, random_state=seed,
    stratify=ordered)`` (``n_test`` = ceil(test_size * rows), as it counts them), sorted: the
    same draws from the same random state in the same order
    (scikit-learn's StratifiedShuffleSplit), with arrays where it builds Python lists of every
    row, which costs seconds on millions of rows. tests/test_split.py holds them equal, and
    pins the split hashes of fixed tables so a scikit-learn whose draws differ is caught.

    ``_approximate_mode`` is private to scikit-learn: should a release drop it, this returns
    None and the caller draws with the public ``train_test_split`` (the same rows, slower)."""
    from sklearn.utils import check_random_state

    try:
        from sklearn.utils.extmath import _approximate_mode
    except ImportError:
        return None

    n = len(ordered)
    by_class = [np.flatnonzero(~ordered), np.flatnonzero(ordered)]  # np.unique's order
    counts = np.array([len(rows) for rows in by_class])
    rng = check_random_state(seed)
    n_train_of = _approximate_mode(counts, n - n_test, rng)
    n_test_of = _approximate_mode(counts - n_train_of, n_test, rng)
    in_test = np.zeros(n, dtype=bool)
    for rows, k, t in zip(by_class, n_train_of, n_test_of, strict=True):
        drawn = rows.take(rng.permutation(len(rows)), mode="clip")
        in_test[drawn[k:k + t]] = True
    # scikit-learn then shuffles both parts, which changes their order, not their rows.
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)


def make_split(ordered: np.ndarray, test_size: float = 0.2, seed: int = 42) -> Split:
    """Stratified random split of row positions; ``ordered`` is the boolean is_ordered vector."""
    from sklearn.model_selection import train_test_split

    from revcli.errors import DataError

    _check_test_size(test_size)
    n = len(ordered)
    n_pos = int(np.sum(ordered))
    stratify = ordered if 2 <= n_pos <= n - 2 else None
    try:
        n_test = ceil(test_size * n)
        drawn = (_stratified(np.asarray(ordered, dtype=bool), n_test, seed)
                 if stratify is not None and min(n_test, n - n_test) >= 2 else None)
        if drawn is not None:
            train, test = drawn
        else:
            train, test = train_test_split(np.arange(n), test_size=test_size,
                                           random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise DataError(f"cannot split {n} rows with test_size {test_size}: {exc}") from None
    train, test = np.sort(train), np.sort(test)
    _check_converters(ordered, train, test)
    return Split(train=train, test=test, test_size=test_size, seed=seed,
                 hash=split_hash(n, test))


# -- the hash split (clusters) ------------------------------------------------------------------

_HASH_SPACE = float(2**32)


def row_hashes(keys: Any, seed: int) -> np.ndarray:
    """uint64 hash of each key (an id value, or a row position), salted with ``seed``:
    pandas' stable hash, the same on every machine and in every process."""
    import pandas as pd

    values = np.asarray(keys)
    if values.dtype.kind not in "iub":
        values = np.asarray(pd.Series(values).astype(str))
    return pd.util.hash_array(values, hash_key=f"{seed:016d}"[-16:], categorize=False)


def hash_test_mask(keys: Any, seed: int, test_size: float) -> np.ndarray:
    """Whether each row is a test row: its salted hash, as a number in [0, 1), is below
    ``test_size``. A row's side depends on its key alone, so a cluster decides it part by part
    and a row keeps its side when rows are added."""
    return (row_hashes(keys, seed) >> np.uint64(32)).astype(np.float64) / _HASH_SPACE < test_size


def hash_fingerprint(keys: Any, seed: int, test: np.ndarray) -> int:
    """The sum (mod 2^64) of the test rows' hashes: order-free, so parts add up (with
    :func:`hash_split_hash`, the split hash of a hash split)."""
    return int(np.sum(row_hashes(keys, seed)[test], dtype=np.uint64))


def hash_split_hash(n_rows: int, n_test: int, fingerprint: int, key: str, seed: int,
                    test_size: float) -> str:
    digest = hashlib.sha256(f"{HASH}:{key}:{seed}:{test_size!r}:{n_rows}:{n_test}:"
                            f"{fingerprint % 2**64}".encode())
    return digest.hexdigest()[:16]


def hash_key_of(columns: Any) -> str:
    """The column a hash split hashes: ``id``, else the first ``*_id`` column, else the row
    position (ROW_POSITION)."""
    from revcli.data import is_id_column

    ids = [str(c) for c in columns if is_id_column(str(c))]
    return "id" if "id" in ids else (ids[0] if ids else ROW_POSITION)


def make_hash_split(keys: Any, ordered: np.ndarray, test_size: float, seed: int,
                    key: str) -> Split:
    """The hash split of a table held in memory (``keys``: the key column's values, or the row
    positions): the same rows and the same hash as a cluster makes part by part."""
    _check_test_size(test_size)
    test_mask = hash_test_mask(keys, seed, test_size)
    train, test = np.flatnonzero(~test_mask), np.flatnonzero(test_mask)
    _check_converters(ordered, train, test)
    digest = hash_split_hash(len(test_mask), len(test), hash_fingerprint(keys, seed, test_mask),
                             key, seed, test_size)
    return Split(train=train, test=test, test_size=test_size, seed=seed, hash=digest, kind=HASH,
                 key=key)




def parse_gap(text: str | None) -> dt.timedelta:
    """``--gap``: any duration :mod:`revcli.durations` reads (``90m``, ``12h``, ``7d``, ``2w``;
    none: no gap)."""
    from revcli import durations

    if not text:
        return dt.timedelta(0)
    return durations.parse(text, "--gap")


def make_time_split(times: Any, ordered: np.ndarray, test_size: float = 0.2,
                    time_column: str = "", gap: str | None = None) -> Split:
    """The earliest sessions train, the latest ``test_size`` test; sessions within ``gap``
    before the first test session are left out of both."""
    import pandas as pd

    from revcli.errors import DataError
    from revcli.features import naive_utc

    _check_test_size(test_size)
    stamps = naive_utc(pd.Series(times)).reset_index(drop=True)
    if stamps.isna().any():
        raise DataError(f"--split time: {time_column!r} has {int(stamps.isna().sum()):,} "
                        "missing timestamps; fill or drop those rows")
    order = np.argsort(stamps.to_numpy(), kind="stable")
    n = len(order)
    n_test = max(1, round(n * test_size))
    test = np.sort(order[n - n_test:])
    cut = stamps.iloc[order[n - n_test]]
    train_end = cut - parse_gap(gap)
    earlier = order[: n - n_test]
    in_time = earlier[stamps.iloc[earlier].to_numpy() < train_end.to_datetime64()]
    train = np.sort(in_time)
    if not len(train):
        raise DataError("--split time" + (f" with --gap {gap}" if gap else "")
                        + " leaves no training sessions")
    _check_converters(ordered, train, test)
    bounds = {"train_until": str(stamps.iloc[train].max()),
              "test_from": str(stamps.iloc[test].min()), "test_until": str(stamps.max())}
    return Split(train=train, test=test, test_size=test_size, seed=0,
                 hash=split_hash(n, test, TIME), kind=TIME, time_column=time_column,
                 gap=gap, bounds=bounds, train_in_time=in_time)


def time_column_of(frame: Any, wanted: str | None) -> str:
    """The column a time split orders by: ``wanted``, else the table's only timestamp column."""
    from pandas.api import types as pdt

    from revcli.errors import ConfigError, DataError

    stamps = [str(c) for c in frame.columns if pdt.is_datetime64_any_dtype(frame[c].dtype)]
    if wanted:
        if wanted not in frame.columns:
            raise DataError(f"--time-column {wanted!r} is not a column of this table")
        dtype = frame[wanted].dtype
        if pdt.is_numeric_dtype(dtype) or pdt.is_bool_dtype(dtype):
            # A number has no unit (seconds? milliseconds? an hour of the day?): ordering by
            # it would be a guess, so the table must say it is a time.
            raise DataError(f"--time-column {wanted!r} is a number ({dtype}), not a timestamp; "
                            "convert it in the table (epoch seconds: pd.to_datetime(x, "
                            "unit='s')) or choose a timestamp column")
        return wanted
    if len(stamps) == 1:
        return stamps[0]
    if not stamps:
        raise DataError("--split time needs a timestamp column and this table has none; give "
                        "--time-column or use --split random")
    raise ConfigError(f"--split time: the table has {len(stamps)} timestamp columns "
                      f"({', '.join(stamps)}); choose one with --time-column")


def hash_recipe(meta: dict[str, Any]) -> tuple[str, int, float]:
    """The key, seed and test size of a model's recorded hash split: what a cluster needs to
    decide each row's side part by part. A model whose split is another kind (stratified over
    the whole table, or its latest sessions) is refused: no worker can decide a row's side
    from its own parts."""
    from revcli.errors import ConfigError

    recorded = meta.get("split") if isinstance(meta.get("split"), dict) else {}
    kind = recorded.get("kind", RANDOM)
    if kind != HASH:
        how = ("a time split (the latest sessions of the whole table)" if kind == TIME else
               "stratified on is_ordered over the whole table")
        raise ConfigError(f"the model was trained in this process: its holdout is {how}, which "
                          "a cluster cannot make part by part; evaluate it without --cluster, "
                          "or give --data with held-out rows")
    test_size = recorded.get("test_size", meta.get("test_size"))
    if test_size is None:
        raise ConfigError("the model records no test size, so its holdout cannot be "
                          "recomputed; give --data FILE with held-out rows")
    return (str(recorded.get("key") or ROW_POSITION), int(recorded.get("seed", 0)),
            float(test_size))


def recompute(meta: dict[str, Any], frame: Any, ordered: np.ndarray) -> Split:
    """A model's split made again from what it recorded (evaluate's holdout)."""
    from revcli.errors import ConfigError

    recorded = meta.get("split") if isinstance(meta.get("split"), dict) else {}
    kind = recorded.get("kind", RANDOM)
    test_size = recorded.get("test_size", meta.get("test_size"))
    if test_size is None:
        raise ConfigError("the model records no test size, so its holdout cannot be "
                          "recomputed; give --data FILE with held-out rows")
    if kind == HASH:
        key, seed, size = hash_recipe(meta)
        keys = np.arange(len(ordered)) if key == ROW_POSITION else frame[key].to_numpy()
        return make_hash_split(keys, ordered, size, seed, key)
    if kind == TIME:
        column = recorded.get("time_column")
        return make_time_split(frame[column], ordered, float(test_size), column,
                               recorded.get("gap"))
    seed = recorded.get("seed", meta.get("seed"))
    if seed is None:
        raise ConfigError("the model records no seed, so its holdout cannot be recomputed; "
                          "give --data FILE with held-out rows")
    return make_split(ordered, test_size=float(test_size), seed=int(seed))
