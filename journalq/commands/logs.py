"""`journalq logs JOB [--attempt N] [--follow]`: an attempt's log, from the path its
`job_started` recorded; with `--follow`, streamed while the attempt runs, from another
terminal or notebook cell, and ending when the journal says the attempt settled.

Read-only: the log is tailed by offset and the journal re-folded only when it grew (see
`watch`); neither takes the writer's lock.
"""

from __future__ import annotations

import os
import time

from journalq import host
from journalq.errors import EXIT_JOBS_FAILED, EXIT_OK, JournalError, UsageError
from journalq.opened import Opened
from journalq.render import Console, safe
from journalq.state import Attempt, Job
from journalq.watch import QueueWatch

POLL_SECONDS = 0.25  # how often --follow looks at the log and the journal
CHUNK = 1 << 16


def logs(opened: Opened, *, job_id: str, attempt: int | None = None,
         follow: bool = False) -> int:
    """Print the attempt's log (default the latest); with `follow`, keep printing until it
    settles and return its exit status: the return code, 128+n after signal n, else 1."""
    watch = QueueWatch(opened)
    job = _job(watch, opened, job_id)
    chosen = _attempt(job, attempt)
    console = opened.console
    if not follow:
        fd = _open(chosen, job, settled=True)
        assert fd is not None
        try:
            _pump(fd, console)
        finally:
            os.close(fd)
        return EXIT_OK
    fd = None
    try:
        while True:
            queue = watch.queue()
            now = _same(queue.jobs.get(job_id), chosen)
            settled = now.finished is not None
            if fd is None:
                fd = _open(now, job, settled=settled)
            if fd is not None:
                _pump(fd, console)
            if settled:
                return _finish(now, job, console)
            watch.warn_orphans(queue, {job_id})
            time.sleep(POLL_SECONDS if opened.sync is None else 2 * POLL_SECONDS)
    finally:
        if fd is not None:
            os.close(fd)


def _job(watch: QueueWatch, opened: Opened, job_id: str) -> Job:
    job = watch.queue().jobs.get(job_id)
    if job is None:
        raise UsageError(f"no job {safe(job_id)!r} in {opened.path}; `journalq status` "
                         "lists the queue's jobs")
    if not job.attempts:
        raise UsageError(f"job {job.id} has no attempt yet (it is {job.status.value}), so it "
                         "has no log; `journalq run` starts it")
    return job


def _attempt(job: Job, number: int | None) -> Attempt:
    """The attempt asked for (the newest of that number: a superseded one shares it)."""
    if number is None:
        return job.attempts[-1]
    for attempt in reversed(job.attempts):
        if attempt.number == number:
            return attempt
    raise UsageError(f"job {job.id} has no attempt {number}; its attempts are "
                     f"{', '.join(str(a.number) for a in job.attempts)}")


def _same(job: Job | None, chosen: Attempt) -> Attempt:
    """The chosen attempt as the journal shows it now (known by number and session)."""
    for attempt in reversed(job.attempts if job else ()):
        if (attempt.number, attempt.session) == (chosen.number, chosen.session):
            return attempt
    return chosen  # the journal was replaced under us; keep what we knew


def _open(attempt: Attempt, job: Job, *, settled: bool) -> int | None:
    """The log opened for reading; None while a running attempt on this machine has not
    created it yet; an error if it is gone or lives on another machine."""
    try:
        return os.open(attempt.log, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise JournalError(f"cannot read the log of job {job.id} attempt {attempt.number} "
                           f"({attempt.log}): {exc.strerror}") from None
    here = attempt.boot_id == host.boot_id() and bool(attempt.boot_id)
    if here and not settled:
        return None  # its runner journals the start before it creates the log
    where = f"job {job.id} attempt {attempt.number}"
    if here:
        raise JournalError(f"the log of {where} ({safe(attempt.log)}) is missing: it was "
                           "deleted or moved")
    raise JournalError(f"the log of {where} was written on {safe(attempt.host)} at "
                       f"{safe(attempt.log)}, which is not reachable here; keep logs on "
                       "shared storage (see the README's Colab setup) or run `journalq logs` "
                       "there")


def _pump(fd: int, console: Console) -> None:
    """Echo whatever the log holds past what was read already."""
    while data := os.read(fd, CHUNK):
        console.echo(data)


def _finish(attempt: Attempt, job: Job, console: Console) -> int:
    """The followed attempt's exit status, and one line saying how it ended."""
    if attempt.return_code is not None:
        code, how = attempt.return_code, f"rc={attempt.return_code}"
    elif attempt.signal is not None:
        code, how = 128 + attempt.signal, f"signal {attempt.signal}"
    else:
        code, how = EXIT_JOBS_FAILED, "no exit status"
    reason = f", {attempt.reason}" if attempt.reason not in (None, "exit") else ""
    console.err(safe(f"logs: {job.id} attempt {attempt.number} {attempt.outcome}{reason}, "
                     f"{how}"))
    return code if 0 <= code <= 255 else EXIT_JOBS_FAILED
