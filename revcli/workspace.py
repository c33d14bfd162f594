"""The workspace: one directory that holds everything revcli caches or produces locally.

Layout (default ``./.revcli``, moved with ``--workspace`` or ``REVCLI_WORKSPACE``)::

    current.json                    {"dataset": "<sha256>"}: the dataset commands use by default
    datasets/<sha256>.parquet       content-addressed copies of every registered table
    datasets/<sha256>/              ... or of a dataset made of parts (revcli.parts): the parquet
                                    parts with their relative paths (Hive key=value/ dirs) kept
    datasets/<sha256>.json          its manifest: source, sha256, rows, columns, created, parts...
    models/<run_id>/model.skops     every trained model, with model.json (sha256, features, ...)
    mlflow.db, mlartifacts/         the default MLflow tracking store and its artifacts
    plots/<run_id>/*.png            plots written by train and evaluate
    studies/                        Optuna studies of `revcli tune`

Every write goes through :mod:`revcli.atomic`, so a crash leaves the previous state intact.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from revcli import atomic
from revcli.errors import DataError, NotFoundError, StorageError
from revcli.parts import Part

SHA_LEN = 64


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class DatasetRecord:
    """The manifest of one cached dataset."""

    sha256: str
    path: Path
    source: str
    rows: int
    columns: list[dict[str, str]]
    created: str
    bytes: int
    extra: dict[str, Any] = field(default_factory=dict)
    # The file's mtime and ctime when it was hashed: a cheap check that it was not changed in
    # place (ctime cannot be set back by a program; any write or os.utime moves it).
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    # A dataset made of parts (revcli.parts): one entry per part (Part.to_dict), sorted by
    # path; ``path`` is then the directory that holds them. Empty for a single parquet file.
    parts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def short(self) -> str:
        return self.sha256[:12]

    @property
    def is_parts(self) -> bool:
        return bool(self.parts)

    def part_list(self) -> list[Part]:
        return [Part.from_dict(p) for p in self.parts]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetRecord:
        data = dict(data)
        data["path"] = Path(data["path"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class Workspace:
    """Local state of revcli under one root directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().absolute()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    @property
    def studies_dir(self) -> Path:
        return self.root / "studies"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "mlartifacts"

    def ensure(self) -> Workspace:
        """The workspace, made if new, checked to be writable: a command that will write fails
        here, before any work, not after minutes of it."""
        self.check_readable()
        try:
            for d in (self.root, self.datasets_dir, self.models_dir):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create workspace {self.root}: {exc.strerror}; "
                               "choose another with --workspace or REVCLI_WORKSPACE") from None
        if not os.access(self.root, os.W_OK):
            reason = "read-only" if _read_only(self.root) else "not writable"
            raise StorageError(f"workspace {self.root} is {reason}; choose a writable one with "
                               "--workspace or REVCLI_WORKSPACE")
        return self

    def check_readable(self) -> Workspace:
        """The workspace is a directory (or does not exist yet): what a command that only
        reads needs."""
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(f"workspace {self.root} is a file, not a directory; choose "
                               "another with --workspace or REVCLI_WORKSPACE")
        for parent in self.root.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise StorageError(f"workspace {self.root} is below a file ({parent}); "
                                       "choose another with --workspace or REVCLI_WORKSPACE")
                break
        return self

    # -- MLflow -----------------------------------------------------------------------------

    def tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db}"

    def artifact_location(self) -> str:
        return self.artifacts_dir.as_uri()

    # -- datasets ---------------------------------------------------------------------------

    def _manifest_path(self, sha: str) -> Path:
        return self.datasets_dir / f"{sha}.json"

    def dataset_path(self, sha: str) -> Path:
        return self.datasets_dir / f"{sha}.parquet"

    def parts_dir(self, sha: str) -> Path:
        return self.datasets_dir / sha

    def cached(self, sha: str) -> DatasetRecord | None:
        """The cached dataset ``sha``, if it is there and whole."""
        record = self._read_manifest(sha)
        return record if record is not None and self.is_whole(record) else None

    def cached_path(self, sha: str) -> Path | None:
        """The cached file or directory of parts of dataset ``sha``, if it is whole."""
        record = self.cached(sha)
        return record.path if record is not None else None

    def register_file(self, src: str | Path, source: str, *, move: bool = False,
                      extra: dict[str, Any] | None = None, sha256: str | None = None,
                      make_current: bool = True) -> DatasetRecord:
        """Cache a validated parquet file under its sha256 and (``make_current``) make it the
        current dataset.

        ``move=True`` renames ``src`` into place (it must be on the workspace's file system, e.g.
        a temp file in ``datasets/``); otherwise the file is copied atomically.
        """
        import pyarrow.parquet as pq

        self.ensure()
        src = Path(src)
        sha = sha256 or atomic.sha256_file(src)
        dest = self.dataset_path(sha)
        previous = self._read_manifest(sha)
        if dest.exists() and (previous is None or not self.is_whole(previous)):
            dest.unlink()  # a damaged copy under this name: replace it with the new bytes
        if dest.exists():
            if move:
                src.unlink(missing_ok=True)
        elif move:
            atomic.replace(src, dest)
        else:
            with atomic.atomic_path(dest) as tmp:
                shutil.copyfile(src, tmp)
        meta = pq.read_metadata(dest)
        schema = meta.schema.to_arrow_schema()
        record = DatasetRecord(
            sha256=sha,
            path=dest,
            source=source,
            rows=meta.num_rows,
            columns=[{"name": n, "dtype": str(t)} for n, t in zip(schema.names, schema.types,
                                                                   strict=True)],
            created=previous.created if previous else _now(),
            bytes=dest.stat().st_size,
            extra={**(previous.extra if previous else {}), **(extra or {})},
            mtime_ns=dest.stat().st_mtime_ns,
            ctime_ns=dest.stat().st_ctime_ns,
        )
        atomic.write_json(self._manifest_path(sha), record.to_dict())
        if make_current:
            self.set_current(sha)
        return record

    def register_parts(self, src: Path, sha256: str, parts: list[Part], source: str, *,
                       extra: dict[str, Any] | None = None,
                       make_current: bool = True) -> DatasetRecord:
        """Cache a checked directory of parts (``src``: a temp directory inside ``datasets/``,
        renamed into ``datasets/<sha256>/``; left in place when that copy is already whole, for
        its caller to remove) and (``make_current``) make it the current dataset."""
        from revcli import data

        self.ensure()
        dest = self.parts_dir(sha256)
        previous = self._read_manifest(sha256)
        if dest.exists() and (previous is None or not self.is_whole(previous)):
            shutil.rmtree(dest)  # a damaged copy under this name: replace it with the new parts
        if not dest.exists():
            src.replace(dest)
        stamped = []
        for part in sorted(parts, key=lambda p: p.path):
            stat = (dest / part.path).stat()
            stamped.append(Part(**{**part.__dict__, "mtime_ns": stat.st_mtime_ns,
                                   "ctime_ns": stat.st_ctime_ns}))
        schema = data.parts_dataset(dest).schema
        record = DatasetRecord(
            sha256=sha256,
            path=dest,
            source=source,
            rows=sum(p.rows for p in stamped),
            columns=[{"name": n, "dtype": str(t)} for n, t in zip(schema.names, schema.types,
                                                                   strict=True)],
            created=previous.created if previous else _now(),
            bytes=sum(p.bytes for p in stamped),
            extra={**(previous.extra if previous else {}), **(extra or {})},
            parts=[p.to_dict() for p in stamped],
        )
        atomic.write_json(self._manifest_path(sha256), record.to_dict())
        if make_current:
            self.set_current(sha256)
        return record

    def write_dataset(self, frame: Any, source: str,
                      extra: dict[str, Any] | None = None) -> DatasetRecord:
        """Write a pandas DataFrame as parquet into the cache and make it current."""
        self.ensure()
        with atomic.temp_path(self.datasets_dir, suffix=".parquet.tmp") as tmp:
            # page checksums: a page damaged later fails its read (revcli.data.read_parquet)
            frame.to_parquet(tmp, index=False, write_page_checksum=True)
            return self.register_file(tmp, source, move=True, extra=extra)

    def _read_manifest(self, sha: str) -> DatasetRecord | None:
        path = self._manifest_path(sha)
        if not path.is_file():
            return None
        try:
            record = DatasetRecord.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError, KeyError):
            return None
        # The manifest stores an absolute path; trust the workspace's own layout instead so a
        # moved workspace keeps working.
        path = self.parts_dir(sha) if record.parts else self.dataset_path(sha)
        return DatasetRecord(**{**record.__dict__, "path": path})

    @property
    def current_file(self) -> Path:
        return self.root / "current.json"

    def set_current(self, sha: str) -> None:
        atomic.write_json(self.current_file, {"dataset": sha})

    def current(self, strict: bool = True) -> DatasetRecord | None:
        """The current dataset, checked to be whole; None when the workspace has none.

        A workspace that had a current dataset and lost it (``current.json`` or the manifest
        unreadable, the parquet deleted or changed in place) is an error, never "no dataset":
        a command must not quietly train on something else. ``strict=False`` returns None
        instead (for fetch, which is the fix).
        """
        try:
            return self._current()
        except DataError:
            if strict:
                raise
            return None

    def _current(self) -> DatasetRecord | None:
        path = self.current_file
        if not path.exists():
            return None
        fix = ("; run `revcli fetch` to get it again (or `revcli fetch --demo` for the demo "
               "set)")
        try:
            sha = json.loads(path.read_text())["dataset"]
            if not isinstance(sha, str) or len(sha) != SHA_LEN:
                raise ValueError(sha)
        except (OSError, ValueError, KeyError, TypeError):
            raise DataError(f"the workspace's pointer to its current dataset ({path}) is "
                            f"unreadable{fix}") from None
        record = self._read_manifest(sha)
        if record is None:
            raise DataError(f"the current dataset {sha[:12]} has no readable manifest in "
                            f"{self.datasets_dir}{fix}")
        return self.verify(record, fix)

    def verify(self, record: DatasetRecord, fix: str = "") -> DatasetRecord:
        """``record`` if its file is still the one that was hashed: the same size, and the same
        mtime and ctime or else the same sha256 again (a copied workspace re-hashes; nothing is
        written, so a reading command leaves the workspace as it was)."""
        fix = fix or "; run `revcli fetch` to get it again"
        if record.is_parts:
            return self._verify_parts(record, fix)
        try:
            stat = record.path.stat()
        except OSError:
            raise DataError(f"dataset {record.short} ({record.source}) is missing its file "
                            f"{record.path}{fix}") from None
        if stat.st_size != record.bytes:
            raise DataError(f"dataset {record.short} ({record.source}) was changed after it was "
                            f"cached ({stat.st_size:,} bytes, {record.bytes:,} recorded){fix}")
        if (record.mtime_ns, record.ctime_ns) == (stat.st_mtime_ns, stat.st_ctime_ns):
            return record
        if atomic.sha256_file(record.path) != record.sha256:
            raise DataError(f"dataset {record.short} ({record.source}) was changed after it was "
                            f"cached (its sha256 no longer matches){fix}")
        return record

    def _verify_parts(self, record: DatasetRecord, fix: str) -> DatasetRecord:
        """:meth:`verify` for a directory of parts: the same parts and no others, each the same
        size and mtime/ctime or else the same sha256 again."""
        from revcli import parts

        named = f"dataset {record.short} ({record.source})"
        if not record.path.is_dir():
            raise DataError(f"{named} is missing its directory {record.path}{fix}")
        found, _ = parts.list_local(record.path)
        recorded = record.part_list()
        if found != [p.path for p in recorded]:
            extra = sorted(set(found) - {p.path for p in recorded})
            missing = sorted({p.path for p in recorded} - set(found))
            what = (f"its part {missing[0]} is missing" if missing
                    else f"a part {extra[0]} was added")
            raise DataError(f"{named} was changed after it was cached ({what}){fix}")
        for part in recorded:
            path = record.path / part.path
            try:
                stat = path.stat()
            except OSError as exc:
                raise DataError(f"{named}: cannot read its part {part.path} "
                                f"({exc.strerror or exc}){fix}") from None
            if stat.st_size != part.bytes:
                raise DataError(f"{named} was changed after it was cached (part {part.path}: "
                                f"{stat.st_size:,} bytes, {part.bytes:,} recorded){fix}")
            if (part.mtime_ns, part.ctime_ns) != (stat.st_mtime_ns, stat.st_ctime_ns) and (
                    atomic.sha256_file(path) != part.sha256):
                raise DataError(f"{named} was changed after it was cached (part {part.path}: "
                                f"its sha256 no longer matches){fix}")
        return record

    def is_whole(self, record: DatasetRecord) -> bool:
        try:
            self.verify(record)
        except DataError:
            return False
        return True

    def had_datasets(self) -> bool:
        """Whether anything was ever cached here (a current pointer or any manifest)."""
        return self.current_file.exists() or (
            self.datasets_dir.is_dir() and any(self.datasets_dir.glob("*.json")))

    def datasets(self) -> list[DatasetRecord]:
        if not self.datasets_dir.is_dir():
            return []
        records = [self._read_manifest(p.stem) for p in self.datasets_dir.glob("*.json")]
        return sorted((r for r in records if r is not None and r.path.exists()),
                      key=lambda r: r.created)

    def broken_datasets(self) -> list[tuple[str, str]]:
        """(sha256 or file name, what is wrong) of every cached dataset :meth:`datasets`
        leaves out because it cannot be used: a manifest that is not readable, a manifest
        whose parquet file is gone or of another size, a parquet file without a manifest.
        Only reads (and hashes nothing), so a listing stays fast and changes nothing."""
        if not self.datasets_dir.is_dir():
            return []
        broken: list[tuple[str, str]] = []
        for manifest in sorted(self.datasets_dir.glob("*.json")):
            record = self._read_manifest(manifest.stem)
            if record is None:
                broken.append((manifest.stem, f"its manifest {manifest.name} is not readable"))
            elif not record.path.is_file():
                broken.append((manifest.stem, f"its file {record.path.name} is missing"))
            elif record.path.stat().st_size != record.bytes:
                broken.append((manifest.stem, f"its file {record.path.name} was changed after "
                                              "it was cached (another size)"))
        for parquet in sorted(self.datasets_dir.glob("*.parquet")):
            if not parquet.name.startswith(".") and not self._manifest_path(
                    parquet.stem).exists():
                broken.append((parquet.stem, f"{parquet.name} has no manifest"))
        return broken

    def dataset(self, ref: str) -> DatasetRecord:
        """A cached dataset by sha256 or a unique prefix of it (at least 6 characters)."""
        matches = [r for r in self.datasets() if len(ref) >= 6 and r.sha256.startswith(ref)]
        if len(matches) == 1:
            return self.verify(matches[0])
        if not matches:
            raise NotFoundError(f"no dataset {ref!r} in {self.datasets_dir}; "
                                "`revcli datasets list` shows the cached ones")
        raise NotFoundError(f"dataset prefix {ref!r} is ambiguous; give more characters")

    def use(self, ref: str) -> DatasetRecord:
        """Make the cached dataset ``ref`` (sha256 or a unique prefix) the current one."""
        record = self.dataset(ref)
        self.set_current(record.sha256)
        return record

    def export(self, path: str | Path, ref: str | None = None) -> DatasetRecord:
        """Copy a cached dataset (``ref``, default the current one) to ``path`` as parquet,
        atomically: e.g. the demo set, to score with ``revcli predict``."""
        record = self.dataset(ref) if ref else self.current()
        if record is None:
            raise NotFoundError(f"no current dataset in {self.root} to export; `revcli fetch` "
                                "one (or `revcli fetch --demo`)")
        path = Path(path)
        if path.suffix.lower() not in (".parquet", ".pq"):
            from revcli.errors import ConfigError

            raise ConfigError(f"{path}: the export is a parquet file; give a .parquet path")
        try:
            with atomic.atomic_path(path, suffix=".parquet") as tmp:
                if record.is_parts:
                    _write_parts_as_one_file(record.path, tmp)
                else:
                    shutil.copyfile(record.path, tmp)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None
        return record

    def remove_dataset(self, sha: str) -> None:
        self._manifest_path(sha).unlink(missing_ok=True)
        self.dataset_path(sha).unlink(missing_ok=True)
        if self.parts_dir(sha).is_dir():
            shutil.rmtree(self.parts_dir(sha))

    # -- models -----------------------------------------------------------------------------

    def model_dir(self, run_id: str) -> Path:
        return self.models_dir / run_id


def _write_parts_as_one_file(directory: Path, target: Path) -> None:
    """The parts of ``directory`` as one parquet file, batch by batch (the Hive keys become
    ordinary columns; the rows in the order :func:`revcli.data.read_parquet` reads them)."""
    import pyarrow.parquet as pq

    from revcli import data

    dataset = data.parts_dataset(directory)
    with data.parquet_errors(directory), pq.ParquetWriter(target, dataset.schema) as writer:
        for batch in dataset.to_batches():
            writer.write_batch(batch)
