"""Atomic file writes: a reader sees the old file or the whole new one, never half of one --
and after a power loss too: the new file's bytes are flushed to disk (``fsync``) before the
rename, and the directory after it, so a manifest or ``current.json`` names a file that is
there."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


INCOMING = ".incoming."


def writer_pid(path: Path) -> int | None:
    """The pid in a :func:`temp_path` file's name, if it has one."""
    head = path.name.removeprefix(INCOMING).split(".", 1)[0]
    return int(head) if path.name.startswith(INCOMING) and head.isdigit() else None


# mkstemp creates files 0600; the final file should get the mode any new file gets here.
_FILE_MODE = 0o666 & ~_umask()


def _mkstemp(directory: Path, prefix: str, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    os.close(fd)
    os.chmod(name, _FILE_MODE)
    return Path(name)


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush ``path``'s bytes to the disk (a writer may have closed it without)."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (a rename into it) to the disk. Windows has no directory
    handle to flush, and some file systems (FUSE, network mounts) refuse: there it is a no-op."""
    if os.name == "nt":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def replace(src: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Rename ``src`` onto ``target`` (one file system) durably: the file's bytes, then the
    directory's new entry, reach the disk."""
    fsync_file(src)
    os.replace(src, target)
    fsync_dir(Path(target).parent)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` if the block succeeds.

    The temp file lives in the target's directory so the final ``os.replace`` is a rename on one
    file system. On any exception (KeyboardInterrupt included) the temp file is removed and the
    target is left as it was.
    """
    from revcli import interrupts

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        with interrupts.deferred():  # a SIGTERM while the file is made: raised once it is known
            tmp = _mkstemp(target.parent, f".{target.name}.", suffix + ".tmp")
        yield tmp
        replace(tmp, target)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temp directory beside ``target``; rename it onto ``target`` (replacing an
    empty or missing one) if the block succeeds, else remove it with whatever was written: a
    set of files (a run's plots) appears whole or not at all."""
    import shutil

    from revcli import interrupts

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        with interrupts.deferred():
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent))
        yield tmp
        with contextlib.suppress(FileNotFoundError, OSError):
            target.rmdir()  # an empty directory left by an older revcli; a full one stays
        os.replace(tmp, target)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def temp_path(directory: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a fresh temp file path in ``directory``; it is removed at the end unless the block
    moved it away (e.g. renamed it into a content-addressed name)."""
    from revcli import interrupts

    Path(directory).mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        with interrupts.deferred():  # a SIGTERM while the file is made: raised once it is known
            # The writer's pid in the name: a cleanup can tell a live download from a killed one.
            tmp = _mkstemp(Path(directory), f"{INCOMING}{os.getpid()}.", suffix)
        yield tmp
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def temp_dir(directory: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a fresh temp directory in ``directory`` (named like :func:`temp_path`'s files, with
    the writer's pid); it is removed with everything in it at the end unless the block renamed
    it away."""
    import shutil

    Path(directory).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{INCOMING}{os.getpid()}.", suffix=suffix,
                                dir=directory))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike[str], text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The file's sha256 (``hashlib.file_digest``: the standard library's buffered loop)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
