"""A job's attempts: opening one, closing the latest, and telling which one is running.

The transitions' shared steps. An attempt is known by its number *and* the session that
started it: a runtime that never saw another's start (its journal copy was lost) numbers
its own attempt the same.
"""

from __future__ import annotations

import sys

import attrs

from journalq import events as ev
from journalq.outcomes import FinishReason, Outcome
from journalq.state import Attempt, Job, Status


def is_current(job: Job, attempt: int, session: str = "") -> bool:
    """Whether `attempt` (started by `session`, when known) is the job's running attempt."""
    last = job.last
    return (job.status is Status.RUNNING and last is not None and last.number == attempt
            and (not session or last.session == session))


def ran_another_spec(job: Job) -> bool:
    """Whether the latest attempt ran another spec than the job has now: its spec changed
    while it ran, so a `done` from it is `done*` (never rerun silently, never hidden)."""
    return job.last is not None and job.last.spec_sha256 != job.spec.sha256


def begin(job: Job, event: ev.JobStarted) -> Job:
    """The job running a new, charged attempt."""
    # Ten thousand attempts name a handful of sessions and machines: one string each (intern)
    # keeps the fold's memory growing with jobs, not with how often those names repeat.
    spec_sha256 = (job.spec.sha256 if event.spec_sha256 == job.spec.sha256
                   else event.spec_sha256)
    attempt = Attempt(
        number=event.attempt, session=sys.intern(event.session), host=sys.intern(event.host),
        boot_id=sys.intern(event.boot_id), pid=event.pid, started=event.clock or event.ts,
        log=event.log,
        spec_sha256=spec_sha256, commit=event.commit, dirty=event.dirty,
    )
    return attrs.evolve(job, status=Status.RUNNING, attempts=(*job.attempts, attempt),
                        charged=job.charged + 1, reason=None)


def settle(job: Job, ts: str, *, outcome: str, reason: str, return_code: int | None = None,
           signal: int | None = None, duration: float | None = None,
           charged: bool = True) -> Job:
    """The job with its latest attempt closed at `ts`."""
    last = job.attempts[-1]
    closed = attrs.evolve(last, finished=ts, outcome=outcome, reason=reason,
                          return_code=return_code, signal=signal, duration=duration,
                          charged=charged)
    return attrs.evolve(job, attempts=(*job.attempts[:-1], closed))


def done_after_all(job: Job, event: ev.JobFinished) -> Job | None:
    """If a start this attempt never saw closed it as superseded, and it finished `done`
    after all: the job settled by its result (whatever attempt superseded it is closed too),
    rather than the work being done twice. None if the attempt was not superseded."""
    index = _superseded(job, event.attempt, event.session)
    if index is None:
        return None
    attempts = list(job.attempts)
    attempts[index] = attrs.evolve(
        attempts[index], finished=event.ts, outcome=Outcome.DONE, reason=event.reason,
        return_code=event.return_code, signal=event.signal, duration=event.duration,
    )
    if job.status is Status.RUNNING and index != len(attempts) - 1:
        attempts[-1] = attrs.evolve(attempts[-1], finished=event.ts,
                                    outcome=Outcome.SUPERSEDED,
                                    reason=FinishReason.SUPERSEDED)
    return attrs.evolve(job, status=Status.DONE, attempts=tuple(attempts), reason=None,
                        changed_after_done=job.spec.sha256 != attempts[index].spec_sha256)


def _superseded(job: Job, number: int, session: str) -> int | None:
    """The index of the job's attempt (`number`, `session`), if it was closed superseded."""
    for index, attempt in enumerate(job.attempts):
        if (attempt.number, attempt.session, attempt.outcome) == (number, session,
                                                                   Outcome.SUPERSEDED):
            return index
    return None
