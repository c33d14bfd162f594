"""Real servers for integration tests: a JuiceFS S3 gateway (MinIO's S3 gateway code), an MLflow
tracking server, and a TCP proxy in front of S3 that logs requests and injects faults.

Each server runs on 127.0.0.1 on a free port in its own process group, and :func:`stop` ends the
whole group. Shared by ``tests/integration/conftest.py`` and ``benchmarks/bench_fetch.py``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ACCESS_KEY = "revcli-test"
# Long and distinctive, so a test can assert it never shows up in any output.
SECRET_KEY = "s3cr3t-Rev-Cli-Never-Print-Me"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: `pip install -e '.[test]'` installs it")
    return found


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{_tail(log)}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    except OSError:
        return "(no log)"


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(grace)


@dataclass
class S3Server:
    endpoint: str
    port: int
    directory: Path
    proc: subprocess.Popen
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key)

    def create_bucket(self, name: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client().create_bucket(Bucket=name)
        except ClientError as exc:  # MinIO-like servers say so where AWS/moto answer 200
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou",
                                                      "BucketAlreadyExists"):
                raise


@contextlib.contextmanager
def s3_server(directory: Path) -> Iterator[S3Server]:
    """A JuiceFS S3 gateway on a fresh file-backed volume with a sqlite meta store."""
    juicefs = _binary("juicefs")
    directory.mkdir(parents=True, exist_ok=True)
    meta = f"sqlite3://{directory / 'meta.db'}"
    log = directory / "gateway.log"
    subprocess.run([juicefs, "format", "--storage", "file", "--bucket",
                    f"{directory / 'blobs'}/", meta, "revcli-test"],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    env = {**os.environ, "MINIO_ROOT_USER": ACCESS_KEY, "MINIO_ROOT_PASSWORD": SECRET_KEY}
    with open(directory / "gateway.out", "wb") as out:
        proc = subprocess.Popen(
            [juicefs, "gateway", meta, f"127.0.0.1:{port}", "--multi-buckets", "--keep-etag",
             "--object-meta", "--no-banner", "--no-usage-report", "--backup-meta", "0",
             "--cache-dir", str(directory / "cache"), "--log", str(log),
             "--metrics", f"127.0.0.1:{free_port()}"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _wait(f"{endpoint}/minio/health/live", proc, directory / "gateway.out", timeout=30)
        yield S3Server(endpoint=endpoint, port=port, directory=directory, proc=proc)
    finally:
        stop(proc)


@dataclass
class MlflowServer:
    uri: str
    proc: subprocess.Popen


@contextlib.contextmanager
def mlflow_server(directory: Path, s3: S3Server, bucket: str) -> Iterator[MlflowServer]:
    """``mlflow server`` with a sqlite backend and its artifacts in ``s3://bucket`` on ``s3``."""
    directory.mkdir(parents=True, exist_ok=True)
    s3.create_bucket(bucket)
    port = free_port()
    env = {**os.environ, **s3.env(), "MLFLOW_S3_ENDPOINT_URL": s3.endpoint,
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = directory / "mlflow.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
             str(port), "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}",
             "--artifacts-destination", f"s3://{bucket}", "--workers", "1"],
            env=env, cwd=directory, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        uri = f"http://127.0.0.1:{port}"
        _wait(f"{uri}/health", proc, log, timeout=120)
        yield MlflowServer(uri=uri, proc=proc)
    finally:
        stop(proc, grace=10)


_REQUEST = re.compile(rb"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP/1\.[01]\r\n")


@dataclass
class FaultProxy:
    """A TCP proxy in front of an S3 server. It records every request line it forwards and can

    * ``cut_gets``: close the connection after ``cut_after`` bytes of the next N GET responses
      (a download cut off half-way, the way a dropped connection looks to the client), and
    * ``fail_next``: answer the next N requests itself with ``503 SlowDown`` (a transient error),
    * ``fail_after``: let N more requests through, then answer every later one with 503 (a
      server that dies in the middle of a command).
    """

    upstream_port: int
    cut_after: int = 20_000
    cut_gets: int = 0
    fail_next: int = 0
    fail_after: int | None = None
    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0
    _server: socket.socket | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, method: str, path_part: str = "") -> int:
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and path_part in p)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.cut_gets = 0
            self.fail_next = 0
            self.fail_after = None

    def start(self) -> FaultProxy:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        self.port = server.getsockname()[1]
        self._server = server
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.close()

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
        except OSError:
            client.close()
            return
        budget: list[int | None] = [None]  # bytes of the current response still allowed

        def shut() -> None:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

        def downstream() -> None:
            try:
                while data := upstream.recv(65536):
                    allowed = budget[0]
                    if allowed is not None:
                        if len(data) >= allowed:
                            client.sendall(data[:allowed])
                            shut()
                            return
                        budget[0] = allowed - len(data)
                    client.sendall(data)
            except OSError:
                pass
            shut()

        threading.Thread(target=downstream, daemon=True).start()
        try:
            while data := client.recv(65536):
                match = _REQUEST.match(data)
                if match:
                    method, path = match.group(1).decode(), match.group(2).decode()
                    with self._lock:
                        self.requests.append((method, path))
                        fail = self.fail_next > 0
                        if fail:
                            self.fail_next -= 1
                        elif self.fail_after is not None:
                            fail = self.fail_after <= 0
                            self.fail_after -= 1
                        cut = method == "GET" and self.cut_gets > 0
                        if cut:
                            self.cut_gets -= 1
                    if fail:
                        body = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown"
                                b"</Code><Message>Please reduce your request rate.</Message>"
                                b"</Error>")
                        client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                                       b"application/xml\r\nContent-Length: "
                                       + str(len(body)).encode() + b"\r\nConnection: close"
                                       b"\r\n\r\n" + body)
                        shut()
                        return
                    budget[0] = self.cut_after if cut else None
                upstream.sendall(data)
        except OSError:
            pass
        shut()
