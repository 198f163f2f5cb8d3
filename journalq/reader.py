"""Reading a journal: every line checked, a torn tail told apart from corruption, and the
events folded in `(ts, id)` order, streaming.

- A torn tail is only the bytes after the last newline (a crash mid-append, NUL bytes after
  a power loss: every append ends in a newline, so nothing else can be one). It is dropped
  with a warning; the writer copies it aside and cuts it off before its next append.
- A complete line that is not an event is corruption, wherever it is: reading refuses it,
  naming file, line and byte offset, and `journalq repair` is the way on.
- A file whose first line is not an event is not a journal at all (a config passed as
  `--state`, a journal pretty-printed by `jq .`): it is refused, said what it looks like, and
  never touched. Writers check that (`check_journal`) before they even take the lock, so not
  even a lock file appears beside it; nor does anything open a FIFO or device at the path.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import re
import stat
from collections.abc import Callable, Iterator

import attrs

from journalq import codec
from journalq import events as ev
from journalq.codec import TORN, decode_value, parse_line
from journalq.codec import decode_line as decode_line  # re-exported: journal, repair
from journalq.errors import JournalError
from journalq.fold import Fold, OutOfOrder, sort_key
from journalq.fs import REAL, FileSystem


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


class NotAJournal(JournalError):
    """The file's first line is not a journal event: whatever it is, nobody touches it."""


class Reader:
    """Streams a journal's events in file order, checking every line as it goes.

    Iterate `events()` to the end, then read `report()`. Raises JournalError on a complete
    line that is not an event, and NotAJournal if that is the file's first line.
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
        self._tail_reason = ""
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
        first = self._start == 0  # the file's first line decides whether it is a journal
        try:
            for offset, line, complete in split_lines(self._fs, self.path, self._start,
                                                       self._end):
                number += 1
                size = offset + len(line) + complete
                if not complete:  # after the last newline: a torn tail, never corruption
                    if first and not plausible_start(line):
                        raise not_a_journal(self.path, self._fs)
                    self._tail_reason = TORN_REASON
                    break
                obj = parse_line(line)
                fields = None
                if (on_heartbeat is not None and type(obj) is dict
                        and obj.get("type") == "heartbeat"):
                    fields = heartbeat_fields(obj)
                event: ev.Event | None = None
                if fields is not None:
                    key = (fields[1], fields[0])
                else:
                    decoded = decode_value(obj)
                    if isinstance(decoded, str):
                        if first:
                            raise not_a_journal(self.path, self._fs)
                        if self._bad is None:
                            self._bad = BadLine(number, offset, decoded)
                        continue
                    event = decoded
                    key = (event.ts, event.id)
                first = False
                if self._bad is not None:
                    raise self._corrupt(followed=True)
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
                    self._newer.add(f"{event.type} (format v{event.v})")
                yield line, event
            if self._bad is not None:
                raise self._corrupt(followed=False)
        finally:
            self._lines, self._last, self._max_ts = lines, last, newest
            self._size = size

    on_heartbeat: Callable[[str, str, str, str | None, str, int, int | None], None] | None = None

    def _corrupt(self, *, followed: bool) -> JournalError:
        bad = self._bad
        assert bad is not None
        after = " followed by valid lines" if followed else ""
        return JournalError(
            f"{self.path}:{bad.number} (byte {bad.offset}): corrupt line ({bad.reason})"
            f"{after}; nothing was written. Inspect it, then run "
            f"`journalq repair --state {self.path}`"
        )

    def report(self) -> ReadReport:
        """What the finished read found (call after `events()` is exhausted)."""
        return ReadReport(
            path=self.path, good_size=self._good_end, tail_size=self._size - self._good_end,
            lines=self._lines, last_ts=self._max_ts, newer_types=tuple(sorted(self._newer)),
            ordered=len(self.run_starts) == 1, tail_reason=self._tail_reason,
        )


def split_lines(fs: FileSystem, path: str, start: int,
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


TORN_REASON = str(TORN)  # why a final line without its newline is no event


def replay(path: str, fs: FileSystem = REAL) -> tuple[Fold, ReadReport]:
    """Fold the journal at `path` in (ts, id) order, streaming.

    A journal is already in that order unless sessions that ran at the same time were merged
    into it; then it is a few ordered runs, and those are merged lazily, one event per run
    in memory at a time.
    """
    fold = Fold()
    reader = Reader(path, fs)
    reader.on_heartbeat = fold.beat
    try:
        for event in reader.events():
            fold.feed(event)
        return fold, reader.report()
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
    fold = Fold()
    for event in heapq.merge(*ordered_runs, key=sort_key):
        fold.feed(event)
    return fold, report


def tail_warning(report: ReadReport) -> str | None:
    """The warning shown when a journal ends in a torn or garbage tail, if it does."""
    if not report.tail_size:
        return None
    return (f"{report.path}: ignoring {report.tail_size} bytes after the last complete event "
            f"at byte {report.good_size} ({report.tail_reason}); most likely a crash "
            "mid-append. They are moved aside before the next write.")


# ---- is it a journal at all? --------------------------------------------------------------

EVENT_START = b'{"type":"'  # how `codec.encode` begins every line it writes
_SAMPLE = 4096  # enough of a file's head to say what it looks like


def check_journal(path: str, fs: FileSystem = REAL) -> None:
    """Refuse, before anything opens it for writing or locks it, a path that holds something
    other than a journal: a FIFO, socket, device or directory (opening a FIFO to read it
    would hang), or a file whose first line is not an event. A missing or empty file is
    fine (a journal yet to be written), and so is a torn first line that could be ours."""
    try:
        mode = os.stat(path).st_mode  # follows a symlink: a link to a journal is one
    except FileNotFoundError:
        return
    except OSError as exc:
        raise JournalError(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise JournalError(f"{path} is a {_kind(mode)}, not a journal file; nothing was "
                           "touched. Pass the path of a regular file with --state")
    try:
        line, complete = first_line(path, fs)
    except OSError as exc:
        raise JournalError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not (plausible_start(line) if not complete else
            not isinstance(decode_line(line), str)):
        raise not_a_journal(path, fs)


def first_line(path: str, fs: FileSystem = REAL) -> tuple[bytes, bool]:
    """The file's first line (without its newline) and whether it had one; reading stops as
    soon as the bytes cannot begin an event line, so a large file of anything costs one
    chunk."""
    head = b""
    for chunk in fs.read(path):  # a generator: leaving the loop closes the file
        end = chunk.find(b"\n")
        if end >= 0:
            return head + chunk[:end], True
        head += chunk
        if not plausible_start(head):
            break
    return head, False


def plausible_start(data: bytes) -> bool:
    """Whether `data`, with no newline, can be the start of a journal: empty, NUL bytes (a
    power loss), or a prefix of a line as journalq writes it."""
    return (data[: len(EVENT_START)] == EVENT_START[: len(data)]
            or not data.strip(b"\0"))


def not_a_journal(path: str, fs: FileSystem = REAL) -> NotAJournal:
    """The one-line refusal of a file that is not a journal, saying what it looks like."""
    sample = b""
    with contextlib.suppress(OSError):
        sample = next(iter(fs.read(path)), b"")[:_SAMPLE]
    looks, advice = _looks_like(path, sample)
    return NotAJournal(f"{path} is not a journal ({looks}); nothing was changed. {advice}")


_BINARY = re.compile("[\x00-\x08\x0e-\x1f\x7f]")  # control characters text does not hold
_CHECK = "Check --state (a journal holds one JSON event per line)"


def _looks_like(path: str, sample: bytes) -> tuple[str, str]:
    """What a file's head looks like, and what to do about it."""
    try:
        text = sample.decode()
    except UnicodeDecodeError as exc:
        text = sample[: exc.start].decode() if exc.start >= len(sample) - 3 else ""
        if not text:
            return "it looks like binary data", _CHECK
    if _BINARY.search(text):
        return "it looks like binary data", _CHECK
    lines = [line.strip() for line in text.splitlines()]
    meaningful = [line for line in lines if line and not line.startswith("#")]
    head = meaningful[0] if meaningful else ""
    config = "Pass a config with --config, and a journal with --state"
    if path.endswith((".yaml", ".yml")) or re.match(r"(---|- |[\w.-]+:(\s|$))", head):
        return "it looks like a YAML config", config
    if path.endswith(".toml") or re.match(r"(\[[\w.-]+\]$|[\w.-]+\s*=)", head):
        return "it looks like a TOML config", config
    if lines and lines[0] in ("{", "["):
        return ("it looks like pretty-printed JSON, but a journal holds one event per line",
                f"If it is a journal reformatted by `jq .`, get one event per line back with "
                f"`jq -c . {path} > {path}.fixed` and pass that")
    reason = decode_line(sample.split(b"\n", 1)[0])
    if lines and lines[0].startswith("{") and isinstance(reason, str):
        return (f"its first line is not a journal event: {reason}",
                "If it is a journal whose first line was damaged, remove that line by hand "
                f"(keep a copy); else {_CHECK[0].lower()}{_CHECK[1:]}")
    return "its first line is text, not a journal event", _CHECK


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, in a word or two."""
    for test, word in ((stat.S_ISFIFO, "fifo (named pipe)"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return word
    return "special file"
