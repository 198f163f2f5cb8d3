"""`journalq status`: the queue as the journal (and the sync folder's copies) show it.
It never writes, so it is safe beside a running `run`."""

from __future__ import annotations

from collections.abc import Iterable

from journalq import host, runners_view, statusview, tabular
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
    stale = opened.stale_seconds(stale_seconds)
    here = runners_view.live_here(queue, host.boot_id(), host.is_alive)
    if fmt == "json":
        runners = runners_view.live_runners_json(queue, now, stale, boot_id=host.boot_id(),
                                                 live_here=here)
        for piece in statusview.status_json(queue, opened.path, warnings, jobs, runners):
            console.write(piece)
        return EXIT_OK
    if fmt == "tsv":
        for line in tabular.tsv_lines(tabular.STATUS_COLUMNS, tabular.status_rows(jobs)):
            console.write(line)
    else:
        console.out(statusview.status_table(queue, now, jobs))
        live = runners_view.live_runners(queue, now, stale, boot_id=host.boot_id(),
                                         live_here=here)
        if live:
            console.out("\n" + "\n".join(live))
        if any(job.last and job.last.commit for job in jobs):
            from journalq.gitinfo import revision_of

            head = revision_of(".")
            for line in statusview.commit_notes(jobs, head.commit if head else None):
                console.out(line)
    for warning in warnings:
        console.warn(warning)
    return EXIT_OK
