"""What the benchmarks share: run a command as a fresh child process and measure it, and the
fresh revcli workspace each child starts from.

Wall time is perf_counter around the child; peak RSS is the child's ``ru_maxrss`` from
``os.wait4`` (the child and every descendant it waited for), in MB, both taken by a tiny launcher
process (see run). The child's stdout and stderr go to temp files, so a chatty child cannot block
on a full pipe. ``run(..., rss_ceiling_mb=C)`` runs the child as a machine of C MB without swap
would: in a session of its own, killed (SIGKILL, every process of the session) as soon as the
summed RSS of its session exceeds C.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent  # the checkout the benchmarks measure
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the parent's own revcli imports: this checkout's too


@dataclass
class Run:
    """One child process."""

    wall: float
    rss_mb: float
    returncode: int
    stdout: str
    stderr: str
    ceiling_hit: bool = False   # killed for exceeding run's rss_ceiling_mb
    session_mb: float = 0.0     # with a ceiling: the largest summed RSS of the session sampled

    def json(self) -> Any:
        """The child's stdout as JSON: the last line that parses (warnings may precede it)."""
        try:
            return json.loads(self.stdout)
        except ValueError:
            for line in reversed(self.stdout.splitlines()):
                try:
                    return json.loads(line)
                except ValueError:
                    continue
        return None

    @property
    def error(self) -> str:
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else f"exit {self.returncode}"


@dataclass
class Measured:
    """The runs of one command: medians of wall time and of peak RSS."""

    name: str
    runs: list[Run] = field(default_factory=list)

    @property
    def failed(self) -> Run | None:
        return next((r for r in self.runs if r.returncode != 0), None)

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def rss_mb(self) -> float:
        return statistics.median(r.rss_mb for r in self.runs)

    def outputs(self) -> list[Any]:
        return [r.json() for r in self.runs if r.returncode == 0]

    def median_of(self, get: Callable[[Any], float | None]) -> float | None:
        """The median of ``get(json output)`` over the runs that have it."""
        values = []
        for out in self.outputs():
            try:
                value = get(out)
            except (KeyError, TypeError, IndexError):
                value = None
            if value is not None:
                values.append(float(value))
        return statistics.median(values) if values else None


# Peak RSS must be measured from a small parent: Linux carries the RSS high-water mark of the
# process that forks across exec into the child's ru_maxrss, so a child of this (pandas-sized)
# process would report at least this process's RSS. The launcher is `python -I -S` (~7 MB):
# it spawns the command, waits for it, and writes wall seconds, ru_maxrss (KB), the exit code,
# whether it killed the command at the RSS ceiling and the largest summed RSS it sampled (KB).
# With a ceiling (bytes, 0: none) the command is a session leader; every 20 ms the launcher sums
# the RSS (/proc/<pid>/stat field 24) of the processes of that session (the command and what it
# started: revcli's logger process is in it too) and kills them all when the sum exceeds the
# ceiling, as the kernel's OOM killer would on a machine of that memory without swap (and as a
# Dask nanny kills a worker over its memory limit; it samples every 100 ms).
_LAUNCHER = """\
import os, signal, sys, time
out, ceiling, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
page = os.sysconf("SC_PAGE_SIZE")
start = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ, setsid=ceiling > 0)
hit = peak = 0
while ceiling:
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        break
    total, members = 0, []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == pid:
                members.append(int(name))
                total += int(fields[21]) * page
    peak = max(peak, total)
    if total > ceiling:
        hit = 1
        for member in members:
            try:
                os.kill(member, signal.SIGKILL)
            except OSError:
                pass
        break
    time.sleep(0.02)
if not ceiling or hit:
    _, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(out, "w") as fh:
    fh.write(f"{wall} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} {hit} {peak // 1024}")
"""


def run(cmd: Sequence[str], env: dict[str, str] | None = None,
        cwd: str | Path | None = None, rss_ceiling_mb: float | None = None) -> Run:
    """Run ``cmd`` once as a child process; its wall time, peak RSS and output. With
    ``rss_ceiling_mb``, killed when its session's summed RSS exceeds that (see _LAUNCHER)."""
    ceiling = int(rss_ceiling_mb * 2**20) if rss_ceiling_mb else 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryDirectory(prefix="bench-measure-") as tmp:
        figures = Path(tmp) / "figures"
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCHER, str(figures),
                               str(ceiling), *cmd], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                              stdout=out, stderr=err, check=False)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if not figures.is_file():  # the launcher itself failed (e.g. no such command)
            return Run(wall=0.0, rss_mb=0.0, returncode=proc.returncode or 1, stdout=stdout,
                       stderr=stderr)
        wall, maxrss_kb, code, hit, session_kb = figures.read_text().split()
        return Run(wall=float(wall), rss_mb=int(maxrss_kb) / 1024, returncode=int(code),
                   stdout=stdout, stderr=stderr, ceiling_hit=hit == "1",
                   session_mb=int(session_kb) / 1024)


@dataclass
class Command:
    """A command to measure: its name, argv, environment, working directory and what to do
    before each run (e.g. lay a fresh workspace)."""

    name: str
    cmd: list[str]
    env: dict[str, str] | None = None
    cwd: str | Path | None = None
    before: Callable[[], None] | None = None


def interleaved(commands: Sequence[Command], n: int, echo: bool = True) -> dict[str, Measured]:
    """Each command ``n`` times, round-robin (one run of each, then the next round), so a slow
    spell of a busy machine lands on every command alike; a command that failed is not run
    again."""
    results = {c.name: Measured(c.name) for c in commands}
    for i in range(n):
        for c in commands:
            measured = results[c.name]
            if measured.failed:
                continue
            if c.before is not None:
                c.before()
            result = run(c.cmd, c.env, c.cwd)
            measured.runs.append(result)
            if echo:
                state = "ok" if result.returncode == 0 else f"FAILED: {result.error}"
                print(f"  [{i + 1}/{n}] {c.name}: {result.wall:.2f} s, {result.rss_mb:.0f} MB, "
                      f"{state}", file=sys.stderr, flush=True)
    return results


def measure(cmd: Sequence[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process; exits if it fails."""
    result = run(cmd, env, cwd)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr}")
    return result.wall, result.rss_mb


# -- revcli children ---------------------------------------------------------------------------

def python() -> list[str]:
    return [sys.executable]


def revcli() -> list[str]:
    """``python -m revcli`` of this checkout (see child_env): no console-script shim in between."""
    return [sys.executable, "-m", "revcli"]


def child_env(workspace: Path) -> dict[str, str]:
    """The environment of every measured child: this checkout first on PYTHONPATH, its own
    workspace, MLflow's telemetry off and no MLFLOW_TRACKING_URI (the workspace's sqlite store)."""
    env = {**os.environ, "REVCLI_WORKSPACE": str(workspace), "MLFLOW_DISABLE_TELEMETRY": "true",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for name in ("MLFLOW_TRACKING_URI", "REVCLI_CONFIG", "REVCLI_DEBUG"):
        env.pop(name, None)
    return env


class FreshWorkspace:
    """A workspace laid anew before each child at the same path, holding ``dataset`` as the
    current dataset (copied in, hashed once here) and, unless ``new_store``, a copy of an MLflow
    store created once beforehand (what every run after a user's first one finds).

    The path stays the same so the store's experiment keeps pointing at this workspace's
    artifacts; re-creating the directory means no child sees another child's runs or models.
    """

    def __init__(self, root: Path, dataset: Path, source: str, new_store: bool = False) -> None:
        from revcli import atomic

        self.root, self.dataset, self.source = root, dataset, source
        self.sha256 = atomic.sha256_file(dataset)
        self._store: Path | None = None
        self.reset()
        if not new_store:
            self._store = root.parent / f"{root.name}.mlflow.db"
            self._create_store()
            shutil.copyfile(root / "mlflow.db", self._store)

    def reset(self) -> None:
        from revcli.workspace import Workspace

        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        if self._store is not None:
            shutil.copyfile(self._store, self.root / "mlflow.db")
        Workspace(self.root).register_file(self.dataset, self.source, sha256=self.sha256)

    def _create_store(self) -> None:
        # In a child, so the parent never imports MLflow; cwd is the workspace's parent, which
        # has no configs/ (the built-in defaults, as for every measured child).
        code = ("import sys\n"
                "from revcli import settings, tracking\n"
                "from revcli.workspace import Workspace\n"
                "s = settings.resolve(flags={'workspace': sys.argv[1]}, env={})\n"
                "tracking.connect(s, Workspace(s.workspace))\n")
        result = run([sys.executable, "-c", code, str(self.root)], child_env(self.root),
                     self.root.parent)
        if result.returncode != 0:
            raise SystemExit(f"could not create the MLflow store:\n{result.stderr}")


def parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows


def write_scaled(source: Path | None, base_rows: int, scale: int, path: Path) -> int:
    """``scale`` times the table: the demo generated with ``base_rows * scale`` rows, or the
    ``source`` parquet repeated ``scale`` times (row group by row group). Returns the rows."""
    import pyarrow.parquet as pq

    if source is None:
        from revcli import demo

        demo.generate(rows=base_rows * scale, seed=0).to_parquet(path, index=False)
        return base_rows * scale
    table = pq.read_table(source)
    with pq.ParquetWriter(path, table.schema) as writer:
        for _ in range(scale):
            writer.write_table(table, row_group_size=100_000)
    del table
    return parquet_rows(path)


def session_features(path: Path, drop: Sequence[str] = ()) -> list[str]:
    """The features revcli learns from in ``path`` (validated as revcli does; DataError if the
    table is not a session table), so the reference scripts fit the very same columns."""
    from revcli.data import read_parquet, validate

    return validate(read_parquet(path), drop_features=drop).features


def load() -> str:
    """The load average, to judge how busy the machine was around a measurement."""
    try:
        return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "load average unknown"


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
