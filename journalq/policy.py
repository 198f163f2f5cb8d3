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
    EXIT_DECISION,
    EXIT_JOBS_FAILED,
    EXIT_OK,
    EXIT_SIGHUP,
    EXIT_SIGINT,
    EXIT_SIGTERM,
)
from journalq.outcomes import Outcome, RecoveryReason
from journalq.state import Attempt, Job, JobSpec, Queue, Status, status_after_failure
from journalq.timestamps import seconds_between

# The old names of the recovery reasons; removed when the shell is merged.


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
        age = seconds_between(last_sign_of_life(attempt), seen.now)
        if attempt.boot_id == seen.boot_id:
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
        if card and (card.attempt, card.session) == (attempt.number, attempt.session):
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


@attrs.frozen
class RemoteRunner:
    """A `run` session on another machine that has not ended and was heard from recently."""

    session: str
    host: str
    age: float


def runners_elsewhere(queue: Queue, seen: Observations) -> list[RemoteRunner]:
    """Runner sessions on other machines that may still be alive: any of their events is
    younger than `stale_seconds` and they never wrote `session_ended`. Best effort across
    runtimes: a journal copy can lag, so this errs on the side of "alive"."""
    found: list[RemoteRunner] = []
    for info in queue.sessions.values():
        if info.command != "run" or info.ended is not None or info.boot_id == seen.boot_id:
            continue
        age = seconds_between(info.last_seen or info.started, seen.now)
        if age < seen.stale_seconds:
            found.append(RemoteRunner(info.id, info.host, age))
    return found


def runner_to_yield_to(queue: Queue, me: str, seen: Observations,
                       live_here: frozenset[str] = frozenset(),
                       ignore: frozenset[str] = frozenset()) -> RemoteRunner | None:
    """Another `run` session of the queue that may still be alive and started before
    session `me`: two runners that met through a lagging sync folder must not both go on,
    and the later one (by `(started, id)`, which both see alike) is the one that yields.

    Elsewhere, a session is alive while it has not ended and was heard from within
    `stale_seconds`; on this machine, while its process is (`live_here`). Sessions the
    operator declared gone (`ignore`: `--force`) are not waited for.
    """
    mine = queue.sessions.get(me)
    if mine is None:
        return None
    for info in queue.sessions.values():
        if info.id == me or info.id in ignore or info.command != "run" or info.ended:
            continue
        if (info.started, info.id) >= (mine.started, mine.id):
            continue
        age = seconds_between(info.last_seen or info.started, seen.now)
        if info.boot_id == seen.boot_id:
            if info.id in live_here:
                return RemoteRunner(info.id, info.host, age)
        elif age < seen.stale_seconds:
            return RemoteRunner(info.id, info.host, age)
    return None


# ---- running jobs -------------------------------------------------------------------------

def next_attempt_number(job: Job) -> int:
    """The number of the job's next attempt: past every number used, not the count of
    attempts (after two runtimes' histories merge, numbers can have gaps)."""
    return max((attempt.number for attempt in job.attempts), default=0) + 1


def ran_elsewhere(job: Job, card: RunCard | None) -> bool:
    """Whether the job's run card tells of an attempt this journal never saw: another
    runtime ran it and its journal never arrived (Drive lost its copies). Running it again
    would do the work twice and overwrite its card, so the operator decides."""
    if card is None or card.job != job.id:
        return False
    return all((a.session, a.number) != (card.session, card.attempt) for a in job.attempts)


# What `run` returns when a signal stopped it, by POSIX signal number (SIGHUP, SIGINT,
# SIGTERM: the same numbers on every POSIX system); any other signal counts as Ctrl-C.
_SIGNAL_EXIT = {1: EXIT_SIGHUP, 2: EXIT_SIGINT, 15: EXIT_SIGTERM}


def run_exit_code(queue: Queue, *, ran_elsewhere: bool, interrupted_by: int | None,
                  halted: bool = False) -> int:
    """The exit code of `run`, most telling first: a signal that stopped it (129/130/143),
    then a job that ran elsewhere and waits for the operator (6), then a failed job or a
    run halted before it tried every pending job (1), else 0."""
    if interrupted_by is not None:
        return _SIGNAL_EXIT.get(interrupted_by, EXIT_SIGINT)
    if ran_elsewhere:
        return EXIT_DECISION
    if halted or queue.by_status(Status.FAILED):
        return EXIT_JOBS_FAILED
    return EXIT_OK
