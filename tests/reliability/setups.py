"""Setups of the reliability cases: each breaks one thing in a case's private directory.

Every function here returns a ``setup(ctx)`` callable (or is one), so the cases stay data.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import Ctx, relocate_store, sha256_file

ROWS = 3_000
FAKE_RUN = "ffffffff0123456789abcdef01234567"  # 32 hex characters, no such run
Setup = Callable[[Ctx], None]


@cache
def _base_frame() -> Any:
    from revcli import demo

    return demo.generate(rows=ROWS, seed=0)


def frame() -> Any:
    return _base_frame().copy()


def chain(*setups: Setup) -> Setup:
    def run(ctx: Ctx) -> None:
        for s in setups:
            s(ctx)
    return run


# -- tables -----------------------------------------------------------------------------------

def table(name: str, mutate: Callable[[Any], Any]) -> Setup:
    """Write ``mutate(demo frame)`` as parquet to ``<case dir>/<name>``."""
    def run(ctx: Ctx) -> None:
        out = mutate(frame())
        out.to_parquet(ctx.root / name, index=False)
    return run


def raw_file(name: str, data: bytes) -> Setup:
    def run(ctx: Ctx) -> None:
        (ctx.root / name).write_bytes(data)
    return run


def truncated_parquet(name: str) -> Setup:
    def run(ctx: Ctx) -> None:
        data = (ctx.root / "t.parquet").read_bytes()
        (ctx.root / name).write_bytes(data[: len(data) // 2])
    return run


def directory(name: str) -> Setup:
    def run(ctx: Ctx) -> None:
        (ctx.root / name).mkdir()
    return run


def set_value(column: str, value: Any, rows: slice = slice(0, 5), dtype: Any = None) -> Callable:
    def mutate(f: Any) -> Any:
        if dtype is not None:
            f[column] = f[column].astype(dtype)
        f.loc[f.index[rows], column] = value
        return f
    return mutate


def first_converters(f: Any, n: int = 5) -> Any:
    return f.index[f["revenue"] > 0][:n]


def on_converters(column: str, value: Any, dtype: Any = None) -> Callable:
    """Set ``column`` on the first converters (so converting_only sees it)."""
    def mutate(f: Any) -> Any:
        if dtype is not None:
            f[column] = f[column].astype(dtype)
        f.loc[first_converters(f), column] = value
        return f
    return mutate


def add_column(name: str, values: Any) -> Callable:
    def mutate(f: Any) -> Any:
        f[name] = values if not callable(values) else values(f)
        return f
    return mutate


# -- workspace state --------------------------------------------------------------------------

def write_ws(rel: str, data: bytes | str) -> Setup:
    def run(ctx: Ctx) -> None:
        path = ctx.ws / ctx.fmt(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return run


def remove_ws(rel: str) -> Setup:
    def run(ctx: Ctx) -> None:
        path = ctx.ws / ctx.fmt(rel)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return run


def ws_is_file(rel: str = "afile") -> Setup:
    """The workspace path is a regular file."""
    def run(ctx: Ctx) -> None:
        ctx.ws = ctx.root / rel
        ctx.ws.write_text("not a directory\n")
    return run


def ws_below_file(ctx: Ctx) -> None:
    (ctx.root / "afile").write_text("not a directory\n")
    ctx.ws = ctx.root / "afile" / "ws"


def garbage_db(rel: str = "mlflow.db") -> Setup:
    return write_ws(rel, os.urandom(64) + b"this is not a database " * 400)


def truncate_ws(rel: str) -> Setup:
    def run(ctx: Ctx) -> None:
        path = ctx.ws / rel
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return run


def unknown_schema(ctx: Ctx) -> None:
    con = sqlite3.connect(ctx.ws / "mlflow.db")
    con.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    con.commit()
    con.close()


def replace_dataset_with(src: str, keep_mtime: bool = False) -> Setup:
    """Overwrite the current cached parquet in place with another valid table."""
    def run(ctx: Ctx) -> None:
        path = ctx.ws / "datasets" / f"{ctx.sha}.parquet"
        stat = path.stat()
        shutil.copyfile(ctx.root / src, path)
        if keep_mtime:
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return run


def revenue_doubled_same_size(ctx: Ctx) -> None:
    """Rewrite the cached dataset with every order value changed, then restore its mtime: the
    manifest's sha256 no longer describes the file."""
    path = ctx.ws / "datasets" / f"{ctx.sha}.parquet"
    stat = path.stat()
    f = frame()
    f["revenue"] = f["revenue"] * 2
    f["hour_of_day"] = (f["hour_of_day"] + 1) % 24
    f.to_parquet(path, index=False)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def append_byte(rel: str) -> Setup:
    def run(ctx: Ctx) -> None:
        with open(ctx.ws / ctx.fmt(rel), "ab") as fh:
            fh.write(b"\0")
    return run


# -- processes --------------------------------------------------------------------------------

def lock_sqlite(rel: str) -> Setup:
    """Another process holds an exclusive transaction on the database until the case ends."""
    def run(ctx: Ctx) -> None:
        code = ("import sqlite3, sys, time\n"
                "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                "c.execute('BEGIN EXCLUSIVE')\n"
                "print('locked', flush=True)\n"
                "time.sleep(600)\n")
        proc = subprocess.Popen([sys.executable, "-c", code, str(ctx.ws / rel)],
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        line = proc.stdout.readline()

        def stop() -> None:
            proc.kill()  # this process only, by its own handle
            proc.wait(10)
        ctx.cleanups.append(stop)
        assert line.strip() == b"locked", line
    return run


# -- mounts -----------------------------------------------------------------------------------

def _mount(args: list[str], what: str) -> None:
    try:
        subprocess.run(["mount", *args], check=True, capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"{what}: mount is not permitted here ({exc}; "
                    f"{detail.decode(errors='replace').strip()})")


def _umount(path: Path) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True,
                       timeout=20)
    return run


def tmpfs(ctx: Ctx, path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], "a small tmpfs")
    ctx.cleanups.append(_umount(path))


def fill(path: Path, leave: int = 0) -> None:
    """Write zeros into ``path`` until the file system has at most ``leave`` bytes free."""
    chunk = b"\0" * 65536
    with open(path, "wb") as fh:
        while True:
            free = os.statvfs(path.parent).f_bavail * os.statvfs(path.parent).f_frsize
            if free <= leave:
                break
            try:
                fh.write(chunk[: max(4096, min(len(chunk), free - leave))])
                fh.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    with contextlib.suppress(OSError):
        os.sync()


def full_disk_workspace(size: str = "16m", leave: int = 0, keep_store: bool = True) -> Setup:
    """Move the workspace onto a small tmpfs, then fill it (up to ``leave`` bytes free)."""
    def run(ctx: Ctx) -> None:
        disk = ctx.root / "disk"
        tmpfs(ctx, disk, size)
        new = disk / "ws"
        if keep_store:
            shutil.copytree(ctx.ws, new, symlinks=True)
            relocate_store(new / "mlflow.db", str(ctx.ws), str(new))
        else:  # the dataset and models only: the store is yet to be created
            shutil.copytree(ctx.ws, new, symlinks=True, ignore=shutil.ignore_patterns(
                "mlflow.db", "mlartifacts", "studies"))
        shutil.rmtree(ctx.ws)
        ctx.ws = new
        fill(disk / "filler", leave)
    return run


def full_tmpdir(ctx: Ctx) -> None:
    """TMPDIR on a tmpfs with 16 KB left. (Completely full, Python's tempfile would skip it:
    its probe write fails and it falls back to /tmp; nearly full, the probe passes and the
    first real temp file of any size fails.)"""
    tmp = ctx.root / "tmpdir"
    tmpfs(ctx, tmp, "2m")
    fill(tmp / "filler", leave=16 * 1024)
    ctx.env["TMPDIR"] = str(tmp)


def readonly(rel: str = "") -> Setup:
    """A read-only bind mount over the workspace (root ignores file modes, not mount flags)."""
    def run(ctx: Ctx) -> None:
        path = ctx.ws / rel if rel else ctx.ws
        _mount(["--bind", str(path), str(path)], "a read-only bind mount")
        ctx.cleanups.append(_umount(path))
        _mount(["-o", "remount,ro,bind", str(path)], "a read-only bind mount")
        probe = path / ".probe"
        try:
            probe.write_text("x")
        except OSError:
            return
        probe.unlink()
        pytest.skip("a read-only bind mount still accepts writes here")
    return run


def readonly_dir(name: str) -> Setup:
    def run(ctx: Ctx) -> None:
        path = ctx.root / name
        path.mkdir()
        _mount(["--bind", str(path), str(path)], "a read-only bind mount")
        ctx.cleanups.append(_umount(path))
        _mount(["-o", "remount,ro,bind", str(path)], "a read-only bind mount")
    return run


# -- hostile models ---------------------------------------------------------------------------

MARKER = "PWNED"


class _Boom:
    """Unpickling this calls ``open(marker, "w")``: the file appearing proves code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.marker, "w"))


def write_evil(path: Path, marker: Path) -> str:
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(_Boom(str(marker)), path)
    return sha256_file(path)


def evil_skops(rel: str) -> Setup:
    """A skops file (what revcli writes) holding a type no list trusts: a revcli model whose
    strategy carries an object that would call ``open(marker, "w")`` when built."""
    def run(ctx: Ctx) -> None:
        import skops.io

        from revcli import serialization

        model = serialization.load(model_file(ctx.ws / "models" / ctx.run))
        model.strategy_.payload_ = _Boom(str(ctx.root / MARKER))
        path = ctx.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        skops.io.dump(model, path)
    return run


def forged_meta(ctx: Ctx, sha: str, run_id: str, model_file: str = "model.joblib") -> dict:
    """The template run's own model.json, pointing at ``sha``: everything else looks genuine."""
    meta = json.loads((ctx.ws / "models" / ctx.run / "model.json").read_text())
    meta.update({"model_sha256": sha, "run_id": run_id, "model_file": model_file})
    return meta


def evil_file(rel: str, sidecar: str | None = None, push_style: bool = False) -> Setup:
    """A hostile pickle at ``<case dir>/<rel>``, optionally with a forged sidecar JSON that
    records its true sha256 (as model.json or as push's metadata JSON)."""
    def run(ctx: Ctx) -> None:
        path = ctx.root / rel
        sha = write_evil(path, ctx.root / MARKER)
        if sidecar is not None:
            meta = ({"model": {"sha256": sha, "key": path.name}, "run_id": FAKE_RUN}
                    if push_style else forged_meta(ctx, sha, FAKE_RUN, path.name))
            (path.parent / sidecar).write_text(json.dumps(meta))
    return run


def model_file(directory: Path) -> Path:
    """The run's model file to swap: its ``model.skops`` when it has one (a pickle under that
    name must still be refused), else an older workspace's ``model.joblib``."""
    skops = directory / "model.skops"
    return skops if skops.exists() else directory / "model.joblib"


def evil_run_dir(run_id: str | None = None, with_meta: bool = True) -> Setup:
    """A hostile pickle as the model file of ``models/<run id>/`` in the workspace, with a
    forged model.json. ``run_id`` None: a fake id no MLflow run has; else that run's (real)
    id, whose model.skops it replaces."""
    def run(ctx: Ctx) -> None:
        rid = ctx.fmt(run_id) if run_id else FAKE_RUN
        path = model_file(ctx.ws / "models" / rid)
        sha = write_evil(path, ctx.root / MARKER)
        if with_meta:
            meta = forged_meta(ctx, sha, rid)
            (path.parent / "model.json").write_text(json.dumps(meta, indent=2))
    return run


def evil_pending(run_id: str | None = None, garbage: bool = False) -> Setup:
    """A hostile pickle left as a pending run for `revcli runs sync`, with a forged model.json
    and pending.json that record its true sha256. ``run_id``: the run the pending file names
    (None: it never reached the store, as in ``models/unlogged-<hex>/``; ``"{run}"``: the
    template's real run). ``garbage``: pending.json is not JSON at all."""
    def run(ctx: Ctx) -> None:
        rid = ctx.fmt(run_id) if run_id else None
        directory = ctx.ws / "models" / (rid or "unlogged-" + "e" * 32)
        path = model_file(directory)
        sha = write_evil(path, ctx.root / MARKER)
        (directory / "model.json").write_text(json.dumps(
            forged_meta(ctx, sha, rid or directory.name, model_file=path.name), indent=2))
        if garbage:
            (directory / "pending.json").write_text("{not json")
            return
        pending = {"run_id": rid, "experiment": "Revenue_Prediction_Regression",
                   "experiment_id": None, "run_name": "planted", "parent_run_id": None,
                   "note": None, "user_tags": {}, "tags": {"revcli.model_sha256": sha,
                                                          "revcli.strategy": "all"},
                   "params": {}, "metrics": {}, "plots": {}, "dataset": {}}
        (directory / "pending.json").write_text(json.dumps(pending))
        frame().drop(columns=["revenue"]).head(5).to_parquet(directory / "sample.parquet")
    return run


def no_marker(ctx: Ctx, outcome: Any) -> list[str]:
    return [f"the hostile pickle ran: {MARKER} was created"] if (ctx.root / MARKER).exists() \
        else []


# -- MLflow / tracking ------------------------------------------------------------------------

def rename_run(name: str) -> Setup:
    def run(ctx: Ctx) -> None:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{ctx.ws / 'mlflow.db'}")
        client.set_tag(ctx.run, "mlflow.runName", name)
    return run


def register_source(filename: str) -> Setup:
    """Cache t.parquet under a hostile source name (as `revcli fetch <that path>` would)."""
    def run(ctx: Ctx) -> None:
        from revcli.workspace import Workspace

        src = ctx.root / filename
        shutil.copyfile(ctx.root / "other.parquet", src)
        Workspace(ctx.ws).register_file(src, source=str(src))
    return run


def train_on(mutate: Callable[[Any], Any], key: str = "hrun") -> Setup:
    """Train a ridge run on a mutated table (the core function, no plots); its id as ``{key}``."""
    def run(ctx: Ctx) -> None:
        from revcli import settings, train

        path = ctx.root / f"{key}.parquet"
        mutate(frame()).to_parquet(path, index=False)
        (ctx.root / "empty.toml").write_text("")
        s = settings.resolve(flags={"workspace": str(ctx.ws), "estimator": "ridge",
                                    "n_jobs": 1}, config_file=ctx.root / "empty.toml", env={})
        ctx.values[key] = train.train(s, data=path, plots=False).run_id
    return run


def write_root(rel: str, text: str) -> Setup:
    def run(ctx: Ctx) -> None:
        path = ctx.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return run


def wait(seconds: float) -> Setup:
    def run(ctx: Ctx) -> None:
        time.sleep(seconds)
    return run


# -- Arrow column kinds (issue 18.3, 21.5) ----------------------------------------------------

def _kinds(n: int) -> dict[str, Any]:
    import datetime as dt
    import decimal

    import numpy as np
    import pyarrow as pa

    day = dt.date(2024, 1, 1)
    return {
        "struct": lambda: pa.array([{"a": i, "b": "x"} for i in range(n)]),
        "list": lambda: pa.array([[i, i + 1] for i in range(n)]),
        "map": lambda: pa.array([[("k", i)] for i in range(n)],
                                pa.map_(pa.string(), pa.int64())),
        "binary": lambda: pa.array([b"ab"] * n, pa.binary()),
        "duration": lambda: pa.array(np.arange(n), pa.duration("s")),
        "time-of-day": lambda: pa.array([dt.time(i % 24) for i in range(n)]),
        "decimal": lambda: pa.array([decimal.Decimal(i % 24) for i in range(n)],
                                    pa.decimal128(12, 2)),
        "float16": lambda: pa.array((np.arange(n) % 24).astype(np.float16)),
        "date": lambda: pa.array([day + dt.timedelta(days=i % 300) for i in range(n)]),
        "dictionary-text": lambda: pa.array([("a", "b", "c")[i % 3] for i in range(n)]
                                            ).dictionary_encode(),
        "dictionary-int": lambda: pa.array([i % 24 for i in range(n)]).dictionary_encode(),
        "large-string": lambda: pa.array([("u", "v")[i % 2] for i in range(n)],
                                         pa.large_string()),
        "all-null": lambda: pa.nulls(n),
        "all-null-string": lambda: pa.nulls(n, pa.string()),
        "all-null-double": lambda: pa.nulls(n, pa.float64()),
        "all-null-timestamp": lambda: pa.nulls(n, pa.timestamp("us")),
        "all-null-bool": lambda: pa.nulls(n, pa.bool_()),
        "all-null-decimal": lambda: pa.nulls(n, pa.decimal128(10, 2)),
    }


REFUSED_KINDS = ("struct", "list", "map", "binary", "duration", "time-of-day")
ENCODED_KINDS = ("decimal", "float16", "date", "dictionary-text", "dictionary-int",
                 "large-string", "all-null", "all-null-string", "all-null-double",
                 "all-null-timestamp", "all-null-bool", "all-null-decimal")


def arrow_column(name: str, kind: str, column: str = "extra") -> Setup:
    """The demo table with a column of Arrow ``kind`` (added as ``column``, or replacing it
    when the table has one), written with pyarrow as a warehouse export would be."""
    def run(ctx: Ctx) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame(), preserve_index=False)
        values = _kinds(table.num_rows)[kind]()
        if column in table.column_names:
            table = table.set_column(table.column_names.index(column), column, values)
        else:
            table = table.append_column(column, values)
        pq.write_table(table, ctx.root / name)
    return run


def non_utf8_config(rel: str) -> Setup:
    def run(ctx: Ctx) -> None:
        (ctx.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx.root / rel).write_bytes("seed = 7 # r\xe9sum\xe9\n".encode("latin-1"))
    return run


def external_sqlite_store(ctx: Ctx) -> None:
    """MLFLOW_TRACKING_URI at a sqlite store in another directory (a migrated one)."""
    from tests.workspaces import seed_store

    seed_store(ctx.root / "elsewhere")
    ctx.env["MLFLOW_TRACKING_URI"] = "sqlite:///elsewhere/mlflow.db"
# -- datasets made of parts (revcli.parts) ----------------------------------------------------

PART_DAYS = ("2015-03-01", "2015-03-02", "2015-03-03")


def parts_dir(name: str, break_second: Callable[[Path], None] | None = None) -> Setup:
    """Write the demo frame as three Hive parts ``<name>/dt=<day>/part-0.parquet`` (with a
    ``_SUCCESS`` beside them), then ``break_second(path of the second part)``."""
    def run(ctx: Ctx) -> None:
        import numpy as np

        f = frame()
        for day, rows in zip(PART_DAYS, np.array_split(np.arange(len(f)), 3), strict=True):
            path = ctx.root / name / f"dt={day}" / "part-0.parquet"
            path.parent.mkdir(parents=True)
            f.iloc[rows].to_parquet(path, index=False)
        (ctx.root / name / "_SUCCESS").write_text("")
        if break_second is not None:
            break_second(ctx.root / name / f"dt={PART_DAYS[1]}" / "part-0.parquet")
    return run


def part_bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def part_frame(mutate: Callable[[Any], Any]) -> Callable[[Path], None]:
    def run(path: Path) -> None:
        import pandas as pd

        mutate(pd.read_parquet(path)).to_parquet(path, index=False)
    return run


def no_parts(name: str) -> Setup:
    """A directory with only the files an export leaves beside its parts."""
    def run(ctx: Ctx) -> None:
        (ctx.root / name / "_temporary").mkdir(parents=True)
        (ctx.root / name / "_SUCCESS").write_text("")
        (ctx.root / name / "notes.txt").write_text("no parts here")
    return run


def cached_parts(name: str, damage: Callable[[Path], None]) -> Setup:
    """Fetch the parts directory ``name`` into the workspace (current), then ``damage(the
    cached directory)``."""
    def run(ctx: Ctx) -> None:
        from revcli import fetch
        from revcli.workspace import Workspace

        parts_dir(name)(ctx)
        record = fetch.fetch_local(Workspace(ctx.ws), ctx.root / name)
        damage(record.path)
    return run


def killed_parts_fetch(ctx: Ctx) -> None:
    """The temp directory a `revcli fetch <prefix>` killed with SIGKILL leaves behind."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that is gone
    orphan = ctx.ws / "datasets" / f".incoming.{proc.pid}.k1ll3d.parts.tmp"
    (orphan / "dt=2015-03-01").mkdir(parents=True)
    (orphan / "dt=2015-03-01" / "part-0.parquet").write_bytes(b"x" * 4096)
    ctx.values["orphan"] = str(orphan)


# -- input drift (issue 21, class 4) ----------------------------------------------------------

def as_text_flags(column: str, true: str = "True", false: str = "False") -> Callable:
    """A flag column as the strings a CSV or JSON export carries."""
    def mutate(f: Any) -> Any:
        f[column] = f[column].map({True: true, False: false}).astype(object)
        return f
    return mutate


def duplicated_column(name: str, column: str) -> Setup:
    """The demo table with ``column`` a second time (pandas cannot write that; Arrow can)."""
    def run(ctx: Ctx) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        t = pa.Table.from_pandas(frame(), preserve_index=False)
        pq.write_table(pa.Table.from_arrays([*t.columns, t.column(column)],
                                            names=[*t.column_names, column]), ctx.root / name)
    return run


def chain_mutations(*mutations: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def mutate(f: Any) -> Any:
        for m in mutations:
            f = m(f)
        return f
    return mutate


# -- signals in the middle of the work (issue 21, class 3) ------------------------------------

def _query(db: Path, sql: str) -> int:
    if not db.is_file():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.05)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def running_runs(ctx: Ctx) -> int:
    return _query(ctx.ws / "mlflow.db", "SELECT count(*) FROM runs WHERE status = 'RUNNING'")


def running_trials(ctx: Ctx) -> int:
    return _query(ctx.ws / "studies" / "optuna.db",
                  "SELECT count(*) FROM trials WHERE state = 'RUNNING'")


def a_run_is_running(ctx: Ctx) -> bool:
    return running_runs(ctx) > 0


def a_trial_is_running(ctx: Ctx, after: int = 3) -> bool:
    """A trial is RUNNING and at least ``after`` trials of this search finished (so the
    search is well under way, its MLflow parent run and trial runs being logged)."""
    done = _query(ctx.ws / "studies" / "optuna.db",
                  "SELECT count(*) FROM trials WHERE state != 'RUNNING'")
    return running_trials(ctx) > 0 and done >= after + 1  # +1: the template's own trial


def temp_files(ctx: Ctx) -> list[Path]:
    return [p for p in ctx.root.rglob("*")
            if p.name.startswith(".incoming.") or p.name.endswith(".tmp")]


def a_temp_file_exists(ctx: Ctx) -> bool:
    return bool(temp_files(ctx))


def left_nothing_running(ctx: Ctx, outcome: Any) -> list[str]:
    """After an interrupt: no run or trial RUNNING, no temp file anywhere in the case."""
    problems = []
    if running_runs(ctx):
        problems.append(f"{running_runs(ctx)} MLflow run(s) left RUNNING")
    if running_trials(ctx):
        problems.append(f"{running_trials(ctx)} Optuna trial(s) left RUNNING")
    left = temp_files(ctx)
    if left:
        problems.append(f"temp file(s) left: {', '.join(p.name for p in left[:3])}")
    return problems


def big_object(key: str, rows: int = 4_000_000) -> Setup:
    """A ~32 MB parquet object (one float column: an object large enough to be caught in the
    middle of its download) at ``s3://{bucket}/<key>``."""
    def run(ctx: Ctx) -> None:
        import boto3
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = ctx.root.parent / f"{ctx.root.name}-object.parquet"  # outside the snapshot
        rng = np.random.default_rng(0)
        pq.write_table(pa.table({"revenue": rng.random(rows)}), path, compression="none")
        client = boto3.client("s3", endpoint_url=ctx.values["s3"], region_name="us-east-1",
                              aws_access_key_id=ctx.env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=ctx.env["AWS_SECRET_ACCESS_KEY"])
        client.upload_file(str(path), ctx.values["bucket"], key)
        path.unlink()
    return run


# -- two writers at once (issue 21, class 2) --------------------------------------------------

def train_current(estimator: str, key: str) -> Setup:
    """Train ``estimator`` (converting_only) on the current dataset, as the template's ridge
    run was: same dataset, split and population, so the promotion gate compares the two. Its
    run id as ``{key}``."""
    def run(ctx: Ctx) -> None:
        from revcli import settings, train

        (ctx.root / "empty.toml").write_text("")
        s = settings.resolve(flags={"workspace": str(ctx.ws), "estimator": estimator,
                                    "n_jobs": 1}, config_file=ctx.root / "empty.toml", env={})
        ctx.values[key] = train.train(s, plots=False).run_id
    return run


def start_beside(ctx: Ctx, argv: str, env: dict[str, str]) -> None:
    """Start ``revcli <argv>`` as a real process (``Case.beside``); ``ctx.background``."""
    import shlex

    from tests.reliability.harness import cli_env

    proc = subprocess.Popen([sys.executable, "-m", "revcli",
                             *(ctx.fmt(a) for a in shlex.split(argv))],
                            cwd=ctx.root, env=cli_env(env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    ctx.background = proc  # type: ignore[attr-defined]

    def stop() -> None:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    ctx.cleanups.append(stop)


def one_champion_the_better(first: str, second: str, bucket_key: str) -> Callable:
    """After two `push --promote` at once of runs ``{first}`` and ``{second}``: exactly one
    champion, the version of the one with the lower rmse; the S3 key holds that model; each
    push exited 0 (promoted) or 1 (lost)."""
    def check(ctx: Ctx, outcome: Any) -> list[str]:
        import boto3
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{ctx.ws / 'mlflow.db'}")
        a, b = ctx.values[first], ctx.values[second]
        rmse = {r: client.get_run(r).data.metrics["rmse"] for r in (a, b)}
        better, worse = (a, b) if rmse[a] < rmse[b] else (b, a)
        proc = ctx.background  # type: ignore[attr-defined]
        _out, err = proc.communicate(timeout=120)
        problems = []
        if proc.returncode not in (0, 1):
            problems.append(f"the other push exited {proc.returncode}: "
                            f"{err.decode(errors='replace').strip().splitlines()[-1:]}")
        names = [m.name for m in client.search_registered_models()]
        models = [n for n in names if not n.endswith(".promotion-lease")]
        if len(models) != 1:
            return [*problems, f"registered models: {names}"]
        if len(names) != len(models):
            problems.append(f"a promotion lease was left behind: {names}")
        model = client.get_registered_model(models[0])
        aliases = dict(model.aliases or {})
        if list(aliases) != ["champion"]:
            return [*problems, f"aliases: {aliases}"]
        run_of = client.get_model_version(models[0], aliases["champion"]).run_id
        if run_of != better:
            problems.append(f"the champion is run {run_of[:12]}, not the better {better[:12]} "
                            f"(rmse {rmse[better]:.4g}; the other {rmse[worse]:.4g})")
        s3 = boto3.client("s3", endpoint_url=ctx.values["s3"], region_name="us-east-1",
                          aws_access_key_id=ctx.env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=ctx.env["AWS_SECRET_ACCESS_KEY"])
        held = s3.head_object(Bucket=ctx.values["bucket"], Key=bucket_key)["Metadata"]
        if held.get("revcli-run-id") != better:
            problems.append(f"s3://{ctx.values['bucket']}/{bucket_key} holds run "
                            f"{held.get('revcli-run-id', '?')[:12]}, not the champion")
        return problems
    return check


# -- a failed command changes nothing (issue 21, class 6) -------------------------------------

def proxy_in_front(fail_after: int) -> Setup:
    """A fault-injecting proxy in front of the S3 gateway (``{proxy}``): it lets
    ``fail_after`` requests through and answers every later one with 503 SlowDown (a server
    that fails in the middle of a push)."""
    def run(ctx: Ctx) -> None:
        from tests.integration.servers import FaultProxy

        port = int(ctx.values["s3"].rsplit(":", 1)[1])
        proxy = FaultProxy(upstream_port=port, fail_after=fail_after).start()
        ctx.values["proxy"] = proxy.endpoint
        ctx.env["AWS_MAX_ATTEMPTS"] = "1"
        ctx.cleanups.append(proxy.close)
    return run


def no_registered_version(ctx: Ctx, outcome: Any) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{ctx.ws / 'mlflow.db'}")
    versions = client.search_model_versions()
    models = [m.name for m in client.search_registered_models()]
    return ([f"{len(versions)} model version(s) registered by a failed push"] if versions
            else []) + ([f"registered models left: {models}"] if models else [])


def plots_whole(ctx: Ctx, outcome: Any) -> list[str]:
    """No run's plot directory half-written, no run RUNNING, no temp file."""
    problems = left_nothing_running(ctx, outcome)
    plots = ctx.ws / "plots"
    for directory in (plots.iterdir() if plots.is_dir() else []):
        pngs = list(directory.glob("*.png"))
        if directory.is_dir() and 0 < len(pngs) < 3:
            problems.append(f"plots/{directory.name} is half-written ({len(pngs)} PNGs)")
    return problems


# -- a parquet page damaged in place (issue 21, class 7) --------------------------------------

def flip_page_byte(path: Path, column: str = "hour_of_day") -> None:
    """Flip one byte inside the last data page of ``column`` (PLAIN int32 values, so the file
    still decodes: one value silently becomes another), keeping size and mtime."""
    import pyarrow.parquet as pq

    stat = path.stat()
    meta = pq.read_metadata(path)
    names = meta.schema.to_arrow_schema().names
    chunk = meta.row_group(0).column(names.index(column))
    at = chunk.data_page_offset + chunk.total_compressed_size - 2  # 3rd byte of the last value
    with open(path, "r+b") as fh:
        fh.seek(at)
        byte = fh.read(1)
        fh.seek(at)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def checksummed_then_flipped(name: str) -> Setup:
    """The demo table written as revcli writes parquet (with page checksums; uncompressed and
    without dictionaries so the damage decodes), then one page byte flipped."""
    def run(ctx: Ctx) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = ctx.root / name
        pq.write_table(pa.Table.from_pandas(frame(), preserve_index=False), path,
                       write_page_checksum=True, compression="none", use_dictionary=False)
        flip_page_byte(path)
    return run


def flip_cached_page(ctx: Ctx) -> None:
    """The current cached dataset damaged in place (size and mtime kept)."""
    flip_page_byte(ctx.ws / "datasets" / f"{ctx.sha}.parquet")


# -- decided and documented (issue 21, class 8) -----------------------------------------------

def _client(ctx: Ctx) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{ctx.ws / 'mlflow.db'}")


def delete_template_run(ctx: Ctx) -> None:
    _client(ctx).delete_run(ctx.run)


def running_run_of_a_live_process(ctx: Ctx) -> None:
    """A run RUNNING in the store, made by a revcli process that is alive (a stand-in: a
    sleeping process, its identity in the run's worker tags as train records it): ``{live}``."""
    from revcli import processes

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                            stdin=subprocess.DEVNULL)
    ctx.cleanups.append(lambda: (proc.kill(), proc.wait()))
    who = {**processes.identity(), "pid": proc.pid, "start": processes._start_ticks(proc.pid)}
    client = _client(ctx)
    experiment = client.get_experiment_by_name("Revenue_Prediction_Regression")
    run = client.create_run(experiment.experiment_id, run_name="training", tags={
        f"revcli.worker.{k}": str(v) for k, v in who.items() if v is not None})
    ctx.values["live"] = run.info.run_id


def template_run_is_champion(ctx: Ctx) -> None:
    client = _client(ctx)
    client.create_registered_model("revenue-regression")
    uri = client.get_run(ctx.run).info.artifact_uri
    version = client.create_model_version("revenue-regression", f"{uri}/model",
                                          run_id=ctx.run)
    client.set_registered_model_alias("revenue-regression", "champion", version.version)


def pending_without_model(run_id: str | None = None) -> Setup:
    """A pending run for `runs sync` whose model file is gone (deleted after the failed log)."""
    def run(ctx: Ctx) -> None:
        evil_pending(run_id)(ctx)
        rid = ctx.fmt(run_id) if run_id else None
        directory = ctx.ws / "models" / (rid or "unlogged-" + "e" * 32)
        model_file(directory).unlink()
    return run


