"""``revcli predict`` as a function: batch scoring of a parquet file, in constant memory.

The input is read in record batches (``pyarrow.parquet.ParquetFile.iter_batches``) and each batch's
predictions are appended to the output as they are made, so a file larger than memory works; the
output is written to a temp file beside ``out`` and renamed when complete, so a reader (or the next
Airflow task) never sees half of it. Its rows are the input's, in the input's order, beside the
input's id columns (``revcli.data.is_id_column``; without any, a ``row`` column holds the input row
number). ``prediction`` is what the model predicts, in the words of its strategy
(``Strategy.meaning``, stored in the file's metadata); strategies with stages add each stage's part
(two-stage models: ``p_order``, P(order), and ``order_value``, E[revenue | order]).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from revcli import atomic, modelref, tracking
from revcli.data import conform, features_for, is_id_column, open_parquet
from revcli.errors import ConfigError, DataError
from revcli.progress import SILENT, Reporter
from revcli.workspace import Workspace

if TYPE_CHECKING:
    from revcli.settings import Settings

BATCH_ROWS = 100_000
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
@dataclass
class PredictResult:
    model: modelref.LoadedModel
    input: Path
    output: Path
    format: str
    rows: int
    batches: int
    columns: list[str]
    id_columns: list[str]
    ignored: list[str]
    prediction: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), "input": str(self.input),
                "output": str(self.output), "format": self.format, "rows": self.rows,
                "batches": self.batches, "columns": self.columns, "id_columns": self.id_columns,
                "ignored_columns": self.ignored, "prediction": self.prediction,
                "seconds": round(self.seconds, 3)}


def output_format(out: Path) -> str:
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ConfigError(f"--out {out}: the suffix must be .parquet, .pq or .csv")
    return fmt


class _Writer:
    """Appends arrow tables to a parquet or CSV file."""

    def __init__(self, path: Path, fmt: str, schema: Any) -> None:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        self._writer = (pq.ParquetWriter(path, schema, write_page_checksum=True)
                        if fmt == "parquet"
                        else pacsv.CSVWriter(path, schema))

    def write(self, table: Any) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()


def _batches(source: Any, path: Path, **options: Any) -> Iterator[Any]:
    """``source.iter_batches(**options)``, a read failure (a damaged page: its checksum) as one
    error line naming ``path`` -- and only the read: the output's own failures stay theirs."""
    from revcli.data import parquet_errors

    batches = source.iter_batches(**options)
    while True:
        with parquet_errors(path):
            batch = next(batches, None)
        if batch is None:
            return
        yield batch


def predict(settings: Settings, *, data: str | Path, out: str | Path, run: str | None = None,
            model: str | Path | None = None, trust: bool = False,
            batch_rows: int = BATCH_ROWS, reporter: Reporter = SILENT) -> PredictResult:
    """Score every row of ``data`` with a model (``run`` id/alias or ``model`` file) into
    ``out`` (``.parquet`` or ``.csv``; on a cluster also a directory of parts), in this
    process or on the cluster of ``settings.cluster`` (revcli.engines)."""
    from revcli import engines

    with engines.open_engine(settings, reporter) as engine:
        return engine.predict(settings, data=data, out=out, run=run, model=model, trust=trust,
                              batch_rows=batch_rows, reporter=reporter)


def load_model(settings: Settings, *, run: str | None, model: str | Path | None, trust: bool,
               reporter: Reporter) -> modelref.LoadedModel:
    """The model to score with, verified before it is unpickled (revcli.modelref)."""
    ws = Workspace(settings.workspace)
    # Only read: the workspace's store is not created when it does not exist.
    tracker, _ = tracking.connect(settings, ws, experiment=False, create=False, reading=True)
    store = None if tracker.is_workspace_store and not ws.mlflow_db.is_file() else tracker
    return modelref.load(settings, ws, run=run, model_file=model, trust=trust, tracker=store,
                         reporter=reporter)


def columns_of(data: Any, names: list[str], features: list[str],
               reporter: Reporter) -> tuple[list[str], list[str]]:
    """(id columns, ignored columns) of an input with columns ``names``; a missing feature is
    an error naming it."""
    missing = [f for f in features if f not in names]
    if missing:
        raise DataError(f"{data} lacks {len(missing)} column(s) the model needs: "
                        f"{', '.join(missing)}")
    ids = [c for c in names if is_id_column(c)]
    ignored = [c for c in names if c not in features and c not in ids]
    if ignored:
        reporter.note(f"ignoring {len(ignored)} column(s) the model does not use: "
                      f"{', '.join(ignored)}")
    return ids, ignored


def output_schema(loaded: modelref.LoadedModel, id_fields: list[Any]) -> Any:
    """The output's arrow schema: the id columns (else ``row``), then the model's outputs;
    what the prediction means and which model made it in the metadata."""
    import pyarrow as pa

    fields = [*id_fields] if id_fields else [pa.field("row", pa.int64())]
    fields += [pa.field(name, pa.float64()) for name in loaded.model.output_columns()]
    return pa.schema(fields, metadata={
        "revcli.prediction": loaded.model.meaning(), "revcli.model": loaded.source,
        "revcli.model_sha256": loaded.sha256 or "", "revcli.run_id": loaded.run_id or ""})


def predict_file(settings: Settings, *, data: str | Path, out: str | Path,
                 run: str | None = None, model: str | Path | None = None, trust: bool = False,
                 batch_rows: int = BATCH_ROWS, reporter: Reporter = SILENT) -> PredictResult:
    """:func:`predict` in this process, batch by batch."""
    import pyarrow as pa

    start = time.perf_counter()
    data, out = Path(str(data).removeprefix("file://")), Path(out)
    fmt = output_format(out)
    if batch_rows < 1:
        raise ConfigError(f"--batch-rows must be at least 1, got {batch_rows}")
    source = open_parquet(data)
    if out.resolve() == data.resolve():
        raise ConfigError(f"--out {out} is the input file; write the predictions elsewhere")
    if data.is_dir() and data.resolve() in out.resolve().parents:
        # it would become a part of the input the next time the directory is read
        raise ConfigError(f"--out {out} is inside the input directory of parts {data}; write "
                          "the predictions elsewhere")

    loaded = load_model(settings, run=run, model=model, trust=trust, reporter=reporter)
    features = loaded.features
    names = list(source.schema_arrow.names)
    ids, ignored = columns_of(data, names, features, reporter)
    outputs = loaded.model.output_columns()
    schema = output_schema(loaded, [source.schema_arrow.field(c) for c in ids])
    fields = list(schema)
    meaning = loaded.model.meaning()

    total = source.metadata.num_rows
    if total == 0:
        reporter.warn(f"{data} has no rows: the output holds only the header")
    done = batches = 0
    with atomic.atomic_path(out, suffix=out.suffix) as tmp:
        writer = _Writer(tmp, fmt, schema)
        try:
            with reporter.task(f"scoring {data.name}", total=total, unit="rows") as task:
                for batch in _batches(source, data, batch_size=batch_rows,
                                      columns=[*features, *ids]):
                    frame = conform(batch).to_pandas()
                    try:
                        X = features_for(frame, features)
                    except DataError as exc:
                        raise DataError(f"{data} rows {done:,}-{done + len(frame) - 1:,}: "
                                        f"{exc}") from None
                    columns = ([batch.column(c) for c in ids] if ids
                               else [pa.array(np.arange(done, done + len(frame)), pa.int64())])
                    parts = loaded.model.predict_parts(X)
                    columns += [pa.array(parts[name], pa.float64()) for name in outputs]
                    writer.write(pa.Table.from_arrays(columns, schema=schema))
                    done += len(frame)
                    batches += 1
                    task.advance(len(frame))
        finally:
            writer.close()
        if done != total:
            raise DataError(f"read {done:,} rows of {data} but its footer says {total:,}; the "
                            "file is damaged")
    return PredictResult(model=loaded, input=data, output=out, format=fmt, rows=done,
                         batches=batches, columns=[f.name for f in fields], id_columns=ids,
                         ignored=ignored, prediction=meaning,
                         seconds=time.perf_counter() - start)
