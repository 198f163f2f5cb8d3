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
crash during repair leaves the old journal or the new one, never a mix. A torn tail alone is
not corruption: the next writer moves it aside, so repair leaves it alone.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator

import attrs

from journalq import host, journal
from journalq.errors import EXIT_OK, JournalError, UsageError
from journalq.fs import REAL, FileSystem

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
    corrupt: bool
    kept: int
    lost: int
    keep: tuple[tuple[int, int], ...]

    @property
    def needed(self) -> bool:
        """Only a bad line with a valid line after it needs repair; a torn tail does not."""
        return self.corrupt


def plan(path: str, lines: Iterable[tuple[int, bytes, bool]], *, salvage: bool) -> Plan:
    """The repair of a journal given its lines as (offset, bytes without newline, whole).

    A line is bad exactly when the Reader would call it bad (same decoder), so a repaired
    journal always replays.
    """
    bad: list[Dropped] = []
    valid: list[tuple[int, int]] = []  # (offset, end) of each valid line, newline included
    corrupt = False
    size = 0
    for number, (offset, line, whole) in enumerate(lines, start=1):
        size = offset + len(line) + (1 if whole else 0)
        event = journal._decode_line(line) if whole else "the final line has no newline (torn)"
        if isinstance(event, str):
            bad.append(Dropped(number, offset, event, line[:HEAD_BYTES]))
        else:
            corrupt = corrupt or bool(bad)
            valid.append((offset, size))
    if not corrupt:
        return Plan(path, size, salvage, tuple(bad), False, len(valid), 0,
                    _ranges(valid))
    cut = bad[0].offset
    kept = valid if salvage else [span for span in valid if span[1] <= cut]
    dropped = bad if salvage else [line for line in bad if line.offset >= cut]
    return Plan(path, size, salvage, tuple(dropped), True, len(kept),
                len(valid) - len(kept), _ranges(kept))


def _ranges(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Adjacent spans merged, so a salvage copies a few long runs rather than every line."""
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def describe(found: Plan, dry_run: bool) -> Iterator[str]:
    """The report people read: each dropped line, then what is kept and dropped."""
    if not found.needed:
        tail = ""
        if found.bad:
            first = found.bad[0]
            tail = (f"; its last {found.size - first.offset} bytes from line {first.number} "
                    f"(byte {first.offset}) are a torn tail ({first.reason}), which the next "
                    "write moves aside")
        yield f"{found.path}: no corrupt line, nothing to repair ({found.kept} events){tail}"
        return
    for line in found.bad:
        yield (f"{found.path}:{line.number} (byte {line.offset}): dropped: {line.reason}; "
               f"begins {line.head!r}")
    how = "salvage: only the bad lines dropped" if found.salvage else (
        f"truncated at line {found.bad[0].number} (byte {found.bad[0].offset})")
    verb = "would keep" if dry_run else "kept"
    yield (f"{found.path}: {how}; {verb} {found.kept} valid events, dropped {found.lost} "
           f"valid and {len(found.bad)} bad lines")


def backup_path(path: str, micros: int, fs: FileSystem) -> str:
    """`<journal>.bak-<time>`, never the name of a file already there."""
    stamp = journal.format_ts(micros).replace(":", "").replace("-", "")
    candidate = f"{path}.bak-{stamp}"
    counter = 1
    while fs.exists(candidate):
        counter += 1
        candidate = f"{path}.bak-{stamp}-{counter}"
    return candidate


def _copy(fs: FileSystem, source: str, target: str,
          ranges: Iterable[tuple[int, int]] | None) -> None:
    """Write `target` afresh from byte ranges of `source` (all of it if None), fsync'd."""
    fs.remove(target)
    fd = fs.open_append(target)
    try:
        for chunk in _chunks(fs, source, ranges):
            view = memoryview(chunk)
            while view:
                written = fs.write(fd, view.tobytes())
                if written <= 0:
                    raise OSError(f"no progress writing {target}")
                view = view[written:]
        fs.fsync(fd)
    finally:
        fs.close(fd)


def _chunks(fs: FileSystem, path: str,
            ranges: Iterable[tuple[int, int]] | None) -> Iterator[bytes]:
    if ranges is None:
        yield from fs.read(path)
        return
    for start, end in ranges:
        position = start
        for chunk in fs.read(path, start):
            take = chunk[: end - position]
            yield take
            position += len(take)
            if position >= end:
                break


def apply(found: Plan, fs: FileSystem, micros: int) -> str:
    """Back the journal up, then replace it with the kept ranges; returns the backup's path.

    The caller holds the writer lock, so the file cannot grow between planning and here.
    """
    folder = posixpath.dirname(found.path) or "."
    backup = backup_path(found.path, micros, fs)
    _copy(fs, found.path, backup, None)
    fs.fsync_dir(folder)
    temp = f"{found.path}.repair-tmp"
    _copy(fs, found.path, temp, found.keep)
    fs.replace(temp, found.path)
    fs.fsync_dir(folder)
    return backup


def repair(path: str, *, salvage: bool, dry_run: bool, out: Iterable[None] | None = None,
           say: journal.Callable[[str], None] = print, fs: FileSystem = REAL,
           clock: journal.Callable[[], int] = journal.now_micros) -> int:
    """Repair the journal at `path` under its writer lock; report everything; exit code."""
    if not fs.exists(path):
        raise UsageError(f"{path}: no journal here; check --state (or --config)")
    lock_fd, record = journal._lock(path)
    try:
        # Say who holds the lock, so a `run` started meanwhile names us; keep the note of a
        # job a killed runner left running, which the next writer still has to stop.
        journal._write_holder(lock_fd, journal.Holder(
            pid=host.os.getpid(), host=host.hostname(), boot_id=host.boot_id(),
            since=journal.format_ts(clock()), command="repair", session="repair",
        ), journal._left_running(record))
        try:
            found = plan(path, journal._split_lines(fs, path, 0, None), salvage=salvage)
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
                               "is unchanged (the rename is the last step)") from None
        say(f"{path}: repaired; the original is kept in {backup}")
        return EXIT_OK
    finally:
        host.os.close(lock_fd)
