"""Events as journal lines and back: `encode(event) -> bytes`, `decode_line(line)`.

Journal lines are `{"type", "v", "id", "ts", "session", <fields in class order>}` so that
`grep` and `jq` read them well. Decoding is strict (a string is never silently an int) and
ignores unknown fields, so an older journalq reads a newer journal's extra fields; an unknown
`type` or a newer `v` decodes to `UnknownEvent` rather than an error.

A journal of a million events is mostly heartbeats, and reading it is what `status` costs:
events are checked field by field against one table made from their attrs fields (cattrs'
generated structuring costs more than the JSON parse itself), and heartbeats have a fast
path compiled from that same table (`heartbeat_fields`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

import attrs

from journalq import events as ev
from journalq.events import TAGS, TYPES, UnknownEvent
from journalq.strict import CHECKS, LONE_SURROGATE, PLAIN, ValueProblem, describe, lone_surrogate

__all__ = ["TAGS", "TORN", "TYPES", "DecodeError", "UnknownEvent", "Unparsable", "decode",
           "decode_line", "decode_value", "encode", "heartbeat_fields", "parse_line"]


class DecodeError(ValueError):
    """A JSON value that is not a valid event; the message says which field and why."""


def encode(event: ev.Event) -> bytes:
    """One journal line, `type` and `v` first, ending in a newline."""
    if isinstance(event, UnknownEvent):
        raise TypeError("an unknown event is never written back")
    body = attrs.asdict(event, recurse=False)
    for name in _OMITTED.get(type(event), ()):
        if body[name] is None:
            del body[name]
    line = {"type": TAGS[type(event)], "v": ev.FORMAT_VERSION, **body}
    return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


# ---- lines -> JSON values -----------------------------------------------------------------

class Unparsable(str):
    """Why a line holds no JSON value (a str subclass, to tell it from a parsed string)."""

    __slots__ = ()


TORN = Unparsable("the final line has no newline (torn)")
_raw_decode = json.JSONDecoder().raw_decode


def parse_line(line: bytes) -> Any:
    """The JSON value on one complete line (without its newline), or `Unparsable`."""
    try:
        text = line.decode()
        value, end = _raw_decode(text)
        if end == len(text):
            if b"\\" in line and lone_surrogate(line, value):
                return Unparsable(LONE_SURROGATE)
            return value
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or a number too long
        pass
    # The slow way, for its error message and for what raw_decode leaves (blank space).
    if not line.strip(b"\0 \t\r"):
        return Unparsable("blank or NUL-filled line")
    try:
        value = json.loads(line)
    except (ValueError, RecursionError) as exc:
        return Unparsable(f"not JSON: {str(exc)[:80]}")
    if lone_surrogate(line, value):
        return Unparsable(LONE_SURROGATE)
    return value


def decode_value(obj: Any) -> ev.Event | str:
    """The event a parsed line holds, or why there is none."""
    if isinstance(obj, Unparsable):
        return str(obj)
    try:
        return decode(obj)
    except DecodeError as exc:
        return str(exc)


def decode_line(line: bytes) -> ev.Event | str:
    """The event on one complete line (without its newline), or why there is none."""
    return decode_value(parse_line(line))


# ---- JSON values -> events ----------------------------------------------------------------

# Fixed width, so that comparing two timestamps as strings compares them as times.
# ASCII digits only: `\d` alone also matches other scripts' digits, which sort differently.
# The pattern also bounds hours, minutes and seconds; `_is_time` checks the calendar day.
_TS_FORMAT = re.compile(
    r"[0-9]{4}-[01][0-9]-[0-3][0-9]T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z"
)
# Event types are snake_case words, now and in any later journalq; anything else (a "\r",
# a 10 kB string) is damage, not a newer writer, and must not end up in a message.
_TAG = re.compile(r"[a-z][a-z0-9_]{0,63}", re.ASCII)
# The envelope has defaults only so that the pure core can build events before a session
# stamps them; on a line, every event names who wrote it.
_ENVELOPE = ("id", "ts", "session")
_TIMES = ("ts", "clock")  # fields that hold the journal's timestamps


class _Field(NamedTuple):
    """How to read one field of an event (a plain tuple: made once per field at import)."""

    name: str
    kind: str  # the annotation's text, without `| None`
    check: Callable[[Any, Any], Any]
    optional: bool  # None is a value
    required: bool  # a line without it is bad


def _fields_of(cls: type[ev.Event]) -> tuple[_Field, ...]:
    found = []
    for field in attrs.fields(cls):
        kind = str(field.type)
        base = kind.removesuffix(" | None")
        # Annotations are text here (`from __future__ import annotations`): reading the text
        # is much cheaper at start-up than evaluating it with typing.get_type_hints.
        required = field.default is attrs.NOTHING or field.name in _ENVELOPE
        found.append(_Field(field.name, base, CHECKS[base], base != kind, required))
    return tuple(found)


# The decoder's field table: every check `decode` and `heartbeat_fields` make comes from here.
FIELDS = {cls: _fields_of(cls) for cls in TYPES.values()}
# The fields each type leaves out of its line when they are None (see `events.later`).
_OMITTED = {cls: tuple(f.name for f in attrs.fields(cls) if f.metadata.get("omit_unset"))
            for cls in TYPES.values()}


def decode(obj: Any) -> ev.Event:
    """The event a parsed JSON line holds; raises DecodeError naming the bad field."""
    if type(obj) is not dict:
        raise DecodeError(f"expected a JSON object, got {describe(obj)}")
    tag = obj.get("type")
    version = obj.get("v")
    if type(tag) is not str or type(version) is not int or not _TAG.fullmatch(tag):
        raise DecodeError("missing or malformed 'type' or 'v'")
    ts = obj.get("ts")
    if type(ts) is not str or not _TS_FORMAT.fullmatch(ts) or not _is_time(ts):
        raise DecodeError("$.ts: expected an RFC 3339 UTC time like 2026-01-31T12:00:00.000000Z")
    cls = TYPES.get(tag)
    if cls is None or version > ev.FORMAT_VERSION:
        return _decode_unknown(obj, tag, version)
    values: dict[str, Any] = {}
    for field in FIELDS[cls]:
        if field.name not in obj:
            if field.required:
                raise DecodeError(f"{tag}: $.{field.name}: required field missing")
            continue
        value = obj[field.name]
        try:
            values[field.name] = (None if value is None and field.optional
                                  else field.check(value, None))
        except ValueProblem as problem:
            raise DecodeError(f"{tag}: $.{field.name}: {problem}") from None
    clock = values.get("clock")
    if clock is not None and not (_TS_FORMAT.fullmatch(clock) and _is_time(clock)):
        raise DecodeError(f"{tag}: $.clock: expected an RFC 3339 UTC time like "
                          "2026-01-31T12:00:00.000000Z")
    return cls(**values)


def _is_time(ts: str) -> bool:
    """A day the calendar has (no month 13, no February 30), before the year 9999: a writer
    stamps its events after the newest one it read, and past 9999-12-31 there is no after.
    `ts` already matched `_TS_FORMAT`. A journal's events fall on few days, so each day is
    checked once."""
    day = ts[:10]
    if day in _DAYS:
        return True
    try:
        datetime.fromisoformat(day)
    except ValueError:
        return False
    if day >= "9999":
        return False
    _DAYS.add(day)
    return True


_DAYS: set[str] = set()  # days seen to be real, a cache for _is_time


def _decode_unknown(obj: dict[str, Any], tag: str, version: int) -> UnknownEvent:
    event_id, ts, session = obj.get("id"), obj.get("ts"), obj.get("session")
    if type(event_id) is not str or type(ts) is not str or type(session) is not str:
        raise DecodeError(f"event of unknown type {tag!r} lacks a string id, ts or session")
    return UnknownEvent(id=event_id, ts=ts, session=session, type=tag, v=version)


# ---- the heartbeat fast path --------------------------------------------------------------

def _compile_fast_path(cls: type[ev.Event], doc: str) -> Callable[[dict[str, Any]], Any]:
    """A function returning the fields of a well-formed `cls` line as a tuple in class
    order, or None for anything else (which `decode` then explains).

    It makes exactly `decode`'s checks, generated from `FIELDS[cls]` as straight-line code
    (as attrs and cattrs generate theirs): a loop over the table costs 40% more per line,
    and heartbeats are most lines of a long journal. Only plain type checks can be inlined.
    """
    get, test = [], []
    for n, field in enumerate(FIELDS[cls]):
        if field.kind not in PLAIN or not (field.required or field.optional):
            raise TypeError(f"{cls.__name__}.{field.name}: no fast path for this field")
        value = f"v{n}"
        get.append(f"{value} = obj[{field.name!r}]" if field.required
                   else f"{value} = obj.get({field.name!r})")  # a missing field is None
        check = f"type({value}) is {field.kind}"
        if field.name in _TIMES:
            check += f" and _TS_FORMAT.fullmatch({value}) and _is_time({value})"
        test.append(f"({value} is None or ({check}))" if field.optional else check)
    source = "\n".join([
        "def fields(obj):",
        f"    if obj.get('type') != {TAGS[cls]!r}:",
        "        return None",
        "    version = obj.get('v')",
        "    try:",
        *(f"        {line}" for line in get),
        "    except KeyError:",
        "        return None",
        f"    if (type(version) is int and version <= {ev.FORMAT_VERSION}",
        *(f"            and {line}" for line in test),
        "    ):",
        f"        return ({', '.join(f'v{n}' for n in range(len(get)))},)",
        "    return None",
    ])
    scope: dict[str, Any] = {"_TS_FORMAT": _TS_FORMAT, "_is_time": _is_time}
    exec(compile(source, f"<fast path for {cls.__name__}>", "exec"), scope)  # noqa: S102
    function: Callable[[dict[str, Any]], Any] = scope["fields"]
    function.__name__ = function.__qualname__ = f"{TAGS[cls]}_fields"
    function.__doc__ = doc
    return function


heartbeat_fields: Callable[[dict[str, Any]],
                           tuple[str, str, str, str | None, str, int, int | None] | None]
heartbeat_fields = _compile_fast_path(ev.Heartbeat, """(id, ts, session, clock, job, attempt,
    child_pid) of a well-formed heartbeat, or None for anything else: exactly what `decode`
    accepts as a `Heartbeat`, without building one.""")
