"""The queue as a pure fold over events: `replay(events) -> Queue`.

One small transition per event type. A transition gets the job the event is about and
returns the job after it, or a sentence saying why the event does not fit; such events are
kept as anomalies (status shows them) and never crash the fold. Events are folded in
`(ts, id)` order, so the order lines happen to have in a merged file does not matter.

Heartbeats are most of a long journal, so they only touch a small side table that is
folded into the job when anything else happens to it: memory grows with jobs, not events.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import attrs

from journalq import codec
from journalq import events as ev
from journalq.codec import UnknownEvent
from journalq.state import (
    Anomaly,
    Attempt,
    Job,
    JobSpec,
    Queue,
    SessionInfo,
    Status,
    status_after_failure,
)

E = TypeVar("E", bound=ev.Event)
# A transition returns the job after the event, a sentence saying why the event does not fit,
# or both a job and a note (the event applied, but it tells of something unusual).
Transition = Callable[[Job, E], "Job | str | tuple[Job, str]"]
_TRANSITIONS: dict[type[ev.Event], Transition[Any]] = {}


def transition(kind: type[E]) -> Callable[[Transition[E]], Transition[E]]:
    """Register the job-level transition for one event type."""

    def register(fn: Transition[E]) -> Transition[E]:
        _TRANSITIONS[kind] = fn
        return fn

    return register


def sort_key(event: ev.Event) -> tuple[str, str]:
    """The total order of a journal: by timestamp, ties broken by event id."""
    return (event.ts, event.id)


def replay(events: Iterable[ev.Event]) -> Queue:
    """Fold events given in any order; sorts them only if they are not already in order."""
    items = list(events)
    keys = [sort_key(event) for event in items]
    if any(a > b for a, b in itertools.pairwise(keys)):
        items.sort(key=sort_key)
    return replay_ordered(items)


def replay_ordered(events: Iterable[ev.Event]) -> Queue:
    """Fold events already in `(ts, id)` order, streaming: nothing but the state is kept."""
    folder = Folder()
    for event in events:
        folder.feed(event)
    return folder.queue()


class OutOfOrder(ValueError):
    """An event was fed after one that sorts after it; `replay` sorts such input first."""


class Folder:
    """A running fold: feed events in order, ask for the queue (or one job) at any point.

    Besides the jobs it keeps two small indexes, so that a runner asking after every job
    "what next, how many are done" pays for one job, not for the whole queue: the status
    counts, and each running job's (attempt, session).
    """

    def __init__(self) -> None:
        self._queue = Queue()
        self._jobs: dict[str, Job] = {}
        self._sessions: dict[str, SessionInfo] = {}
        self._anomalies: dict[tuple[str | None, str], Anomaly] = {}
        self._unknown: set[str] = set()
        # job id -> (attempt, ts, child_pid) of its newest heartbeat not yet folded in
        self._beats: dict[str, tuple[int, str, int | None]] = {}
        self._running: dict[str, tuple[int, str]] = {}  # job id -> (attempt, its session)
        self._counts = dict.fromkeys(Status, 0)
        self._count = 0
        self._seen: dict[str, str] = {}  # session -> ts of its newest event
        self._newest: dict[str, str] = {}  # session -> id of its newest event
        self._last: tuple[str, str] = ("", "")

    def feed(self, event: ev.Event) -> None:
        """Fold one event; it must not sort before the previous one."""
        kind = type(event)
        if kind is ev.Heartbeat:
            beat: ev.Heartbeat = event  # type: ignore[assignment]
            self.beat(beat.id, beat.ts, beat.session, beat.job, beat.attempt, beat.child_pid)
            return
        self._advance(event.ts, event.id, event.session)
        if kind is ev.JobAdded:
            self._added(event)  # type: ignore[arg-type]
        elif kind in _TRANSITIONS:
            self._job_event(event)
        else:
            self._queue_event(event)

    def _advance(self, ts: str, event_id: str, session: str) -> None:
        key = (ts, event_id)
        if key < self._last:
            raise OutOfOrder(f"event {event_id} is out of (ts, id) order")
        self._last = key
        self._count += 1
        self._seen[session] = ts
        self._newest[session] = event_id

    def beat(self, event_id: str, ts: str, session: str, job: str, attempt: int,
             child_pid: int | None) -> None:
        """Fold one heartbeat given as its fields (the reader's fast path: no object)."""
        self._advance(ts, event_id, session)
        if self._running.get(job) != (attempt, session):
            self._anomaly_at(event_id, ts, job, f"heartbeat from attempt {attempt}, "
                             "which is not running")
            return
        # A beat without a child pid keeps the known one, whether or not an earlier beat has
        # been folded into the job yet (else the state would depend on unrelated events).
        if child_pid is None:
            known = self._beats.get(job)
            if known is not None:
                child_pid = known[2]
        self._beats[job] = (attempt, ts, child_pid)

    def job(self, job_id: str) -> Job | None:
        """One job as it stands now."""
        job = self._jobs.get(job_id)
        return None if job is None else self._with_heartbeat(job)

    def job_ids(self) -> list[str]:
        """Every job's id, in queue order."""
        return list(self._jobs)

    def counts(self) -> dict[Status, int]:
        """How many jobs are in each status now."""
        return dict(self._counts)

    def coverage(self) -> dict[str, int]:
        """Each session's highest sequence number folded: since every journal holds a prefix
        of each session's events, this says exactly which events it holds."""
        found: dict[str, int] = {}
        for session, event_id in self._newest.items():
            seq = event_id.rpartition(":")[2]
            if seq.isdigit():
                found[session] = int(seq)
        return found

    def last_key(self) -> tuple[str, str]:
        """The (ts, id) of the last event fed: what the next one must sort after."""
        return self._last

    def event_count(self) -> int:
        """How many events were fed."""
        return self._count

    def unknown_types(self) -> list[str]:
        """The event types from a newer journalq seen so far."""
        return sorted(self._unknown)

    def snapshot(self) -> dict[str, Any]:
        """The whole running fold as plain JSON-able values (see `restore`): what a
        checkpoint stores, so that folding can resume where it stopped."""
        return {
            "name": self._queue.name,
            "config": self._queue.config,
            "jobs": [_job_row(job) for job in self._jobs.values()],
            "sessions": [attrs.astuple(info, recurse=False) for info in self._sessions.values()],
            "anomalies": [attrs.astuple(a, recurse=False) for a in self._anomalies.values()],
            "unknown": sorted(self._unknown),
            "beats": {job: list(beat) for job, beat in self._beats.items()},
            "count": self._count,
            "seen": self._seen,
            "newest": self._newest,
            "last": list(self._last),
        }

    @classmethod
    def restore(cls, state: dict[str, Any]) -> Folder:
        """A fold that continues from `snapshot()`'s values; raises (KeyError, TypeError,
        ValueError) on anything malformed, which its callers treat as "no snapshot"."""
        folder = cls()
        folder._queue = Queue(name=state["name"], config=state["config"])
        for row in state["jobs"]:
            folder._store(None, _job_from_row(row))
        folder._sessions = {row[0]: SessionInfo(*row) for row in state["sessions"]}
        for row in state["anomalies"]:
            anomaly = Anomaly(*row)
            folder._anomalies[(anomaly.job, anomaly.message)] = anomaly
        folder._unknown = set(state["unknown"])
        folder._beats = {job: (int(b[0]), str(b[1]), b[2]) for job, b in state["beats"].items()}
        folder._count = int(state["count"])
        folder._seen = dict(state["seen"])
        folder._newest = dict(state["newest"])
        ts, event_id = state["last"]
        folder._last = (str(ts), str(event_id))
        return folder

    def _store(self, before: Job | None, after: Job) -> None:
        """Put a job's new state in place, keeping the indexes true."""
        if before is not None:
            self._counts[before.status] -= 1
        self._counts[after.status] += 1
        last = after.last
        if after.status is Status.RUNNING and last is not None:
            self._running[after.id] = (last.number, last.session)
        else:
            self._running.pop(after.id, None)
        self._jobs[after.id] = after

    def _added(self, event: ev.JobAdded) -> None:
        if event.job in self._jobs:
            self._anomaly(event, event.job, "job added twice; the second spec is ignored")
        else:
            self._store(None, Job(id=event.job, spec=spec_of(event), added=event.ts))

    def _job_event(self, event: ev.Event) -> None:
        job_id: str = event.job  # type: ignore[attr-defined]
        job = self._jobs.get(job_id)
        if job is None:
            self._anomaly(event, job_id, f"{codec.TAGS[type(event)]} for a job never added")
            return
        before = job
        job = self._with_heartbeat(job)
        self._beats.pop(job_id, None)
        after = _TRANSITIONS[type(event)](job, event)
        if isinstance(after, tuple):  # applied, with a note worth showing
            after, note = after
            self._anomaly(event, job_id, note)
        elif isinstance(after, str):
            self._anomaly(event, job_id, after)
            after = job
        self._store(before, after)

    def _with_heartbeat(self, job: Job) -> Job:
        """The job with its newest unfolded heartbeat written into its latest attempt."""
        beat = self._beats.get(job.id)
        if beat is None:
            return job
        _, ts, child_pid = beat
        last = job.attempts[-1]
        return attrs.evolve(job, attempts=(*job.attempts[:-1], attrs.evolve(
            last, heartbeat=ts, child_pid=child_pid if child_pid is not None else last.child_pid,
        )))

    def _queue_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.QueueCreated):
            if self._queue.name is not None and self._queue.name != event.queue:
                self._anomaly(event, None, f"queue renamed from {self._queue.name!r} "
                              f"to {event.queue!r}; the first name is kept")
            else:
                self._queue = attrs.evolve(self._queue, name=event.queue, config=event.config)
        elif isinstance(event, ev.SessionStarted):
            self._sessions[event.session] = SessionInfo(
                id=event.session, command=event.command, host=event.host,
                boot_id=event.boot_id, pid=event.pid, pid_start=event.pid_start,
                started=event.ts,
            )
        elif isinstance(event, ev.SessionEnded):
            info = self._sessions.get(event.session)
            if info is not None:
                self._sessions[event.session] = attrs.evolve(
                    info, ended=event.ts, exit_code=event.exit_code
                )
        elif isinstance(event, UnknownEvent):
            self._unknown.add(f"{event.type} (format v{event.v})")
        else:
            self._anomaly(event, None, f"no transition for {type(event).__name__}")

    def _anomaly(self, event: ev.Event, job: str | None, message: str) -> None:
        self._anomaly_at(event.id, event.ts, job, message)

    def _anomaly_at(self, event_id: str, ts: str, job: str | None, message: str) -> None:
        # Repeats (say, every late heartbeat of a superseded attempt) collapse into one entry.
        key = (job, message)
        known = self._anomalies.get(key)
        if known is None:
            self._anomalies[key] = Anomaly(event_id, ts, job, message)
        else:
            self._anomalies[key] = attrs.evolve(known, count=known.count + 1)

    def queue(self) -> Queue:
        """The state after every event fed so far."""
        jobs = {job_id: self._with_heartbeat(job) for job_id, job in self._jobs.items()}
        return attrs.evolve(
            self._queue,
            jobs=jobs,
            sessions={sid: attrs.evolve(info, last_seen=self._seen.get(sid, info.started))
                      for sid, info in self._sessions.items()},
            anomalies=tuple(self._anomalies.values()),
            unknown_types=frozenset(self._unknown),
            events=self._count,
            last_ts=self._last[0],
        )


def _job_row(job: Job) -> list[Any]:
    spec = attrs.astuple(job.spec, recurse=False)
    attempts = [attrs.astuple(attempt, recurse=False) for attempt in job.attempts]
    return [job.id, spec, job.added, job.status.value, attempts, job.charged, job.reason,
            job.changed_after_done]


def _job_from_row(row: list[Any]) -> Job:
    job_id, spec, added, status, attempts, charged, reason, changed = row
    argv, shell, cwd, env, out_dir, max_attempts, timeout, sha256 = spec
    return Job(
        id=job_id,
        spec=JobSpec(tuple(argv), shell, cwd, env, out_dir, max_attempts, timeout, sha256),
        added=added, status=_STATUS[status],
        attempts=tuple([Attempt(*attempt) for attempt in attempts]),
        charged=charged, reason=reason, changed_after_done=changed,
    )


_STATUS = {status.value: status for status in Status}


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


def _is_current(job: Job, attempt: int, session: str = "") -> bool:
    """Whether `attempt` (started by `session`, when known) is the job's running attempt.

    Numbers alone can collide: a runtime that never saw another's start (its copy was lost)
    numbers its own attempt the same. The session that started an attempt tells them apart.
    """
    last = job.last
    return (job.status is Status.RUNNING and last is not None and last.number == attempt
            and (not session or last.session == session))


def _ran_another_spec(job: Job) -> bool:
    """Whether the latest attempt ran another spec than the job has now: its spec changed
    while it ran, so a `done` from it is `done*` (never rerun silently, never hidden)."""
    return job.last is not None and job.last.spec_sha256 != job.spec.sha256


@transition(ev.JobChanged)
def _changed(job: Job, event: ev.JobChanged) -> Job | str:
    spec = spec_of(event)
    ran = job.last.spec_sha256 if job.last else None
    changed_after_done = job.status is Status.DONE and spec.sha256 != ran
    return attrs.evolve(job, spec=spec, changed_after_done=changed_after_done)


@transition(ev.JobStarted)
def _started(job: Job, event: ev.JobStarted) -> Job | str | tuple[Job, str]:
    last = job.last
    if job.status is Status.RUNNING and last is not None and last.session != event.session:
        # Another runtime started the job without seeing this attempt (its journal copy was
        # lost, or both ran at once): the newer start wins, the older attempt is closed.
        note = (f"attempt {event.attempt} of session {event.session} superseded attempt "
                f"{last.number} of session {last.session}, which it never saw")
        job = _settle(job, event.ts, outcome="superseded", reason="superseded")
        return _begin(job, event), note
    if job.status is not Status.PENDING:
        return f"attempt {event.attempt} started while the job was {job.status.value}"
    if event.attempt <= max((a.number for a in job.attempts), default=0):
        return f"attempt {event.attempt} started after attempt {job.attempt}"
    return _begin(job, event)


def _begin(job: Job, event: ev.JobStarted) -> Job:
    # Ten thousand attempts name a handful of sessions and machines: one string each (intern)
    # keeps the fold's memory growing with jobs, not with how often those names repeat.
    spec_sha256 = (job.spec.sha256 if event.spec_sha256 == job.spec.sha256
                   else event.spec_sha256)
    attempt = Attempt(
        number=event.attempt, session=sys.intern(event.session), host=sys.intern(event.host),
        boot_id=sys.intern(event.boot_id), pid=event.pid, started=event.ts, log=event.log,
        spec_sha256=spec_sha256,
    )
    return attrs.evolve(job, status=Status.RUNNING, attempts=(*job.attempts, attempt),
                        charged=job.charged + 1, reason=None)


@transition(ev.JobFinished)
def _finished(job: Job, event: ev.JobFinished) -> Job | str | tuple[Job, str]:
    if not _is_current(job, event.attempt, event.session):
        if event.outcome == ev.DONE and job.status is not Status.DONE:
            superseded = _superseded_attempt(job, event.attempt, event.session)
            if superseded is not None:
                return _done_after_all(job, superseded, event)
        return f"finish of attempt {event.attempt}, which is not running (late or superseded)"
    job = _settle(job, event.ts, outcome=event.outcome, reason=event.reason,
                  return_code=event.return_code, signal=event.signal, duration=event.duration)
    if event.outcome == ev.DONE:
        return attrs.evolve(job, status=Status.DONE, reason=None,
                            changed_after_done=_ran_another_spec(job))
    return attrs.evolve(job, status=status_after_failure(job), reason=event.reason)


@transition(ev.JobInterrupted)
def _interrupted(job: Job, event: ev.JobInterrupted) -> Job | str:
    if not _is_current(job, event.attempt, event.session):
        return f"interruption of attempt {event.attempt}, which is not running"
    job = _settle(job, event.ts, outcome="interrupted", reason="interrupted",
                  signal=event.signal, charged=False)
    return attrs.evolve(job, status=Status.PENDING, charged=job.charged - 1, reason=None)


@transition(ev.JobRecovered)
def _recovered(job: Job, event: ev.JobRecovered) -> Job | str:
    if not _is_current(job, event.attempt, event.attempt_session):
        return f"recovery of attempt {event.attempt}, which is not running"
    try:
        to = Status(event.to)
    except ValueError:
        return f"recovery to unknown status {event.to!r}"
    if to is Status.RUNNING or to is Status.CANCELLED:
        return f"recovery to {event.to!r}, which recovery never decides"
    outcome = ev.DONE if to is Status.DONE else ev.FAILED
    job = _settle(job, event.ts, outcome=outcome, reason=event.reason,
                  return_code=event.return_code)
    return attrs.evolve(job, status=to, reason=None if to is Status.DONE else event.reason,
                        changed_after_done=to is Status.DONE and _ran_another_spec(job))


@transition(ev.JobRetried)
def _retried(job: Job, event: ev.JobRetried) -> Job | str:
    if job.status in (Status.PENDING, Status.RUNNING):
        return f"retry of a job that was {job.status.value}"
    return attrs.evolve(job, status=Status.PENDING, charged=0, reason=None,
                        changed_after_done=False)


@transition(ev.JobCancelled)
def _cancelled(job: Job, event: ev.JobCancelled) -> Job | str:
    if job.status in (Status.RUNNING, Status.DONE, Status.CANCELLED):
        return f"cancel of a job that was {job.status.value}"
    return attrs.evolve(job, status=Status.CANCELLED, reason="cancelled")


def _superseded_attempt(job: Job, number: int, session: str) -> int | None:
    """The index of the job's attempt (`number`, `session`) if a start it never saw closed
    it as superseded."""
    for index, attempt in enumerate(job.attempts):
        if (attempt.number, attempt.session, attempt.outcome) == (number, session,
                                                                   "superseded"):
            return index
    return None


def _done_after_all(job: Job, index: int, event: ev.JobFinished) -> tuple[Job, str]:
    """A superseded attempt finished `done` after all: its result stands and settles the job
    (whatever attempt superseded it is closed too), rather than the work being done twice."""
    attempts = list(job.attempts)
    attempts[index] = attrs.evolve(
        attempts[index], finished=event.ts, outcome=ev.DONE, reason=event.reason,
        return_code=event.return_code, signal=event.signal, duration=event.duration,
    )
    last = attempts[-1]
    if job.status is Status.RUNNING and index != len(attempts) - 1:
        attempts[-1] = attrs.evolve(last, finished=event.ts, outcome="superseded",
                                    reason="superseded")
    note = (f"attempt {event.attempt} of session {event.session} finished done after another "
            "start superseded it; its result settles the job")
    job = attrs.evolve(job, status=Status.DONE, attempts=tuple(attempts), reason=None)
    return attrs.evolve(job, changed_after_done=job.spec.sha256 != attempts[index].spec_sha256
                        ), note


def _settle(job: Job, ts: str, *, outcome: str, reason: str, return_code: int | None = None,
            signal: int | None = None, duration: float | None = None,
            charged: bool = True) -> Job:
    """The job with its latest attempt closed at `ts`."""
    last = job.attempts[-1]
    closed = attrs.evolve(last, finished=ts, outcome=outcome, reason=reason,
                          return_code=return_code, signal=signal, duration=duration,
                          charged=charged)
    return attrs.evolve(job, attempts=(*job.attempts[:-1], closed))
