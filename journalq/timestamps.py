"""The journal's timestamps: RFC 3339 UTC with microseconds, fixed width, so that comparing
two of them as text compares them as times. Pure: the clock is read by the shell."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_ts(micros: int) -> str:
    """Microseconds since the epoch as the journal's fixed-width RFC 3339 UTC form."""
    return (_EPOCH + timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts_micros(ts: str) -> int:
    """The inverse of `format_ts`."""
    delta = datetime.fromisoformat(ts) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_ts(ts: str) -> datetime:
    """A journal timestamp as an aware datetime."""
    return datetime.fromisoformat(ts).astimezone(UTC)


def seconds_between(earlier: str, now: datetime) -> float:
    """Seconds from a journal timestamp to `now` (negative if it lies in the future)."""
    return (now - parse_ts(earlier)).total_seconds()
