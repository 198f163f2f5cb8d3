"""`journalq status`: the queue as the journal (and the sync folder's copies) show it.
It never writes, so it is safe beside a running `run`."""

from __future__ import annotations

from journalq import render
from journalq.errors import EXIT_OK
from journalq.opened import Opened
from journalq.reading import read_with_copies
from journalq.state import Status


def status(opened: Opened, *, as_json: bool, stale_seconds: float | None = None) -> int:
    """Show the queue; with a sync folder, copies are merged in memory."""
    queue = read_with_copies(opened)
    now = opened.clock.utc_now()
    warnings: list[str] = []
    if queue.by_status(Status.RUNNING):  # only then is there anything to check
        from journalq.recovery import status_warnings

        warnings = list(status_warnings(queue, now, opened.stale_seconds(stale_seconds)))
    console = opened.console
    if as_json:
        for piece in render.status_json(queue, opened.path, warnings):
            console.write(piece)
    else:
        console.out(render.status_table(queue, now))
        for warning in warnings:
            console.warn(warning)
    return EXIT_OK
