"""One writer per journal on a machine: an exclusive `flock` on `<journal>.lock`.

The kernel releases a flock when its holder dies, so a crash never leaves a stale lock. The
lock file also says who holds it (shown to a refused second writer) and which job's process
group the holder runs, so that the next holder can stop a group a killed runner left behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from typing import Any

import attrs

from journalq import host
from journalq.errors import BusyError, JournalError
from journalq.timestamps import format_ts


def lock_path(path: str) -> str:
    """Where the writer's lock (and its holder's description) lives."""
    return path + ".lock"


def writer_active(path: str) -> bool:
    """Whether some process holds the journal's writer lock right now."""
    try:
        fd = os.open(lock_path(path), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


@attrs.frozen
class Holder:
    """Who holds a journal's writer lock, as written into the lock file."""

    pid: int
    host: str
    boot_id: str
    since: str
    command: str
    session: str
    child_pid: int | None = None
    child_start: int | None = None
    child_job: str | None = None


@attrs.frozen
class LeftRunning:
    """A job's process group that a killed runner left behind on this machine.

    The kernel does not stop a child when its parent is SIGKILLed. The runner notes its
    current child in the lock file; the next writer carries that note forward until a
    recovery of the job stops the group, so a refused `run` cannot lose it.
    """

    job: str
    pid: int
    start: int
    boot_id: str


def holder_here(command: str, session: str, micros: int) -> Holder:
    """This process as the lock's holder, for `command` in `session`, since `micros`."""
    return Holder(pid=os.getpid(), host=host.hostname(), boot_id=host.boot_id(),
                  since=format_ts(micros), command=command, session=session)


def acquire(path: str) -> tuple[int, dict[str, Any] | None]:
    """Take the writer lock; returns its descriptor and what the previous holder wrote."""
    where = lock_path(path)
    try:
        fd = os.open(where, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise JournalError(f"cannot create the lock file {where}: {exc.strerror}; the "
                           "journal's folder must be writable") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = read_holder(fd)
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise JournalError(f"cannot lock {where}: {exc.strerror}") from None
        who = (f"pid {holder.pid} on {holder.host} since {holder.since} "
               f"(journalq {holder.command})") if holder else "another process"
        raise BusyError(f"{path} is in use by {who}; wait for it to finish, or stop it "
                        "first (one writer per journal)") from None
    return fd, _read_lock_record(fd)


def read_holder(fd: int) -> Holder | None:
    record = _read_lock_record(fd)
    if record is None:
        return None
    try:
        return Holder(**record["holder"])
    except (KeyError, TypeError):
        return None


def _read_lock_record(fd: int) -> dict[str, Any] | None:
    try:
        data = os.pread(fd, 8192, 0)
        record = json.loads(data) if data else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def left_running(record: dict[str, Any] | None) -> LeftRunning | None:
    """The job process group a dead previous holder left running on this machine, if any."""
    if record is None:
        return None
    candidates: list[LeftRunning] = []
    holder: Any = record.get("holder")
    with contextlib.suppress(TypeError, KeyError, AttributeError):
        if holder["child_pid"] and holder["child_job"]:
            candidates.append(LeftRunning(holder["child_job"], holder["child_pid"],
                                          holder["child_start"] or 0, holder["boot_id"]))
    with contextlib.suppress(TypeError, KeyError):
        candidates.append(LeftRunning(**record["left_running"]))
    for left in candidates:
        if left.boot_id == host.boot_id() and host.group_survives(left.pid, left.start):
            return left
    return None


def write_holder(fd: int, holder: Holder, left: LeftRunning | None) -> None:
    record = {"holder": attrs.asdict(holder),
              "left_running": attrs.asdict(left) if left else None}
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
