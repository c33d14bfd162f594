"""Getting training tables into the workspace: S3, local files and the demo generator.

Every source goes through the same gate: the table must satisfy the data contract
(:func:`revcli.data.validate`) before it is cached under its sha256 and becomes current.

An S3 object is fetched with one HEAD first. When its ETag and size match what a cached manifest
recorded for the same bucket, key and endpoint, nothing is downloaded ("up to date"). Otherwise it
is streamed into a temp file inside the workspace, checked (size, parquet footer, data contract),
hashed while it streams, and renamed into ``datasets/<sha256>.parquet`` with its manifest; any
failure on the way leaves the cache and the current dataset as they were and no temp file behind.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from revcli import atomic, data, processes
from revcli.errors import ConfigError, DataError, NotFoundError, StorageError
from revcli.progress import SILENT, Reporter
from revcli.storage import Location, ObjectInfo, S3Storage, parse_uri
from revcli.workspace import DatasetRecord, Workspace

# Temp files of downloads killed outright (SIGKILL, power loss) are removed by `datasets prune`:
# at once when their writer's pid is provably gone, else once they are this old (a download
# still running in another process, or on another host sharing the workspace, keeps its file).
STALE_TEMP_SECONDS = 3600


FULL_ROWS = data.FULL_ROWS


def fetch_demo(workspace: Workspace, rows: int = FULL_ROWS, seed: int = 0,
               reporter: Reporter = SILENT) -> DatasetRecord:
    """Generate the demo table (see :mod:`revcli.demo`) and make it the current dataset."""
    from revcli import demo

    if rows < 100:
        raise ConfigError(f"--rows must be at least 100 for a usable split, got {rows}")
    reporter.step(f"generating {rows:,} demo sessions (seed {seed})")
    frame = demo.generate(rows=rows, seed=seed)
    return workspace.write_dataset(frame, source=f"demo:rows={rows},seed={seed}",
                                   extra={"demo": {"rows": rows, "seed": seed}})


def fetch_local(workspace: Workspace, path: str | Path, reporter: Reporter = SILENT,
                make_current: bool = True) -> DatasetRecord:
    """Validate a local parquet file (path or file:// URI) and cache it; ``make_current``
    makes it the workspace's current dataset (``revcli fetch`` does, ``train --data`` does
    not)."""
    path = Path(str(path).removeprefix("file://"))
    reporter.step(f"validating {path}")
    data.validate(data.read_parquet(path))
    return workspace.register_file(path, source=str(path.resolve()),
                                   make_current=make_current)


def inspect_local(path: str | Path, reporter: Reporter = SILENT) -> DatasetRecord:
    """A local parquet file validated and hashed, but not cached yet: its record points at the
    file itself. :meth:`Workspace.register_file` caches it once the command that reads it has
    succeeded, so a failed ``train --data`` leaves the workspace as it was."""
    import pyarrow.parquet as pq

    path = Path(str(path).removeprefix("file://"))
    reporter.step(f"validating {path}")
    data.validate(data.read_parquet(path))
    meta = pq.read_metadata(path)
    schema = meta.schema.to_arrow_schema()
    stat = path.stat()
    return DatasetRecord(
        sha256=atomic.sha256_file(path), path=path, source=str(path.resolve()),
        rows=meta.num_rows, columns=[{"name": n, "dtype": str(t)} for n, t in
                                     zip(schema.names, schema.types, strict=True)],
        created="", bytes=stat.st_size, extra={"pending": True}, mtime_ns=stat.st_mtime_ns)


DEMO_NOTE = ("no dataset in {root}: generated the demo set ({rows:,} rows, seed {seed}) and "
             "made it current; `revcli fetch` gets the real one")


def current_or_demo(workspace: Workspace, rows: int = FULL_ROWS, seed: int = 0,
                    reporter: Reporter = SILENT) -> tuple[DatasetRecord, str | None]:
    """The workspace's current dataset, or -- only in a workspace that never had one -- the
    full-size demo set, generated and made current. Returns (record, the note saying a demo set
    was generated, else None); the note is also warned, so it shows even with -q / --json.

    A current dataset that is broken or missing is an error (see Workspace.current): training on
    a substitute would succeed quietly on the wrong data.
    """
    record = workspace.current()
    if record is not None:
        return record, None
    if workspace.had_datasets():
        raise NotFoundError(f"workspace {workspace.root} has cached datasets but none is "
                            "current; `revcli datasets use SHA` picks one (`revcli datasets list` "
                            "shows them), or `revcli fetch` gets one")
    record = fetch_demo(workspace, rows=rows, seed=seed, reporter=reporter)
    note = DEMO_NOTE.format(root=workspace.root, rows=rows, seed=seed)
    reporter.warn(note)
    return record, note


@dataclass
class FetchResult:
    """What a fetch did: the dataset that is now current, and whether bytes moved."""

    record: DatasetRecord
    up_to_date: bool = False
    downloaded: int = 0
    seconds: float = 0.0
    download_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.record.to_dict(), "current": True, "up_to_date": self.up_to_date,
                "downloaded_bytes": self.downloaded, "seconds": round(self.seconds, 3),
                "download_seconds": round(self.download_seconds, 3)}


def is_s3(source: str) -> bool:
    return source.startswith("s3://")


def _origin(info: ObjectInfo, endpoint: str) -> dict[str, Any]:
    return {"bucket": info.location.bucket, "key": info.location.key, "endpoint": endpoint,
            "etag": info.etag, "size": info.size, "last_modified": info.last_modified}


def _same_object(origin: dict[str, Any], location: Location, endpoint: str) -> bool:
    return (origin.get("bucket"), origin.get("key"), origin.get("endpoint")) == (
        location.bucket, location.key, endpoint)


def cached_copy(workspace: Workspace, info: ObjectInfo, endpoint: str) -> DatasetRecord | None:
    """The cached dataset whose manifest recorded this very object version (same bucket, key,
    endpoint, ETag and size), if its file is still there and whole."""
    for record in reversed(workspace.datasets()):
        for origin in record.extra.get("s3_origins", []):
            if (_same_object(origin, info.location, endpoint)
                    and (origin.get("etag"), origin.get("size")) == (info.etag, info.size)
                    and record.bytes == info.size and workspace.is_whole(record)):
                return record
    return None


class _HashingWriter:
    """A file-like sink that hashes what it writes (the sha256 costs no second pass)."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()

    def write(self, chunk: bytes) -> int:
        written = self.fh.write(chunk)
        self.digest.update(chunk)
        return written


def _disk_error(exc: OSError, location: Location, directory: Path) -> StorageError:
    if exc.errno == errno.ENOSPC:
        cause = "no space left on device"
    elif exc.errno == errno.EDQUOT:
        cause = "disk quota exceeded"
    else:
        cause = exc.strerror or type(exc).__name__
    return StorageError(f"cannot write {location} to {directory}: {cause}; free some space or "
                        "choose another --workspace (the cached datasets are unchanged)")


def _check_table(path: Path, location: Location) -> None:
    """Parquet footer readable, then the data contract; errors name the S3 object."""
    import pyarrow.parquet as pq

    with data.parquet_errors(path, f"{location} (nothing was cached)"):
        pq.read_metadata(path)
    try:
        data.validate(data.read_parquet(path))
    except DataError as exc:
        raise DataError(f"{location} breaks the data contract: {exc}; nothing was "
                        "cached") from None


def fetch_s3(workspace: Workspace, uri: str, storage: S3Storage, force: bool = False,
             reporter: Reporter = SILENT) -> FetchResult:
    """Make the S3 object ``uri`` the current dataset, downloading it only when the cache lacks
    this version of it (or ``force``)."""
    start = time.perf_counter()
    location = parse_uri(uri)
    reporter.step(f"checking {location}")
    info = storage.head(location)
    endpoint = storage.endpoint
    workspace.ensure()
    if not force:
        cached = cached_copy(workspace, info, endpoint)
        if cached is not None:
            current = workspace.current(strict=False)
            if current is None or current.sha256 != cached.sha256:
                workspace.set_current(cached.sha256)
            return FetchResult(cached, up_to_date=True, seconds=time.perf_counter() - start)

    directory = workspace.datasets_dir
    try:
        with atomic.temp_path(directory, suffix=".parquet.tmp") as tmp:
            with open(tmp, "wb") as fh, reporter.task(
                    f"downloading {location}", total=info.size, unit="bytes") as task:
                sink = _HashingWriter(fh)
                clock = time.perf_counter()
                written = storage.download(info, sink, progress=task.advance)
                fh.flush()
                os.fsync(fh.fileno())
                download_seconds = time.perf_counter() - clock
            sha = sink.digest.hexdigest()
            reporter.step(f"checking {location} ({written:,} bytes)")
            _check_table(tmp, location)
            # The same bytes may already be cached from another key: keep its origins too, so
            # either key is a cache hit next time.
            previous = [o for r in workspace.datasets() if r.sha256 == sha
                        for o in r.extra.get("s3_origins", [])]
            origin = _origin(info, endpoint)
            origins = [o for o in previous if not _same_object(o, location, endpoint)] + [origin]
            record = workspace.register_file(tmp, source=location.uri, move=True, sha256=sha,
                                             extra={"s3": origin, "s3_origins": origins})
    except OSError as exc:
        raise _disk_error(exc, location, directory) from None
    return FetchResult(record, downloaded=written, seconds=time.perf_counter() - start,
                       download_seconds=download_seconds)


def fetch(workspace: Workspace, source: str, storage: S3Storage | None = None,
          force: bool = False, reporter: Reporter = SILENT) -> FetchResult:
    """Fetch ``source`` (``s3://bucket/key``, a local path or ``file://`` URI) into the cache."""
    start = time.perf_counter()
    if is_s3(source):
        return fetch_s3(workspace, source, storage or S3Storage(), force=force,
                        reporter=reporter)
    if "://" in source and not source.startswith("file://"):
        raise ConfigError(f"cannot fetch {source!r}: give s3://bucket/key, a local parquet "
                          "path or a file:// URI")
    record = fetch_local(workspace, source, reporter=reporter)
    return FetchResult(record, seconds=time.perf_counter() - start)


@dataclass
class PruneResult:
    removed: list[DatasetRecord] = field(default_factory=list)
    temp_files: int = 0
    freed: int = 0
    kept: DatasetRecord | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"removed": [{"sha256": r.sha256, "source": r.source, "bytes": r.bytes}
                            for r in self.removed],
                "temp_files": self.temp_files, "freed_bytes": self.freed,
                "kept": self.kept.sha256 if self.kept else None}


def prune(workspace: Workspace, reporter: Reporter = SILENT) -> PruneResult:
    """Remove every cached dataset but the current one, and stale download temp files."""
    result = PruneResult(kept=workspace.current(strict=False))
    if result.kept is None and workspace.datasets():
        raise ConfigError("no current dataset, so nothing is known to be in use; `revcli fetch` "
                          "one first, then prune")
    for record in workspace.datasets():
        if result.kept is not None and record.sha256 == result.kept.sha256:
            continue
        reporter.step(f"removing {record.short} ({record.source})")
        workspace.remove_dataset(record.sha256)
        result.removed.append(record)
        result.freed += record.bytes
    for directory in (workspace.datasets_dir, workspace.root):
        if not directory.is_dir():
            continue
        now = time.time()
        for path in directory.glob(f"{atomic.INCOMING}*"):
            try:
                stat = path.stat()
                pid = atomic.writer_pid(path)
                if (pid is not None and processes.pid_gone(pid)) or (
                        now - stat.st_mtime > STALE_TEMP_SECONDS):
                    path.unlink()
                    result.temp_files += 1
                    result.freed += stat.st_size
            except OSError:
                continue
    return result
