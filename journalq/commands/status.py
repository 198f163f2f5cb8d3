"""`journalq status`: the queue as the journal (and the sync folder's copies) show it.
It never writes, so it is safe beside a running `run`."""

from __future__ import annotations

from collections.abc import Iterable

from journalq import render, tabular
from journalq.errors import EXIT_OK, UsageError
from journalq.jobfilter import JobFilter
from journalq.opened import Opened
from journalq.reading import read_with_copies
from journalq.state import Status

FORMATS = ("table", "json", "tsv")


def status(opened: Opened, *, as_json: bool = False, fmt: str = "table",
           statuses: Iterable[str] = (), globs: Iterable[str] = (),
           stale_seconds: float | None = None) -> int:
    """Show the queue, or the jobs `statuses` and `globs` pick of it (the counts stay the
    whole queue's); with a sync folder, copies are merged in memory."""
    if as_json:
        fmt = "json"
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    chosen = JobFilter.build(statuses=statuses, globs=globs)
    queue = read_with_copies(opened)
    jobs = chosen.jobs(queue)
    now = opened.clock.utc_now()
    warnings: list[str] = []
    if queue.by_status(Status.RUNNING):  # only then is there anything to check
        from journalq.recovery import status_warnings

        warnings = list(status_warnings(queue, now, opened.stale_seconds(stale_seconds)))
    console = opened.console
    if fmt == "json":
        for piece in render.status_json(queue, opened.path, warnings, jobs):
            console.write(piece)
        return EXIT_OK
    if fmt == "tsv":
        for line in tabular.tsv_lines(tabular.STATUS_COLUMNS, tabular.status_rows(jobs)):
            console.write(line)
    else:
        console.out(render.status_table(queue, now, jobs))
    for warning in warnings:
        console.warn(warning)
    return EXIT_OK
