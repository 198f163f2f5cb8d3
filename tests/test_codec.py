"""The codec on its own: lines to JSON values, values to events, and the heartbeat fast path
agreeing with the decoder on every line, well-formed or not."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from journalq import codec
from journalq import events as ev
from journalq.timestamps import format_ts

BASE = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z, in microseconds
BEAT = json.loads(codec.encode(ev.Heartbeat(id="s1:7", ts=format_ts(BASE), session="s1",
                                            job="a", attempt=1, child_pid=4242)))

# Values near and far from what a heartbeat field holds: the right type, a lookalike of
# another type (`1.0`, `True`, `"1"`), null, and containers.
ODD = st.one_of(
    st.none(), st.booleans(), st.sampled_from([0, 1, 2, -1]), st.integers(),
    st.floats(allow_nan=False),
    st.sampled_from([1.0, "1", "", "s1:7", "heartbeat", format_ts(BASE), "2026-02-30T00:00:00"
                     ".000000Z", "2026-01-01 00:00:00.000000Z", "9999-12-31T00:00:00.000000Z",
                     "\u0662\u0660\u0662\u0666-01-01T00:00:00.000000Z"]),
    st.text(max_size=5), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
KEYS = st.sampled_from(["type", "v", "id", "ts", "session", "job", "attempt", "child_pid",
                        "extra"])


@st.composite
def heartbeat_like(draw: st.DrawFn) -> dict[str, Any]:
    """A heartbeat's JSON object with a few fields retyped, dropped or added."""
    obj = dict(BEAT)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(KEYS)
        if draw(st.booleans()):
            obj.pop(key, None)
        else:
            obj[key] = draw(ODD)
    return obj


def decoded(obj: Any) -> ev.Event | None:
    try:
        return codec.decode(obj)
    except codec.DecodeError:
        return None


@settings(max_examples=3000, deadline=None)
@given(obj=heartbeat_like())
@example(obj={**BEAT, "v": 0})  # the hand-written fast path sent these to the slow path,
@example(obj={k: v for k, v in BEAT.items() if k != "id"})  # and decode took these
def test_the_heartbeat_fast_path_accepts_exactly_what_decode_accepts(obj: dict[str, Any]) -> None:
    """`heartbeat_fields` returns the fields of exactly the objects `decode` reads as a
    `Heartbeat`, and the same fields; anything else (another type, a newer version, a bad
    field) it leaves to `decode`, which decodes it as something else or explains it."""
    event = decoded(obj)
    fields = codec.heartbeat_fields(obj)

    if type(event) is ev.Heartbeat:
        assert attrs.astuple(event, recurse=False) == fields
    else:
        assert fields is None


@pytest.mark.parametrize(("missing", "message"), [
    ("id", "heartbeat: $.id: required field missing"),
    ("session", "heartbeat: $.session: required field missing"),
    ("ts", "$.ts: expected an RFC 3339 UTC time like 2026-01-31T12:00:00.000000Z"),
])
def test_every_line_names_its_writer(missing: str, message: str) -> None:
    """A line without `id` or `session` is refused, naming the field: the envelope has
    defaults only so that the core can build an event before a session stamps it."""
    line = json.dumps({k: v for k, v in BEAT.items() if k != missing}).encode()

    assert message == codec.decode_line(line)
    assert codec.heartbeat_fields(json.loads(line)) is None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10)


@given(value=JSON, before=st.sampled_from(["", " ", "\t", "\r"]),
       after=st.sampled_from(["", " ", "\t", "\r", "\r "]), ascii_only=st.booleans())
def test_parse_line_reads_what_json_reads(value: Any, before: str, after: str,
                                          ascii_only: bool) -> None:
    """The fast parse (`raw_decode`) and its slow fallback together read any JSON line as
    `json.loads` does, surrounding blanks included."""
    line = (before + json.dumps(value, ensure_ascii=ascii_only) + after).encode()

    assert json.loads(line) == codec.parse_line(line)


@pytest.mark.parametrize(("line", "reason"), [
    (b"", "blank or NUL-filled line"),
    (b"\0\0\0", "blank or NUL-filled line"),
    (b'{"a": 1} x', "not JSON: Extra data: line 1 column 10 (char 9)"),
    (b'{"a": "\\ud800"}', "a string holds a lone UTF-16 surrogate escape (\\udXXX)"),
    (b"\xff", "not JSON: 'utf-8' codec can't decode byte 0xff in position 0: invalid start "
              "byte"),
])
def test_a_line_that_is_not_json_says_why(line: bytes, reason: str) -> None:
    """A line without a JSON value gets a reason, never an exception."""
    parsed = codec.parse_line(line)

    assert isinstance(parsed, codec.Unparsable)
    assert reason == parsed == codec.decode_line(line)


def test_a_parsed_string_is_not_a_reason() -> None:
    """A line holding a JSON string is a value (not an event), not a parse failure."""
    assert "expected a JSON object, got a string" == codec.decode_line(b'"blank or NUL"')


def test_unknown_types_and_newer_versions_decode_to_unknown_events() -> None:
    """A newer journalq's event is kept as `UnknownEvent`, whose envelope is still checked."""
    newer = {**BEAT, "type": "job_paused"}

    assert ev.UnknownEvent(id="s1:7", ts=BEAT["ts"], session="s1", type="job_paused", v=1) == (
        codec.decode(newer))
    assert codec.heartbeat_fields({**BEAT, "v": 2}) is None
    assert isinstance(codec.decode({**BEAT, "v": 2}), ev.UnknownEvent)
    with pytest.raises(codec.DecodeError, match="lacks a string id"):
        codec.decode({k: v for k, v in newer.items() if k != "id"})


def test_closed_sets_are_written_as_the_words_older_journals_hold() -> None:
    """Outcomes and reasons are enums in the code and plain words on the line."""
    finished = ev.JobFinished(id="s1:8", ts=format_ts(BASE), session="s1", job="a", attempt=1,
                              return_code=0, signal=None, outcome="done", reason="exit",
                              duration=1.0)

    line = codec.encode(finished)

    assert b'"outcome":"done","reason":"exit"' in line
    assert finished == codec.decode_line(line.rstrip(b"\n"))
