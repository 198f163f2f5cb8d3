"""The queue as a pure fold over events: `replay(events) -> Queue`.

Each event goes through the one transition table (`transitions.RULES`); what does not fit
is kept as an anomaly (status shows it) and never crashes the fold. Events are folded in
`(ts, id)` order, so the order lines happen to have in a merged file does not matter.

Heartbeats are most of a long journal, so they only touch a small side table that is
folded into the job when anything else happens to it: memory grows with jobs, not events.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from journalq import events as ev
from journalq import transitions as tr
from journalq.state import Anomaly, Job, Queue, SessionInfo, Status
from journalq.transitions import Applied, Beat, Misfit, Subject

if TYPE_CHECKING:  # a sync folder's entries; `status` without one never imports copies
    from journalq.copies import Entry


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
    fold = Fold()
    for event in events:
        fold.feed(event)
    return fold.queue()


class OutOfOrder(ValueError):
    """An event was fed after one that sorts after it; `replay` sorts such input first."""


@attrs.frozen
class FoldState:
    """Everything a running fold knows, as plain values: what a checkpoint stores so that
    folding can resume where it stopped (`Fold.export`, `Fold.resume`)."""

    header: Queue  # the queue's name and config; no jobs
    jobs: tuple[Job, ...]  # in queue order, heartbeats not yet folded in
    sessions: tuple[SessionInfo, ...]
    anomalies: tuple[Anomaly, ...]
    unknown: frozenset[str]  # labels of event types from a newer journalq
    beats: Mapping[str, Beat]  # job id -> its newest heartbeat not yet folded in
    count: int  # events fed
    seen: Mapping[str, str]  # session -> ts of its newest event
    newest: Mapping[str, str]  # session -> id of its newest event
    last: tuple[str, str]  # (ts, id) of the newest event


class Fold:
    """A running fold: feed events in order, ask for the queue (or one job) at any point.

    Besides the jobs it keeps two small indexes, so that a runner asking after every job
    "what next, how many are done" pays for one job, not for the whole queue: the status
    counts, and each running job's (attempt, session).
    """

    def __init__(self) -> None:
        self._header = Queue()
        self._jobs: dict[str, Job] = {}
        self._sessions: dict[str, SessionInfo] = {}
        self._anomalies: dict[tuple[str | None, str], Anomaly] = {}
        self._unknown: set[str] = set()
        self._beats: dict[str, Beat] = {}
        self._running: dict[str, tuple[int, str]] = {}  # job id -> (attempt, its session)
        self._counts = dict.fromkeys(Status, 0)
        self._count = 0
        self._seen: dict[str, str] = {}  # session -> ts of its newest event
        self._newest: dict[str, str] = {}  # session -> id of its newest event
        self._last: tuple[str, str] = ("", "")

    # ---- feeding ------------------------------------------------------------------------

    def feed(self, event: ev.Event) -> None:
        """Fold one event; it must not sort before the previous one."""
        self._advance(event.ts, event.id, event.session, event.clock)
        rule = tr.RULES.get(type(event))
        if rule is None:
            self._anomaly(event.id, event.ts, None, f"no transition for {type(event).__name__}")
            return
        subject = rule.subject
        if subject is Subject.JOB:
            self._job_event(rule, event)
        elif subject is Subject.BEAT:
            job: str = event.job  # type: ignore[attr-defined]
            subject_now = (self._running.get(job), self._beats.get(job))
            beat = self._applied(event, job, rule.apply(subject_now, event))
            if beat is not None:
                self._beats[job] = beat
        elif subject is Subject.NEW_JOB:
            job = event.job  # type: ignore[attr-defined]
            added = self._applied(event, job, rule.apply(self._jobs.get(job), event))
            if added is not None:
                self._store(None, added)
        elif subject is Subject.SESSION:
            info = self._applied(event, None, rule.apply(self._sessions.get(event.session),
                                                         event))
            if info is not None:
                self._sessions[info.id] = info
        elif subject is Subject.QUEUE:
            header = self._applied(event, None, rule.apply(self._header, event))
            if header is not None:
                self._header = header
        else:
            label = self._applied(event, None, rule.apply(None, event))
            if label is not None:
                self._unknown.add(label)

    def beat(self, event_id: str, ts: str, session: str, clock: str | None, job: str,
             attempt: int, child_pid: int | None) -> None:
        """Fold one heartbeat given as its fields (the reader's fast path: no object); the
        same transition as `feed` applies to a `Heartbeat`."""
        self._advance(ts, event_id, session, clock)
        found = tr.beat(self._running.get(job), self._beats.get(job), attempt, session,
                        clock or ts, child_pid)
        if type(found) is Misfit:
            self._anomaly(event_id, ts, job, found.reason)
        else:
            self._beats[job] = found  # type: ignore[assignment]  # a Beat, not a Misfit

    def take(self, entry: Entry) -> None:
        """Fold one entry of a copy: a heartbeat by its fields (no object), anything else
        as its event."""
        if entry.beat is not None:
            self.beat(*entry.beat)
        else:
            assert entry.event is not None
            self.feed(entry.event)

    def _advance(self, ts: str, event_id: str, session: str, clock: str | None) -> None:
        key = (ts, event_id)
        if key < self._last:
            raise OutOfOrder(f"event {event_id} is out of (ts, id) order")
        self._last = key
        self._count += 1
        self._seen[session] = clock or ts  # when it was heard from, by its own clock
        self._newest[session] = event_id

    def _job_event(self, rule: tr.Rule[Any, Any], event: ev.Event) -> None:
        job_id: str = event.job  # type: ignore[attr-defined]
        before = self._jobs.get(job_id)
        if before is None:
            self._anomaly(event.id, event.ts, job_id,
                          f"{ev.TAGS[type(event)]} for a job never added")
            return
        job = self._with_heartbeat(before)
        self._beats.pop(job_id, None)
        after = self._applied(event, job_id, rule.apply(job, event))
        # A misfit leaves the job as it was, with its heartbeat now folded in.
        self._store(before, job if after is None else after)

    def _applied(self, event: ev.Event, job: str | None, found: Applied[Any] | Misfit) -> Any:
        """The subject after an applied event (its note recorded), or None for a misfit
        (recorded as an anomaly)."""
        if isinstance(found, Misfit):
            self._anomaly(event.id, event.ts, job, found.reason)
            return None
        if found.note is not None:
            self._anomaly(event.id, event.ts, job, found.note)
        return found.value

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

    def _anomaly(self, event_id: str, ts: str, job: str | None, message: str) -> None:
        # Repeats (say, every late heartbeat of a superseded attempt) collapse into one entry.
        key = (job, message)
        known = self._anomalies.get(key)
        if known is None:
            self._anomalies[key] = Anomaly(event_id, ts, job, message)
        else:
            self._anomalies[key] = attrs.evolve(known, count=known.count + 1)

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

    # ---- asking -------------------------------------------------------------------------

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
            # ASCII digits only: `isdigit` is also true of "²", which int() refuses.
            if seq.isascii() and seq.isdigit():
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

    def queue(self) -> Queue:
        """The state after every event fed so far."""
        jobs = {job_id: self._with_heartbeat(job) for job_id, job in self._jobs.items()}
        return attrs.evolve(
            self._header,
            jobs=jobs,
            sessions={sid: attrs.evolve(info, last_seen=self._seen.get(sid, info.started))
                      for sid, info in self._sessions.items()},
            anomalies=tuple(self._anomalies.values()),
            unknown_types=frozenset(self._unknown),
            events=self._count,
            last_ts=self._last[0],
        )

    # ---- resuming -----------------------------------------------------------------------

    def export(self) -> FoldState:
        """The whole running fold as one value (see `resume`)."""
        return FoldState(
            header=self._header, jobs=tuple(self._jobs.values()),
            sessions=tuple(self._sessions.values()), anomalies=tuple(self._anomalies.values()),
            unknown=frozenset(self._unknown), beats=dict(self._beats), count=self._count,
            seen=dict(self._seen), newest=dict(self._newest), last=self._last,
        )

    @classmethod
    def resume(cls, state: FoldState) -> Fold:
        """A fold that continues from `state` as the one that exported it would."""
        fold = cls()
        fold._header = state.header
        for job in state.jobs:
            fold._store(None, job)
        fold._sessions = {info.id: info for info in state.sessions}
        fold._anomalies = {(a.job, a.message): a for a in state.anomalies}
        fold._unknown = set(state.unknown)
        fold._beats = dict(state.beats)
        fold._count = state.count
        fold._seen = dict(state.seen)
        fold._newest = dict(state.newest)
        fold._last = state.last
        return fold



