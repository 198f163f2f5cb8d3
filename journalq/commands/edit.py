"""`journalq retry` and `journalq cancel`: the operator's explicit decisions about jobs."""

from __future__ import annotations

from collections.abc import Sequence

from journalq import events as ev
from journalq.errors import EXIT_OK, UsageError
from journalq.opened import Opened
from journalq.state import Job, Queue, Status
from journalq.writing import writing


def retry(opened: Opened, *, job_ids: Sequence[str], failed: bool) -> int:
    """Give failed, cancelled (or, when named, done) jobs a fresh attempt budget."""
    if failed and job_ids:
        raise UsageError("give --failed or job ids, not both")
    with writing(opened, "retry") as session:
        queue = session.queue()
        if failed:
            chosen = queue.by_status(Status.FAILED)
        else:
            chosen = _named(queue, job_ids)
            for job in chosen:
                if job.status in (Status.PENDING, Status.RUNNING):
                    raise UsageError(f"job {job.id} is {job.status.value}; only failed, "
                                     "cancelled or done jobs can be retried")
        session.append_many([ev.JobRetried(job=job.id) for job in chosen])
    if chosen:
        opened.console.out(f"{len(chosen)} job(s) pending again: "
                           f"{', '.join(job.id for job in chosen)}")
    else:
        opened.console.out("nothing to retry: no job has failed")
    return EXIT_OK


def cancel(opened: Opened, *, job_ids: Sequence[str]) -> int:
    """Mark pending (or failed) jobs cancelled, so `run` skips them."""
    with writing(opened, "cancel") as session:
        chosen = _named(session.queue(), job_ids)
        for job in chosen:
            if job.status is Status.RUNNING:
                raise UsageError(f"job {job.id} is running; stop its runner first (Ctrl-C), "
                                 "then cancel it")
            if job.status in (Status.DONE, Status.CANCELLED):
                raise UsageError(f"job {job.id} is already {job.status.value}")
        session.append_many([ev.JobCancelled(job=job.id) for job in chosen])
    opened.console.out(f"{len(chosen)} job(s) cancelled: {', '.join(j.id for j in chosen)}")
    return EXIT_OK


def _named(queue: Queue, job_ids: Sequence[str]) -> list[Job]:
    if not job_ids:
        raise UsageError("name the jobs (or use --failed)")
    unknown = [job_id for job_id in job_ids if job_id not in queue.jobs]
    if unknown:
        raise UsageError(f"no such job: {', '.join(unknown)}; `journalq status` lists the ids")
    return [queue.jobs[job_id] for job_id in dict.fromkeys(job_ids)]
