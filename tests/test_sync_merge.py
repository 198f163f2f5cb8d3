"""Merging journal copies is a set union by event id, whatever order or grouping.

The journals here are like real copies: several sessions each append events with ids
`<session>:1..n` and rising timestamps, and a journal holds a prefix of each session's
events, in any line order (a merge appends foreign events after its own), written with
either key order. Merging is `sync.union` (as `pull` does it), then `fold.replay`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journalq import codec, copies, copyreader
from journalq import events as ev
from journalq.copies import Entry
from journalq.fold import replay
from journalq.state import Queue
from journalq.timestamps import format_ts

SESSIONS = ("a1a1a1a1a1a1", "b2b2b2b2b2b2", "c3c3c3c3c3c3")
JOB_IDS = ("j1", "j2")
BASE_MICROS = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z

jobs = st.sampled_from(JOB_IDS)
attempts = st.integers(1, 3)

bodies = st.one_of(
    st.builds(ev.QueueCreated, queue=st.just("q"), config=st.just("configs/q.yaml"),
              config_sha256=st.just("0" * 64)),
    st.builds(ev.JobAdded, job=jobs, argv=st.just(("python", "w.py")), shell=st.just(False),
              cwd=st.just("."), env=st.just({"K": "v"}), out_dir=st.just("out"),
              max_attempts=st.integers(1, 3), timeout=st.none() | st.just(60.0),
              spec_sha256=st.sampled_from(["s1", "s2"])),
    st.builds(ev.JobStarted, job=jobs, attempt=attempts, host=st.just("vm"),
              boot_id=st.sampled_from(["machine-A", "machine-B"]),
              pid=st.integers(1, 99_999), log=st.just("a.log"), spec_sha256=st.just("s1")),
    st.builds(ev.Heartbeat, job=jobs, attempt=attempts, child_pid=st.none() | st.just(7)),
    st.builds(ev.JobFinished, job=jobs, attempt=attempts,
              return_code=st.sampled_from([0, 1, None]), signal=st.none() | st.just(9),
              outcome=st.sampled_from(["done", "failed"]),
              reason=st.sampled_from(["exit", "signal", "timeout"]),
              duration=st.integers(0, 99).map(float)),
    st.builds(ev.JobRecovered, job=jobs, attempt=attempts,
              to=st.sampled_from(["pending", "failed", "done"]),
              reason=st.sampled_from(["stale", "forced", "card"]),
              return_code=st.none() | st.just(0)),
    st.builds(ev.JobInterrupted, job=jobs, attempt=attempts, signal=st.just(15)),
    st.builds(ev.JobRetried, job=jobs),
    st.builds(ev.JobCancelled, job=jobs),
)

Journal = tuple[str, tuple[bytes, ...]]  # (file name, lines without their newline)


@st.composite
def histories(draw: st.DrawFn) -> dict[str, list[ev.Event]]:
    """What each session appended: `session_started`, then some events; ids `<s>:1..n`,
    timestamps rising within a session and often equal across sessions."""
    found: dict[str, list[ev.Event]] = {}
    for session in SESSIONS[:draw(st.integers(1, len(SESSIONS)))]:
        body: list[ev.Event] = [ev.SessionStarted(
            command="run", host="vm", boot_id=f"machine-{session[0]}", pid=1, pid_start=1,
            argv=("journalq",), journalq_version="0", python_version="3.11")]
        body += draw(st.lists(bodies, max_size=6))
        if draw(st.booleans()):
            body.append(ev.SessionEnded(exit_code=0, reason="completed"))
        stamps = sorted(draw(st.lists(st.integers(0, 40), min_size=len(body),
                                      max_size=len(body), unique=True)))
        found[session] = [
            attrs.evolve(event, id=f"{session}:{seq}", ts=format_ts(BASE_MICROS + micros),
                         session=session)
            for seq, (event, micros) in enumerate(zip(body, stamps, strict=True), start=1)
        ]
    return found


def encode(event: ev.Event, sorted_keys: bool) -> bytes:
    """One line as journalq writes it, or with its keys in another order."""
    line = codec.encode(event).rstrip(b"\n")
    return json.dumps(json.loads(line), sort_keys=True).encode() if sorted_keys else line


@st.composite
def journals(draw: st.DrawFn, history: dict[str, list[ev.Event]], name: str) -> Journal:
    """A copy: a prefix of each session's events, lines in any order, one key order."""
    held = [event for events in history.values()
            for event in events[:draw(st.integers(0, len(events)))]]
    sorted_keys = draw(st.booleans())
    order = draw(st.permutations(held))
    return name, tuple(encode(event, sorted_keys) for event in order)


@st.composite
def scenarios(draw: st.DrawFn, count: int) -> tuple[dict[str, list[ev.Event]], list[Journal]]:
    """A history and `count` copies of it."""
    history = draw(histories())
    return history, [draw(journals(history, f"copy-{n}.jsonl")) for n in range(count)]


def entries(journal: Journal) -> list[Entry]:
    """A copy's lines as the merge reads them."""
    name, lines = journal
    return [Entry.of(codec.decode(json.loads(line)), line, name) for line in lines]


def merge(*journals: Journal) -> list[Entry]:
    """The union of the copies, in (ts, id) order, as `pull` makes it (SyncError if two
    copies disagree about an event)."""
    every = [entry for journal in journals for entry in entries(journal)]
    copyreader.refuse_conflicts(copies.conflicts(every))
    return copies.extend({}, every)


def as_journal(merged: Sequence[Entry], name: str) -> Journal:
    """A merge result written out as a journal of its own."""
    return name, tuple(entry.line for entry in merged)


def events_of(merged: Sequence[Entry]) -> list[ev.Event]:
    """The merged events, in order."""
    return [entry.decoded() for entry in merged]


def folded(merged: Sequence[Entry]) -> Queue:
    """The queue the merged events describe."""
    return replay(events_of(merged))


@settings(max_examples=100, deadline=None)
@given(scenarios(2))
def test_merge_is_commutative(scenario: tuple[dict[str, list[ev.Event]], list[Journal]]) -> None:
    """Merging A with B gives the same events, in the same order, as merging B with A, and
    so the same queue."""
    _, (a, b) = scenario

    ab, ba = merge(a, b), merge(b, a)

    assert events_of(ab) == events_of(ba)
    assert folded(ab) == folded(ba)


@settings(max_examples=100, deadline=None)
@given(scenarios(3))
def test_merge_is_associative(scenario: tuple[dict[str, list[ev.Event]], list[Journal]]) -> None:
    """(A + B) + C and A + (B + C) hold the same events and fold to the same queue, so it
    does not matter which runtime merged which copy first."""
    _, (a, b, c) = scenario

    left = merge(as_journal(merge(a, b), "ab.jsonl"), c)
    right = merge(a, as_journal(merge(b, c), "bc.jsonl"))

    assert events_of(left) == events_of(right)
    assert folded(left) == folded(right)


@settings(max_examples=100, deadline=None)
@given(scenarios(2))
def test_merge_is_idempotent(scenario: tuple[dict[str, list[ev.Event]], list[Journal]]) -> None:
    """Merging a copy with itself, or merging a merge again with one of its inputs, adds
    nothing."""
    _, (a, b) = scenario
    ab = merge(a, b)

    assert events_of(merge(a)) == events_of(merge(a, a))
    assert events_of(ab) == events_of(merge(as_journal(ab, "ab.jsonl"), b))
    assert events_of(ab) == events_of(merge(as_journal(ab, "ab.jsonl"), a, b))


@settings(max_examples=100, deadline=None)
@given(scenarios(3))
def test_merge_folds_like_the_plain_union_of_events(
        scenario: tuple[dict[str, list[ev.Event]], list[Journal]]) -> None:
    """The merge holds every event of every copy exactly once, and folds to the queue that
    the plain set union of their events folds to."""
    _, copies = scenario
    plain = {event.id: event for copy in copies for event in events_of(entries(copy))}

    merged = merge(*copies)

    assert sorted(plain) == sorted(event.id for event in events_of(merged))
    assert replay(plain.values()) == folded(merged)


@settings(max_examples=100, deadline=None)
@given(scenarios(3))
def test_pulling_into_a_journal_folds_like_merging_it(
        scenario: tuple[dict[str, list[ev.Event]], list[Journal]]) -> None:
    """Pull keeps the local journal's lines and appends only the events it lacks; the result
    folds like the merge of the local journal with every copy."""
    _, (local, *others) = scenario
    known = copies.coverage_of(entries(local))

    fresh = copies.extend(known, [entry for other in others for entry in entries(other)])
    pulled = as_journal(entries(local) + fresh, "local.jsonl")

    assert not {entry.id for entry in entries(local)} & {e.id for e in fresh}
    assert replay(events_of(entries(pulled))) == folded(merge(local, *others))


@settings(max_examples=100, deadline=None)
@given(scenarios(2), st.data())
def test_one_id_with_two_contents_never_merges(
        scenario: tuple[dict[str, list[ev.Event]], list[Journal]], data: st.DataObject) -> None:
    """If one copy's event differs from another copy's event of the same id, the union
    fails naming that id and both files, in either order."""
    _, (a, b) = scenario
    shared = sorted({line_id(line) for line in a[1]} & {line_id(line) for line in b[1]})
    if not shared:
        return
    target = data.draw(st.sampled_from(shared))
    forged = b[0], tuple(tamper(line) if line_id(line) == target else line for line in b[1])

    for pair in ((a, forged), (forged, a)):
        with pytest.raises(copyreader.SyncError) as caught:
            merge(*pair)
        assert f"event {target} differs between" in caught.value.message
        assert a[0] in caught.value.message
        assert forged[0] in caught.value.message


def line_id(line: bytes) -> str:
    """The event id of a journal line."""
    value: str = json.loads(line)["id"]
    return value


def tamper(line: bytes) -> bytes:
    """The same event id and type with one field's content changed."""
    value = json.loads(line)
    value["ts"] = format_ts(BASE_MICROS - 1)
    return json.dumps(value).encode()


@settings(max_examples=100, deadline=None)
@given(scenarios(2))
def test_coverage_says_exactly_which_events_a_copy_holds(
        scenario: tuple[dict[str, list[ev.Event]], list[Journal]]) -> None:
    """Compaction's premise: since a copy holds a prefix of each session, the highest
    sequence number per session says which events it holds, so "F covers every session
    of G as far" is the same as "F holds every event of G"."""
    _, (f, g) = scenario

    covers = copies.covers(copies.coverage_of(entries(f)), copies.coverage_of(entries(g)))

    assert ({line_id(line) for line in g[1]} <= {line_id(line) for line in f[1]}) == covers


# ---- the name grammar and the prefix rule --------------------------------------------------

QUEUE_NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
SESSION_IDS = st.from_regex(r"[0-9a-f]{12}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(QUEUE_NAMES, QUEUE_NAMES, SESSION_IDS, st.integers(1, 10**6))
def test_a_segment_name_belongs_to_exactly_one_queue(
        queue: str, other: str, session: str, part: int) -> None:
    """A file journalq names for (queue, session, part) parses back to exactly that, and is
    never taken for a file of another queue, even one whose name extends it (`sweep` and
    `sweep.v2`, or `sweep.<12 hex digits>`)."""
    name = copies.segment_name(queue, session, part)

    assert copies.Segment(name, session, part) == copies.parse_name(name, queue)
    if other != queue:
        assert copies.parse_name(name, other) is None


@pytest.mark.parametrize("name", [
    "q.jsonl", "q.abc.jsonl", "q.ABCDEFABCDEF.jsonl", "q.abcdefabcdef-1.jsonl",
    "q.abcdefabcdef-01.jsonl", "q.abcdefabcdef.jsonl.lock", "q.abcdefabcdef.jsonl.bak-1",
    ".q.abcdefabcdef.jsonl.tmp-1", "q.abcdefabcdef.jsonl.torn-20260101T000000Z",
    "q.abcdefabcdef (1).jsonl", "q.v2.abcdefabcdef.jsonl",
])
def test_nothing_but_the_grammar_is_a_copy(name: str) -> None:
    """Locks, backups, torn tails, temp files, Drive's conflict copies, another queue's
    copies: none of them is read as a copy of queue `q`."""
    assert copies.parse_name(name, "q") is None


def test_a_gap_stops_a_session_s_run_until_the_missing_event_arrives() -> None:
    """A copy that lost a line gives the events before the gap; merging past it would
    break the prefix rule that coverage rests on."""
    events = [attrs.evolve(ev.JobRetried(job="j"), id=f"{SESSIONS[0]}:{seq}",
                           ts=format_ts(BASE_MICROS + seq), session=SESSIONS[0])
              for seq in range(1, 6)]
    damaged = [Entry.of(event, codec.encode(event).rstrip(b"\n"), "copy")
               for event in events if event.id != f"{SESSIONS[0]}:3"]

    assert [e.id for e in events[:2]] == [x.id for x in copies.extend({}, damaged)]
    whole = [Entry.of(event, codec.encode(event).rstrip(b"\n"), "other") for event in events]
    assert [e.id for e in events[2:]] == [
        x.id for x in copies.extend({SESSIONS[0]: 2}, [*damaged, *whole])]
