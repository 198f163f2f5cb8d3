"""The shell's clocks, in one value the commands are handed: the core never reads a clock.

Wall time stamps events and judges staleness; monotonic time paces heartbeats, timeouts
and sync pushes (a wall clock that jumps must not fire a timeout or starve a heartbeat).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import attrs

from journalq.timestamps import format_ts


def now_micros() -> int:
    """The wall clock, in microseconds since the epoch."""
    return time.time_ns() // 1000


@attrs.frozen
class Clock:
    """Where a command reads the time; tests hand in their own."""

    micros: Callable[[], int] = now_micros
    monotonic: Callable[[], float] = time.monotonic

    def utc_now(self) -> datetime:
        """The wall clock as an aware datetime, for ages shown to people and staleness."""
        return datetime.fromtimestamp(self.micros() / 1e6, UTC)

    def stamp(self) -> str:
        """The wall clock in the journal's timestamp format."""
        return format_ts(self.micros())


SYSTEM = Clock()
