"""Pure decisions over a folded queue: what a dead runner left behind, which attempt comes
next, whether a job ran elsewhere, what a config adds, and the exit code of `run`.

Nothing here reads a clock, a file or a process table: the shell observes those and passes
them in (`now`, `Observations`, a run card), and every decision comes back as events to
append or a plain value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs

from journalq import events as ev
from journalq.errors import (
    EXIT_BUSY,
    EXIT_JOBS_FAILED,
    EXIT_OK,
    EXIT_SIGHUP,
    EXIT_SIGINT,
    EXIT_SIGTERM,
)
from journalq.outcomes import FinishReason, Outcome, RecoveryReason
from journalq.state import Attempt, Job, JobSpec, Queue, Status, status_after_failure
from journalq.timestamps import seconds_between

# The old names of the recovery reasons; removed when the shell is merged.

# Recoveries that are no guess, so `run` makes them without --resume: --force declared the
# runner dead (asking for --resume on top would refuse the command the busy message
# suggested); Slurm requeued the task; the runner noted it stopped the job.
NEEDS_NO_RESUME = frozenset({RecoveryReason.FORCED, RecoveryReason.REQUEUED,
                             RecoveryReason.STOPPED})


@attrs.frozen
class RunCard:
    """What a run card in a job's out_dir says about how one attempt ended."""

    job: str
    attempt: int
    session: str
    outcome: str
    return_code: int | None


@attrs.frozen
class Observations:
    """What the shell saw of the world, for deciding about `running` jobs.

    `live_sessions` are the sessions on this host (same boot id) whose runner process is
    still alive; `cards` are run cards found in running jobs' out_dirs, by job id.
    """

    now: datetime
    boot_id: str
    stale_seconds: float
    live_sessions: frozenset[str] = frozenset()
    cards: Mapping[str, RunCard] = attrs.Factory(dict)
    force: bool = False
    # Sessions Slurm stopped before requeueing their task (so this is that task's rerun),
    # and attempts (job, number, session) a dead runner stopped itself (its lock file says
    # so): both are settled at once, whatever their heartbeats say.
    requeued: frozenset[str] = frozenset()
    stopped: frozenset[tuple[str, int, str]] = frozenset()


@attrs.frozen
class Orphan:
    """A `running` job whose runner is gone, why we think so, and how old its last sign is."""

    job: Job
    reason: RecoveryReason
    age: float


@attrs.frozen
class LiveRunner:
    """A `running` job whose runner may still be alive: it blocks a second runner."""

    job: Job
    host: str
    age: float


def last_sign_of_life(attempt: Attempt) -> str:
    """The newest timestamp the attempt's runner wrote: its last heartbeat, else its start."""
    return attempt.heartbeat or attempt.started


def classify_running(queue: Queue, seen: Observations) -> tuple[list[Orphan], list[LiveRunner]]:
    """Split `running` jobs into orphans (their runner is gone) and ones that may be alive.

    On this host (same boot id) the answer is certain: the runner's process is alive or not.
    Elsewhere only heartbeats tell: silence for `stale_seconds` means stale.
    """
    orphans: list[Orphan] = []
    alive: list[LiveRunner] = []
    for job in queue.by_status(Status.RUNNING):
        attempt = job.last
        assert attempt is not None  # a running job has started an attempt
        age = max(0.0, seconds_between(last_sign_of_life(attempt), seen.now))
        if (job.id, attempt.number, attempt.session) in seen.stopped:
            orphans.append(Orphan(job, RecoveryReason.STOPPED, age))
        elif attempt.session in seen.requeued:
            orphans.append(Orphan(job, RecoveryReason.REQUEUED, age))
        elif attempt.boot_id == seen.boot_id:
            if attempt.session in seen.live_sessions:
                alive.append(LiveRunner(job, attempt.host, age))
            else:
                orphans.append(Orphan(job, RecoveryReason.ABANDONED, age))
        elif age >= seen.stale_seconds:
            orphans.append(Orphan(job, RecoveryReason.STALE, age))
        elif seen.force:
            orphans.append(Orphan(job, RecoveryReason.FORCED, age))
        else:
            alive.append(LiveRunner(job, attempt.host, age))
    return orphans, alive


def recover(orphans: Iterable[Orphan], cards: Mapping[str, RunCard]) -> list[ev.JobRecovered]:
    """The events that settle each orphan: from its run card if it finished, else by budget.

    A card counts only if it records this very attempt of this very session; an older card
    left in the out_dir by an earlier attempt says nothing about this one.
    """
    settled: list[ev.JobRecovered] = []
    for orphan in orphans:
        job = orphan.job
        attempt = job.last
        assert attempt is not None
        card = cards.get(job.id)
        if orphan.reason is RecoveryReason.STOPPED:
            # journalq stopped it itself, not the job failing: pending, not charged.
            settled.append(ev.JobRecovered(
                job=job.id, attempt=attempt.number, to=Status.PENDING.value,
                reason=RecoveryReason.STOPPED, attempt_session=attempt.session))
        elif card and (card.attempt, card.session) == (attempt.number, attempt.session):
            to = Status.DONE if card.outcome == Outcome.DONE else status_after_failure(job)
            settled.append(ev.JobRecovered(
                job=job.id, attempt=attempt.number, to=to.value, reason=RecoveryReason.CARD,
                return_code=card.return_code, attempt_session=attempt.session,
            ))
        else:
            to = status_after_failure(job)
            settled.append(ev.JobRecovered(
                job=job.id, attempt=attempt.number, to=to.value, reason=orphan.reason,
                attempt_session=attempt.session,
            ))
    return settled


@attrs.frozen
class Drift:
    """A job whose spec in the journal differs from the one its config gives now."""

    job: Job
    config: JobSpec


def reconcile(queue: Queue, specs: Mapping[str, JobSpec]) -> tuple[list[ev.JobAdded], list[Drift]]:
    """The jobs a config adds to the queue, and the known jobs whose spec it changes."""
    added: list[ev.JobAdded] = []
    drifted: list[Drift] = []
    for job_id, spec in specs.items():
        known = queue.jobs.get(job_id)
        if known is None:
            added.append(ev.JobAdded(job=job_id, **spec_fields(spec)))
        elif known.spec.sha256 != spec.sha256:
            drifted.append(Drift(known, spec))
    return added, drifted


def changed_event(drift: Drift) -> ev.JobChanged:
    """The event that records the config's new spec for a drifted job."""
    return ev.JobChanged(job=drift.job.id, **spec_fields(drift.config))


def spec_fields(spec: JobSpec) -> dict[str, Any]:
    """A spec as the keyword fields of `job_added` / `job_changed`."""
    return {
        "argv": spec.argv, "shell": spec.shell, "cwd": spec.cwd, "env": dict(spec.env),
        "out_dir": spec.out_dir, "max_attempts": spec.max_attempts, "timeout": spec.timeout,
        "spec_sha256": spec.sha256,
    }


# ---- running jobs -------------------------------------------------------------------------

def next_attempt_number(job: Job) -> int:
    """The number of the job's next attempt: past every number used, not the count of
    attempts (after two runtimes' histories merge, numbers can have gaps)."""
    return max((attempt.number for attempt in job.attempts), default=0) + 1


def settle_from_card(job: Job, card: RunCard | None) -> ev.JobRecovered | None:
    """The event that settles a job from its run card before another attempt starts, if
    the card tells of a finished attempt the journal does not know as finished: one it
    never saw (another runtime ran it and its journal copy was lost), or one it settled
    without a finish (stale, forced, abandoned, superseded, requeued: the card arrived
    late). Running the job again would do the work twice and overwrite its card.

    An attempt the journal knows as finished (a `job_finished`, or settled from its card
    already) says nothing new: a later attempt of a retried job may then run.
    """
    if card is None or card.job != job.id or card.outcome not in (Outcome.DONE, Outcome.FAILED):
        return None
    known = next((a for a in job.attempts if (a.session, a.number) == (card.session,
                                                                        card.attempt)), None)
    if known is None:
        if job.status is not Status.PENDING:
            return None
        charged = attrs.evolve(job, charged=job.charged + 1)
        to = Status.DONE if card.outcome == Outcome.DONE else status_after_failure(charged)
    elif (known.finished is None or known.outcome == Outcome.DONE or job.status is Status.DONE
          or known.reason not in _SETTLED_WITHOUT_FINISH or card.outcome != Outcome.DONE):
        return None
    else:
        to = Status.DONE
    return ev.JobRecovered(job=job.id, attempt=card.attempt, to=to.value,
                           reason=RecoveryReason.CARD, return_code=card.return_code,
                           attempt_session=card.session)


_SETTLED_WITHOUT_FINISH = frozenset({
    RecoveryReason.ABANDONED, RecoveryReason.STALE, RecoveryReason.FORCED,
    RecoveryReason.REQUEUED, FinishReason.SUPERSEDED,
})


# What `run` returns when a signal stopped it, by POSIX signal number (SIGHUP, SIGINT,
# SIGTERM: the same numbers on every POSIX system); any other signal counts as Ctrl-C.
_SIGNAL_EXIT = {1: EXIT_SIGHUP, 2: EXIT_SIGINT, 15: EXIT_SIGTERM}


def run_exit_code(queue: Queue, selected: Iterable[str], *, yielded: bool,
                  interrupted_by: int | None, halted: bool = False) -> int:
    """The exit code of `run`, most telling first: a signal that stopped it (129/130/143),
    then jobs it left to another live runner (5), then a failed job of its selection or a
    run halted before it tried every pending job (1), else 0. A selected job still pending
    with none of those reasons is not success either (1): 0 promises that all are done
    (a slot that stopped looking for work once made that 0, with a retry left undone)."""
    if interrupted_by is not None:
        return _SIGNAL_EXIT.get(interrupted_by, EXIT_SIGINT)
    if yielded:
        return EXIT_BUSY
    unfinished = any(queue.jobs[job].status in (Status.FAILED, Status.PENDING)
                     for job in selected if job in queue.jobs)
    return EXIT_JOBS_FAILED if halted or unfinished else EXIT_OK
