"""The data contract of a training table, and loading it.

A table is one row per website session with a ``revenue`` target (USD, 0.0 without an order):
numeric, finite, non-negative, never missing. ``is_ordered`` is derived from ``revenue > 0`` when
absent and must agree with it when present. Every other column is a feature: a number or flag, a
category (text or a pandas categorical) or a timestamp, with gaps allowed; the model encodes them
(revcli.features). Identifier columns (``id`` or a name ending in ``_id``) are carried along for
output but never learned from, because a session id is a clock and would smuggle time into the
model. Nothing here hard-codes the 12 feature names of the real table, so an extra column just
works.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli.errors import DataError, NotFoundError, first_line

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TARGET = "revenue"
ORDER_FLAG = "is_ordered"
#: Sessions in the real table (Maven Fuzzy Factory), and the size of the full demo set.
FULL_ROWS = 472_871
FLOAT32_MAX = 3.4028234663852886e38


def is_id_column(name: str) -> bool:
    lowered = name.lower()
    return lowered == "id" or lowered.endswith("_id")


@dataclass
class Table:
    """A validated table, split into what the model learns from and what it predicts."""

    X: pd.DataFrame
    y: np.ndarray
    ordered: np.ndarray
    features: list[str]
    ids: pd.DataFrame
    dropped: list[str]
    empty: list[str] = field(default_factory=list)  # missing on every row: left out

    @property
    def rows(self) -> int:
        return len(self.y)

    @property
    def converters(self) -> int:
        return int(self.ordered.sum())


@contextlib.contextmanager
def parquet_errors(path: Path, label: str | None = None) -> Iterator[None]:
    """Every way reading a parquet file can fail, as one DataError line naming it (``label``:
    how to name it, e.g. its S3 URI)."""
    import pyarrow as pa

    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{label or path} is not a readable parquet file "
                        f"({first_line(exc)})") from None


def open_parquet(path: str | Path) -> Any:
    """A ``pyarrow.parquet.ParquetFile`` (footer read, nothing else), or for a directory of
    parts (:mod:`revcli.parts`) an object with the same ``schema_arrow``, ``metadata.num_rows``
    and ``iter_batches`` (the parts' rows in order); or one error line."""
    import pyarrow.parquet as pq

    path = _existing(path)
    if path.is_dir():
        return Parts(path)
    with parquet_errors(path):
        return pq.ParquetFile(path, page_checksum_verification=True)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{path} does not exist")
    return path


def column_rule(field: Any) -> Any | None:
    """THE rule for an Arrow column kind, read by every command that reads a table (fetch,
    --data, evaluate, predict): the Arrow type to read it as (its own, or one the encoding
    takes), or None to read it as it is; a DataError naming the column for a kind no encoding
    takes (one line, before anything is cached or trained).

    - integers, floats, flags, text (``string``, ``large_string``), timestamps: as they are;
    - ``decimal``: as float64 (a number); ``float16``: as float32;
    - ``date``: as a timestamp (calendar features);
    - dictionary-encoded: text as a category, numbers as their value type;
    - ``null`` (a column missing on every row, whatever it was meant to be): as float64, all
      gaps -- :func:`validate` leaves such a column out of the features and says so;
    - nested (struct, list, map, union), binary, durations, times of day, anything else:
      refused."""
    import pyarrow as pa
    import pyarrow.types as t

    kind = field.type
    if t.is_dictionary(kind):
        value = kind.value_type
        if t.is_string(value) or t.is_large_string(value):
            return None
        kind = value
        inner = column_rule(pa.field(field.name, value))
        return inner if inner is not None else value
    if (t.is_integer(kind) or t.is_boolean(kind) or t.is_float32(kind) or t.is_float64(kind)
            or t.is_string(kind) or t.is_large_string(kind) or t.is_timestamp(kind)):
        return None
    if t.is_float16(kind):
        return pa.float32()
    if t.is_decimal(kind) or t.is_null(kind):
        return pa.float64()
    if t.is_date(kind):
        return pa.timestamp("ms")
    if t.is_nested(kind):
        what = "nested values (a struct, list or map per row)"
    elif t.is_binary(kind) or t.is_large_binary(kind) or t.is_fixed_size_binary(kind):
        what = "raw bytes"
    elif t.is_duration(kind):
        what = "durations"
    elif t.is_time(kind):
        what = "times of day"
    else:
        what = "values of a kind revcli cannot encode"
    raise DataError(f"column {field.name!r} holds {what} ({kind}), which is not a number, flag, "
                    "category (text) or timestamp; convert it or drop it before using the table")


def conform(table: Any) -> Any:
    """``table`` (an Arrow table or record batch) with :func:`column_rule` applied to every
    column: cast where the rule says so, refused (DataError naming the column) where it
    refuses."""
    import pyarrow as pa

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    for index, column_field in enumerate(table.schema):
        target = column_rule(column_field)
        if target is None:
            continue
        try:
            column = table.column(index).cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(f"column {column_field.name!r} ({column_field.type}) cannot be read "
                            f"as {target}: {first_line(exc, 160)}") from None
        table = table.set_column(index, pa.field(column_field.name, target), column)
    return table


def parts_dataset(directory: Path) -> Any:
    """The parts of ``directory`` as one ``pyarrow.dataset.Dataset``: the parts in sorted order
    (revcli.parts), each Hive ``key=value`` directory a column appended after the files'
    columns, typed as pyarrow infers it without dictionaries (int32 when every value is an
    integer, else string), so a key is a number or a category (text) to the data contract."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from revcli import parts

    relatives, _ = parts.list_local(directory)
    if not relatives:
        raise NotFoundError(f"{directory} holds no parquet parts (*.parquet files outside _ "
                            "and . names)")
    files = [str(directory / r) for r in relatives]
    # Page checksums verified where a part has them, as for one file (read_parquet).
    checked = ds.ParquetFileFormat(default_fragment_scan_options=ds.ParquetFragmentScanOptions(
        page_checksum_verification=True))
    options: dict[str, Any] = {"format": checked, "partition_base_dir": str(directory),
                               "partitioning": ds.HivePartitioning.discover(
                                   infer_dictionary=False)}
    with parquet_errors(directory):
        dataset = ds.dataset(files, **options)
        # The schema is the first part's; a categorical's index width follows each part's
        # number of levels, so dictionaries get int32 indices: every part fits.
        schema = dataset.schema
        for i, f in enumerate(schema):
            if pa.types.is_dictionary(f.type) and f.type.index_type != pa.int32():
                schema = schema.set(i, f.with_type(pa.dictionary(
                    pa.int32(), f.type.value_type, f.type.ordered)))
        if schema is dataset.schema:
            return dataset
        return ds.dataset(files, schema=schema, **options)


class Parts:
    """A directory of parts read the way ``pyarrow.parquet.ParquetFile`` reads one file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.dataset = parts_dataset(directory)
        with parquet_errors(directory):
            self.schema_arrow = self.dataset.schema
            self.metadata = _Meta(num_rows=self.dataset.count_rows())

    def iter_batches(self, batch_size: int, columns: Sequence[str]) -> Iterator[Any]:
        with parquet_errors(self.directory):
            yield from self.dataset.to_batches(columns=list(columns), batch_size=batch_size)


@dataclass(frozen=True)
class _Meta:
    num_rows: int


def read_parquet(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a parquet file or a directory of parts (:func:`parts_dataset`: the parts
    concatenated in sorted order, Hive keys as columns), turning every way it can fail into one
    DataError line, each column read as the data contract's one rule says
    (:func:`column_rule`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = _existing(path)
    wanted = list(columns) if columns is not None else None
    with parquet_errors(path):
        if path.is_dir():
            table = parts_dataset(path).to_table(columns=wanted)
        else:
            # Page checksums (revcli writes them: a page damaged in place fails here instead
            # of reading back as wrong values) are verified where the file has them.
            table = pq.read_table(path, columns=wanted, page_checksum_verification=True)
    table = conform(table)
    # Arrow's buffers are freed column by column as pandas takes them, and handed back to the
    # system at the end: else a table of millions of rows is held twice for the whole command.
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    pa.default_memory_pool().release_unused()
    return frame


def _check_kinds(frame: pd.DataFrame, target: bool = True) -> None:
    """Every column must be a number/flag, a category (text) or a timestamp; the target (and
    is_ordered) a number."""
    from pandas.api import types as pdt

    from revcli.features import kind

    for name in frame.columns:
        dtype = frame[name].dtype
        if target and name in (TARGET, ORDER_FLAG):
            if not (pdt.is_numeric_dtype(dtype) or pdt.is_bool_dtype(dtype)) or (
                    pdt.is_complex_dtype(dtype)):
                raise DataError(f"column {name!r} has dtype {dtype}; it must be numeric")
            continue
        if kind(dtype) is None:
            raise DataError(f"column {name!r} has dtype {dtype}, which is not a number, flag, "
                            "category (text) or timestamp; convert it or drop it before "
                            "training")


def validate(frame: pd.DataFrame, drop_features: Iterable[str] = (),
             require_converters: bool = True) -> Table:
    """Check ``frame`` against the data contract and split it into features and target."""
    import numpy as np

    if frame.shape[1] == 0 or len(frame) == 0:
        raise DataError("the table is empty (no rows or no columns)")
    if TARGET not in frame.columns:
        raise DataError(f"no {TARGET!r} column: the target is required "
                        f"(columns: {', '.join(map(str, frame.columns[:8]))}"
                        f"{', ...' if frame.shape[1] > 8 else ''})")
    id_columns = [c for c in frame.columns if is_id_column(str(c))]
    learnable = frame.drop(columns=id_columns)
    _check_kinds(learnable)

    y = learnable[TARGET].to_numpy(dtype=np.float64)
    n_nan = int(np.isnan(y).sum())
    if n_nan:
        raise DataError(f"{TARGET!r} has {n_nan:,} missing values; fill or drop those rows")
    n_inf = int((~np.isfinite(y) | (np.abs(y) > FLOAT32_MAX)).sum())
    if n_inf:
        raise DataError(f"{TARGET!r} has {n_inf:,} infinite or out-of-range values (beyond "
                        f"±{FLOAT32_MAX:.3g}, where the models' float32 arithmetic overflows); "
                        "fix or drop those rows")
    n_neg = int((y < 0).sum())
    if n_neg:
        raise DataError(f"{TARGET!r} has {n_neg:,} negative values; revenue must be >= 0 "
                        "(refunds are ignored by the contract)")
    ordered = y > 0
    if ORDER_FLAG in learnable.columns:
        flag = learnable[ORDER_FLAG].to_numpy()
        if np.isnan(flag.astype(np.float64)).any():
            raise DataError(f"{ORDER_FLAG!r} has missing values")
        mismatch = int(((flag.astype(np.float64) > 0) != ordered).sum())
        if mismatch:
            raise DataError(f"{ORDER_FLAG!r} disagrees with {TARGET} > 0 on {mismatch:,} rows; "
                            f"fix the table or drop the {ORDER_FLAG!r} column to derive it")
    if require_converters and not ordered.any():
        raise DataError(f"no converting sessions ({TARGET} > 0): there are no order values to "
                        "learn from")

    candidates = [c for c in learnable.columns if c not in (TARGET, ORDER_FLAG)]
    drop = list(dict.fromkeys(drop_features))
    unknown = [d for d in drop if d not in candidates]
    if unknown:
        raise DataError(f"--drop-feature {unknown[0]!r} is not a feature of this table "
                        f"(features: {', '.join(candidates)})")
    features = [c for c in candidates if c not in drop]
    # Missing on every row: nothing to learn, and no type to describe (MLflow's signature
    # cannot): left out, and said (Table.empty).
    empty = [c for c in features if bool(learnable[c].isna().all())]
    features = [c for c in features if c not in empty]
    if not features:
        raise DataError("no features left to learn from after --drop-feature"
                        + (f" ({', '.join(map(repr, empty))} missing on every row)"
                           if empty else ""))
    X = _finite(learnable[features])
    return Table(X=X, y=y, ordered=ordered, features=features, ids=frame[id_columns],
                 dropped=drop, empty=empty)


def _finite(frame: pd.DataFrame) -> pd.DataFrame:
    """The feature columns as they are (the model encodes them: revcli.features), refusing
    infinities and numbers float32 cannot hold (they would break every estimator's fit).
    Missing values are allowed: the model handles or imputes them."""
    import numpy as np

    for name in frame.columns:
        values = frame[name].to_numpy()
        if values.dtype.kind == "f":
            bad = int((np.isinf(values) | (np.abs(np.nan_to_num(values)) > FLOAT32_MAX)).sum())
        elif values.dtype.kind in "iu":
            bad = int((np.abs(values.astype(np.float64)) > FLOAT32_MAX).sum())
        else:
            bad = 0
        if bad:
            raise DataError(f"feature {str(name)!r} has {bad:,} infinite or out-of-range values "
                            f"(beyond ±{FLOAT32_MAX:.3g}, float32's limit); fix them or use "
                            f"--drop-feature {str(name)!r}")
    return frame


def features_for(frame: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """The model's feature columns of ``frame`` (as they are: the model encodes them), naming
    any that are missing and refusing unsupported types and infinities."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise DataError(f"the table lacks {len(missing)} feature(s) the model needs: "
                        f"{', '.join(missing)}")
    from revcli.features import check_drift

    check_drift(frame, features)  # a duplicated column: refused naming it
    X = frame[list(features)]
    _check_kinds(X, target=False)
    return _finite(X)
