"""Which process did something, and whether it provably no longer runs.

Tune records the identity of the process running every trial and every parent run; fetch names
its download temp files after it. On start, work left behind by a process that is provably gone
(same host and boot, same pid namespace, and the pid free, a zombie, or reused by a younger
process) is recovered at once instead of after a timeout.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str | None, int | None]:
    """(state, start time in clock ticks since boot) of a process, from Linux's /proc; the start
    time tells a reused pid apart, the state "Z" a process that exited but was not reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None, None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None, None


def _start_ticks(pid: int) -> int | None:
    return _proc_stat(pid)[1]


def _pid_namespace() -> int | None:
    """Containers on one kernel share its boot id (and may share a hostname): the pid namespace
    tells their pids apart."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def identity() -> dict[str, Any]:
    """The identity of this process, as stored with every trial and every parent run."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "boot": _boot_id(), "pidns": _pid_namespace(),
            "pid": pid, "start": _start_ticks(pid)}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, as another user's process
        return True
    return True


def gone(who: Mapping[str, Any] | None) -> bool:
    """True only when it is certain the process ``who`` no longer runs: it ran on this host,
    since its last boot, in this pid namespace, and its pid is free, a zombie, or now belongs to
    another (younger) process."""
    if not who:
        return False
    me = identity()
    if who.get("host") != me["host"] or not who.get("boot") or who.get("boot") != me["boot"]:
        return False
    if who.get("pidns") != me["pidns"]:
        return False
    try:
        pid = int(who["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    if pid == me["pid"]:
        return who.get("start") is not None and who.get("start") != me["start"]
    if not _pid_alive(pid):
        return True
    state, started = _proc_stat(pid)
    if state == "Z":
        return True
    if started is None:  # no /proc to tell a reused pid: assume it is still ours
        return False
    return who.get("start") is not None and started != who.get("start")




def pid_gone(pid: int) -> bool:
    """Whether process ``pid`` of this host is gone (or a zombie)."""
    if pid == os.getpid():
        return False
    if not _pid_alive(pid):
        return True
    return _proc_stat(pid)[0] == "Z"
