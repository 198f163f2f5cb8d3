"""The one place where values become JSON and back: events as journal lines, configs as models.

Journal lines are `{"type", "v", "id", "ts", "session", <fields in class order>}` so that
`grep` and `jq` read them well. Decoding is strict (a string is never silently an int) and
ignores unknown fields, so an older journalq reads a newer journal's extra fields; an unknown
`type` or a newer `v` decodes to `UnknownEvent` rather than an error.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs

from journalq import events as ev

if TYPE_CHECKING:  # cattrs is for configs; reading a journal never imports it (start-up)
    import cattrs

TYPES: dict[str, type[ev.Event]] = {
    "queue_created": ev.QueueCreated,
    "job_added": ev.JobAdded,
    "job_changed": ev.JobChanged,
    "session_started": ev.SessionStarted,
    "session_ended": ev.SessionEnded,
    "job_started": ev.JobStarted,
    "heartbeat": ev.Heartbeat,
    "job_finished": ev.JobFinished,
    "job_interrupted": ev.JobInterrupted,
    "job_recovered": ev.JobRecovered,
    "job_retried": ev.JobRetried,
    "job_cancelled": ev.JobCancelled,
}
TAGS: dict[type[ev.Event], str] = {cls: tag for tag, cls in TYPES.items()}


@attrs.frozen(kw_only=True)
class UnknownEvent(ev.Event):
    """A line of a type or format version this journalq does not know: a newer one wrote it."""

    type: str
    v: int


class DecodeError(ValueError):
    """A JSON value that is not a valid event; the message says which field and why."""


class ValueProblem(ValueError):
    """A hook's own message, shown to people as written (`expected a list of numbers`)."""


def _expect(kind: type, name: str) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _: Any = None) -> Any:
        # bool is an int subclass; a journal or config saying `true` for a number is a mistake.
        if type(value) is not kind:
            raise ValueProblem(f"expected {name}, got {describe(value)}")
        return value

    return hook


def _number(value: Any, _: Any = None) -> float:
    if type(value) not in (int, float):
        raise ValueProblem(f"expected a number, got {describe(value)}")
    if not math.isfinite(value):
        raise ValueProblem(f"expected a finite number, got {value}")
    return float(value)


def _strings(value: Any, _: Any = None) -> tuple[str, ...]:
    if type(value) is not list or any(type(item) is not str for item in value):
        raise ValueProblem(f"expected a list of strings, got {describe(value)}")
    return tuple(value)


def _string_map(value: Any, _: Any = None) -> dict[str, str]:
    if type(value) is not dict or any(type(v) is not str for v in value.values()):
        raise ValueProblem(f"expected a mapping of strings, got {describe(value)}")
    return dict(value)


# JSON (and YAML) can spell a lone UTF-16 surrogate as an escape; no UTF-8 file or terminal
# can hold one, so printing or hashing the string would fail far from where it was read.
_SURROGATE_ESCAPE = re.compile(rb"\\(u|U0000)[dD][89a-fA-F]")
LONE_SURROGATE = "a string holds a lone UTF-16 surrogate escape (\\udXXX)"


def lone_surrogate(text: bytes, value: Any) -> bool:
    """Whether `value`, parsed from `text`, holds a string no UTF-8 text can (checked only
    when `text` has such an escape, so reading stays fast)."""
    if not _SURROGATE_ESCAPE.search(text):
        return False
    try:
        json.dumps(value, ensure_ascii=False, default=str, skipkeys=True).encode()
    except UnicodeEncodeError:
        return True
    return False


def describe(value: Any) -> str:
    """A short, safe description of a bad value for an error message."""
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a mapping", type(None): "nothing (null)"}
    return names.get(type(value), type(value).__name__)


# The strict checks, by type as annotated: configs (through cattrs) and events (by hand, in
# `decode`) accept and refuse exactly the same values, with the same words.
_STRICT: dict[str, Callable[[Any, Any], Any]] = {
    "str": _expect(str, "a string"), "int": _expect(int, "an integer"),
    "bool": _expect(bool, "true or false"), "float": _number,
    "tuple[str, ...]": _strings, "dict[str, str]": _string_map,
}


def make_converter(*, detailed: bool, forbid_extra_keys: bool) -> cattrs.Converter:
    """A converter with journalq's strict hooks; `detailed` collects every error with a path."""
    import cattrs

    converter = cattrs.Converter(
        detailed_validation=detailed, forbid_extra_keys=forbid_extra_keys
    )
    for kind in (str, int, bool, float):
        converter.register_structure_hook(kind, _STRICT[kind.__name__])
    converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _strings)
    converter.register_structure_hook_func(lambda t: t == dict[str, str], _string_map)
    return converter


# Fixed width, so that comparing two timestamps as strings compares them as times.
# ASCII digits only: `\d` alone also matches other scripts' digits, which sort differently.
# The pattern also bounds hours, minutes and seconds; `_is_time` checks the calendar day.
_TS_FORMAT = re.compile(
    r"[0-9]{4}-[01][0-9]-[0-3][0-9]T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z"
)
# Event types are snake_case words, now and in any later journalq; anything else (a "\r",
# a 10 kB string) is damage, not a newer writer, and must not end up in a message.
_TAG = re.compile(r"[a-z][a-z0-9_]{0,63}", re.ASCII)


def encode(event: ev.Event) -> bytes:
    """One journal line, `type` and `v` first, ending in a newline."""
    if isinstance(event, UnknownEvent):
        raise TypeError("an unknown event is never written back")
    body = attrs.asdict(event, recurse=False)
    line = {"type": TAGS[type(event)], "v": ev.FORMAT_VERSION, **body}
    return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


# ---- decoding: strict, by hand, fast -------------------------------------------------------
# A journal of a million events is mostly heartbeats; cattrs' generated structuring costs
# more than the JSON parse itself, so events are checked field by field against their
# attrs types here, and heartbeats have a path of their own (`heartbeat_fields`).

class _Field(NamedTuple):
    """How to read one field of an event (a plain tuple: made once per field at import)."""

    name: str
    check: Callable[[Any, Any], Any]
    optional: bool  # None is a value
    required: bool  # no default: a line without it is bad


def _fields_of(cls: type[ev.Event]) -> tuple[_Field, ...]:
    found = []
    for field in attrs.fields(cls):
        kind = str(field.type)
        base = kind.removesuffix(" | None")
        # Annotations are text here (`from __future__ import annotations`): reading the text
        # is much cheaper at start-up than evaluating it with typing.get_type_hints.
        found.append(_Field(field.name, _STRICT[base], base != kind,
                            field.default is attrs.NOTHING))
    return tuple(found)


_FIELDS = {cls: _fields_of(cls) for cls in TYPES.values()}


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
    for field in _FIELDS[cls]:
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
    return cls(**values)


def heartbeat_fields(obj: dict[str, Any]) -> tuple[str, str, str, str, int, int | None] | None:
    """(id, ts, session, job, attempt, child_pid) of a well-formed heartbeat, or None for
    anything else (which `decode` then explains). The same checks as `decode`, inlined."""
    try:
        event_id, ts, session = obj["id"], obj["ts"], obj["session"]
        job, attempt, child_pid = obj["job"], obj["attempt"], obj.get("child_pid")
    except KeyError:
        return None
    version = obj.get("v")
    if (type(version) is int and version == ev.FORMAT_VERSION and type(event_id) is str
            and type(ts) is str
            and type(session) is str and type(job) is str and type(attempt) is int
            and (child_pid is None or type(child_pid) is int)
            and _TS_FORMAT.fullmatch(ts) and _is_time(ts)):
        return event_id, ts, session, job, attempt, child_pid
    return None


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


def problems(exc: BaseException, path: str = "$") -> list[str]:
    """Every structuring problem in `exc` as `<path>: <what is wrong>`."""
    import cattrs

    if isinstance(exc, (cattrs.ClassValidationError, cattrs.IterableValidationError)):
        lines = cattrs.transform_error(exc, path=path, format_exception=_format)
        return [_swap(line) for line in lines]
    return [f"{path}: {_format(exc, None)}"]


def first_problem(exc: BaseException, path: str = "$") -> str:
    """The first problem, with a count of the others, as one line."""
    found = problems(exc, path)
    more = f" (and {len(found) - 1} more problems)" if len(found) > 1 else ""
    return found[0] + more


def _format(exc: BaseException, typ: type | None) -> str:
    import cattrs
    from cattrs.errors import ForbiddenExtraKeysError

    if isinstance(exc, ValueProblem):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, ForbiddenExtraKeysError):
        # YAML keys need not be strings (`1: a`); sorting ints with strings would crash.
        # A key like "a\nb" or "\x1b[2J" is quoted, so the message stays one harmless line.
        names = (str(k) if str(k).isprintable() else repr(k) for k in exc.extra_fields)
        return f"unknown field(s) {', '.join(sorted(names))}"
    return cattrs.v.format_exception(exc, typ)


def _swap(line: str) -> str:
    """cattrs says `<problem> @ <path>`; people read `<path>: <problem>` more easily."""
    problem, sep, path = line.rpartition(" @ ")
    return f"{path}: {problem}" if sep else line
