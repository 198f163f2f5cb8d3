"""The sync folder's files, by one exact name grammar, and the rule for merging them.

A session's copy of its journal is one or more segments, consecutive byte ranges of the
journal cut at line ends:

    <queue>.<session>.jsonl       segment 1: the journal from its first byte
    <queue>.<session>-<n>.jsonl   segment n (n >= 2): the bytes after segment n-1

`<session>` is 12 lowercase hex digits and `<n>` a decimal without leading zeros, so a name
belongs to exactly one queue, whatever dots queue names hold (`sweep` never reads
`sweep.v2`'s files), and nothing else journalq writes (locks, backups, torn tails, temp
files, which all start with `.` or carry a suffix) is ever read as a copy.

Merging is pure: every journal holds a prefix of each session's events (a session appends
in order; copies and merges carry prefixes on), so a journal's "coverage" (each session's
highest sequence number) says exactly which events it holds, and a merge appends, per
session, the run of events that extends that prefix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

import attrs

from journalq import events as ev

_SEGMENT = re.compile(r"([0-9a-f]{12})(?:-([1-9][0-9]{0,8}))?\.jsonl")

Coverage = dict[str, int]  # session -> highest sequence number held


@attrs.frozen
class Segment:
    """One file of one session's copy."""

    name: str
    session: str
    part: int


def segment_name(queue: str, session: str, part: int) -> str:
    """The file name of segment `part` (from 1) of `session`'s copy of `queue`."""
    return f"{queue}.{session}.jsonl" if part == 1 else f"{queue}.{session}-{part}.jsonl"


def parse_name(name: str, queue: str) -> Segment | None:
    """The segment a file name is, if it is one of `queue`'s by the exact grammar."""
    if not name.startswith(queue) or name[len(queue):len(queue) + 1] != ".":
        return None
    found = _SEGMENT.fullmatch(name, len(queue) + 1)
    if found is None or found.group(2) == "1":
        return None
    return Segment(name, found.group(1), int(found.group(2) or 1))


def _own(event_id: str, session: str) -> tuple[str, int] | None:
    """(session, seq) of an id that is `<session>:<seq>` for the event's own session."""
    found = sequence(event_id)
    return found if found is not None and found[0] == session else None


def sequence(event_id: str) -> tuple[str, int] | None:
    """(session, seq) of an event id `<session>:<seq>`, if it has that form."""
    session, _, seq = event_id.rpartition(":")
    return (session, int(seq)) if session and seq.isascii() and seq.isdigit() else None


# A heartbeat as the codec's fast path reads it, without an object:
# (id, ts, session, clock, job, attempt, child_pid).
BeatFields = tuple[str, str, str, "str | None", str, int, "int | None"]


class Entry(NamedTuple):
    """One event from one file, with its line as written (without the newline): decoded
    (`event`), or, for a heartbeat (most lines of a long copy), its fields (`beat`).

    A named tuple, not an attrs class: a merge makes one per event of a copy (100,000 for
    a long one), and a tuple is built in a third of the time."""

    id: str
    ts: str
    line: bytes
    source: str
    event: ev.Event | None
    beat: BeatFields | None
    # (session, seq) if the id is `<the event's own session>:<seq>`, else None. The fold
    # counts an event towards its `session` field, the merge by its id: an id that names
    # another session (a forged or hand-edited line) would never count as held, and every
    # pull would append it again.
    seq: tuple[str, int] | None

    @classmethod
    def of(cls, event: ev.Event, line: bytes, source: str) -> Entry:
        """An entry for a decoded event."""
        return cls(event.id, event.ts, line, source, event, None, _own(event.id, event.session))

    @classmethod
    def of_beat(cls, beat: BeatFields, line: bytes, source: str) -> Entry:
        """An entry for a heartbeat read as its fields (no object: most of a long copy)."""
        return cls(beat[0], beat[1], line, source, None, beat, _own(beat[0], beat[2]))

    def decoded(self) -> ev.Event:
        """The event itself (a heartbeat is built from its fields)."""
        if self.event is not None:
            return self.event
        assert self.beat is not None
        event_id, ts, session, clock, job, attempt, child_pid = self.beat
        return ev.Heartbeat(id=event_id, ts=ts, session=session, clock=clock, job=job,
                            attempt=attempt, child_pid=child_pid)


@attrs.frozen
class Conflict:
    """One event id with two contents in two files: two histories claim one event."""

    event_id: str
    first: str
    second: str


def extend(known: Coverage, candidates: Iterable[Entry]) -> list[Entry]:
    """The entries that extend `known`: each session's run without a gap, once each, in
    (ts, id) order.

    A gap (a copy that lost a line) stops that session's run: merging past it would break
    the prefix rule, and the missing event can still arrive from another copy later.
    """
    by_session: dict[str, dict[int, Entry]] = {}
    for entry in candidates:
        found = entry.seq
        if found is not None and found[1] > known.get(found[0], 0):
            by_session.setdefault(found[0], {}).setdefault(found[1], entry)
    fresh: list[Entry] = []
    for session, held in by_session.items():
        seq = known.get(session, 0) + 1
        while seq in held:
            fresh.append(held[seq])
            seq += 1
    fresh.sort(key=lambda entry: (entry.ts, entry.id))
    return fresh


def conflicts(entries: Iterable[Entry]) -> list[Conflict]:
    """Event ids that come with two contents (another value, not just another key order)."""
    first: dict[str, Entry] = {}
    found: list[Conflict] = []
    for entry in entries:
        kept = first.setdefault(entry.id, entry)
        if kept is not entry and kept.line != entry.line and (
                kept.decoded() != entry.decoded()):
            found.append(Conflict(entry.id, kept.source, entry.source))
    return found


Runs = dict[str, tuple[tuple[int, int], ...]]  # session -> (first, last) seq runs, sorted


def runs_of(entries: Iterable[Entry]) -> Runs:
    """The runs of sequence numbers each session has among `entries` (one file's)."""
    seqs: dict[str, list[int]] = {}
    for entry in entries:
        held = entry.seq
        if held is not None:
            seqs.setdefault(held[0], []).append(held[1])
    found: Runs = {}
    for session, numbers in seqs.items():
        grown: list[tuple[int, int]] = []
        for seq in sorted(set(numbers)):
            if grown and seq == grown[-1][1] + 1:
                grown[-1] = (grown[-1][0], seq)
            else:
                grown.append((seq, seq))
        found[session] = tuple(grown)
    return found


def prefix_coverage(files: Iterable[Runs]) -> Coverage:
    """The coverage of a copy made of files with these runs: per session, how far its
    events run from 1 without a gap.

    Not the highest number seen: a copy that lost a line in the middle (Drive mangled it)
    does not hold that event, and compaction must never count on it to."""
    pooled: dict[str, list[tuple[int, int]]] = {}
    for runs in files:
        for session, held in runs.items():
            pooled.setdefault(session, []).extend(held)
    found: Coverage = {}
    for session, spans in pooled.items():
        reach = 0
        for first, last in sorted(spans):
            if first > reach + 1:
                break
            reach = max(reach, last)
        if reach:
            found[session] = reach
    return found


def coverage_of(entries: Iterable[Entry]) -> Coverage:
    """How far each session's events run from 1 without a gap among `entries`."""
    return prefix_coverage([runs_of(entries)])


def left_out(known: Coverage, candidates: Iterable[Entry], taken: Iterable[Entry]) -> set[str]:
    """The files holding an event that `extend` left out for a gap (`taken` is what it
    returned): read again at the next pull, when the missing part may have arrived."""
    ids = {entry.id for entry in taken}
    found: set[str] = set()
    for entry in candidates:
        held = entry.seq
        if held is not None and held[1] > known.get(held[0], 0) and entry.id not in ids:
            found.add(entry.source)
    return found


def covers(cover: Coverage, held: Coverage) -> bool:
    """Whether a journal with coverage `cover` holds every event of one with `held`."""
    return all(cover.get(session, 0) >= seq for session, seq in held.items())
