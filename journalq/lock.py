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


@attrs.frozen
class Holder:
    """Who holds a journal's writer lock, as written into the lock file."""

    pid: int
    host: str
    boot_id: str
    since: str
    command: str
    session: str
    # Every job process group this holder runs now, and attempts it stopped itself because
    # it could not record them (a full disk): the next holder settles those uncharged.
    children: tuple[LeftRunning, ...] = ()
    stopped: tuple[tuple[str, int, str], ...] = ()


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
    """Who the lock file says holds the lock (for the busy message), if it says."""
    record = _read_lock_record(fd)
    if record is None:
        return None
    fields = {"pid", "host", "boot_id", "since", "command", "session"}
    try:
        return Holder(**{k: v for k, v in record["holder"].items() if k in fields})
    except (KeyError, TypeError, AttributeError):
        return None


def _read_lock_record(fd: int) -> dict[str, Any] | None:
    try:
        data = os.pread(fd, max(os.fstat(fd).st_size, 1), 0)
        record = json.loads(data) if data else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def left_running(record: dict[str, Any] | None) -> tuple[LeftRunning, ...]:
    """The job process groups a dead previous holder left running on this machine: the
    children it named, and what it carried forward from the holder before it."""
    if record is None:
        return ()
    candidates: list[LeftRunning] = []
    holder: Any = record.get("holder")
    with contextlib.suppress(TypeError, KeyError, AttributeError):
        candidates += [LeftRunning(**child) for child in holder.get("children") or ()]
    with contextlib.suppress(TypeError, KeyError, AttributeError):  # an older journalq's
        if holder.get("child_pid") and holder.get("child_job"):
            candidates.append(LeftRunning(holder["child_job"], holder["child_pid"],
                                          holder["child_start"] or 0, holder["boot_id"]))
    carried: Any = record.get("left_running")
    with contextlib.suppress(TypeError, KeyError, AttributeError):
        for item in carried if isinstance(carried, list) else [carried] if carried else []:
            candidates.append(LeftRunning(**item))
    found: dict[tuple[int, int], LeftRunning] = {}
    for left in candidates:
        if left.boot_id == host.boot_id() and host.group_survives(left.pid, left.start):
            found.setdefault((left.pid, left.start), left)
    return tuple(found.values())


def stopped_attempts(record: dict[str, Any] | None) -> frozenset[tuple[str, int, str]]:
    """Attempts (job, number, session) a dead previous holder stopped itself."""
    holder: Any = (record or {}).get("holder")
    found: set[tuple[str, int, str]] = set()
    with contextlib.suppress(TypeError, ValueError, AttributeError):
        for job, number, session in holder.get("stopped") or ():
            found.add((str(job), int(number), str(session)))
    return frozenset(found)


_BLOCK = 4096


def write_holder(fd: int, holder: Holder, left: tuple[LeftRunning, ...]) -> None:
    """Rewrite the lock file's record in place, padded to whole blocks and never shortened:
    overwriting blocks the file already has needs no new space, so a runner can still say
    what it stopped when the disk is full."""
    record = {"holder": attrs.asdict(holder),
              "left_running": [attrs.asdict(item) for item in left]}
    data = json.dumps(record).encode()
    with contextlib.suppress(OSError):
        size = os.fstat(fd).st_size
        padded = max(size, -(-(len(data) + 1) // _BLOCK) * _BLOCK)
        os.pwrite(fd, data.ljust(padded - 1) + b"\n", 0)


class LockFile:
    """The writer's lock, held while the writer lives, and what its file says: who holds
    it, every job process group it runs now, attempts it stopped itself, and what the
    previous holder left behind (read once, when the lock is taken)."""

    def __init__(self, fd: int, record: dict[str, Any] | None, holder: Holder) -> None:
        self._fd = fd
        self._holder = holder
        self.left_running = left_running(record)
        self.stopped_before = stopped_attempts(record)
        write_holder(fd, holder, self.left_running)

    @classmethod
    def take(cls, path: str, *, command: str, session: str, micros: int) -> LockFile:
        """Lock the journal at `path` for this process (BusyError if another holds it)."""
        fd, record = acquire(path)
        try:
            return cls(fd, record, holder_here(command, session, micros))
        except BaseException:
            os.close(fd)
            raise

    def record_children(self, children: list[tuple[str, int, int]]) -> None:
        """Note which job process groups (job, pid, start) run now, so a later runner can
        stop them if this one is killed (the kernel stops no child then)."""
        boot = self._holder.boot_id
        self._holder = attrs.evolve(self._holder, children=tuple(
            LeftRunning(job, pid, start, boot) for job, pid, start in children))
        write_holder(self._fd, self._holder, self.left_running)

    def note_stopped(self, job: str, attempt: int) -> None:
        """Note that this runner stopped an attempt it could no longer record (the journal
        refused a line): the next holder settles it uncharged."""
        self._holder = attrs.evolve(self._holder, stopped=(
            *self._holder.stopped, (job, attempt, self._holder.session)))
        write_holder(self._fd, self._holder, self.left_running)

    def forget_left_running(self, jobs: set[str]) -> None:
        """The groups a killed runner left behind for these jobs have been dealt with."""
        self.left_running = tuple(left for left in self.left_running if left.job not in jobs)
        write_holder(self._fd, self._holder, self.left_running)

    def release(self) -> None:
        """Let go of the lock (the kernel does too, if we die)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
