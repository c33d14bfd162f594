"""`--cluster` against the in-process path, in the same run: wall time and peak memory.

At each scale (multiples of the demo's --rows; the table written once as one parquet file for the
in-process path and as parts for the cluster), it runs as fresh processes in fresh workspaces:

- `revcli train -s converting_only --no-plots` (in-process, `--data <file>`);
- the same with `--cluster <scheduler> --data <parts>`;
- `revcli train -s two_stage --drop-feature engagement_depth --no-plots`, both ways.

The cluster is a LocalCluster this script starts once (--workers processes, 1 thread each,
--worker-memory each) and stops at the end; its workers are restarted before every cluster run,
so the peak RSS each reports (VmHWM of the worker process) is that run's. For the cluster it
prints the client's peak (the revcli process) and the largest worker's. Ratios are cluster /
in-process of the same command at the same scale. It asserts nothing.

With --ceiling C the in-process runs are run as on a machine of C without swap: killed as soon
as the summed RSS of their session (revcli and its logger process) exceeds C (sampled every
20 ms, see _measure.run); the table says which were. The cluster's workers keep their
--worker-memory limit (Dask's nanny kills a worker at 95 % of it, after spilling to disk from
60-70 %): --worker-memory C/2 with 2 workers is the same memory on one machine, --worker-memory C
is two machines of C.

    python benchmarks/bench_cluster.py                  # 1x and 10x of 472,871 rows
    python benchmarks/bench_cluster.py --scales 1 --rows 100000   # a quick look
    python benchmarks/bench_cluster.py --scales 40 --commands converting_only --ceiling 3GB \
        --worker-memory 1.5GB          # in-process killed at 3 GB; 2 workers of 1.5 GB train
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _measure as m

DROP = "engagement_depth"
COMMANDS = {"train converting_only": ["train", "-s", "converting_only", "--no-plots", "--json"],
            f"train two_stage -{DROP}": ["train", "-s", "two_stage", "--drop-feature", DROP,
                                          "--no-plots", "--json"]}


def _worker_peak_mb() -> float:
    """The worker process's peak RSS since it started: VmHWM, not getrusage's ru_maxrss. The
    nannies of a LocalCluster run in this process, so the workers are forked from it, and Linux
    carries the forking process's high-water mark across exec into ru_maxrss: a worker would
    report at least this process's peak, which holds the generated table (at 40x, 6.2 GB)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_parts(single: Path, parts: Path, n_parts: int) -> None:
    """``single`` cut into ``n_parts`` files of consecutive rows (row groups streamed)."""
    import pyarrow.parquet as pq

    source = pq.ParquetFile(single)
    total = source.metadata.num_rows
    per_part = -(-total // n_parts)
    parts.mkdir()
    writer, written, index = None, 0, 0
    for batch in source.iter_batches(batch_size=50_000):
        while batch.num_rows:
            if writer is None:
                writer = pq.ParquetWriter(parts / f"part-{index:04d}.parquet", batch.schema)
            take = min(batch.num_rows, per_part - written)
            writer.write_batch(batch.slice(0, take))
            batch, written = batch.slice(take), written + take
            if written == per_part:
                writer.close()
                writer, written, index = None, 0, index + 1
    if writer is not None:
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,10")
    parser.add_argument("--rows", type=int, default=472_871, help="rows at 1x")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-memory", default="4GB")
    parser.add_argument("--rows-per-part", type=int, default=250_000)
    parser.add_argument("--commands", default=",".join(c.split()[1] for c in COMMANDS),
                        help="which commands: converting_only, two_stage (comma-separated)")
    parser.add_argument("--ceiling", help="an RSS ceiling for the in-process runs, e.g. 2GB")
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",")]
    chosen = args.commands.split(",")
    commands = {n: c for n, c in COMMANDS.items() if n.split()[1] in chosen}
    try:
        import distributed
        from dask.utils import format_bytes, parse_bytes
    except ImportError:
        print("bench_cluster needs Dask: pip install 'revcli[dask]'; skipped", file=sys.stderr)
        return
    ceiling_mb = parse_bytes(args.ceiling) / 2**20 if args.ceiling else None
    results: dict[tuple[str, int, str], tuple[m.Run, float | None]] = {}
    rows: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp_name, \
            distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                     processes=True, memory_limit=args.worker_memory,
                                     dashboard_address=":0", silence_logs=40) as cluster, \
            distributed.Client(cluster) as client:
        tmp = Path(tmp_name)
        for scale in scales:
            base = tmp / f"scale-{scale}"
            base.mkdir()
            single = base / "sessions.parquet"
            print(f"== {scale}x: writing the table ...", file=sys.stderr, flush=True)
            rows[scale] = m.write_scaled(None, args.rows, scale, single)
            parts = base / "parts"
            write_parts(single, parts, max(2, rows[scale] // args.rows_per_part))
            ws = m.FreshWorkspace(base / "ws", single, f"demo x{scale}")
            env = m.child_env(ws.root)
            for name, cmd in commands.items():
                ws.reset()
                local = m.run([*m.revcli(), *cmd, "--data", str(single)], env, base,
                              rss_ceiling_mb=ceiling_mb)
                results[(name, scale, "in-process")] = (local, None)
                ws.reset()
                client.restart()
                remote = m.run([*m.revcli(), *cmd, "--cluster", cluster.scheduler_address,
                                "--data", str(parts)], env, base)
                peaks = client.run(_worker_peak_mb)
                results[(name, scale, "cluster")] = (remote, max(peaks.values()))
                client.restart()  # idle workers hold nothing while the next in-process run runs
                for kind in ("in-process", "cluster"):
                    run, peak = results[(name, scale, kind)]
                    rmse = (run.json() or {}).get("scorecard", {}).get("metrics", {}).get("rmse")
                    print(f"  {scale}x {name} {kind}: {run.wall:.1f} s, {run.rss_mb:.0f} MB"
                          + (f", session {run.session_mb:.0f} MB" if run.session_mb else "")
                          + (f", worker peak {peak:.0f} MB" if peak else "")
                          + (f", rmse {rmse:.4f}" if rmse else "") + f", {_state(run)}",
                          file=sys.stderr, flush=True)
    print(f"\n{args.workers} workers x 1 thread, {args.worker_memory} each; "
          f"{m.cores()} cores; {m.load()}")
    if ceiling_mb:
        print(f"in-process runs under an RSS ceiling of {format_bytes(parse_bytes(args.ceiling))}"
              " (their session's summed RSS, sampled every 20 ms: 'session MB')")
    print(f"{'command':34}{'scale':>6}{'rows':>11}{'in-proc s':>10}{'MB':>7}"
          + (f"{'session MB':>11}" if ceiling_mb else "")
          + f"{'cluster s':>10}{'client MB':>10}{'worker MB':>10}{'wall ratio':>11}")
    failures = []
    for name in commands:
        for scale in scales:
            local, _ = results[(name, scale, "in-process")]
            remote, peak = results[(name, scale, "cluster")]
            both = local.returncode == 0 and remote.returncode == 0 and local.wall
            ratio = f"{remote.wall / local.wall:>10.2f}x" if both else f"{'-':>11}"
            print(f"{name:34}{scale:>5}x{rows[scale]:>11,}{_cell(local, local.wall, 10, 1)}"
                  f"{_cell(local, local.rss_mb, 7, 0)}"
                  + (f"{local.session_mb:>11.0f}" if ceiling_mb else "")
                  + f"{_cell(remote, remote.wall, 10, 1)}{remote.rss_mb:>10.0f}"
                  f"{_cell(remote, peak or 0, 10, 0)}{ratio}")
            failures += [f"  {name} {scale}x {kind}: {_state(run)}" for kind, run in
                         (("in-process", local), ("cluster", remote)) if run.returncode != 0]
    if failures:
        print("* failed (the figures are those at the failure):", *failures, sep="\n")


def _state(run: m.Run) -> str:
    if run.ceiling_hit:
        return f"killed at the RSS ceiling ({run.session_mb:.0f} MB)"
    return "ok" if run.returncode == 0 else f"FAILED: {run.error}"


def _cell(run: m.Run, value: float, width: int, digits: int) -> str:
    """``value`` in a column, marked * when ``run`` failed."""
    mark = "*" if run.returncode != 0 else ""
    return f"{value:.{digits}f}{mark}".rjust(width)


if __name__ == "__main__":
    main()
