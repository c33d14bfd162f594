"""S3 URIs, error messages and credential hygiene of revcli.storage (no server needed; the
requests themselves are tested against a real server in tests/integration)."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from revcli.errors import ConfigError, StorageError
from revcli.storage import Location, parse_uri, safe_endpoint, scrub, storage_error

LOC = Location("processed-data", "training_data.parquet")


def test_parse_uri() -> None:
    assert parse_uri("s3://processed-data/dir/t.parquet") == Location("processed-data",
                                                                      "dir/t.parquet")
    for bad in ("processed-data/t.parquet", "s3://", "s3://bucket", "s3://bucket/",
                "s3://bucket/dir/", "s3://Upper/k", "s3://ab/k"):
        with pytest.raises(ConfigError):
            parse_uri(bad)


def test_scrub_removes_credentials(monkeypatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEBYaDH")
    text = ("key AKIAIOSFODNN7EXAMPLE secret wJalrXUtnFEMI/K7MDENG token FwoGZXIvYXdzEBYaDH "
            "url ?X-Amz-Signature=abcdef0123&X-Amz-Credential=AKIA/2026")
    cleaned = scrub(text, secrets=("extra-secret",))
    for secret in ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG", "FwoGZXIvYXdzEBYaDH",
                   "abcdef0123"):
        assert secret not in cleaned
    assert scrub("fine text") == "fine text"


def test_safe_endpoint_masks_the_password() -> None:
    assert safe_endpoint("http://user:pass@minio:9000/") == "http://user:***@minio:9000"
    assert safe_endpoint("http://minio:9000/") == "http://minio:9000"
    assert safe_endpoint(None) == "AWS S3"


@pytest.mark.parametrize(("url", "shown"), [
    ("http://u:s3cr3t@h:9000/x", "http://u:***@h:9000/x"),
    ("postgresql+psycopg://u:p%40ss@h:5432/db?password=zz", "postgresql+psycopg://u:***@h:5432/db?password=***"),
    ("sqlite:////abs/path.db", "sqlite:////abs/path.db"),
    ("https://b.s3/k?X-Amz-Signature=abc&x=1", "https://b.s3/k?X-Amz-Signature=***&x=1"),
])
def test_one_function_masks_credentials_in_every_url(url: str, shown: str) -> None:
    from revcli.urls import mask

    assert mask(url) == shown


def _client_error(code: str, status: int, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


@pytest.mark.parametrize(("exc", "expected"), [
    (_client_error("NoSuchKey", 404), "no such key in bucket 'processed-data'"),
    (_client_error("NoSuchBucket", 404), "bucket 'processed-data' does not exist"),
    (_client_error("404", 404), "not found (HTTP 404)"),
    (_client_error("403", 403), "forbidden (HTTP 403)"),
    (_client_error("AccessDenied", 403), "access denied (AccessDenied): the credentials in use "
                                         "may not read this object"),
    (_client_error("InvalidAccessKeyId", 403), "access key id is not known"),
    (_client_error("SignatureDoesNotMatch", 403), "secret key is wrong"),
    (_client_error("ExpiredToken", 400), "session token has expired"),
    (_client_error("SlowDown", 503), "throttling"),
    (_client_error("Weird", 418, "teapot AKIAIOSFODNN7EXAMPLE"), "the server answered Weird "
                                                                 "(teapot ***)"),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "cannot reach the S3 endpoint"),
    (NoCredentialsError(), "no usable S3 credentials"),
    (ResponseStreamingError(error="Connection broken: IncompleteRead"), "connection broke"),
    (IncompleteReadError(actual_bytes=10, expected_bytes=20), "the connection closed early"),
    (ReadTimeoutError(endpoint_url="http://minio:9000"), "sent nothing for 60 s"),
])
def test_every_failure_is_one_line_that_names_the_object(exc, expected) -> None:
    error = storage_error(exc, LOC, "read", "http://minio:9000")
    assert isinstance(error, StorageError) and error.exit_code == 2
    text = str(error)
    assert "\n" not in text and LOC.uri in text and expected in text, text


def test_upload_failures_are_unwrapped() -> None:
    from boto3.exceptions import S3UploadFailedError

    try:
        try:
            raise _client_error("NoSuchBucket", 404)
        except ClientError as inner:
            raise S3UploadFailedError("Failed to upload") from inner
    except S3UploadFailedError as outer:
        text = str(storage_error(outer, LOC, "write", "http://minio:9000"))
    assert "cannot write s3://processed-data/training_data.parquet" in text
    assert "does not exist" in text
