"""revcli.fetch pieces that need no server (the S3 round trips are in tests/integration)."""

from __future__ import annotations

import subprocess
import sys

from revcli import fetch
from revcli.storage import Location, ObjectInfo
from revcli.workspace import Workspace


def test_a_cache_hit_path_imports_no_data_library() -> None:
    """A cached `revcli fetch` needs boto3 and json, not numpy/pandas/pyarrow."""
    code = ("import sys, revcli.fetch, revcli.storage, revcli.cli.fetch\n"
            "print([m for m in ('numpy', 'pandas', 'pyarrow', 'boto3') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cached_copy_matches_bucket_key_endpoint_etag_and_size(isolated, demo_parquet) -> None:
    ws = Workspace(isolated)
    origin = {"bucket": "data", "key": "t.parquet", "endpoint": "http://a:9000",
              "etag": '"abc"', "size": demo_parquet.stat().st_size, "last_modified": ""}
    record = ws.register_file(demo_parquet, "s3://data/t.parquet",
                              extra={"s3": origin, "s3_origins": [origin]})

    def info(**change) -> ObjectInfo:
        o = {**origin, **change}
        return ObjectInfo(Location(o["bucket"], o["key"]), etag=o["etag"], size=o["size"],
                          last_modified="", metadata={})

    assert fetch.cached_copy(ws, info(), "http://a:9000") == record
    assert fetch.cached_copy(ws, info(), "http://b:9000") is None  # another server
    assert fetch.cached_copy(ws, info(etag='"def"'), "http://a:9000") is None  # changed
    assert fetch.cached_copy(ws, info(size=1), "http://a:9000") is None
    assert fetch.cached_copy(ws, info(key="u.parquet"), "http://a:9000") is None
    record.path.write_bytes(b"truncated")  # a damaged cache file is not a hit
    assert fetch.cached_copy(ws, info(), "http://a:9000") is None
