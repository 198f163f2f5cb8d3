"""Mirror the journal into a sync folder (Google Drive on Colab) and merge copies back.

The live journal stays on local disk, where fsync and flock are real. Drive over FUSE
uploads asynchronously: a file appended bit by bit can show 0 bytes for half an hour or go
missing after a disconnect, while a file replaced whole syncs well (colabtools #2607, #287),
and two machines writing one file means the last writer wins. So each session writes its
own copy of the whole journal, as segments (see `journalq.copies`), each replaced whole
(temp file, fsync, rename): a push rewrites only the last segment, and seals it once it
holds `SEGMENT_BYTES`, so what a push writes grows with what changed, not with the journal.

Pulling reads only the files that changed since this process last read them (sealed
segments never change), and appends what extends the local journal's coverage. A damaged
copy never stops a queue whose journal is sound: its valid events are merged and one
warning names the file and line. A push that fails (Drive disconnected, ENOTCONN, EIO)
never stops the work either: the local journal is authoritative, one warning says what to
do, and the next push retries.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import time
from collections.abc import Callable

from journalq.copies import (
    Coverage,
    Entry,
    covers,
    extend,
    left_out,
    segment_name,
)
from journalq.copyreader import REMOUNT_HINT, CopyReader, SyncError, folder_hint, why
from journalq.events import UnknownEvent
from journalq.fs import REAL, FileSystem
from journalq.state import Queue

SEGMENT_BYTES = 1 << 20  # a push rewrites at most this much of what it wrote before
PUSH_GAP = 1.0  # seconds: job boundaries closer than this share one push
PULL_GAP = 1.0  # seconds: pulls before job starts closer than this are one pull


class Mirror:
    """Keeps one session's copy in the sync folder fresh and pulls the others' in,
    surviving Drive outages."""

    def __init__(self, sync_dir: str, queue: str, session: str, every_seconds: float,
                 warn: Callable[[str], None], fs: FileSystem = REAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sync_dir = sync_dir
        self.queue = queue
        self.session = session
        self.every_seconds = every_seconds
        self.copies = CopyReader(sync_dir, queue, warn, fs)
        self._warn = warn
        self._fs = fs
        self._clock = clock
        self._last_pull: float | None = None
        self._last_push: float | None = None
        self._dirty = False
        self._failing = False
        self._pushed = False  # whether our copy is up to date after a clean push
        self._part = 1  # the segment the next push rewrites
        self._part_start = 0  # where in the journal it starts
        self._written = 0  # bytes of the journal our segments hold
        self._sealed: list[tuple[int, int]] = []  # (start, end) of segments 1, 2, ... sealed

    def warn_once(self, message: str) -> None:
        """Say it, unless it was said already."""
        self.copies.warn_once(message)

    def create_folder(self) -> None:
        """Make the sync folder if it is missing (only at the start: a folder that vanishes
        later is not made again, as with Drive unmounted that would put the copy on the
        VM's disk, under the mount point, where `drive.mount` then refuses to mount)."""
        try:
            self._fs.makedirs(self.sync_dir)
        except OSError as exc:
            raise SyncError(f"cannot create the sync folder {self.sync_dir} ({why(exc)}); "
                            f"{folder_hint(exc)}") from None

    def pull(self, known: Coverage, *, when_due: bool = False) -> list[Entry]:
        """What the folder's copies hold that a journal with coverage `known` lacks, in
        (ts, id) order. With `when_due`, nothing unless PULL_GAP passed since the last."""
        now = self._clock()
        if when_due and self._last_pull is not None and now - self._last_pull < PULL_GAP:
            return []
        self._last_pull = now
        candidates = self.copies.candidates(skip_session=self.session)
        fresh = extend(known, candidates)
        # A file whose events wait behind a gap (segment 3 before segment 2, a lost line)
        # is read again next time, when what fills the gap may be there: it may never change.
        self.copies.forget(left_out(known, candidates, fresh))
        newer = [entry for entry in fresh if isinstance(entry.event, UnknownEvent)]
        if newer:
            # Merged, it would make the journal one this journalq must not write to, and
            # whatever it means (a newer journalq's decision) would be ignored meanwhile.
            self.copies.forget({entry.source for entry in newer})
            event = newer[0].event
            assert isinstance(event, UnknownEvent)
            raise SyncError(f"{newer[0].source} holds events this journalq does not know "
                            f"({event.type} (format v{event.v})): a newer journalq wrote it; "
                            "nothing was merged. Upgrade journalq here (every runtime of a "
                            "queue needs the same version), or move that copy out of the "
                            "sync folder")
        return fresh

    def push(self, journal: str, size: int, *, boundary: bool = False,
             final: bool = False) -> None:
        """Bring our copy up to the journal's first `size` bytes: at once when it is
        `final`, at a boundary PUSH_GAP after the last push (sooner ones wait for the next
        call), and otherwise every `every_seconds`."""
        if size == self._written:
            return
        now = self._clock()
        since = None if self._last_push is None else now - self._last_push
        self._dirty = self._dirty or boundary
        gap = PUSH_GAP if self._dirty else self.every_seconds
        if not final and since is not None and since < gap:
            return
        try:
            self._write(journal, size)
        except OSError as exc:
            self._pushed = False
            if not self._failing:
                self._warn(f"cannot copy the journal to {self.sync_dir} ({why(exc)}); the "
                           "local journal stays authoritative and the copy is retried at the "
                           f"next push; {REMOUNT_HINT}")
            self._failing = True
            self._last_push = now
            return
        self._last_push = now
        self._dirty = False
        self._pushed = True
        if self._failing:
            self._warn(f"the journal copy in {self.sync_dir} is up to date again")
        self._failing = False

    def due(self) -> float | None:
        """When a boundary push that waited for PUSH_GAP is to be made (monotonic)."""
        if not self._dirty or self._last_push is None:
            return None
        return self._last_push + PUSH_GAP

    def _write(self, journal: str, size: int) -> None:
        """Rewrite the current segment with the journal's bytes from its start to `size`;
        seal it (the next push starts a new one) once it holds SEGMENT_BYTES. A sealed
        segment that left the folder (deleted by hand or by Drive) is written again first:
        without segment 1, no reader can tell whose copy the others are, and the session's
        every event would be invisible to the other runtimes."""
        if self._sealed:
            present = set(self._fs.listdir(self.sync_dir))
            for part, (start, end) in enumerate(self._sealed, start=1):
                if segment_name(self.queue, self.session, part) not in present:
                    self._write_part(journal, part, start, end)
        self._write_part(journal, self._part, self._part_start, size)
        self._fs.fsync_dir(self.sync_dir)
        self._written = size
        if size - self._part_start >= SEGMENT_BYTES:
            self._sealed.append((self._part_start, size))
            self._part += 1
            self._part_start = size

    def _write_part(self, journal: str, part: int, start: int, end: int) -> None:
        """Replace segment `part` with the journal's bytes from `start` to `end`, whole."""
        name = segment_name(self.queue, self.session, part)
        target = posixpath.join(self.sync_dir, name)
        temp = posixpath.join(self.sync_dir, f".{name}.tmp-{os.getpid()}")
        try:
            # Copied by the kernel: a push never reads the journal again in this process.
            self._fs.copy_file(journal, start, end, temp)
            self._fs.replace(temp, target)
        except BaseException:  # an error, or Ctrl-C between the copy and the rename
            with contextlib.suppress(OSError):
                self._fs.remove(temp)  # a half-written temp file would only clutter
            raise

    def compact(self, queue: Queue) -> int:
        """Delete copies made redundant: the segments of an ended session whose every event
        another copy, already in the folder when we pulled, also holds.

        An ended session never writes its copy again, and the covering copy was visible
        before we deleted anything, so a reader that lags behind Drive loses nothing.
        """
        if not self._pushed:
            return 0
        # Only copies read from the folder cover others: our own just-written copy may not
        # have reached Drive's servers, and may never, if this runtime dies now.
        held = self.copies.coverage()
        held.pop(self.session, None)
        removed = 0
        for owner, cover in list(held.items()):
            info = queue.sessions.get(owner)
            if owner == self.session or info is None or info.ended is None:
                continue
            if not any(_supersedes(other, wider, owner, cover)
                       for other, wider in held.items()):
                continue
            # Only the files read: a newer version, or a segment that arrived since, may
            # hold what the covering copy does not.
            for segment in self.copies.as_read(owner) or []:
                with contextlib.suppress(OSError):
                    self._fs.remove(posixpath.join(self.sync_dir, segment.name))
                    removed += 1
            del held[owner]
        return removed


def _supersedes(session: str, cover: Coverage, other: str, held: Coverage) -> bool:
    """Whether `session`'s copy holds every event `other`'s holds, and ranks above it.

    Identical copies would each cover the other; ranking them by session keeps the last,
    so of every group of equal copies one always survives (the order has a top).
    """
    if session == other or not covers(cover, held):
        return False
    return cover != held or session > other
