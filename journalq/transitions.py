"""One transition per event type, in one table: what each fact does to the state it is about.

A transition gets its *subject* (the job, the session, the queue's name... the table says
which) and the event, and returns one typed result: `Applied(value)`, the subject after the
event (with a `note` when it applied but tells of something unusual), or `Misfit(reason)`,
a sentence saying why the event does not fit. The fold keeps misfits and notes as anomalies
(`status` shows them) and never crashes on a well-formed event. Transitions are pure and
total: no I/O, no clock, no exception for any state.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs

from journalq import events as ev
from journalq.attempts import begin, done_after_all, is_current, ran_another_spec, settle
from journalq.outcomes import FinishReason, Outcome, RecoveryReason
from journalq.state import (
    Attempt,
    Job,
    JobSpec,
    Queue,
    SessionInfo,
    Status,
    status_after_failure,
)

T = TypeVar("T")
E = TypeVar("E", bound=ev.Event)

# A job's newest heartbeat not yet folded into it: (attempt, ts, child_pid). A plain tuple:
# heartbeats are most of a long journal, and the fold keeps one per running job.
Beat = tuple[int, str, int | None]


@attrs.frozen
class Applied(Generic[T]):
    """The event fits: `value` is its subject after it; `note`, if any, is worth showing."""

    value: T
    note: str | None = None


@attrs.frozen
class Misfit:
    """The event does not fit the state it arrived in; the state stays as it was."""

    reason: str


class Subject(enum.Enum):
    """What a transition reads and returns; the fold knows where each lives."""

    QUEUE = enum.auto()  # the queue's name and config: a Queue without jobs
    NEW_JOB = enum.auto()  # the job the event adds, or None if it is new
    JOB = enum.auto()  # the job the event is about (the fold refuses unknown jobs itself)
    SESSION = enum.auto()  # the session that wrote it, or None; a result None changes nothing
    BEAT = enum.auto()  # the job's running (attempt, session) or None, and its unfolded Beat
    NEWER = enum.auto()  # None; the result is the label of a newer journalq's event type


@attrs.frozen
class Rule(Generic[T, E]):
    """How one event type is folded: its subject and its transition."""

    subject: Subject
    apply: Callable[[T, E], Applied[T] | Misfit]


def spec_of(event: ev.JobSpecEvent) -> JobSpec:
    """The job spec an added or changed event records.

    Its sha256 is computed from the fields, never taken from the line: `run` compares it
    with the config's to decide whether the journal's command may run, and an edited line
    could pair another command with the config's hash.
    """
    return JobSpec.build(
        argv=tuple(sys.intern(word) for word in event.argv), shell=event.shell,
        cwd=sys.intern(event.cwd), env=dict(event.env),
        out_dir=event.out_dir, max_attempts=event.max_attempts, timeout=event.timeout,
    )


# ---- the queue, its sessions, newer events ------------------------------------------------

def queue_created(queue: Queue, event: ev.QueueCreated) -> Applied[Queue] | Misfit:
    if queue.name is not None and queue.name != event.queue:
        return Misfit(f"queue renamed from {queue.name!r} to {event.queue!r}; "
                      "the first name is kept")
    return Applied(attrs.evolve(queue, name=event.queue, config=event.config))


def session_started(_: SessionInfo | None,
                    event: ev.SessionStarted) -> Applied[SessionInfo | None] | Misfit:
    return Applied(SessionInfo(
        id=event.session, command=event.command, host=event.host, boot_id=event.boot_id,
        pid=event.pid, pid_start=event.pid_start, started=event.ts, jobs=event.jobs,
        only=event.only, shard=event.shard, slurm_task=event.slurm_task,
    ))


def session_ended(info: SessionInfo | None,
                  event: ev.SessionEnded) -> Applied[SessionInfo | None] | Misfit:
    # An end without a start (its start was in a copy that never arrived) tells nothing.
    if info is None:
        return Applied(None)
    return Applied(attrs.evolve(info, ended=event.ts, exit_code=event.exit_code))


def newer(_: None, event: ev.UnknownEvent) -> Applied[str] | Misfit:
    return Applied(f"{event.type} (format v{event.v})")


# ---- jobs ---------------------------------------------------------------------------------

def added(known: Job | None, event: ev.JobAdded) -> Applied[Job] | Misfit:
    if known is not None:
        # Runtimes that start on one queue at once (two shards, a job array) each add the
        # config's jobs before they see the others' copies: the same spec again is no news.
        if spec_of(event).sha256 == known.spec.sha256:
            return Applied(known)
        return Misfit("job added twice; the second spec is ignored")
    return Applied(Job(id=event.job, spec=spec_of(event), added=event.ts))


def changed(job: Job, event: ev.JobChanged) -> Applied[Job] | Misfit:
    spec = spec_of(event)
    ran = job.last.spec_sha256 if job.last else None
    changed_after_done = job.status is Status.DONE and spec.sha256 != ran
    return Applied(attrs.evolve(job, spec=spec, changed_after_done=changed_after_done))


def started(job: Job, event: ev.JobStarted) -> Applied[Job] | Misfit:
    last = job.last
    if job.status is Status.RUNNING and last is not None and last.session != event.session:
        # Another runtime started the job without seeing this attempt (its journal copy was
        # lost, or both ran at once): the newer start wins, the older attempt is closed.
        note = (f"attempt {event.attempt} of session {event.session} superseded attempt "
                f"{last.number} of session {last.session}, which it never saw")
        job = settle(job, event.ts, outcome=Outcome.SUPERSEDED,
                     reason=FinishReason.SUPERSEDED)
        return Applied(begin(job, event), note)
    if job.status is not Status.PENDING:
        return Misfit(f"attempt {event.attempt} started while the job was {job.status.value}")
    if event.attempt <= max((a.number for a in job.attempts), default=0):
        return Misfit(f"attempt {event.attempt} started after attempt {job.attempt}")
    return Applied(begin(job, event))


def finished(job: Job, event: ev.JobFinished) -> Applied[Job] | Misfit:
    if not is_current(job, event.attempt, event.session):
        if event.outcome == Outcome.DONE and job.status is not Status.DONE:
            after = done_after_all(job, event)
            if after is not None:
                return Applied(after, f"attempt {event.attempt} of session {event.session} "
                               "finished done after another start superseded it; its result "
                               "settles the job")
        return Misfit(f"finish of attempt {event.attempt}, which is not running "
                      "(late or superseded)")
    job = settle(job, event.ts, outcome=event.outcome, reason=event.reason,
                 return_code=event.return_code, signal=event.signal, duration=event.duration)
    if event.outcome == Outcome.DONE:
        return Applied(attrs.evolve(job, status=Status.DONE, reason=None,
                                    changed_after_done=ran_another_spec(job)))
    return Applied(attrs.evolve(job, status=status_after_failure(job), reason=event.reason))


def interrupted(job: Job, event: ev.JobInterrupted) -> Applied[Job] | Misfit:
    if not is_current(job, event.attempt, event.session):
        return Misfit(f"interruption of attempt {event.attempt}, which is not running")
    job = settle(job, event.ts, outcome=Outcome.INTERRUPTED,
                 reason=FinishReason.INTERRUPTED, signal=event.signal, charged=False)
    return Applied(attrs.evolve(job, status=Status.PENDING, charged=job.charged - 1,
                                reason=None))


def recovered(job: Job, event: ev.JobRecovered) -> Applied[Job] | Misfit:
    try:
        to = Status(event.to)
    except ValueError:
        return Misfit(f"recovery to unknown status {event.to!r}")
    if to is Status.RUNNING or to is Status.CANCELLED:
        return Misfit(f"recovery to {event.to!r}, which recovery never decides")
    if not is_current(job, event.attempt, event.attempt_session):
        if event.reason == RecoveryReason.CARD:
            return _late_card(job, event, to)
        return Misfit(f"recovery of attempt {event.attempt}, which is not running")
    if event.reason == RecoveryReason.STOPPED:  # journalq stopped it itself: not charged
        job = settle(job, event.ts, outcome=Outcome.INTERRUPTED, reason=event.reason,
                     charged=False)
        return Applied(attrs.evolve(job, status=Status.PENDING, charged=job.charged - 1,
                                    reason=None))
    outcome = Outcome.DONE if to is Status.DONE else Outcome.FAILED
    job = settle(job, event.ts, outcome=outcome, reason=event.reason,
                 return_code=event.return_code)
    return Applied(attrs.evolve(
        job, status=to, reason=None if to is Status.DONE else event.reason,
        changed_after_done=to is Status.DONE and ran_another_spec(job)))


def _late_card(job: Job, event: ev.JobRecovered, to: Status) -> Applied[Job] | Misfit:
    """A run card settles an attempt the journal never saw finish (see
    `policy.settle_from_card`): one it never saw at all, or one it settled without a
    finish and that finished `done` after all."""
    index = next((n for n, a in enumerate(job.attempts)
                  if (a.number, a.session) == (event.attempt, event.attempt_session)), None)
    outcome = Outcome.DONE if to is Status.DONE else Outcome.FAILED
    if index is None:
        if job.status is not Status.PENDING:
            return Misfit(f"run card of attempt {event.attempt} of session "
                          f"{event.attempt_session} while the job was {job.status.value}")
        attempt = Attempt(number=event.attempt, session=event.attempt_session, host="",
                          boot_id="", pid=0, started=event.ts, log="",
                          spec_sha256=job.spec.sha256, finished=event.ts, outcome=outcome,
                          reason=RecoveryReason.CARD, return_code=event.return_code)
        job = attrs.evolve(job, attempts=(*job.attempts, attempt), charged=job.charged + 1)
    elif to is Status.DONE and job.status is not Status.DONE:
        attempts = list(job.attempts)
        attempts[index] = attrs.evolve(attempts[index], outcome=Outcome.DONE,
                                       reason=RecoveryReason.CARD,
                                       return_code=event.return_code)
        job = attrs.evolve(job, attempts=tuple(attempts))
    else:
        return Misfit(f"run card of attempt {event.attempt}, which is settled already")
    return Applied(attrs.evolve(job, status=to, reason=None if to is Status.DONE
                                else RecoveryReason.CARD))


def retried(job: Job, event: ev.JobRetried) -> Applied[Job] | Misfit:
    if job.status in (Status.PENDING, Status.RUNNING):
        return Misfit(f"retry of a job that was {job.status.value}")
    return Applied(attrs.evolve(job, status=Status.PENDING, charged=0, reason=None,
                                changed_after_done=False))


def cancelled(job: Job, event: ev.JobCancelled) -> Applied[Job] | Misfit:
    if job.status in (Status.RUNNING, Status.DONE, Status.CANCELLED):
        return Misfit(f"cancel of a job that was {job.status.value}")
    return Applied(attrs.evolve(job, status=Status.CANCELLED, reason=Status.CANCELLED.value))


# ---- heartbeats ---------------------------------------------------------------------------

def beat(running: tuple[int, str] | None, known: Beat | None, attempt: int, session: str,
         ts: str, child_pid: int | None) -> Beat | Misfit:
    """A heartbeat as its fields (the reader's fast path builds no event): the job's new
    unfolded beat, if the beat is from its running attempt."""
    if running != (attempt, session):
        return Misfit(f"heartbeat from attempt {attempt}, which is not running")
    # A beat without a child pid keeps the known one, whether or not an earlier beat has
    # been folded into the job yet (else the state would depend on unrelated events).
    if child_pid is None and known is not None:
        child_pid = known[2]
    return (attempt, ts, child_pid)


def heartbeat(subject: tuple[tuple[int, str] | None, Beat | None],
              event: ev.Heartbeat) -> Applied[Beat] | Misfit:
    result = beat(*subject, event.attempt, event.session, event.clock or event.ts,
                  event.child_pid)
    return result if isinstance(result, Misfit) else Applied(result)


RULES: dict[type[ev.Event], Rule[Any, Any]] = {
    ev.QueueCreated: Rule(Subject.QUEUE, queue_created),
    ev.SessionStarted: Rule(Subject.SESSION, session_started),
    ev.SessionEnded: Rule(Subject.SESSION, session_ended),
    ev.JobAdded: Rule(Subject.NEW_JOB, added),
    ev.JobChanged: Rule(Subject.JOB, changed),
    ev.JobStarted: Rule(Subject.JOB, started),
    ev.Heartbeat: Rule(Subject.BEAT, heartbeat),
    ev.JobFinished: Rule(Subject.JOB, finished),
    ev.JobInterrupted: Rule(Subject.JOB, interrupted),
    ev.JobRecovered: Rule(Subject.JOB, recovered),
    ev.JobRetried: Rule(Subject.JOB, retried),
    ev.JobCancelled: Rule(Subject.JOB, cancelled),
    ev.UnknownEvent: Rule(Subject.NEWER, newer),
}
