"""Mirror the journal into a sync folder (Google Drive on Colab) and merge copies back.

The live journal stays on local disk, where fsync and flock are real. Drive over FUSE
uploads asynchronously: a file appended bit by bit can show 0 bytes for half an hour or go
missing after a disconnect, while a file replaced whole syncs well (colabtools #2607, #287),
and two machines writing one file means the last writer wins. So each session copies the
whole journal, atomically (temp file, fsync, rename), into a file of its own:
`<sync_dir>/<queue>.<session>.jsonl`. Pulling merges every copy into the local journal as
the union of events by id, appended in (ts, id) order; merging is commutative, associative
and idempotent, and no two sessions ever write the same file.

A push that fails (Drive disconnected, ENOTCONN, EIO) never stops the work: the local
journal is authoritative, a one-line warning says what to do, and the next boundary retries.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import posixpath
import time
from collections.abc import Callable, Iterator

import attrs

from journalq import events as ev
from journalq.errors import JournalError
from journalq.fold import replay, sort_key
from journalq.fs import REAL, FileSystem
from journalq.reader import Reader
from journalq.state import Queue

REMOUNT_HINT = ("on Colab, remount Drive: from google.colab import drive; "
                "drive.mount('/content/drive', force_remount=True)")


class SyncError(JournalError):
    """The sync folder cannot be read, or its copies disagree: resuming would be a guess."""


def copy_name(queue: str, session: str) -> str:
    """The file one session's copy of the journal has in the sync folder."""
    return f"{queue}.{session}.jsonl"


def _is_copy(name: str, queue: str | None) -> bool:
    if name.startswith(".") or ".tmp-" in name or ".jsonl" not in name:
        return False
    return queue is None or name.startswith(f"{queue}.")


@attrs.frozen
class Entry:
    """One event from one file, with what is needed to merge it."""

    event: ev.Event
    line: bytes
    digest: bytes
    source: str


def _digest(line: bytes) -> bytes:
    """Content identity of a line: same JSON value, same digest, whatever the key order."""
    value = json.loads(line)
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(canonical.encode(), digest_size=16).digest()


def entries(path: str, fs: FileSystem, warn: Callable[[str], None]) -> Iterator[Entry]:
    """Every event of a journal or copy, with its line and digest; a torn tail is warned
    about and skipped (a copy still uploading), a corrupt middle line is an error."""
    reader = Reader(path, fs)
    for line, event in reader.entries():
        yield Entry(event, line, _digest(line), path)
    report = reader.report()
    if report.tail_size:
        warn(f"{path}: ignoring {report.tail_size} bytes of an incomplete last line "
             "(a copy still uploading?)")


def list_copies(sync_dir: str, queue: str | None, fs: FileSystem = REAL) -> list[str]:
    """Paths of the journal copies in the sync folder (all queues' if `queue` is None)."""
    try:
        names = fs.listdir(sync_dir)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SyncError(f"cannot read the sync folder {sync_dir} ({_why(exc)}); "
                        f"{REMOUNT_HINT}, or run without --sync-dir") from None
    return [posixpath.join(sync_dir, name) for name in sorted(names) if _is_copy(name, queue)]


def union(sources: list[Iterator[Entry]], known: dict[str, tuple[bytes, str]]) -> list[Entry]:
    """Events from `sources` whose ids are not in `known`, each once, in (ts, id) order.

    `known` maps event id -> (digest, file) and grows as events are taken. The same id with
    different content means two histories claim one event: a SyncError names both files.
    """
    fresh: list[Entry] = []
    for source in sources:
        for entry in source:
            seen = known.get(entry.event.id)
            if seen is None:
                known[entry.event.id] = (entry.digest, entry.source)
                fresh.append(entry)
            elif seen[0] != entry.digest:
                raise SyncError(f"event {entry.event.id} differs between {seen[1]} and "
                                f"{entry.source}; one of them was edited or comes from another "
                                "queue. Move the wrong file out of the sync folder")
    fresh.sort(key=lambda entry: sort_key(entry.event))
    return fresh


Coverage = dict[str, int]  # session -> highest sequence number of its events in one file


def _covering(entries: Iterator[Entry], coverage: Coverage) -> Iterator[Entry]:
    """Pass entries through, noting the highest sequence number seen of each session.

    Every journal holds a prefix of each session's events (a session appends in order, and
    copies and merges carry whole prefixes), so this dict says exactly which events a file
    holds, and file F holds everything G does iff it covers each of G's sessions as far.
    """
    for entry in entries:
        session, _, seq = entry.event.id.rpartition(":")
        if seq.isdigit() and int(seq) > coverage.get(session, 0):
            coverage[session] = int(seq)
        yield entry


def pull(journal: str, sync_dir: str, queue: str | None, warn: Callable[[str], None],
         fs: FileSystem = REAL, coverage: dict[str, Coverage] | None = None) -> list[Entry]:
    """The events the sync folder's copies hold that the local journal lacks, in (ts, id)
    order, for the journal's writer to append.

    `coverage`, if given, is filled with what each copy holds (see `_covering`).
    """
    copies = list_copies(sync_dir, queue, fs)
    if not copies:
        return []
    known: dict[str, tuple[bytes, str]] = {}
    if fs.exists(journal):
        for entry in entries(journal, fs, warn):
            known[entry.event.id] = (entry.digest, entry.source)
    covered = coverage if coverage is not None else {}
    fresh = union([_covering(entries(path, fs, warn), covered.setdefault(path, {}))
                   for path in copies], known)
    return fresh


def merged_queue(path: str, sync_dir: str, queue: str | None,
                 warn: Callable[[str], None], fs: FileSystem = REAL) -> Queue:
    """The queue as local journal and copies show it together, without writing anything."""
    sources = [entries(path, fs, warn)] if fs.exists(path) else []
    sources += [entries(copy, fs, warn) for copy in list_copies(sync_dir, queue, fs)]
    merged = union(sources, {})
    return replay(entry.event for entry in merged)


def push(journal_path: str, sync_dir: str, queue: str, session: str,
         fs: FileSystem = REAL) -> str:
    """Copy the local journal whole into this session's file in the sync folder.

    A folder that vanished is not made again: with Drive unmounted that would put the copy
    on the VM's disk, under the mount point, where `drive.mount` then refuses to mount.
    """
    data = b"".join(fs.read(journal_path))
    target = posixpath.join(sync_dir, copy_name(queue, session))
    temp = posixpath.join(sync_dir, f".{copy_name(queue, session)}.tmp-{os.getpid()}")
    try:
        fs.write_file(temp, data)
        fs.replace(temp, target)
    except OSError:
        with contextlib.suppress(OSError):
            fs.remove(temp)  # a half-written temp file would only clutter the folder
        raise
    fs.fsync_dir(sync_dir)
    return target


def _why(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "error")
    return f"{name}: {exc.strerror or exc}"


def check_folder(sync_dir: str, fs: FileSystem = REAL) -> None:
    """Refuse a sync folder that cannot serve, before the journal is touched: one on Colab's
    Drive mount point when Drive is not mounted (writing there would fill the VM's disk and
    vanish with it, which is exactly what sync is for), or one that cannot be listed."""
    if sync_dir.startswith("/content/drive/") and not os.path.isdir("/content/drive/MyDrive"):
        raise SyncError(f"{sync_dir} is on Google Drive, but Drive is not mounted; run "
                        "`from google.colab import drive; drive.mount('/content/drive')` first")
    list_copies(sync_dir, None, fs)


class Mirror:
    """Keeps one session's copy in the sync folder fresh, surviving Drive outages."""

    def __init__(self, sync_dir: str, queue: str, every_seconds: float,
                 warn: Callable[[str], None], fs: FileSystem = REAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sync_dir = sync_dir
        self.queue = queue
        self.every_seconds = every_seconds
        self._warn = warn
        self._fs = fs
        self._clock = clock
        self._last_push: float | None = None
        self._failing = False
        self._pushed_clean = False
        self._coverage: dict[str, Coverage] = {}

    def pull(self, journal: str) -> list[Entry]:
        """Merge the folder's copies into the local journal before anything is decided."""
        try:
            self._fs.makedirs(self.sync_dir)
        except OSError as exc:
            raise SyncError(f"cannot create the sync folder {self.sync_dir} ({_why(exc)}); "
                            f"{REMOUNT_HINT}") from None
        return pull(journal, self.sync_dir, self.queue, self._warn, self._fs, self._coverage)

    def push(self, journal_path: str, session: str, *, boundary: bool) -> None:
        """Copy the journal now at a boundary, or if `every_seconds` passed since the last."""
        now = self._clock()
        due = self._last_push is None or now - self._last_push >= self.every_seconds
        if not (boundary or due):
            return
        self._last_push = now
        try:
            push(journal_path, self.sync_dir, self.queue, session, self._fs)
        except OSError as exc:
            self._pushed_clean = False
            if not self._failing:
                self._warn(f"cannot copy the journal to {self.sync_dir} ({_why(exc)}); the "
                           "local journal stays authoritative and the copy is retried at the "
                           f"next job boundary; {REMOUNT_HINT}")
            self._failing = True
            return
        self._pushed_clean = True
        if self._failing:
            self._warn(f"the journal copy in {self.sync_dir} is up to date again")
        self._failing = False

    def compact(self, session: str, queue: Queue) -> int:
        """Delete copies made redundant: the copy of an ended session whose every event
        another copy, already in the folder when we pulled, also holds.

        An ended session never writes its copy again, and the covering copy was visible
        before we deleted anything, so a reader that lags behind Drive loses nothing.
        """
        if not self._pushed_clean:
            return 0
        sessions = queue.sessions
        removed = 0
        for path, held in self._coverage.items():
            owner = posixpath.basename(path)[len(self.queue) + 1:].split(".")[0]
            info = sessions.get(owner)
            if owner == session or info is None or info.ended is None:
                continue
            if any(_supersedes(other, cover, path, held)
                   for other, cover in self._coverage.items()):
                try:
                    self._fs.remove(path)
                except OSError:
                    continue
                removed += 1
        return removed


def _supersedes(path: str, cover: Coverage, other: str, held: Coverage) -> bool:
    """Whether copy `path` holds every event copy `other` holds, and ranks above it.

    Identical copies would each cover the other; ranking them by name keeps the last one,
    so of every group of equal copies one always survives (the order has a top).
    """
    if path == other or any(cover.get(sid, 0) < seq for sid, seq in held.items()):
        return False
    return cover != held or path > other
