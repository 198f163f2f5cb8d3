"""`journalq wait [JOB...] [--timeout S]`: block until the chosen jobs are settled (done,
failed or cancelled), for a batch that another process, terminal or runtime runs.

Read-only, like `status`: it polls the journal (and, with `--sync-dir`, the copies other
runtimes push), re-folding only what changed (see `watch`). With `--config`, the config's
jobs that no journal holds yet count as pending, so `wait` may start before the `run` it
waits for has written anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from journalq import render
from journalq.errors import EXIT_JOBS_FAILED, EXIT_OK, TimedOut, UsageError
from journalq.jobfilter import JobFilter, is_glob, unmatched
from journalq.opened import Opened
from journalq.state import Job, Queue, Status
from journalq.watch import QueueWatch

POLL_SECONDS = 0.5  # local journal; the sync folder is polled half as often
PROGRESS_SECONDS = 3.0  # at most one progress line this often
SETTLED = (Status.DONE, Status.FAILED, Status.CANCELLED)


def wait(opened: Opened, *, job_ids: list[str] | tuple[str, ...] = (),
         timeout: float | None = None) -> int:
    """Wait for `job_ids` (ids or globs; default every job); 0 if they all ended done (or
    cancelled), 1 if any failed, TimedOut (124) when `timeout` seconds passed first."""
    if timeout is not None and not 0 < timeout < float("inf"):
        raise UsageError(f"--timeout {timeout}: expected a positive number of seconds")
    clock, console = opened.clock, opened.console
    deadline = None if timeout is None else clock.monotonic() + timeout
    planned = tuple(opened.config.jobs) if opened.config else ()
    watch = QueueWatch(opened)
    said, said_at = "", None
    interval = POLL_SECONDS if opened.sync is None else 2 * POLL_SECONDS
    while True:
        queue = watch.queue()
        chosen = _chosen(queue, planned, job_ids, opened.path)
        statuses = [_status(queue, job_id) for job_id in chosen]
        count = {status: statuses.count(status) for status in Status}
        line = render.wait_line(count[Status.DONE], count[Status.FAILED],
                                count[Status.CANCELLED], count[Status.RUNNING],
                                count[Status.PENDING])
        now = clock.monotonic()
        settled = all(status in SETTLED for status in statuses)
        if line != said and (said_at is None or settled or now - said_at >= PROGRESS_SECONDS):
            console.err(line)
            said, said_at = line, now
        if settled:
            return _ending(queue, chosen, console.err)
        if deadline is not None and now >= deadline:
            left = [job_id for job_id, status in zip(chosen, statuses, strict=True)
                    if status not in SETTLED]
            raise TimedOut(render.safe(
                f"wait: {timeout:g}s passed with {len(left)} of {len(chosen)} job(s) not "
                f"settled ({_some(left)}); `journalq status` shows where they are"))
        watch.warn_orphans(queue, set(chosen))
        time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - now)))


def _chosen(queue: Queue, planned: tuple[str, ...], job_ids: list[str] | tuple[str, ...],
            path: str) -> list[str]:
    """The ids waited on, in queue order: every job, or those the arguments name."""
    known = list(dict.fromkeys([*queue.jobs, *planned]))
    if not job_ids:
        return known
    globs = [text for text in job_ids if is_glob(text)]
    exact = [text for text in job_ids if not is_glob(text)]
    missing = [job_id for job_id in exact if job_id not in known]
    if missing:
        raise UsageError(render.safe(f"no job {missing[0]!r} in {path}; `journalq status` "
                                     "lists the queue's jobs"))
    pattern = JobFilter(globs=tuple(globs))
    chosen = [job_id for job_id in known
              if job_id in exact or (globs and pattern.matches_id(job_id))]
    typos = unmatched(globs, known)
    if typos:
        raise UsageError(render.safe(f"no job matches {typos[0]!r} in {path}"))
    return chosen


def _status(queue: Queue, job_id: str) -> Status:
    job = queue.jobs.get(job_id)
    return Status.PENDING if job is None else job.status  # planned: not added yet


def _some(ids: list[str], most: int = 5) -> str:
    shown = ", ".join(ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


def _ending(queue: Queue, chosen: list[str], say: Callable[[str], None]) -> int:
    """1 and a line per failed job (its return code and log) if any failed, else 0."""
    failed: list[Job] = [queue.jobs[job_id] for job_id in chosen
                         if job_id in queue.jobs and queue.jobs[job_id].status is Status.FAILED]
    for job in failed:
        say(render.failed_line(job))
    return EXIT_JOBS_FAILED if failed else EXIT_OK
