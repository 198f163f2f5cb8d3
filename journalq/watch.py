"""The queue as it changes under a running `run`, for commands that poll it (`logs
--follow`, `wait`): read-only, and cheap to ask often.

A runner appends a heartbeat every few seconds; re-folding a long journal on each poll would
cost seconds. So the journal is folded once (from its checkpoint, as every reader folds it)
and then only the lines appended since are fed to the same fold. Anything that is not a
plain append (another file at the path, a shorter file, a merge that appended older events)
means a full replay. With a sync folder, the copies are merged in memory only when one of
their files changed (name, size or mtime), and never into the local fold, which stays the
local journal's.
"""

from __future__ import annotations

import os
from collections.abc import Container

from journalq import checkpoint, lock, reader
from journalq.errors import JournalError
from journalq.fold import Fold, OutOfOrder
from journalq.opened import Opened
from journalq.reading import queue_name, rereader
from journalq.state import Queue, Status

# (name, size, mtime_ns) of each file of the sync folder that belongs to the queue
Listing = tuple[tuple[str, int, int], ...]
ORPHAN_CHECK_SECONDS = 5.0  # how often a poll asks whether a running job's runner is gone


class QueueWatch:
    """The opened queue, re-read when its files change; see the module docstring."""

    def __init__(self, opened: Opened) -> None:
        self._opened = opened
        self._fold: Fold | None = None
        self._identity: tuple[int, int] | None = None  # (device, inode) folded
        self._offset = 0  # bytes of the journal folded (up to the last whole line)
        self._lines = 0
        self._seen: tuple[int, int] | None = None  # (size, mtime_ns) last looked at
        self._listing: Listing | None = None
        self._queue: Queue | None = None
        self._warned: set[str] = set()
        self._orphans: set[tuple[str, int]] = set()  # (job, attempt) said to be orphaned
        self._orphans_checked: float | None = None

    def queue(self) -> Queue:
        """The queue now; re-folded only as far as the files changed since the last call."""
        changed = self._refresh_local()
        sync = self._opened.sync
        if sync is not None:
            listing = self._list_copies(sync.folder)
            changed = changed or listing != self._listing
            self._listing = listing
        if changed or self._queue is None:
            self._queue = self._merged() if sync is not None else self._local().queue()
        return self._queue

    def warn_orphans(self, queue: Queue, job_ids: Container[str]) -> None:
        """Say once of each of `job_ids` left running by a runner that is gone: the journal
        will not settle it until `recover` (or `run --resume`) does, so a poll waits."""
        clock = self._opened.clock
        if not queue.by_status(Status.RUNNING):
            return
        if (self._orphans_checked is not None
                and clock.monotonic() - self._orphans_checked < ORPHAN_CHECK_SECONDS):
            return
        self._orphans_checked = clock.monotonic()
        from journalq import policy
        from journalq.recovery import describe_orphan, observe

        seen = observe(queue, clock.utc_now(), self._opened.stale_seconds())
        for orphan in policy.classify_running(queue, seen)[0]:
            last = orphan.job.last
            key = (orphan.job.id, last.number if last else 0)
            if orphan.job.id in job_ids and key not in self._orphans:
                self._orphans.add(key)
                self._opened.console.warn(
                    f"{describe_orphan(orphan)}; it stays running until `journalq recover` "
                    "(or `journalq run --resume`) settles it")

    def warn_once(self, message: str) -> None:
        """A warning, said once however often the poll finds it again."""
        if message not in self._warned:
            self._warned.add(message)
            self._opened.console.warn(message)

    # ---- the local journal --------------------------------------------------------------

    def _local(self) -> Fold:
        assert self._fold is not None
        return self._fold

    def _refresh_local(self) -> bool:
        """Fold what the journal gained; whether anything changed."""
        path, fs = self._opened.path, self._opened.fs
        try:
            info = os.stat(path)
        except FileNotFoundError:
            if self._fold is not None and self._identity is None:
                return False
            self._fold, self._identity, self._offset, self._lines = Fold(), None, 0, 0
            return True
        except OSError as exc:
            raise JournalError(f"cannot read {path}: {exc.strerror}") from None
        identity, seen = (info.st_dev, info.st_ino), (info.st_size, info.st_mtime_ns)
        if self._fold is not None and identity == self._identity and seen == self._seen:
            return False
        self._seen = seen
        if (self._fold is None or identity != self._identity
                or info.st_size < self._offset):
            self._replay(identity)
            return True
        more = reader.Reader(path, fs, start=self._offset, first_line=self._lines + 1)
        more.on_heartbeat = self._fold.beat
        try:
            for event in more.events():
                self._fold.feed(event)
        except OutOfOrder:  # a merge appended older events: only a full replay sorts them
            self._replay(identity)
            return True
        report = more.report()
        self._offset, self._lines = report.good_size, self._lines + report.lines
        return True

    def _replay(self, identity: tuple[int, int]) -> None:
        path = self._opened.path
        try:
            fold, report = checkpoint.replay(path, self._opened.fs)
        except FileNotFoundError:  # it went away between the stat and the read
            fold, report = Fold(), None
        if report is not None:
            warning = reader.tail_warning(report)
            # A running writer's half-written line is not a torn tail: it is whole soon.
            if warning and self._identity is None and not lock.writer_active(path):
                self.warn_once(warning)
        self._fold, self._identity = fold, identity
        self._offset = report.good_size if report else 0
        self._lines = report.lines if report else 0

    # ---- the sync folder's copies -------------------------------------------------------

    def _queue_name(self) -> str:
        return queue_name(self._opened, self._local())

    def _list_copies(self, folder: str) -> Listing:
        from journalq.copies import parse_name

        fs, queue = self._opened.fs, self._queue_name()
        try:
            names = sorted(fs.listdir(folder))
        except FileNotFoundError:
            return ()
        except OSError as exc:
            self.warn_once(f"cannot list the sync folder {folder} ({exc.strerror}); showing "
                           "what was read before")
            return self._listing or ()
        found: list[tuple[str, int, int]] = []
        for name in names:
            if parse_name(name, queue) is None:
                continue
            try:
                info = fs.stat(os.path.join(folder, name))
            except OSError:
                continue  # replaced or gone between the listing and the stat
            found.append((name, info.st_size, info.st_mtime_ns))
        return tuple(found)

    def _merged(self) -> Queue:
        """The local fold and the copies together, the local fold left untouched."""
        from journalq.copyreader import CopyReader, merged_queue

        sync = self._opened.sync
        assert sync is not None
        copies = CopyReader(sync.folder, self._queue_name(), self.warn_once, self._opened.fs)
        return merged_queue(Fold.resume(self._local().export()), copies,
                            rereader(self._opened))
