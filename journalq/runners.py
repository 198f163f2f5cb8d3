"""Other runners of the queue: which may still be alive, and which this one must leave
jobs to.

Runners on several machines coexist when their selections do not overlap. Where they do
(an unplanned second runtime, or two shards of different sizes), the later runner, by
`(started, id)` of their `session_started` (which every runtime sees alike, whatever the
order copies arrive in), leaves the jobs both selected to the earlier one and says so.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import attrs

from journalq.selection import Selection, selected
from journalq.state import Queue, SessionInfo
from journalq.timestamps import seconds_between


@attrs.frozen
class OtherRunner:
    """A `run` session that may still be alive."""

    info: SessionInfo
    age: float  # seconds since it was heard from (0 if its clock is ahead of ours)
    ahead: float  # how far its newest timestamp is ahead of our clock (0 if not)

    @property
    def selection(self) -> Selection:
        """What it selected."""
        return selection_of(self.info)

    def describe(self) -> str:
        """`session 3f2a... on vm, last heard from 12s ago, selecting shard 0/2`."""
        ahead = (f" (its clock is {self.ahead:.0f}s ahead of ours)" if self.ahead >= 1
                 else "")
        return (f"session {self.info.id} on {self.info.host}, last heard from "
                f"{_seconds(self.age)} ago{ahead}, selecting {self.selection.describe()}")


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 60 else f"{value / 60:.0f}m"


def selection_of(info: SessionInfo) -> Selection:
    """What a session's `session_started` says it selected."""
    return Selection(jobs=info.jobs, only=info.only, shard=info.shard)


def live_earlier(queue: Queue, me: str | None, *, now: datetime, stale_seconds: float,
                 boot_id: str, live_here: frozenset[str] = frozenset(),
                 ignore: frozenset[str] = frozenset()) -> list[OtherRunner]:
    """`run` sessions that may still be alive and started before session `me` (all of
    them, if `me` has not started yet).

    On this machine (same boot id) a session is alive while its process is (`live_here`);
    elsewhere while it has not ended and was heard from within `stale_seconds` (a
    timestamp ahead of our clock counts as now: see the README on clocks). Sessions the
    operator declared gone (`ignore`: `--force`) are left out.
    """
    me_info = queue.sessions.get(me) if me else None
    found: list[OtherRunner] = []
    for info in queue.sessions.values():
        if info.id == me or info.id in ignore or info.command != "run" or info.ended:
            continue
        if me_info is not None and (info.started, info.id) >= (me_info.started, me_info.id):
            continue
        since = seconds_between(info.last_seen or info.started, now)
        if info.boot_id == boot_id:
            if info.id not in live_here:
                continue
        elif since >= stale_seconds:
            continue
        found.append(OtherRunner(info, max(0.0, since), max(0.0, -since)))
    return found


def shared_jobs(order: Sequence[str], other: SessionInfo, ours: Collection[str]) -> tuple[str, ...]:
    """The jobs of `ours` that session `other` selected too, in queue order."""
    return tuple(job for job in selected(order, selection_of(other)) if job in ours)
