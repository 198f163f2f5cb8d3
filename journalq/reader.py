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

from collections.abc import Callable, Iterator
from typing import Any

import attrs

from journalq import codec
from journalq import events as ev
from journalq.codec import TORN, decode_value, parse_line
from journalq.codec import decode_line as decode_line  # re-exported: journal, repair
from journalq.errors import JournalError
from journalq.fs import REAL, FileSystem
from journalq.identify import NotAJournal, check_journal, not_a_journal, plausible_start

__all__ = ["BadLine", "NotAJournal", "ReadReport", "Reader", "check_journal", "decode_line",
           "split_lines", "tail_warning"]


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
    # A SHA-256 (hashlib object) of the whole file as read, when the reader was asked for
    # one and the file had no torn tail: the writer carries it on, so that saving a fold
    # checkpoint never reads the journal again.
    digest: Any = None


class Reader:
    """Streams a journal's events in file order, checking every line as it goes.

    Iterate `events()` to the end, then read `report()`. Raises JournalError on a complete
    line that is not an event, and NotAJournal if that is the file's first line.
    """

    def __init__(self, path: str, fs: FileSystem = REAL, start: int = 0,
                 end: int | None = None, first_line: int = 1, digest: Any = None) -> None:
        self.path = path
        self.digest = digest  # updated with every byte read
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
                                                       self._end, self.digest):
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
        tail = self._size - self._good_end
        return ReadReport(
            path=self.path, good_size=self._good_end, tail_size=tail,
            lines=self._lines, last_ts=self._max_ts, newer_types=tuple(sorted(self._newer)),
            ordered=len(self.run_starts) == 1, tail_reason=self._tail_reason,
            digest=self.digest if not tail and self._end is None else None,
        )


def split_lines(fs: FileSystem, path: str, start: int, end: int | None,
                digest: Any = None) -> Iterator[tuple[int, bytes, bool]]:
    """(offset, line without its newline, whether it had one) for each line in [start, end);
    `digest`, if given, is updated with every byte read."""
    position = offset = start
    pending = b""
    for chunk in fs.read(path, start):
        if end is not None and position + len(chunk) > end:
            chunk = chunk[: end - position]
        position += len(chunk)
        if digest is not None:
            digest.update(chunk)
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            yield offset, line, True
            offset += len(line) + 1
        if end is not None and position >= end:
            break
    if pending:
        yield offset, pending, False


TORN_REASON = str(TORN)  # why a final line without its newline is no event


def tail_warning(report: ReadReport) -> str | None:
    """The warning shown when a journal ends in a torn or garbage tail, if it does."""
    if not report.tail_size:
        return None
    return (f"{report.path}: ignoring {report.tail_size} bytes after the last complete event "
            f"at byte {report.good_size} ({report.tail_reason}); most likely a crash "
            "mid-append. They are moved aside before the next write.")


# ---- is it a journal at all? --------------------------------------------------------------
