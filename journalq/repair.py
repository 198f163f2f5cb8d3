"""`journalq repair`: cut a journal's corrupt middle out, openly, after keeping a backup.

A corrupt line followed by valid ones (a bad disk block, an editor, a merge gone wrong) makes
every reader and writer refuse the journal, by design: guessing would fold a lie. Repair is
the operator's explicit decision (Redis's `redis-check-aof --fix`, etcd's WAL repair):

- default: keep everything before the first bad line, drop the rest (valid lines after the
  first bad one may depend on what it said, so the safe cut is there);
- `--salvage`: drop only the bad lines and keep every valid line after them.

Either way the original is first copied, byte for byte, to `<journal>.bak-<time>` (fsync'd,
its directory fsync'd), every dropped line is reported, and the repaired journal replaces
the old one by temp file + fsync + rename + directory fsync, never by writing in place, so a
crash during repair leaves the old journal or the new one, never a mix. A torn tail alone
(the bytes after the last newline) is not corruption: the next writer moves it aside, so
repair leaves it alone; a complete bad line is, even the last one. A file that is not a
journal (its first line is no event) is refused untouched, as by every command.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
from collections.abc import Callable, Iterable, Iterator

import attrs

from journalq import lock, reader
from journalq.clock import now_micros
from journalq.errors import EXIT_OK, JournalError, UsageError
from journalq.fs import REAL, FileSystem, aside_path

HEAD_BYTES = 60


@attrs.frozen
class Dropped:
    """A bad line the repair removes: where it was, why it is bad, how it began."""

    number: int
    offset: int
    reason: str
    head: bytes


@attrs.frozen
class Plan:
    """What repairing one journal does; `keep` are the byte ranges of the repaired file."""

    path: str
    size: int
    salvage: bool
    bad: tuple[Dropped, ...]
    needed: bool  # a complete line is bad; a torn tail alone needs no repair
    kept: int
    lost: int
    keep: tuple[tuple[int, int], ...]


def plan(path: str, lines: Iterable[tuple[int, bytes, bool]], *, salvage: bool) -> Plan:
    """The repair of a journal given its lines as (offset, bytes without newline, whole).

    A line is bad exactly when the Reader would call it bad (the same decoder), so a
    repaired journal always replays. Memory grows with the bad lines, not the journal.
    """
    bad: list[Dropped] = []
    runs: list[tuple[int, int]] = []  # byte ranges of consecutive valid lines
    valid = 0
    corrupt = False
    size = 0
    for number, (offset, line, whole) in enumerate(lines, start=1):
        size = offset + len(line) + (1 if whole else 0)
        event = reader.decode_line(line) if whole else reader.TORN_REASON
        if isinstance(event, str):
            bad.append(Dropped(number, offset, event, line[:HEAD_BYTES]))
            corrupt = corrupt or whole
            continue
        valid += 1
        if runs and runs[-1][1] == offset:
            runs[-1] = (runs[-1][0], size)
        else:
            runs.append((offset, size))
    if not corrupt:
        return Plan(path, size, salvage, tuple(bad), False, valid, 0, tuple(runs))
    if salvage:
        return Plan(path, size, salvage, tuple(bad), True, valid, 0, tuple(runs))
    # Everything before the first bad line is valid: one run from byte 0 to the cut.
    first = bad[0]
    kept = first.number - 1
    keep = ((0, first.offset),) if first.offset else ()
    return Plan(path, size, salvage, tuple(bad), True, kept, valid - kept, keep)


def describe(found: Plan, dry_run: bool) -> Iterator[str]:
    """The report people read: each dropped line, then how many events are kept and lost."""
    if not found.needed:
        tail = ""
        if found.bad:
            first = found.bad[0]
            tail = (f"; its last {found.size - first.offset} bytes, from line {first.number} "
                    f"(byte {first.offset}), are a torn tail ({first.reason}) that the next "
                    "write moves aside")
        yield (f"{found.path}: no corrupt line, nothing to repair ({found.kept} valid events)"
               f"{tail}")
        return
    drop = "would drop" if dry_run else "dropped"
    for line in found.bad:
        yield (f"{found.path}:{line.number} (byte {line.offset}): {drop}: {line.reason}; "
               f"begins {line.head!r}")
    first = found.bad[0]
    how = ("salvage: only the bad lines go" if found.salvage else
           f"truncate at line {first.number} (byte {first.offset}): every line from it on goes")
    keep = "would keep" if dry_run else "kept"
    yield (f"{found.path}: {how}; {keep} {found.kept} valid events, {drop} {found.lost} valid "
           f"events and {len(found.bad)} bad lines" + (" (dry run: nothing written)"
                                                       if dry_run else ""))


def apply(found: Plan, fs: FileSystem, micros: int) -> str:
    """Back the journal up, then replace it with the kept ranges; returns the backup's path.

    The caller holds the writer lock, so the file cannot grow between planning and here.
    """
    folder = posixpath.dirname(found.path) or "."
    backup = aside_path(fs, found.path, "bak", micros)
    _copy(fs, found.path, backup, ((0, found.size),))
    fs.fsync_dir(folder)  # the backup exists for sure before the journal changes
    temp = f"{found.path}.repair-tmp"
    try:
        _copy(fs, found.path, temp, found.keep)
        fs.replace(temp, found.path)
    except OSError:
        with contextlib.suppress(OSError):
            fs.remove(temp)
        raise
    fs.fsync_dir(folder)
    return backup


def _copy(fs: FileSystem, source: str, target: str, ranges: Iterable[tuple[int, int]]) -> None:
    """Write `target` afresh from byte ranges of `source`, and fsync it."""
    fs.remove(target)
    fd = fs.open_append(target)
    try:
        for start, end in ranges:
            position = start
            for chunk in fs.read(source, start):
                data = chunk[: end - position]
                position += len(data)
                while data:
                    written = fs.write(fd, data)
                    if written <= 0:
                        raise OSError(errno.ENOSPC, f"no progress writing {target}")
                    data = data[written:]
                if position >= end:
                    break
        fs.fsync(fd)
    finally:
        fs.close(fd)


def repair(path: str, *, salvage: bool, dry_run: bool, say: Callable[[str], None],
           fs: FileSystem = REAL, clock: Callable[[], int] = now_micros) -> int:
    """Repair the journal at `path` under its writer lock, reporting every line it drops."""
    if not fs.exists(path):
        raise UsageError(f"{path}: no journal here; check --state (or --config)")
    reader.check_journal(path, fs)  # before the lock: not even a lock file beside a non-journal
    # The writer's own lock: no `run` can append between reading and replacing the file.
    lock_fd, record = lock.acquire(path)
    try:
        # Name ourselves in the lock, so a `run` started meanwhile says who holds it; carry
        # forward a job a killed runner left running, which the next writer must still stop.
        lock.write_holder(lock_fd, lock.holder_here("repair", "repair", clock()),
                          lock.left_running(record))
        try:
            found = plan(path, reader.split_lines(fs, path, 0, None), salvage=salvage)
        except OSError as exc:
            raise JournalError(f"cannot read {path}: {exc.strerror or exc}") from None
        for line in describe(found, dry_run):
            say(line)
        if not found.needed or dry_run:
            return EXIT_OK
        try:
            backup = apply(found, fs, clock())
        except OSError as exc:
            raise JournalError(f"cannot repair {path}: {exc.strerror or exc}; the journal "
                               "was not replaced. Free space or fix permissions, then rerun"
                               ) from None
        say(f"{path}: repaired; the original is kept, byte for byte, in {backup}")
        return EXIT_OK
    finally:
        os.close(lock_fd)
