"""The only code that appends to a journal: the single writer.

Guarantees, each guarding a known failure:
- An append is one `write` of whole lines on an O_APPEND descriptor, then `fsync`. A short
  write (disk full, file size limit) is cut back to the last whole line before failing, so a
  half line is never left for the next append to bury in the middle of the file.
- A torn tail found when opening is moved aside to `<journal>.torn-<time>` (first append).
- A failed `fsync` is fatal and never retried: the kernel may have dropped the dirty pages,
  and a second one could succeed without them (PostgreSQL's "fsyncgate", 2018).
- One writer per journal per host (`journalq.lock`). It is handed the function that folds
  the journal (`checkpoint.replay`), so writing sits below reading, not on top of it.
"""

from __future__ import annotations

import contextlib
import errno
import posixpath
import signal
from collections.abc import Callable
from typing import Any

import attrs

from journalq import codec
from journalq import events as ev
from journalq.clock import now_micros
from journalq.copies import Entry
from journalq.errors import JournalError
from journalq.fold import Fold
from journalq.fs import REAL, FileSystem, aside_path, held_stops
from journalq.lock import LockFile
from journalq.reader import ReadReport, check_journal
from journalq.timestamps import format_ts, parse_ts_micros

_SKEW_MICROS = 1_000_000
# Reads and folds a journal: what the writer is handed (see the module docstring).
Replay = Callable[[str, FileSystem], tuple[Fold, ReadReport]]


class Writer:
    """The single writer of one journal: holds its lock and appends stamped events."""

    def __init__(self, path: str, fs: FileSystem, lock: LockFile, fold: Fold,
                 report: ReadReport, session: str, clock: Callable[[], int],
                 replay: Replay) -> None:
        self.path = path
        self.fs = fs
        self.session = session
        self.report = report
        self.fold = fold
        self.lock = lock
        self._clock = clock
        self._replay = replay
        self._floor = parse_ts_micros(report.last_ts) if report.last_ts else 0
        self._seq = 0
        self._fd: int | None = None
        self._size = report.good_size
        self.lines = report.lines
        # The bytes the fold describes: behind `_size` only while merged lines that sorted
        # before the fold's last event wait for `reload`. A checkpoint saves this mark, never
        # `_size`, so it describes exactly the bytes it covers whatever interrupts a merge.
        self._folded = (report.good_size, report.lines, report.last_ts)
        # A SHA-256 of the journal's bytes so far (when the replay made one), and of the
        # bytes the fold describes: a checkpoint is saved without reading the journal again.
        self._digest: Any = report.digest
        self.folded_digest: Any = report.digest.copy() if report.digest else None
        self._broken: str | None = None

    @classmethod
    def open(cls, path: str, *, session: str, command: str, replay: Replay,
             fs: FileSystem = REAL, clock: Callable[[], int] = now_micros) -> Writer:
        """Lock the journal, read it whole, and get ready to append.

        Refuses (BusyError) if another process holds the lock, and (JournalError) if the
        journal is corrupt or was written by a newer journalq. What is not a journal at all
        (a config, a FIFO) is refused before the lock is taken, so nothing appears beside it.
        """
        check_journal(path, fs)
        folder_path = posixpath.dirname(path) or "."
        try:
            fs.makedirs(folder_path)
        except OSError as exc:
            raise JournalError(f"cannot create {folder_path} for the journal: "
                               f"{exc.strerror}") from None
        lock = LockFile.take(path, command=command, session=session, micros=clock())
        try:
            fold, report = _replay_if_present(path, fs, replay)
            if report.newer_types:
                raise JournalError(
                    f"{path} holds events this journalq does not know "
                    f"({', '.join(report.newer_types)}): a newer journalq wrote it. Upgrade "
                    "journalq to write to it; `journalq status` still reads it"
                )
            writer = cls(path, fs, lock, fold, report, session, clock, replay)
            writer._open_for_append()
        except BaseException:
            lock.release()
            raise
        return writer

    def _open_for_append(self, *, create: bool = False) -> None:
        """Open the journal for appending; a missing one only when `create` (the first
        append): a command that ends up writing nothing leaves no journal behind."""
        created = not self.fs.exists(self.path)
        if created and not create:
            return
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
        aside = aside_path(self.fs, self.path, "torn", self._clock())
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
        now = self._clock()
        micros = max(now, self._floor + 1)
        self._floor = micros
        # Raised more than a second above our clock (we read an event from a clock that
        # runs ahead): say what our clock said, so liveness is judged by it.
        clock = format_ts(now) if micros - now > _SKEW_MICROS else None
        return attrs.evolve(event, id=f"{self.session}:{self._seq}", ts=format_ts(micros),
                            session=self.session, clock=clock)

    def append(self, event: ev.Event) -> ev.Event:
        """Stamp, append and fsync one event; it is durable when this returns."""
        return self.append_many([event])[0]

    def append_many(self, events: list[ev.Event]) -> list[ev.Event]:
        """Stamp and append several events with one write and one fsync (a config's new
        jobs: five hundred fsyncs would cost a second for nothing). Each is still one whole
        line; a crash midway leaves some of them, each whole, and a torn tail."""
        stamped = [self.stamp(event) for event in events]
        in_step = self._folded[0] == self._size
        self.append_line(b"".join(codec.encode(event) for event in stamped))
        for event in stamped:
            self.fold.feed(event)
        if in_step:
            self._mark_folded(stamped[-1].ts if stamped else "")
        return stamped

    def append_foreign(self, entries: list[Entry], chunk_bytes: int = 1 << 20) -> None:
        """Append other sessions' events (a merge), given in (ts, id) order, in a few large
        writes with one fsync each.

        Events that sort after everything folded so far are fed to the live fold as they
        become durable (a heartbeat by its fields); the first that does not (a copy older
        than what we have) leaves the fold to `reload` at the end, and the folded mark where
        it was.
        """
        in_order = self._folded[0] == self._size
        start = 0
        while start < len(entries):
            end, size = start, 0
            while end < len(entries) and (size < chunk_bytes or end == start):
                size += len(entries[end].line) + 1
                end += 1
            chunk = entries[start:end]
            self.append_line(b"\n".join([entry.line for entry in chunk]) + b"\n")
            for entry in chunk:
                in_order = in_order and (entry.ts, entry.id) > self.fold.last_key()
                if in_order:
                    self.fold.take(entry)
            newest = max(entry.ts for entry in chunk)
            self._floor = max(self._floor, parse_ts_micros(newest))
            if in_order:
                self._mark_folded(chunk[-1].ts)
            start = end
        if not in_order:
            self.reload()

    def _mark_folded(self, newest: str) -> None:
        """The fold now describes every byte written so far."""
        self._folded = (self._size, self.lines, newest)
        self.folded_digest = self._digest.copy() if self._digest is not None else None

    @property
    def folded(self) -> tuple[int, int, str]:
        """(bytes, lines, newest timestamp) of the journal that the fold describes; its
        SHA-256 (if known, for the checkpoint) is `folded_digest`."""
        return self._folded

    def append_line(self, line: bytes) -> None:
        """Append whole encoded lines and fsync them (merge uses this for foreign events)."""
        if self._broken is not None:
            raise JournalError(self._broken)
        if self._fd is None:
            self._open_for_append(create=True)
        assert self._fd is not None and line.endswith(b"\n")
        with held_stops():
            self._write_counted(line)
        try:
            self.fs.fsync(self._fd)
        except OSError as exc:
            code = errno.errorcode.get(exc.errno or 0, "error")
            self._broken = (f"fsync of {self.path} failed ({code}: {exc.strerror}); the "
                            "last event may not be on disk and "
                            "journalq will not write again in this process. Check the disk "
                            "(dmesg), then run `journalq status`")
            raise JournalError(self._broken) from None

    def _write_counted(self, line: bytes) -> None:
        """Write whole lines and count them (before the fsync, so that a Ctrl-C during it
        cannot leave them in the file but not in our size), or cut back a short write."""
        assert self._fd is not None
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
        self._size += len(line)
        self.lines += line.count(b"\n")
        if self._digest is not None:
            self._digest.update(line)

    def _cut_back(self) -> None:
        assert self._fd is not None
        try:
            self.fs.truncate(self._fd, self._size)
            self.fs.fsync(self._fd)
        except OSError as exc:
            self._broken = (f"{self.path}: could not remove a partial line after a failed "
                            f"write ({exc.strerror}); run `journalq repair --state {self.path}`")

    def written_since(self, size: int) -> bool:
        """Whether the file holds more than `size` bytes now (an append that was interrupted
        may have reached the file before it returned)."""
        with contextlib.suppress(OSError):
            return self._fd is not None and self.fs.size(self._fd) > size
        return False

    @property
    def size(self) -> int:
        """Bytes of whole lines in the journal: where the next line will start."""
        return self._size

    def reload(self) -> None:
        """Refold the journal from the file, after lines were appended out of order (a
        merge); the clock floor rises to the newest timestamp seen."""
        self.fold, report = self._replay(self.path, self.fs)
        if report.last_ts:
            self._floor = max(self._floor, parse_ts_micros(report.last_ts))
        self._folded = (report.good_size, report.lines, report.last_ts)
        self._digest = report.digest
        self.folded_digest = report.digest.copy() if report.digest else None

    def close(self) -> None:
        """Release the descriptor and the lock."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.fs.close(self._fd)
            self._fd = None
        self.lock.release()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _replay_if_present(path: str, fs: FileSystem, replay: Replay) -> tuple[Fold, ReadReport]:
    if not fs.exists(path):
        return Fold(), ReadReport(path, 0, 0, 0, "", (), True)
    return replay(path, fs)

