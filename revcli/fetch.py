"""Getting training tables into the workspace: S3, local files and the demo generator.

Every source goes through the same gate: the table must satisfy the data contract
(:func:`revcli.data.validate`) before it is cached under its sha256 and becomes current.

An S3 object is fetched with one HEAD first. When its ETag and size match what a cached manifest
recorded for the same bucket, key and endpoint, nothing is downloaded ("up to date"). Otherwise it
is streamed into a temp file inside the workspace, checked (size, parquet footer, data contract),
hashed while it streams, and renamed into ``datasets/<sha256>.parquet`` with its manifest; any
failure on the way leaves the cache and the current dataset as they were and no temp file behind.

A directory or S3 prefix of parquet parts (:mod:`revcli.parts`) is one dataset: an S3 prefix is
listed (one paginated LIST); when every part's key, size and ETag match what a cached manifest
recorded for the same endpoint, bucket and prefix, nothing is downloaded. Otherwise the parts are
downloaded (or, unchanged ones, copied from the cache) into a temp directory inside the
workspace, checked part by part, and the directory is renamed into ``datasets/<sha256>/``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from revcli import atomic, data, parts, processes
from revcli.errors import ConfigError, DataError, NotFoundError, StorageError
from revcli.parts import Part
from revcli.progress import SILENT, Reporter
from revcli.storage import CHUNK, Location, MissingObject, ObjectInfo, S3Storage, parse_uri
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
    """Validate a local parquet file or directory of parts (path or file:// URI) and cache it;
    ``make_current`` makes it the workspace's current dataset (``revcli fetch`` does,
    ``train --data`` does not)."""
    path = Path(str(path).removeprefix("file://"))
    if path.is_dir():
        return fetch_local_parts(workspace, path, reporter=reporter, make_current=make_current)
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
    if path.is_dir():
        return _inspect_parts(path, reporter)
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


def _label(directory: Path) -> str:
    """A directory as errors name it: as given, with one trailing slash."""
    return str(directory).rstrip("/") + "/"


def _source(directory: Path) -> str:
    """A local directory of parts as a dataset's source: absolute, with a trailing slash."""
    return str(directory.resolve()) + "/"


def _local_parts(directory: Path, reporter: Reporter) -> list[str]:
    relatives, skipped = parts.list_local(directory)
    # _SUCCESS, _common_metadata and dotfiles are expected beside parts; say only what surprises.
    skipped = [s for s in skipped if not any(c.startswith(("_", ".")) for c in s.split("/"))]
    if not relatives:
        raise NotFoundError(f"{_label(directory)} holds no parquet parts (*.parquet files "
                            "outside _ and . names)")
    if skipped:
        more = ", ..." if len(skipped) > 3 else ""
        reporter.note(f"skipping {len(skipped)} file(s) of {_label(directory)} that are not "
                      f"parquet parts: {', '.join(skipped[:3])}{more}")
    return relatives


def _inspect_parts(directory: Path, reporter: Reporter) -> DatasetRecord:
    """:func:`inspect_local` for a directory of parts: checked and hashed in place."""
    relatives = _local_parts(directory, reporter)
    reporter.step(f"validating {len(relatives)} parts of {_label(directory)}")
    rows, converters = parts.check(directory, relatives, _label(directory))
    shas = parts.hash_local(directory, relatives)
    entries = [Part(path=r, bytes=(directory / r).stat().st_size, rows=n, sha256=h,
                    converters=c)
               for (r, h), n, c in zip(shas, rows, converters, strict=True)]
    schema = data.parts_dataset(directory).schema
    return DatasetRecord(
        sha256=parts.dataset_sha256(shas), path=directory, source=_source(directory),
        rows=sum(rows), columns=[{"name": n, "dtype": str(t)} for n, t in
                                 zip(schema.names, schema.types, strict=True)],
        created="", bytes=sum(p.bytes for p in entries), extra={"pending": True},
        parts=[p.to_dict() for p in entries])


def _checked(workspace: Workspace, shas: list[tuple[str, str]],
             also: Sequence[Part] = ()) -> dict[str, int]:
    """{relative path: converters} of the parts whose bytes (sha256) a cached dataset already
    holds (or ``also`` lists), checked when it was fetched: their contract check is not
    repeated."""
    known: dict[str, int] = {}
    for part in [p for r in workspace.datasets() for p in r.part_list()] + list(also):
        if part.converters is not None:
            known[part.sha256] = part.converters
    return {rel: known[sha] for rel, sha in shas if sha in known}


def _copy_hashing(src: Path, dest: Path, progress: Any = None) -> str:
    """Copy ``src`` to ``dest`` (fsynced) and return its sha256, from one read."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        fin = open(src, "rb")  # noqa: SIM115  (closed below; a read error is told apart)
    except OSError as exc:
        raise StorageError(f"cannot read {src}: {exc.strerror or exc}") from None
    with fin, open(dest, "wb") as fout:
        sink = _HashingWriter(fout)
        while True:
            try:
                chunk = fin.read(CHUNK)
            except OSError as exc:
                raise StorageError(f"cannot read {src}: {exc.strerror or exc}") from None
            if not chunk:
                break
            sink.write(chunk)
            if progress is not None:
                progress(len(chunk))
        fout.flush()
        os.fsync(fout.fileno())
    return sink.digest.hexdigest()


def fetch_local_parts(workspace: Workspace, directory: str | Path, reporter: Reporter = SILENT,
                      make_current: bool = True,
                      inspected: DatasetRecord | None = None) -> DatasetRecord:
    """Cache a local directory of parquet parts (:mod:`revcli.parts`). Its parts are hashed
    where they are first: a dataset already cached whole under that sha256 is used as it is
    (nothing copied). Otherwise they are copied into a temp directory inside the workspace
    while hashed again, checked there part by part (a part with the bytes of one checked
    before only by its footer), and the directory is renamed into ``datasets/<sha256>/``.
    ``inspected``: the record :func:`inspect_local` made of it (a DataError if it changed
    since; its parts count as checked)."""
    directory = Path(str(directory).removeprefix("file://"))
    relatives = _local_parts(directory, reporter)
    label = _label(directory)
    changed = DataError(f"{label} changed while revcli was reading it; run the command again")
    workspace.ensure()
    reporter.step(f"hashing {len(relatives)} parts of {label}")
    try:
        hashed = parts.hash_local(directory, relatives)
    except OSError as exc:
        raise StorageError(f"cannot read {label}: {exc.strerror or exc}") from None
    sha = parts.dataset_sha256(hashed)
    if inspected is not None and sha != inspected.sha256:
        raise changed
    cached = workspace.cached(sha)
    if cached is not None:
        if make_current:
            workspace.set_current(sha)
        return cached
    total = sum((directory / r).stat().st_size for r in relatives)
    try:
        with atomic.temp_dir(workspace.datasets_dir, suffix=".parts.tmp") as tmp:
            with reporter.task(f"copying {len(relatives)} parts of {label}", total=total,
                               unit="bytes") as task:
                shas = [(r, _copy_hashing(directory / r, tmp / r, task.advance))
                        for r in relatives]
            if shas != hashed:
                raise changed
            reporter.step(f"checking {len(relatives)} parts of {label}")
            also = inspected.part_list() if inspected is not None else ()
            rows, converters = parts.check(tmp, relatives, label,
                                           checked=_checked(workspace, shas, also))
            entries = [Part(path=r, bytes=(tmp / r).stat().st_size, rows=n, sha256=h,
                            converters=c)
                       for (r, h), n, c in zip(shas, rows, converters, strict=True)]
            return workspace.register_parts(tmp, sha, entries, source=_source(directory),
                                            make_current=make_current)
    except OSError as exc:
        raise _disk_error(exc, label, workspace.datasets_dir) from None


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
    # A dataset of parts: how many were downloaded, and how many copied from the cache instead.
    downloaded_parts: int = 0
    reused_parts: int = 0

    def to_dict(self) -> dict[str, Any]:
        body = {"dataset": self.record.to_dict(), "current": True,
                "up_to_date": self.up_to_date, "downloaded_bytes": self.downloaded,
                "seconds": round(self.seconds, 3),
                "download_seconds": round(self.download_seconds, 3)}
        if self.record.is_parts:
            body.update(parts=len(self.record.parts), downloaded_parts=self.downloaded_parts,
                        reused_parts=self.reused_parts)
        return body


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


def _disk_error(exc: OSError, location: Location | str, directory: Path) -> StorageError:
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
    location = parse_uri(uri, prefix=True)
    if location.is_prefix:
        return fetch_s3_parts(workspace, location, storage, force=force, reporter=reporter)
    reporter.step(f"checking {location}")
    try:
        info = storage.head(location)
    except MissingObject:
        # No object of that exact key: it may name a "directory" of parts (s3://b/sessions).
        try:
            listing = storage.list(location.as_prefix())
        except StorageError:
            listing = []
        prefix = location.as_prefix()
        if not any(parts.is_part(_relative(o, prefix)) for o in listing):
            raise
        return fetch_s3_parts(workspace, prefix, storage, force=force, reporter=reporter,
                              listing=listing)
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


def _relative(info: ObjectInfo, prefix: Location) -> str:
    return info.location.key[len(prefix.key):]


def _listed(listing: dict[str, ObjectInfo]) -> dict[str, dict[str, Any]]:
    """What a manifest records of a listing, and a cache hit compares: {part: size, ETag}."""
    return {rel: {"size": info.size, "etag": info.etag} for rel, info in listing.items()}


def _same_prefix(origin: dict[str, Any], prefix: Location, endpoint: str) -> bool:
    return (origin.get("bucket"), origin.get("prefix"), origin.get("endpoint")) == (
        prefix.bucket, prefix.key, endpoint)


def cached_parts_copy(workspace: Workspace, prefix: Location, listing: dict[str, ObjectInfo],
                      endpoint: str) -> DatasetRecord | None:
    """The cached dataset whose manifest recorded exactly these parts (the same relative keys,
    sizes and ETags) under this prefix, bucket and endpoint, if its parts are still whole."""
    listed = _listed(listing)
    for record in reversed(workspace.datasets()):
        if not record.is_parts:
            continue
        sizes = {p.path: p.bytes for p in record.part_list()}
        for origin in record.extra.get("s3_origins", []):
            if (_same_prefix(origin, prefix, endpoint) and origin.get("parts") == listed
                    and sizes == {rel: v["size"] for rel, v in listed.items()}
                    and workspace.is_whole(record)):
                return record
    return None


def _cached_parts(workspace: Workspace, bucket: str,
                  endpoint: str) -> dict[tuple[str, str, int], tuple[Path, str]]:
    """Part files cached from this bucket and endpoint, by (key, ETag, size): what a fetch of a
    prefix with some changed parts copies instead of downloading."""
    found: dict[tuple[str, str, int], tuple[Path, str]] = {}
    for record in workspace.datasets():
        origin = record.extra.get("s3") or {}
        if not record.is_parts or (origin.get("bucket"), origin.get("endpoint")) != (
                bucket, endpoint):
            continue
        for part in record.part_list():
            if part.key and part.etag:
                found[(part.key, part.etag, part.bytes)] = (record.path / part.path,
                                                            part.sha256)
    return found


# Parts downloaded at once: the requests wait on the network, not on a core.
PART_THREADS = 4


class _Stopped(Exception):
    """Another part failed (or Ctrl-C): the downloads still running stop at their next chunk."""


def _get_parts(storage: S3Storage, listing: dict[str, ObjectInfo],
               reusable: dict[tuple[str, str, int], tuple[Path, str]], tmp: Path,
               task: Any) -> dict[str, tuple[str, int | None]]:
    """Each part into ``tmp/<relative path>``: copied from the cache when an unchanged copy is
    there, else downloaded (``PART_THREADS`` at once). Returns {relative path: (sha256, bytes
    downloaded, or None when copied)}; the first failure is raised once the others stopped."""
    import threading
    from concurrent.futures import ThreadPoolExecutor, as_completed

    stop = threading.Event()

    def advance(amount: int) -> None:
        if stop.is_set():
            raise _Stopped()
        task.advance(amount)

    def one(rel: str, info: ObjectInfo) -> tuple[str, int | None]:
        dest = tmp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        cached_part = reusable.get((info.location.key, info.etag, info.size))
        if cached_part is not None and _copy_hashing(cached_part[0], dest) == cached_part[1]:
            return cached_part[1], None
        # (a damaged cached copy is downloaded instead)
        with open(dest, "wb") as fh:
            sink = _HashingWriter(fh)
            written = storage.download(info, sink, progress=advance)
            fh.flush()
            os.fsync(fh.fileno())
        return sink.digest.hexdigest(), written

    results: dict[str, tuple[str, int | None]] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(PART_THREADS, len(listing)))) as pool:
        futures = {pool.submit(one, rel, info): rel for rel, info in listing.items()}
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise
    return results


def fetch_s3_parts(workspace: Workspace, prefix: Location, storage: S3Storage,
                   force: bool = False, reporter: Reporter = SILENT,
                   listing: list[ObjectInfo] | None = None) -> FetchResult:
    """Make the parquet parts under the S3 prefix ``prefix`` (:mod:`revcli.parts`) the current
    dataset: one paginated LIST; nothing downloaded when a cached manifest recorded the same
    parts (key, size, ETag) for this endpoint, bucket and prefix (unless ``force``); else the
    parts downloaded (unchanged ones copied from the cache), checked, cached as a directory."""
    start = time.perf_counter()
    reporter.step(f"listing {prefix}")
    objects = storage.list(prefix) if listing is None else listing
    endpoint = storage.endpoint
    selected = {_relative(o, prefix): o for o in objects if parts.is_part(_relative(o, prefix))}
    if not selected:
        raise NotFoundError(f"no parquet parts under {prefix} at {endpoint} ({len(objects)} "
                            "objects listed, none a *.parquet outside _ and . names); check "
                            "the prefix")
    skipped = len(objects) - len(selected)
    if skipped:
        reporter.note(f"skipping {skipped} object(s) under {prefix} that are not parquet parts")
    listing_by_rel = dict(sorted(selected.items()))
    workspace.ensure()
    if not force:
        cached = cached_parts_copy(workspace, prefix, listing_by_rel, endpoint)
        if cached is not None:
            current = workspace.current(strict=False)
            if current is None or current.sha256 != cached.sha256:
                workspace.set_current(cached.sha256)
            return FetchResult(cached, up_to_date=True, seconds=time.perf_counter() - start)

    reusable = {} if force else _cached_parts(workspace, prefix.bucket, endpoint)
    to_get = [(rel, info) for rel, info in listing_by_rel.items()
              if (info.location.key, info.etag, info.size) not in reusable]
    directory = workspace.datasets_dir
    try:
        with atomic.temp_dir(directory, suffix=".parts.tmp") as tmp:
            what = (f"downloading {len(to_get)} of {len(listing_by_rel)} parts of {prefix}"
                    if len(to_get) < len(listing_by_rel) else
                    f"downloading {len(listing_by_rel)} parts of {prefix}")
            clock = time.perf_counter()
            with reporter.task(what, total=sum(i.size for _, i in to_get), unit="bytes") as task:
                got = _get_parts(storage, listing_by_rel, reusable, tmp, task)
            shas = [(rel, got[rel][0]) for rel in listing_by_rel]
            written = sum(n or 0 for _, n in got.values())
            reused = sum(1 for _, n in got.values() if n is None)
            download_seconds = time.perf_counter() - clock
            reporter.step(f"checking {len(listing_by_rel)} parts of {prefix}")
            rows, converters = parts.check(tmp, list(listing_by_rel), prefix.uri,
                                           checked=_checked(workspace, shas))
            sha = parts.dataset_sha256(shas)
            entries = [Part(path=rel, bytes=info.size, rows=n, sha256=h, converters=c,
                            key=info.location.key, etag=info.etag,
                            last_modified=info.last_modified)
                       for (rel, info), (_, h), n, c in zip(listing_by_rel.items(), shas, rows,
                                                            converters, strict=True)]
            origin = {"bucket": prefix.bucket, "prefix": prefix.key, "endpoint": endpoint,
                      "parts": _listed(listing_by_rel)}
            # The same parts may already be cached from another prefix: keep its origins too.
            previous = [o for r in workspace.datasets() if r.sha256 == sha
                        for o in r.extra.get("s3_origins", [])]
            origins = [o for o in previous if not _same_prefix(o, prefix, endpoint)] + [origin]
            record = workspace.register_parts(
                tmp, sha, entries, source=prefix.uri,
                extra={"s3": {k: v for k, v in origin.items() if k != "parts"},
                       "s3_origins": origins})
    except OSError as exc:
        raise _disk_error(exc, prefix, directory) from None
    return FetchResult(record, downloaded=written, seconds=time.perf_counter() - start,
                       download_seconds=download_seconds,
                       downloaded_parts=len(listing_by_rel) - reused, reused_parts=reused)


def fetch(workspace: Workspace, source: str, storage: S3Storage | None = None,
          force: bool = False, reporter: Reporter = SILENT) -> FetchResult:
    """Fetch ``source`` (``s3://bucket/key``, a local path or ``file://`` URI) into the cache."""
    start = time.perf_counter()
    if is_s3(source):
        return fetch_s3(workspace, source, storage or S3Storage(), force=force,
                        reporter=reporter)
    if "://" in source and not source.startswith("file://"):
        raise ConfigError(f"cannot fetch {source!r}: give s3://bucket/key, a local parquet "
                          "path or a file:// URI; or parquet parts: s3://bucket/prefix/ or a "
                          "local directory")
    record = fetch_local(workspace, source, reporter=reporter)
    return FetchResult(record, seconds=time.perf_counter() - start)


def _tree_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


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
                    size = _tree_size(path) if path.is_dir() else stat.st_size
                    if path.is_dir():  # the parts of a killed fetch of a directory or prefix
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                    result.temp_files += 1
                    result.freed += size
            except OSError:
                continue
    return result
