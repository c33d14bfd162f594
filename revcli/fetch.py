"""Getting training tables into the workspace: the demo generator and local files.

Every source goes through the same gate: the table must satisfy the data contract
(:func:`revcli.data.validate`) before it is cached under its sha256 and becomes current.
"""

from __future__ import annotations

from pathlib import Path

from revcli import data, demo
from revcli.errors import ConfigError
from revcli.progress import SILENT, Reporter
from revcli.workspace import DatasetRecord, Workspace


def fetch_demo(workspace: Workspace, rows: int = demo.FULL_ROWS, seed: int = 0,
               reporter: Reporter = SILENT) -> DatasetRecord:
    """Generate the demo table (see :mod:`revcli.demo`) and make it the current dataset."""
    if rows < 100:
        raise ConfigError(f"--rows must be at least 100 for a usable split, got {rows}")
    reporter.step(f"generating {rows:,} demo sessions (seed {seed})")
    frame = demo.generate(rows=rows, seed=seed)
    return workspace.write_dataset(frame, source=f"demo:rows={rows},seed={seed}",
                                   extra={"demo": {"rows": rows, "seed": seed}})


def fetch_local(workspace: Workspace, path: str | Path,
                reporter: Reporter = SILENT) -> DatasetRecord:
    """Validate a local parquet file (path or file:// URI), cache it and make it current."""
    path = Path(str(path).removeprefix("file://"))
    reporter.step(f"validating {path}")
    data.validate(data.read_parquet(path))
    return workspace.register_file(path, source=str(path.resolve()))


def current_or_demo(workspace: Workspace, rows: int = demo.FULL_ROWS, seed: int = 0,
                    reporter: Reporter = SILENT) -> DatasetRecord:
    """The workspace's current dataset; without one, the full-size demo set (said in one line)."""
    record = workspace.current()
    if record is not None:
        return record
    record = fetch_demo(workspace, rows=rows, seed=seed, reporter=reporter)
    reporter.note(f"no dataset in {workspace.root}: generated the demo set ({rows:,} rows, "
                  f"seed {seed}); `revcli fetch` gets the real one")
    return record
