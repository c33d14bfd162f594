"""The one translator from MLflow's failures to revcli's one-line errors."""

from __future__ import annotations

import errno
from pathlib import Path

from revcli.errors import NotFoundError, RevcliError, StorageError, TrackingError, first_line
from revcli.urls import mask

# Substrings of the messages urllib3/requests give when a server cannot be reached at all.
_UNREACHABLE = ("Max retries exceeded", "Connection refused", "NewConnectionError",
                "Failed to establish", "timed out", "Read timed out", "Name or service not known",
                "RemoteDisconnected", "Connection aborted", "ConnectionResetError")
_LOCKED = ("database is locked", "database table is locked")
_CORRUPT = ("file is not a database", "database disk image is malformed",
            "no such table", "already exists")
_FULL = ("database or disk is full", "No space left on device", "disk I/O error")
_READ_ONLY = ("attempt to write a readonly database", "Read-only file system",
              "readonly database")
_CANNOT_OPEN = ("unable to open database file",)


def is_missing(exc: BaseException) -> bool:
    """Whether MLflow said "no such run / model / version"."""
    code = str(getattr(exc, "error_code", ""))
    return "RESOURCE_DOES_NOT_EXIST" in code or "not found" in first_line(exc).lower() or (
        "does not exist" in first_line(exc).lower())


def translate(uri: str, exc: BaseException, what: str = "") -> RevcliError:
    """One line for any failure of a call to MLflow at ``uri``: NotFoundError for a missing
    thing, an unreachable / locked / damaged store with its fix, else TrackingError."""
    shown = mask(uri)
    text = str(exc)
    doing = f" ({what})" if what else ""
    if isinstance(exc, RevcliError):
        return exc
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        # The local disk, not the server: name the directory MLflow was writing.
        where = Path(exc.filename).parent if exc.filename else "the MLflow store's disk"
        return StorageError(f"no space left on the device of {where}{doing}; free some space "
                            "there (or point --workspace / --tracking-uri elsewhere)")
    if any(marker in text for marker in _UNREACHABLE) or (
            isinstance(exc, OSError) and not is_missing(exc)):
        return TrackingError(f"MLflow tracking server at {shown} is unreachable{doing}; check "
                             "--tracking-uri / MLFLOW_TRACKING_URI and that the server is up")
    if any(marker in text for marker in _FULL):
        return TrackingError(f"no space left for the MLflow store {shown}{doing}; free some "
                             "space or point --workspace / --tracking-uri elsewhere")
    if any(marker in text for marker in _READ_ONLY):
        return TrackingError(f"the MLflow store {shown} is read-only{doing}; choose a writable "
                             "--workspace or --tracking-uri")
    if any(marker in text for marker in _CANNOT_OPEN):
        return TrackingError(f"cannot open the MLflow store {shown}{doing}; check that its "
                             "directory exists and is writable")
    if any(marker in text for marker in _LOCKED):
        return TrackingError(f"the MLflow store {shown} is locked by another process{doing}; "
                             "wait for it to finish, or stop it")
    if uri.startswith("sqlite") and any(marker in text for marker in _CORRUPT):
        return TrackingError(f"the MLflow store {shown} is damaged or not an MLflow database"
                             f"{doing} ({first_line(exc, 120)}); move it aside to start a new "
                             "one, or point --tracking-uri elsewhere")
    if is_missing(exc):
        return NotFoundError(f"{what + ': ' if what else ''}{first_line(exc, 200)}")
    return TrackingError(f"MLflow tracking at {shown} failed{doing}: {first_line(exc, 200)}")
