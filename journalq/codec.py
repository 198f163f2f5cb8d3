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
from typing import Any

import attrs
import cattrs
from cattrs.errors import ForbiddenExtraKeysError

from journalq import events as ev

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
    def hook(value: Any, _: Any) -> Any:
        # bool is an int subclass; a journal or config saying `true` for a number is a mistake.
        if type(value) is not kind:
            raise ValueProblem(f"expected {name}, got {describe(value)}")
        return value

    return hook


def _number(value: Any, _: Any) -> float:
    if type(value) not in (int, float):
        raise ValueProblem(f"expected a number, got {describe(value)}")
    if not math.isfinite(value):
        raise ValueProblem(f"expected a finite number, got {value}")
    return float(value)


def _strings(value: Any, _: Any) -> tuple[str, ...]:
    if type(value) is not list or any(type(item) is not str for item in value):
        raise ValueProblem(f"expected a list of strings, got {describe(value)}")
    return tuple(value)


def _string_map(value: Any, _: Any) -> dict[str, str]:
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


def make_converter(*, detailed: bool, forbid_extra_keys: bool) -> cattrs.Converter:
    """A converter with journalq's strict hooks; `detailed` collects every error with a path."""
    converter = cattrs.Converter(
        detailed_validation=detailed, forbid_extra_keys=forbid_extra_keys
    )
    converter.register_structure_hook(str, _expect(str, "a string"))
    converter.register_structure_hook(int, _expect(int, "an integer"))
    converter.register_structure_hook(bool, _expect(bool, "true or false"))
    converter.register_structure_hook(float, _number)
    converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _strings)
    converter.register_structure_hook_func(lambda t: t == dict[str, str], _string_map)
    return converter


# Journal lines: the fast converter decodes; the detailed one only explains a failure.
_events = make_converter(detailed=False, forbid_extra_keys=False)
_events_explained = make_converter(detailed=True, forbid_extra_keys=False)
# Fixed width, so that comparing two timestamps as strings compares them as times.
# ASCII digits only: `\d` alone also matches other scripts' digits, which sort differently.
_TS_FORMAT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", re.ASCII)
# Event types are snake_case words, now and in any later journalq; anything else (a "\r",
# a 10 kB string) is damage, not a newer writer, and must not end up in a message.
_TAG = re.compile(r"[a-z][a-z0-9_]{0,63}", re.ASCII)


def encode(event: ev.Event) -> bytes:
    """One journal line, `type` and `v` first, ending in a newline."""
    body = _events.unstructure(event)
    if isinstance(event, UnknownEvent):
        raise TypeError("an unknown event is never written back")
    line = {"type": TAGS[type(event)], "v": ev.FORMAT_VERSION, **body}
    return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


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
    try:
        return _events.structure(obj, cls)
    except Exception:  # noqa: BLE001 - any failure is explained by the detailed pass below
        raise DecodeError(_explain(obj, cls)) from None


def _is_time(ts: str) -> bool:
    """A time the calendar has (no month 13), before the year 9999: a writer stamps its
    events after the newest one it read, and past 9999-12-31 there is no after."""
    try:
        datetime.fromisoformat(ts)
    except ValueError:
        return False
    return ts < "9999"


def _decode_unknown(obj: dict[str, Any], tag: str, version: int) -> UnknownEvent:
    event_id, ts, session = obj.get("id"), obj.get("ts"), obj.get("session")
    if type(event_id) is not str or type(ts) is not str or type(session) is not str:
        raise DecodeError(f"event of unknown type {tag!r} lacks a string id, ts or session")
    return UnknownEvent(id=event_id, ts=ts, session=session, type=tag, v=version)


def _explain(obj: dict[str, Any], cls: type[ev.Event]) -> str:
    try:
        _events_explained.structure(obj, cls)
    except Exception as exc:  # noqa: BLE001 - turned into a message, never re-raised
        return f"{TAGS[cls]}: {first_problem(exc, path='$')}"
    return f"{TAGS[cls]}: invalid event"


def problems(exc: BaseException, path: str = "$") -> list[str]:
    """Every structuring problem in `exc` as `<path>: <what is wrong>`."""
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
