"""Object storage (S3, MinIO and other S3-compatible servers) behind one small class.

:class:`S3Storage` wraps a boto3 S3 client that is built lazily from the usual AWS settings (the
standard credential chain: environment, ``~/.aws`` profile, ``--profile``; the endpoint from
``--endpoint-url`` / ``REVCLI_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` /
``endpoint_url`` in the config file; the region). Tests and library callers can inject their own
client, as Optuna's ``artifacts/_boto3.py`` does.

Every botocore failure becomes a one-line :class:`~revcli.errors.StorageError` that names the
object, says the cause and the fix, and never contains a credential (:func:`scrub`). Transient
failures are retried first: boto3's ``standard`` retry mode for whole requests, and a ranged,
``If-Match``-guarded resume for a download whose body is cut off half-way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from revcli import urls
from revcli.errors import ConfigError, StorageError, first_line

if TYPE_CHECKING:
    from revcli.settings import Settings

CHUNK = 1 << 20
# A download whose body is cut off resumes from the last byte received this many times.
RESUMES = 3
MULTIPART_THRESHOLD = 64 * 1024 * 1024
MULTIPART_CHUNKSIZE = 16 * 1024 * 1024
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60

_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                   "AWS_SECURITY_TOKEN", "MINIO_ROOT_PASSWORD", "MINIO_SECRET_KEY")
_ACCESS_KEY_RE = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b")
_SIGNATURE_RE = re.compile(r"(Signature=|X-Amz-Signature=|X-Amz-Credential=)[^&\s,]+")


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every credential it might carry replaced by ``***``: the values of the AWS
    credential variables, ``secrets``, anything shaped like an access key id, and signatures."""
    values = [os.environ.get(name, "") for name in _CREDENTIAL_ENV] + list(secrets)
    for value in sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True):
        text = text.replace(value, "***")
    text = _ACCESS_KEY_RE.sub("***", text)
    return _SIGNATURE_RE.sub(r"\1***", text)


def safe_endpoint(url: str | None) -> str:
    """An endpoint URL fit to print (revcli.urls.mask), or "AWS S3" when none is set."""
    return urls.mask(url).rstrip("/") if url else "AWS S3"


class MissingObject(StorageError):
    """No object under that key (the bucket exists): it may name a prefix of parts instead."""


@dataclass(frozen=True)
class Location:
    """One object, ``s3://bucket/key``, or a prefix, ``s3://bucket/prefix/`` (a key that is
    empty or ends in ``/``)."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def __str__(self) -> str:
        return self.uri

    def with_key(self, key: str) -> Location:
        check_key(key)
        return Location(self.bucket, key)

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")

    def as_prefix(self) -> Location:
        """The prefix of the "directory" this key names: ``s3://b/sessions`` ->
        ``s3://b/sessions/``."""
        return self if self.is_prefix else Location(self.bucket, self.key + "/")


def check_key(key: str, uri: str | None = None, prefix: bool = False) -> None:
    """An object key revcli reads or writes: relative, no ``.`` or ``..`` segment, no empty
    segment, no control character. S3 takes such keys literally, but a path-shaped key
    (``../../etc/passwd``, ``/x``) means something else to every tool that maps keys to files
    (a gateway on a file system, ``aws s3 sync``, a human), so it is refused, not cleaned."""
    what = repr(uri) if uri else f"key {key!r}"
    if prefix and (not key or key.endswith("/")):  # a prefix of parts: its segments count
        if not key:
            return
        key = key[:-1]
    elif not key or key.endswith("/"):
        raise ConfigError(f"{what} names no object; give a key such as models/model.pkl")
    if key.startswith("/"):
        raise ConfigError(f"{what} is absolute; give the key without a leading '/'")
    parts = key.split("/")
    if any(part in (".", "..") for part in parts):
        raise ConfigError(f"{what} has a '.' or '..' segment; give the key as it should be "
                          "stored, e.g. candidates/model.pkl")
    if any(not part for part in parts):
        raise ConfigError(f"{what} has an empty segment ('//'); remove it")
    if re.search(r"[\x00-\x1f\x7f]", key):
        raise ConfigError(f"{what} holds a control character")


def parse_uri(uri: str, prefix: bool = False) -> Location:
    """``s3://bucket/key`` -> Location, or ConfigError saying what is wrong with it.
    ``prefix``: ``s3://bucket/prefix/`` and ``s3://bucket`` are accepted too."""
    if not uri.startswith("s3://"):
        raise ConfigError(f"{uri!r} is not an S3 URI; write it as s3://bucket/key")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if bucket and prefix and (not key or key.endswith("/")):
        key = key.lstrip("/")
    elif not bucket or not key or key.endswith("/"):
        raise ConfigError(f"{uri!r} names no object; write it as s3://bucket/key "
                          "(e.g. s3://processed-data/training_data.parquet)")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.\-_]{1,253}[a-z0-9]", bucket):
        raise ConfigError(f"{uri!r}: {bucket!r} is not a valid bucket name (3-255 lowercase "
                          "letters, digits, dots, dashes)")
    check_key(key, uri, prefix=prefix)
    return Location(bucket, key)


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD request says about an object."""

    location: Location
    etag: str
    size: int
    last_modified: str
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class Connection:
    """How to reach S3: only names and URLs, never the credentials themselves."""

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    # A quick check (``revcli doctor``) asks once, with short timeouts, instead of retrying.
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    max_attempts: int | None = None  # None: AWS_MAX_ATTEMPTS or boto3's default of 3

    @classmethod
    def from_settings(cls, settings: Settings, timeout: float | None = None) -> Connection:
        """The connection the settings name; ``timeout``: one attempt per request, with
        this connect and read timeout."""
        limits: dict[str, Any] = ({} if timeout is None else
                                  {"connect_timeout": timeout, "read_timeout": timeout,
                                   "max_attempts": 1})
        return cls(endpoint_url=settings.endpoint_url, profile=settings.aws_profile,
                   region=settings.region, **limits)


    def fsspec_options(self) -> dict[str, Any]:
        """The same connection as s3fs ``storage_options`` (what Dask workers read ``s3://``
        parts with): endpoint, region, profile and path-style addressing; the credentials come
        from each worker's own standard chain, never from revcli."""
        options: dict[str, Any] = {}
        client: dict[str, Any] = {}
        if self.endpoint_url:
            client["endpoint_url"] = self.endpoint_url
            options["config_kwargs"] = {"s3": {"addressing_style": "path"}}
        if self.region:
            client["region_name"] = self.region
        if client:
            options["client_kwargs"] = client
        if self.profile:
            options["profile"] = self.profile
        return options


def _make_client(connection: Connection) -> Any:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    retries: dict[str, Any] = {"mode": "standard"}  # AWS_MAX_ATTEMPTS or boto3's default of 3
    if connection.max_attempts is not None:
        retries["total_max_attempts"] = connection.max_attempts
    config = Config(
        retries=retries,
        connect_timeout=connection.connect_timeout,
        read_timeout=connection.read_timeout,
        # MinIO-style servers are addressed by path; AWS itself takes either.
        s3={"addressing_style": "path"} if connection.endpoint_url else None,
        user_agent_extra="revcli",
    )
    try:
        session = boto3.session.Session(profile_name=connection.profile,
                                        region_name=connection.region)
        return session.client("s3", endpoint_url=connection.endpoint_url, config=config)
    except ProfileNotFound:
        raise ConfigError(f"AWS profile {connection.profile!r} is not in ~/.aws/config or "
                          "~/.aws/credentials; name another with --profile / AWS_PROFILE") from None
    except ValueError as exc:  # a malformed endpoint URL
        raise ConfigError(f"S3 endpoint {safe_endpoint(connection.endpoint_url)!r} is not "
                          f"usable ({scrub(str(exc))}); fix --endpoint-url") from None
    except BotoCoreError as exc:
        raise ConfigError(f"cannot set up the S3 client: {scrub(str(exc))}") from None


class Sink(Protocol):
    """Where a download writes: a binary file or anything with ``write(bytes)``."""

    def write(self, chunk: bytes, /) -> Any: ...


class _LocalWriteError(Exception):
    """Writing a downloaded chunk to the local disk failed (kept apart from network errors)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class S3Storage:
    """S3 operations revcli needs, each failure mapped to a StorageError.

    ``client`` is any boto3 S3 client; without one it is built on first use from ``connection``
    (so creating an S3Storage imports nothing and touches no network).
    """

    def __init__(self, client: Any = None, connection: Connection | None = None, *,
                 multipart_threshold: int = MULTIPART_THRESHOLD,
                 multipart_chunksize: int = MULTIPART_CHUNKSIZE) -> None:
        self._client = client
        self.connection = connection or Connection()
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize

    @classmethod
    def from_settings(cls, settings: Settings, timeout: float | None = None) -> S3Storage:
        """Storage for the settings' endpoint, profile and region (``timeout``: a quick check
        that asks once, see :meth:`Connection.from_settings`)."""
        return cls(connection=Connection.from_settings(settings, timeout=timeout))

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _make_client(self.connection)
        return self._client

    @property
    def endpoint(self) -> str:
        """The endpoint requests go to, as boto3 resolved it (credentials stripped)."""
        return safe_endpoint(self.client.meta.endpoint_url)

    # -- reading ----------------------------------------------------------------------------

    def head(self, location: Location) -> ObjectInfo:
        """One HEAD request: ETag, size, modification time and user metadata of an object."""
        try:
            response = self.client.head_object(Bucket=location.bucket, Key=location.key)
        except Exception as exc:
            raise self._diagnose(exc, location, "read") from None
        modified = response.get("LastModified")
        return ObjectInfo(location=location, etag=str(response.get("ETag", "")),
                          size=int(response.get("ContentLength", 0)),
                          last_modified=modified.isoformat() if modified is not None else "",
                          metadata=dict(response.get("Metadata") or {}))

    def list(self, prefix: Location, limit: int | None = None) -> list[ObjectInfo]:
        """Every object under ``prefix`` (at most ``limit``; LIST requests through boto3's
        paginator, 1,000 keys a page), with the ETag, size and modification time the listing
        gives."""
        objects: list[ObjectInfo] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=prefix.bucket, Prefix=prefix.key,
                PaginationConfig={"MaxItems": limit} if limit else {})
            for page in pages:
                for item in page.get("Contents", []):
                    modified = item.get("LastModified")
                    objects.append(ObjectInfo(
                        location=Location(prefix.bucket, item["Key"]),
                        etag=str(item.get("ETag", "")), size=int(item.get("Size", 0)),
                        last_modified=modified.isoformat() if modified is not None else "",
                        metadata={}))
        except Exception as exc:
            raise self._diagnose(exc, prefix, "list") from None
        return objects

    def download(self, info: ObjectInfo, sink: Sink,
                 progress: Callable[[int], None] | None = None) -> int:
        """Stream the object ``info`` describes into ``sink``; return the bytes written.

        The GET carries ``If-Match: <etag>``, so an object replaced since the HEAD fails instead of
        mixing two versions. A body cut off half-way is resumed with a ranged GET from the last
        byte received, up to RESUMES times; after that the error names how far it got.
        """
        location = info.location
        written = 0
        failures = 0
        while True:
            request = {"Bucket": location.bucket, "Key": location.key}
            if info.etag:
                request["IfMatch"] = info.etag
            if written:
                request["Range"] = f"bytes={written}-"
            try:
                body = self.client.get_object(**request)["Body"]
                try:
                    while chunk := body.read(CHUNK):
                        try:
                            sink.write(chunk)
                        except OSError as exc:
                            raise _LocalWriteError(exc) from None
                        written += len(chunk)
                        if progress is not None:
                            progress(len(chunk))
                finally:
                    body.close()
                break
            except _LocalWriteError as exc:
                raise exc.error from None
            except Exception as exc:
                if _is_cut_off(exc) and failures < RESUMES and written < info.size:
                    failures += 1
                    continue
                if _is_cut_off(exc):
                    raise StorageError(
                        f"download of {location} was cut off after {written:,} of "
                        f"{info.size:,} bytes ({_cause(exc)}; {failures + 1} attempts) from "
                        f"{self.endpoint}; nothing was changed, run it again") from None
                raise self._diagnose(exc, location, "read") from None
        if written != info.size:
            raise StorageError(f"download of {location} from {self.endpoint} returned "
                               f"{written:,} bytes, but its Content-Length is {info.size:,}; "
                               "nothing was changed, run it again")
        return written

    # -- writing ----------------------------------------------------------------------------

    def check_bucket(self, location: Location) -> None:
        """Fail early (one HEAD) when the bucket is missing or the credentials cannot use it."""
        try:
            self.client.head_bucket(Bucket=location.bucket)
        except Exception as exc:
            raise self._diagnose(exc, location, "write") from None

    def upload_file(self, path: Path, location: Location, metadata: Mapping[str, str],
                    content_type: str = "application/octet-stream",
                    progress: Callable[[int], None] | None = None) -> None:
        """Upload through boto3's managed transfer (multipart above ``multipart_threshold``,
        parts in parallel, each part retried), with ``metadata`` as ``x-amz-meta-*``."""
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=self.multipart_threshold,
                                multipart_chunksize=self.multipart_chunksize, max_concurrency=4)
        try:
            self.client.upload_file(str(path), location.bucket, location.key,
                                    ExtraArgs={"Metadata": dict(metadata),
                                               "ContentType": content_type},
                                    Config=config, Callback=progress)
        except OSError as exc:
            if getattr(exc, "filename", None):
                raise StorageError(f"cannot read {path} to upload it to {location}: "
                                   f"{exc.strerror}") from None
            raise self._diagnose(exc, location, "write") from None
        except Exception as exc:
            raise self._diagnose(exc, location, "write") from None

    def put_bytes(self, location: Location, data: bytes, metadata: Mapping[str, str],
                  content_type: str = "application/json") -> None:
        """One PUT of a small object (e.g. a metadata JSON)."""
        try:
            self.client.put_object(Bucket=location.bucket, Key=location.key, Body=data,
                                   Metadata=dict(metadata), ContentType=content_type)
        except Exception as exc:
            raise self._diagnose(exc, location, "write") from None

    def get_bytes(self, location: Location) -> bytes:
        """A small object's content in memory."""
        try:
            return bytes(self.client.get_object(Bucket=location.bucket,
                                                Key=location.key)["Body"].read())
        except Exception as exc:
            raise self._diagnose(exc, location, "read") from None

    # -- errors -----------------------------------------------------------------------------

    def _diagnose(self, exc: BaseException, location: Location, action: str) -> StorageError:
        """Map ``exc``; a bodiless HEAD answer (bare 403/404/400) is followed by one small request
        whose error body names the real cause (NoSuchBucket vs NoSuchKey, bad key id vs bad
        secret vs a denied policy). Only failures pay for it."""
        if _client_error_code(exc) in {"403", "404", "400"}:
            try:
                if action in ("write", "list"):
                    self.client.list_objects_v2(Bucket=location.bucket, MaxKeys=1)
                else:
                    self.client.get_object(Bucket=location.bucket, Key=location.key,
                                           Range="bytes=0-0")
            except Exception as detail:
                if _client_error_code(detail) not in {None, "InvalidRange"}:
                    exc = detail
        error = storage_error(exc, location, action, self.endpoint)
        if action == "read" and _client_error_code(exc) in {"NoSuchKey", "404"}:
            return MissingObject(str(error))
        return error


def _client_error_code(exc: BaseException) -> str | None:
    from botocore.exceptions import ClientError

    cause = exc if isinstance(exc, ClientError) else exc.__cause__
    if isinstance(cause, ClientError):
        return str(cause.response.get("Error", {}).get("Code", "")) or str(
            cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return None


def _is_cut_off(exc: BaseException) -> bool:
    """A body that stopped half-way: the connection broke, timed out or closed early."""
    from botocore.exceptions import (
        ConnectionClosedError,
        IncompleteReadError,
        ReadTimeoutError,
        ResponseStreamingError,
    )
    from urllib3.exceptions import HTTPError as Urllib3Error

    return isinstance(exc, (IncompleteReadError, ResponseStreamingError, ReadTimeoutError,
                            ConnectionClosedError, Urllib3Error, ConnectionError))


def _cause(exc: BaseException) -> str:
    from botocore.exceptions import IncompleteReadError, ReadTimeoutError

    if isinstance(exc, IncompleteReadError):
        return "the connection closed early"
    if isinstance(exc, ReadTimeoutError):
        return f"no data for {READ_TIMEOUT} s"
    text = str(exc)
    if "IncompleteRead" in text or "Connection broken" in text:
        return "connection broken"
    return type(exc).__name__


_CODES: dict[str, str] = {
    "NoSuchKey": "no such key in bucket {bucket!r}; check the key (the path after the bucket)",
    "NoSuchBucket": "bucket {bucket!r} does not exist; check the URI or create the bucket",
    "InvalidAccessKeyId": "the access key id is not known to the server (InvalidAccessKeyId); "
                          "check AWS_ACCESS_KEY_ID or the --profile in use",
    "SignatureDoesNotMatch": "the secret key is wrong (SignatureDoesNotMatch); check "
                             "AWS_SECRET_ACCESS_KEY or the --profile in use",
    "AccessDenied": "access denied (AccessDenied): the credentials in use may not {action} "
                    "this object; check the bucket policy or use another --profile",
    "AllAccessDisabled": "access denied (AllAccessDisabled) by the server",
    "ExpiredToken": "the session token has expired (ExpiredToken); refresh the credentials",
    "InvalidToken": "the session token is invalid (InvalidToken); refresh the credentials",
    "RequestTimeTooSkewed": "this machine's clock is too far from the server's "
                            "(RequestTimeTooSkewed); fix the clock",
    "PreconditionFailed": "the object changed while it was being read (PreconditionFailed); "
                          "run it again",
    "InvalidBucketName": "{bucket!r} is not a valid bucket name for this server",
    "PermanentRedirect": "the bucket is in another region (PermanentRedirect); set --region",
    "AuthorizationHeaderMalformed": "the request was signed for the wrong region; set --region",
    "SlowDown": "the server is throttling requests (SlowDown) and kept doing so after retries; "
                "try again later",
    "InternalError": "the server failed (InternalError) and kept failing after retries; try "
                     "again later",
    "ServiceUnavailable": "the server is unavailable (ServiceUnavailable) after retries; try "
                          "again later",
    "XMinioStorageFull": "the server's disk is full (XMinioStorageFull)",
    "EntityTooLarge": "the object is too large for a single upload (EntityTooLarge)",
}
_STATUS = {
    "404": "not found (HTTP 404): the bucket or the key does not exist",
    "403": "forbidden (HTTP 403): wrong credentials or no permission; check AWS_ACCESS_KEY_ID / "
           "AWS_SECRET_ACCESS_KEY or the --profile in use",
    "412": _CODES["PreconditionFailed"],
    "301": _CODES["PermanentRedirect"],
    "400": "the server rejected the request (HTTP 400); check --region and the endpoint",
    "500": _CODES["InternalError"],
    "503": _CODES["ServiceUnavailable"],
}


def storage_error(exc: BaseException, location: Location, action: str,
                  endpoint: str) -> StorageError:
    """One line for any failure of an S3 request on ``location``: what failed, the cause, the fix.

    ``action`` is ``read``, ``write`` or ``list``. The raw text of an unknown error is scrubbed of
    credentials before it is shown.
    """
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ProxyConnectionError,
        ReadTimeoutError,
        SSLError,
    )

    cause = exc.__cause__ if not isinstance(exc, ClientError) and isinstance(
        exc.__cause__, ClientError) else exc
    where = f"{location} at {endpoint}"
    if isinstance(cause, ClientError):
        code = _client_error_code(cause) or "?"
        template = _CODES.get(code) or _STATUS.get(code)
        if template is None:
            message = str(cause.response.get("Error", {}).get("Message", "")).strip()
            template = f"the server answered {code}" + (f" ({message[:200]})" if message else "")
        text = template.format(bucket=location.bucket, action=action)
        return StorageError(scrub(f"cannot {action} {where}: {text}"))
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return StorageError(f"cannot {action} {where}: no usable S3 credentials; set "
                            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in "
                            "~/.aws (--profile / AWS_PROFILE)")
    if isinstance(exc, SSLError):
        return StorageError(scrub(f"cannot {action} {where}: TLS failed ({exc}); check the "
                                  "endpoint's scheme (http:// vs https://) and certificate"))
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError)):
        return StorageError(f"cannot reach the S3 endpoint {endpoint} for {location} "
                            "(connection failed after retries); check --endpoint-url / "
                            "AWS_ENDPOINT_URL_S3 and that the server is running")
    if isinstance(exc, ReadTimeoutError):
        return StorageError(f"cannot {action} {where}: the server sent nothing for "
                            f"{READ_TIMEOUT} s after retries; try again later")
    if _is_cut_off(exc):
        return StorageError(f"cannot {action} {where}: the connection broke ({_cause(exc)}) "
                            "after retries; run it again")
    return StorageError(scrub(f"cannot {action} {where}: {first_line(exc, 200)}"))
