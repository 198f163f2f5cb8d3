"""The only code that opens a journal: read and fold it, lock it, append to it.

Guarantees, each guarding a known failure:
- An append is one `write` of a whole line on an O_APPEND descriptor, then `fsync`. A short
  write (disk full, file size limit) is cut back to the last whole line before failing, so a
  half line is never left for the next append to bury in the middle of the file.
- A torn or garbage tail (a crash mid-append, NUL bytes after a power loss) is dropped with a
  warning when reading, and copied aside to `<journal>.torn-<time>` and cut off before the
  next append.
- A bad line followed by good ones is corruption, not a crash artefact: reading refuses it,
  naming file, line and byte offset, and nothing is written.
- A failed `fsync` is fatal and never retried: after one, the kernel may have dropped the
  dirty pages and a second fsync can succeed without them (PostgreSQL's "fsyncgate", 2018).
- One writer per journal per host: an exclusive `flock` on `<journal>.lock`, which the kernel
  releases if the holder dies, so a crash never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import heapq
import itertools
import json
import os
import posixpath
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from journalq import codec, host
from journalq import events as ev
from journalq.errors import BusyError, JournalError
from journalq.fold import Folder, OutOfOrder, sort_key
from journalq.fs import REAL, FileSystem
from journalq.timestamps import format_ts, parse_ts_micros


def now_micros() -> int:
    """The wall clock, in microseconds since the epoch."""
    return time.time_ns() // 1000


def lock_path(path: str) -> str:
    """Where the writer's lock (and its holder's description) lives."""
    return path + ".lock"


# ---- reading ---------------------------------------------------------------------------------

@attrs.frozen
class BadLine:
    """A line that is not a valid event."""

    number: int
    offset: int
    reason: str


@attrs.frozen
class ReadReport:
    """What reading a journal found besides its events."""

    path: str
    good_size: int
    tail_size: int
    lines: int
    last_ts: str
    newer_types: tuple[str, ...]
    ordered: bool
    tail_reason: str = ""
    checkpoint_offset: int | None = None  # the bytes a fold checkpoint covered, if one did


class Reader:
    """Streams a journal's events in file order, checking every line as it goes.

    Iterate `events()` to the end, then read `report()`. Raises JournalError on a bad
    line that has valid lines after it.
    """

    def __init__(self, path: str, fs: FileSystem = REAL, start: int = 0,
                 end: int | None = None, first_line: int = 1) -> None:
        self.path = path
        self._fs = fs
        self._start = start
        self._end = end
        self._first_line = first_line
        self._good_end = start
        self._lines = 0
        self._last: tuple[str, str] = ("", "")
        self._max_ts = ""
        self._newer: set[str] = set()
        self._bad: BadLine | None = None
        self.run_starts: list[tuple[int, int]] = [(start, first_line)]
        self._size = start

    def events(self) -> Iterator[ev.Event]:
        """Each valid event, in file order."""
        for _, event in self.entries():
            yield event

    def entries(self) -> Iterator[tuple[bytes, ev.Event]]:
        """Each valid event with its line as written (without the newline), in file order.

        With `on_heartbeat` set, well-formed heartbeats go to it as plain fields instead
        (see `codec.heartbeat_fields`): most of a long journal, read without an object each.
        The loop keeps its counters in locals (written back at the end): it runs once per
        line of journals with a million lines.
        """
        number = self._first_line - 1
        on_heartbeat = self.on_heartbeat
        heartbeat_fields = codec.heartbeat_fields
        lines, last, newest, runs = self._lines, self._last, self._max_ts, self.run_starts
        size = self._size
        try:
            for offset, line, complete in _split_lines(self._fs, self.path, self._start,
                                                       self._end):
                number += 1
                size = offset + len(line) + complete
                obj = _parse_line(line) if complete else _TORN
                fields = None
                if (on_heartbeat is not None and type(obj) is dict
                        and obj.get("type") == "heartbeat"):
                    fields = heartbeat_fields(obj)
                event: ev.Event | None = None
                if fields is not None:
                    key = (fields[1], fields[0])
                else:
                    decoded = _decode(obj)
                    if isinstance(decoded, str):
                        if self._bad is None:
                            self._bad = BadLine(number, offset, decoded)
                        continue
                    event = decoded
                    key = (event.ts, event.id)
                if self._bad is not None:
                    raise self._corrupt()
                lines += 1
                self._good_end = offset + len(line) + 1
                if key < last:
                    runs.append((offset, number))
                last = key
                if key[0] > newest:
                    newest = key[0]
                if event is None:
                    on_heartbeat(*fields)  # type: ignore[misc]  # fields is set: a heartbeat
                    continue
                if isinstance(event, codec.UnknownEvent):
                    self._newer.add(f"{event.type} (v{event.v})")
                yield line, event
        finally:
            self._lines, self._last, self._max_ts = lines, last, newest
            self._size = size

    on_heartbeat: Callable[[str, str, str, str, int, int | None], None] | None = None

    def _corrupt(self) -> JournalError:
        bad = self._bad
        assert bad is not None
        return JournalError(
            f"{self.path}:{bad.number} (byte {bad.offset}): corrupt line ({bad.reason}) "
            "followed by valid lines; nothing was written. Inspect it, then run "
            f"`journalq repair --state {self.path}`"
        )

    def report(self) -> ReadReport:
        """What the finished read found (call after `events()` is exhausted)."""
        tail_reason = self._bad.reason if self._bad else ""
        return ReadReport(
            path=self.path, good_size=self._good_end, tail_size=self._size - self._good_end,
            lines=self._lines, last_ts=self._max_ts, newer_types=tuple(sorted(self._newer)),
            ordered=len(self.run_starts) == 1, tail_reason=tail_reason,
        )


def _split_lines(fs: FileSystem, path: str, start: int,
                 end: int | None) -> Iterator[tuple[int, bytes, bool]]:
    """(offset, line without its newline, whether it had one) for each line in [start, end)."""
    position = offset = start
    pending = b""
    for chunk in fs.read(path, start):
        if end is not None and position + len(chunk) > end:
            chunk = chunk[: end - position]
        position += len(chunk)
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            yield offset, line, True
            offset += len(line) + 1
        if end is not None and position >= end:
            break
    if pending:
        yield offset, pending, False


class _Torn:
    """Stands for a final line without its newline."""


_TORN = _Torn()
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # the C scanner


def _parse_line(line: bytes) -> Any:
    """The JSON value on a line, or a string saying why there is none."""
    try:
        text = line.decode()
        value, end = _scan(text, 0)
        if end == len(text):
            if b"\\" in line and codec.lone_surrogate(line, value):
                return _Bad(codec.LONE_SURROGATE)
            return value
    except (ValueError, StopIteration, RecursionError):
        pass
    # The slow way, for its error message and for what the scanner leaves (blank space).
    if not line.strip(b"\0 \t\r"):
        return _Bad("blank or NUL-filled line")
    try:
        value = json.loads(line)
    except (ValueError, RecursionError) as exc:
        return _Bad(f"not JSON: {str(exc)[:80]}")
    if codec.lone_surrogate(line, value):
        return _Bad(codec.LONE_SURROGATE)
    return value


class _Bad(str):
    """Why a line holds no JSON value (a str subclass, to tell it from a parsed string)."""

    __slots__ = ()


def _decode(obj: Any) -> ev.Event | str:
    """The event a parsed line holds, or why there is none."""
    if obj is _TORN:
        return "the final line has no newline (torn)"
    if isinstance(obj, _Bad):
        return str(obj)
    try:
        return codec.decode(obj)
    except codec.DecodeError as exc:
        return str(exc)


def decode_line(line: bytes) -> ev.Event | str:
    """The event on one complete line, or why there is none."""
    return _decode(_parse_line(line))


def replay(path: str, fs: FileSystem = REAL) -> tuple[Folder, ReadReport]:
    """Fold the journal at `path` in (ts, id) order, streaming.

    A journal is already in that order unless sessions that ran at the same time were merged
    into it; then it is a few ordered runs, and those are merged lazily, one event per run
    in memory at a time.
    """
    folder = Folder()
    reader = Reader(path, fs)
    reader.on_heartbeat = folder.beat
    try:
        for event in reader.events():
            folder.feed(event)
        return folder, reader.report()
    except OutOfOrder:
        pass
    # The rare case: find where each ordered run starts, then merge the runs.
    reader = Reader(path, fs)
    for _ in reader.events():
        pass
    report = reader.report()
    bounds = [*reader.run_starts, (report.good_size, -1)]
    ordered_runs = [Reader(path, fs, start, end, line).events()
                    for (start, line), (end, _) in itertools.pairwise(bounds)]
    folder = Folder()
    for event in heapq.merge(*ordered_runs, key=sort_key):
        folder.feed(event)
    return folder, report


def tail_warning(report: ReadReport) -> str | None:
    """The warning shown when a journal ends in a torn or garbage tail, if it does."""
    if not report.tail_size:
        return None
    return (f"{report.path}: ignoring {report.tail_size} bytes after the last complete event "
            f"at byte {report.good_size} ({report.tail_reason}); most likely a crash "
            "mid-append. They are moved aside before the next write.")


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


# ---- writing ---------------------------------------------------------------------------------

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


class Writer:
    """The single writer of one journal: holds its lock and appends stamped events."""

    def __init__(self, path: str, fs: FileSystem, lock_fd: int, folder: Folder,
                 report: ReadReport, session: str, left_running: LeftRunning | None,
                 clock: Callable[[], int]) -> None:
        self.path = path
        self.fs = fs
        self.session = session
        self.report = report
        self.left_running = left_running
        self.folder = folder
        self._lock_fd = lock_fd
        self._clock = clock
        self._floor = parse_ts_micros(report.last_ts) if report.last_ts else 0
        self._seq = 0
        self._fd: int | None = None
        self._size = report.good_size
        self.lines = report.lines
        self._broken: str | None = None
        self._holder: Holder | None = None

    @classmethod
    def open(cls, path: str, *, session: str, command: str, fs: FileSystem = REAL,
             clock: Callable[[], int] = now_micros) -> Writer:
        """Lock the journal, read it whole, and get ready to append.

        Refuses (BusyError) if another process holds the lock, and (JournalError) if the
        journal is corrupt or was written by a newer journalq.
        """
        folder_path = posixpath.dirname(path) or "."
        try:
            fs.makedirs(folder_path)
        except OSError as exc:
            raise JournalError(f"cannot create {folder_path} for the journal: "
                               f"{exc.strerror}") from None
        lock_fd, record = _lock(path)
        try:
            folder, report = _replay_if_present(path, fs)
            if report.newer_types:
                raise JournalError(
                    f"{path} holds events this journalq does not know "
                    f"({', '.join(report.newer_types)}): a newer journalq wrote it. Upgrade "
                    "journalq to write to it; `journalq status` still reads it"
                )
            writer = cls(path, fs, lock_fd, folder, report, session, _left_running(record),
                         clock)
            writer._holder = Holder(
                pid=os.getpid(), host=host.hostname(), boot_id=host.boot_id(),
                since=format_ts(clock()), command=command, session=session,
            )
            _write_holder(lock_fd, writer._holder, writer.left_running)
            writer._open_for_append()
        except BaseException:
            os.close(lock_fd)
            raise
        return writer

    def _open_for_append(self) -> None:
        created = not self.fs.exists(self.path)
        try:
            if self.report.tail_size:
                self._move_tail_aside()
            self._fd = self.fs.open_append(self.path)
            if created:
                self.fs.fsync_dir(posixpath.dirname(self.path) or ".")
        except OSError as exc:
            raise JournalError(f"cannot write {self.path}: {exc.strerror or exc}; check the "
                               "folder's permissions and free space") from None
        with contextlib.suppress(OSError, ValueError):
            # Past RLIMIT_FSIZE the kernel kills us with SIGXFSZ; we want EFBIG, and a clean cut.
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def _move_tail_aside(self) -> None:
        """Copy the torn tail to `<journal>.torn-<time>`, then cut it off the journal."""
        tail = b"".join(self.fs.read(self.path, self.report.good_size))
        stamp = format_ts(self._clock()).replace(":", "").replace("-", "")
        aside = f"{self.path}.torn-{stamp}"
        number = 1
        while self.fs.exists(aside):  # a clock that went back must not overwrite a saved tail
            number += 1
            aside = f"{self.path}.torn-{stamp}-{number}"
        self.fs.write_file(aside, tail)
        self.fs.fsync_dir(posixpath.dirname(self.path) or ".")
        fd = self.fs.open_append(self.path)
        try:
            self.fs.truncate(fd, self.report.good_size)
            self.fs.fsync(fd)
        finally:
            self.fs.close(fd)
        self.tail_moved_to = aside

    tail_moved_to: str | None = None

    def stamp(self, event: ev.Event) -> ev.Event:
        """The event with this session's next id and a timestamp never below any seen."""
        self._seq += 1
        micros = max(self._clock(), self._floor + 1)
        self._floor = micros
        return attrs.evolve(event, id=f"{self.session}:{self._seq}", ts=format_ts(micros),
                            session=self.session)

    def append(self, event: ev.Event) -> ev.Event:
        """Stamp, append and fsync one event; it is durable when this returns."""
        return self.append_many([event])[0]

    def append_many(self, events: list[ev.Event]) -> list[ev.Event]:
        """Stamp and append several events with one write and one fsync (a config's new
        jobs: five hundred fsyncs would cost a second for nothing). Each is still one whole
        line; a crash midway leaves some of them, each whole, and a torn tail."""
        stamped = [self.stamp(event) for event in events]
        self.append_line(b"".join(codec.encode(event) for event in stamped))
        for event in stamped:
            self.folder.feed(event)
        return stamped

    def append_line(self, line: bytes) -> None:
        """Append whole encoded lines and fsync them (merge uses this for foreign events)."""
        if self._broken is not None:
            raise JournalError(self._broken)
        assert self._fd is not None and line.endswith(b"\n")
        try:
            written = self.fs.write(self._fd, line)
            reason = f"only {written} of {len(line)} bytes were written"
        except OSError as exc:
            written = -1
            reason = exc.strerror or str(exc)
        if written != len(line):
            self._cut_back()
            if self._broken is not None:  # the partial line is still there: never say otherwise
                raise JournalError(self._broken)
            raise JournalError(
                f"cannot append to {self.path}: {reason} (disk full or file size limit?); "
                "the partial line was removed. Free space, then rerun"
            )
        try:
            self.fs.fsync(self._fd)
        except OSError as exc:
            code = errno.errorcode.get(exc.errno or 0, "error")
            self._broken = (f"fsync of {self.path} failed ({code}: {exc.strerror}); the "
                            "last event may not be on disk and "
                            "journalq will not write again in this process. Check the disk "
                            "(dmesg), then run `journalq status`")
            raise JournalError(self._broken) from None
        self._size += len(line)
        self.lines += line.count(b"\n")

    def _cut_back(self) -> None:
        assert self._fd is not None
        try:
            self.fs.truncate(self._fd, self._size)
            self.fs.fsync(self._fd)
        except OSError as exc:
            self._broken = (f"{self.path}: could not remove a partial line after a failed "
                            f"write ({exc.strerror}); run `journalq repair --state {self.path}`")

    @property
    def size(self) -> int:
        """Bytes of whole lines in the journal: where the next line will start."""
        return self._size

    @property
    def newest(self) -> str:
        """The newest timestamp read or written so far."""
        return format_ts(self._floor) if self._floor else ""

    def reload(self) -> None:
        """Refold the journal from the file, after lines were appended out of order (a
        merge); the clock floor rises to the newest timestamp seen."""
        self.folder, report = replay(self.path, self.fs)
        if report.last_ts:
            self._floor = max(self._floor, parse_ts_micros(report.last_ts))

    def record_child(self, job: str | None, pid: int | None, start: int | None) -> None:
        """Note in the lock file which process group runs now, so a later runner can stop
        it if this runner is killed (the kernel kills nothing when a parent dies)."""
        if self._holder is None:
            return
        self._holder = attrs.evolve(self._holder, child_pid=pid, child_start=start,
                                    child_job=job)
        _write_holder(self._lock_fd, self._holder, self.left_running)

    def forget_left_running(self) -> None:
        """The group a killed runner left behind has been dealt with."""
        self.left_running = None
        if self._holder is not None:
            _write_holder(self._lock_fd, self._holder, None)

    def close(self) -> None:
        """Release the descriptor and the lock."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.fs.close(self._fd)
            self._fd = None
        if self._lock_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _replay_if_present(path: str, fs: FileSystem) -> tuple[Folder, ReadReport]:
    if not fs.exists(path):
        return Folder(), ReadReport(path, 0, 0, 0, "", (), True)
    if fs.exists(path + ".fold"):  # a long journal's checkpoint: fold only what follows it
        from journalq import checkpoint

        return checkpoint.replay(path, fs)
    return replay(path, fs)


def _lock(path: str) -> tuple[int, dict[str, Any] | None]:
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
        holder = _read_holder(fd)
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise JournalError(f"cannot lock {where}: {exc.strerror}") from None
        who = (f"pid {holder.pid} on {holder.host} since {holder.since} "
               f"(journalq {holder.command})") if holder else "another process"
        raise BusyError(f"{path} is in use by {who}; wait for it to finish, or stop it "
                        "first (one writer per journal)") from None
    return fd, _read_lock_record(fd)


def _read_holder(fd: int) -> Holder | None:
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


def _left_running(record: dict[str, Any] | None) -> LeftRunning | None:
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


def _write_holder(fd: int, holder: Holder, left: LeftRunning | None) -> None:
    record = {"holder": attrs.asdict(holder),
              "left_running": attrs.asdict(left) if left else None}
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
