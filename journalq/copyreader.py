"""Reading a sync folder: its files by the exact name grammar (`journalq.copies`), each
read again only when it changed (sealed segments never change), damaged lines merged
around with one warning, another queue's copy refused; and the queue as the local journal
and the copies show it together (for readers: nothing is written)."""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Callable

import attrs

from journalq import codec
from journalq import events as ev
from journalq.copies import (
    Conflict,
    Coverage,
    Entry,
    Runs,
    Segment,
    conflicts,
    extend,
    parse_name,
    prefix_coverage,
    runs_of,
)
from journalq.errors import JournalError
from journalq.fold import Fold, replay
from journalq.fs import REAL, FileSystem
from journalq.reader import split_lines
from journalq.state import Queue

REMOUNT_HINT = ("on Colab, remount Drive: from google.colab import drive; "
                "drive.mount('/content/drive', force_remount=True)")


class SyncError(JournalError):
    """The sync folder cannot be read, or its copies disagree: resuming would be a guess."""


def why(exc: OSError) -> str:
    """`ENOTCONN: Transport endpoint is not connected`, for the messages about the folder."""
    name = errno.errorcode.get(exc.errno or 0, "error")
    return f"{name}: {exc.strerror or exc}"


def folder_hint(exc: OSError) -> str:
    """What to do about a sync folder that failed with `exc`: remounting Drive helps when
    the mount dropped, not when the path names a file or a symlink loop."""
    if exc.errno in (errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG):
        return "--sync-dir must name a folder; pass one, or run without --sync-dir"
    return f"{REMOUNT_HINT}, or run without --sync-dir"


def check_folder(sync_dir: str, fs: FileSystem = REAL) -> None:
    """Refuse a sync folder that cannot serve, before the journal is touched: one on Colab's
    Drive mount point when Drive is not mounted (writing there would fill the VM's disk and
    vanish with it, which is exactly what sync is for), or one that cannot be listed."""
    if sync_dir.startswith("/content/drive/") and not os.path.isdir("/content/drive/MyDrive"):
        raise SyncError(f"{sync_dir} is on Google Drive, but Drive is not mounted; run "
                        "`from google.colab import drive; drive.mount('/content/drive')` first")
    _listdir(sync_dir, fs)


def _listdir(sync_dir: str, fs: FileSystem) -> list[str]:
    try:
        return fs.listdir(sync_dir)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SyncError(f"cannot read the sync folder {sync_dir} ({why(exc)}); "
                        f"{folder_hint(exc)}") from None


@attrs.frozen
class _Read:
    """What one read of one segment file found."""

    version: tuple[int, int]  # (size, mtime_ns): a file replaced whole changes these
    runs: Runs  # the runs of each session's sequence numbers it holds
    queue: str | None  # the queue its `queue_created` names, if it has one


class CopyReader:
    """Reads a queue's copies in a sync folder, each file again only when it changed."""

    def __init__(self, sync_dir: str, queue: str, warn: Callable[[str], None],
                 fs: FileSystem = REAL) -> None:
        self.sync_dir = sync_dir
        self.queue = queue
        self._warn = warn
        self._fs = fs
        self._read: dict[str, _Read] = {}
        self._warned: set[str] = set()

    def segments(self) -> dict[str, list[Segment]]:
        """The queue's copies in the folder now: each session's segments, in order."""
        found: dict[str, list[Segment]] = {}
        for name in sorted(_listdir(self.sync_dir, self._fs)):
            segment = parse_name(name, self.queue)
            if segment is not None:
                found.setdefault(segment.session, []).append(segment)
        for parts in found.values():
            parts.sort(key=lambda segment: segment.part)
        return found

    def candidates(self, skip_session: str = "") -> list[Entry]:
        """Every event of the copies (but `skip_session`'s own) in files that changed since
        the last call, each read whole; SyncError if two of them disagree about an event."""
        fresh: list[Entry] = []
        for session, parts in self.segments().items():
            if session == skip_session:
                continue
            first = self._refresh(parts[0]) if parts[0].part == 1 else None
            if first is None:
                continue  # segment 1 not there (yet): nothing says which queue it is
            if first[1][0].queue not in (None, self.queue):
                raise SyncError(f"{self._path(parts[0])} is a copy of queue "
                                f"{first[1][0].queue!r}, not {self.queue!r}; nothing was "
                                "merged. Move it out of the sync folder")
            for segment in parts:
                read = first if segment.part == 1 else self._refresh(segment)
                if read is not None and read[0]:
                    fresh.extend(read[1][1])
        refuse_conflicts(conflicts(fresh))
        return fresh

    def coverage(self) -> dict[str, Coverage]:
        """Each session's copy's coverage, for the copies read whole with no gap."""
        found: dict[str, Coverage] = {}
        for session, parts in self.segments().items():
            reads = [self._read.get(segment.name) for segment in parts]
            if parts[0].part != 1 or None in reads or [s.part for s in parts] != list(
                    range(1, len(parts) + 1)):
                continue
            found[session] = prefix_coverage(read.runs for read in reads if read is not None)
        return found

    def as_read(self, session: str) -> list[Segment] | None:
        """`session`'s segments in the folder now, if each is the very version read last
        (else None: one arrived or changed since, and what it holds now was never read)."""
        parts = self.segments().get(session, [])
        for segment in parts:
            known = self._read.get(segment.name)
            try:
                info = self._fs.stat(self._path(segment))
            except OSError:
                return None
            if known is None or known.version != (info.st_size, info.st_mtime_ns):
                return None
        return parts

    def forget(self, paths: set[str]) -> None:
        """Read these files again at the next call, changed or not (their events were left
        out for a gap that a file arriving later may fill)."""
        for name in [name for name in self._read if posixpath.join(self.sync_dir, name)
                     in paths]:
            del self._read[name]

    def _refresh(self, segment: Segment) -> tuple[bool, tuple[_Read, list[Entry]]] | None:
        """(whether it changed, (what it holds, its events if it was read now)) for one
        file, read only if it changed."""
        path = self._path(segment)
        try:
            info = self._fs.stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.warn_once(f"cannot read {path} ({why(exc)}); it is skipped this time")
            return None
        version = (info.st_size, info.st_mtime_ns)
        known = self._read.get(segment.name)
        if known is not None and known.version == version:
            return False, (known, [])
        if not stat.S_ISREG(info.st_mode):
            self.warn_once(f"{path} is not a regular file; it is skipped")
            return None
        try:
            read, entries = self._parse(path, version)
        except OSError as exc:
            self.warn_once(f"cannot read {path} ({why(exc)}); it is skipped this time")
            return None
        self._read[segment.name] = read
        return True, (read, entries)

    def _parse(self, path: str, version: tuple[int, int]) -> tuple[_Read, list[Entry]]:
        """A copy's valid events; a torn last line (still uploading) and bad lines are
        skipped, each file's first problem warned about once."""
        entries: list[Entry] = []
        append = entries.append
        queue: str | None = None
        beat_fields, parse_line, of_beat = codec.heartbeat_fields, codec.parse_line, Entry.of_beat
        for number, (offset, line, whole) in enumerate(
                split_lines(self._fs, path, 0, None), start=1):
            if not whole:
                self.warn_once(f"{path}: ignoring {len(line)} bytes of an incomplete last "
                                "line (a copy still uploading?)")
                break
            value = parse_line(line)
            fields = beat_fields(value) if type(value) is dict else None
            entry: Entry | str
            if fields is not None:  # a heartbeat: most of a long copy, kept as its fields
                entry = of_beat(fields, line, path)
                if entry.seq is not None:
                    append(entry)
                    continue
            else:
                event = codec.decode_value(value)
                entry = event if isinstance(event, str) else Entry.of(event, line, path)
            if not isinstance(entry, str) and entry.seq is None:
                entry = f"its id {entry.id!r} is not <its own session>:<n>"
            if isinstance(entry, str):
                self.warn_once(f"{path}:{number} (byte {offset}): skipping a damaged line "
                                f"({entry}); the copy's other events are merged")
                continue
            if isinstance(entry.event, ev.QueueCreated) and queue is None:
                queue = entry.event.queue
            append(entry)
        return _Read(version, runs_of(entries), queue), entries

    def _path(self, segment: Segment) -> str:
        return posixpath.join(self.sync_dir, segment.name)

    def warn_once(self, message: str) -> None:
        """Say it, unless it was said already."""
        if message not in self._warned:
            self._warned.add(message)
            self._warn(message)


def refuse_conflicts(conflicts: list[Conflict]) -> None:
    """Two copies that disagree about one event cannot both be history."""
    if conflicts:
        first = conflicts[0]
        raise SyncError(f"event {first.event_id} differs between {first.first} and "
                        f"{first.second}; one of them was edited or comes from another "
                        "queue. Move the wrong file out of the sync folder")


def merged_queue(fold: Fold, copies: CopyReader,
                 reread: Callable[[], list[ev.Event]]) -> Queue:
    """The queue as the local journal (folded as `fold`) and the copies show it together,
    without writing anything. Copies that only add events after the local ones are folded
    on; otherwise the local events (`reread`) and the copies' are folded together."""
    fresh = extend(fold.coverage(), copies.candidates())
    if all((entry.ts, entry.id) > fold.last_key() for entry in fresh[:1]):
        for entry in fresh:
            fold.take(entry)
        return fold.queue()
    return replay([*reread(), *(entry.decoded() for entry in fresh)])

