"""The live runners of a queue, as `status` shows them: per `run` session that may still be
alive, its host, its Slurm task, what it selected, what it runs now and when it was last
heard from.

With `--sync-dir`, the queue `status` folds holds every runtime's copy, so this is the
cluster-wide view: a job array's tasks, two notebooks splitting a batch with `--shard`.
Liveness is `runners.live_earlier`'s rule, the one `run` itself uses before it starts a job:
on this machine a session lives while its process does (`live_here`), elsewhere while it has
not ended and was heard from within `stale_seconds`. Pure: the shell passes the clock and
what the process table says.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

import attrs

from journalq.render import age, safe
from journalq.runners import live_earlier
from journalq.state import Queue, Status


@attrs.frozen
class RunnerRow:
    """One live `run` session."""

    session: str
    host: str
    slurm_task: str | None
    selection: str  # `shard 0/2`, `jobs a,b`, `all jobs`
    started: str
    last_heard: str  # the session's newest event (a heartbeat while a job runs)
    age: float  # seconds since then (0 if its clock is ahead of ours)
    ahead: float  # how far its newest timestamp is ahead of our clock (0 if not)
    running: tuple[tuple[str, int], ...]  # (job, attempt) it runs now


def live_here(queue: Queue, boot_id: str,
              is_alive: Callable[[int, int], bool]) -> frozenset[str]:
    """The `run` sessions of this machine (`boot_id`) that have not ended and whose process
    `is_alive(pid, pid_start)` (the shell's `host.is_alive`) says still runs."""
    return frozenset(info.id for info in queue.sessions.values()
                     if info.command == "run" and not info.ended and info.boot_id == boot_id
                     and is_alive(info.pid, info.pid_start))


def live_rows(queue: Queue, now: datetime, stale_seconds: float, *, boot_id: str = "",
              live_here: Collection[str] = frozenset()) -> list[RunnerRow]:
    """The `run` sessions that may still be alive, oldest first.

    `boot_id` is this machine's and `live_here` the sessions on it whose process is alive
    (`live_here(queue, host.boot_id(), host.is_alive)`); by default every session is
    judged by its silence.
    """
    running: dict[str, list[tuple[str, int]]] = {}
    for job in queue.by_status(Status.RUNNING):
        if job.last is not None:
            running.setdefault(job.last.session, []).append((job.id, job.last.number))
    rows = []
    for other in live_earlier(queue, None, now=now, stale_seconds=stale_seconds,
                              boot_id=boot_id, live_here=frozenset(live_here)):
        info = other.info
        rows.append(RunnerRow(
            session=info.id, host=info.host, slurm_task=info.slurm_task,
            selection=other.selection.describe(), started=info.started,
            last_heard=info.last_seen or info.started, age=other.age, ahead=other.ahead,
            running=tuple(running.get(info.id, ())),
        ))
    rows.sort(key=lambda row: (row.started, row.session))
    return rows


def live_runners(queue: Queue, now: datetime, stale_seconds: float, *, boot_id: str = "",
                 live_here: Collection[str] = frozenset()) -> list[str]:
    """A table of the live runners (see `live_rows`): a title line, a header and one row per
    session; no lines at all when none is alive."""
    found = live_rows(queue, now, stale_seconds, boot_id=boot_id, live_here=live_here)
    if not found:
        return []
    table = [("RUNNER", "HOST", "SLURM", "SELECTION", "LAST HEARD", "RUNNING")]
    for row in found:
        jobs = ", ".join(f"{job} (attempt {number})" for job, number in row.running) or "-"
        table.append((row.session, safe(row.host), safe(row.slurm_task or "-"),
                      safe(row.selection), age(row.age - row.ahead), safe(jobs)))
    widths = [max(len(cells[i]) for cells in table) for i in range(len(table[0]) - 1)]
    lines = [f"{len(found)} live runner(s):"]
    for cells in table:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
        lines.append("  ".join([*padded, cells[-1]]).rstrip())
    return lines


def live_runners_json(queue: Queue, now: datetime, stale_seconds: float, *,
                      boot_id: str = "",
                      live_here: Collection[str] = frozenset()) -> list[dict[str, Any]]:
    """The same, for `status --json` (`"runners": [...]`)."""
    return [{
        "session": row.session, "host": row.host, "slurm_task": row.slurm_task,
        "selection": row.selection, "started": row.started, "last_heard": row.last_heard,
        "running": [{"job": job, "attempt": number} for job, number in row.running],
    } for row in live_rows(queue, now, stale_seconds, boot_id=boot_id, live_here=live_here)]
