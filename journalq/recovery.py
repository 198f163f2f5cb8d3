"""Settling jobs whose runner is gone: what the process table and run cards say, turned
into the events `policy` decides. `recover` and `run --resume` both settle through here."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol

from journalq import defaults, host, policy, reaper, render
from journalq import events as ev
from journalq.card import read_card
from journalq.errors import DecisionNeeded
from journalq.lock import LeftRunning
from journalq.outcomes import RecoveryReason
from journalq.render import Console
from journalq.runner import kill_orphans
from journalq.state import Queue, Status


class Settling(Protocol):
    """What recovery needs of a writing session (`session.Session`)."""

    @property
    def left_running(self) -> tuple[LeftRunning, ...]: ...

    def forget_left_running(self, jobs: set[str]) -> None: ...

    def append(self, event: ev.Event) -> ev.Event: ...


def observe(queue: Queue, now: datetime, stale_seconds: float, force: bool = False, *,
            requeued: frozenset[str] = frozenset(),
            stopped: frozenset[tuple[str, int, str]] = frozenset()) -> policy.Observations:
    """What the process table and run cards say about the queue's `running` jobs."""
    live: set[str] = set()
    cards: dict[str, policy.RunCard] = {}
    for job in queue.by_status(Status.RUNNING):
        attempt = job.last
        assert attempt is not None
        info = queue.sessions.get(attempt.session)
        start = info.pid_start if info else 0
        if attempt.boot_id == host.boot_id() and host.is_alive(attempt.pid, start):
            live.add(attempt.session)
        card = read_card(job.spec.out_dir)
        if card is not None and card.job == job.id:
            cards[job.id] = card
    return policy.Observations(
        now=now, boot_id=host.boot_id(), stale_seconds=stale_seconds,
        live_sessions=frozenset(live), cards=cards, force=force, requeued=requeued,
        stopped=stopped,
    )


def describe_orphan(orphan: policy.Orphan) -> str:
    """`gpt2-L4-8 (attempt 2): its runner died on this host` and the like."""
    attempt = orphan.job.last
    number = attempt.number if attempt else 0
    why = {
        RecoveryReason.ABANDONED: "its runner on this host is gone",
        RecoveryReason.STALE: f"no heartbeat for {render.duration(orphan.age)}",
        RecoveryReason.FORCED: f"forced (last heartbeat {render.duration(orphan.age)} ago)",
        RecoveryReason.REQUEUED: "Slurm requeued the task that ran it",
        RecoveryReason.STOPPED: "its runner stopped it when it could no longer record it",
    }[orphan.reason]
    return render.safe(f"{orphan.job.id} (attempt {number}): {why}")


def recover_orphans(session: Settling, orphans: Sequence[policy.Orphan],
                    seen: policy.Observations, console: Console,
                    grace_seconds: float = defaults.DEFAULT_GRACE_SECONDS) -> int:
    """Settle jobs whose runner is gone; first stop a job it left running on this host."""
    jobs = {orphan.job.id for orphan in orphans}
    groups = {(left.pid, left.start): left for left in session.left_running
              if left.job in jobs}
    tags = [reaper.attempt_tag(attempt.session, orphan.job.id, attempt.number)
            for orphan in orphans if (attempt := orphan.job.last) is not None
            and attempt.boot_id == host.boot_id()]
    # Every group the lock file names, and whatever carries an orphan's tag (a setsid
    # daemon that left its group), stopped together: one grace period for all of them.
    for key in kill_orphans(list(groups), reaper.find_tagged(tags), grace_seconds):
        console.warn(f"stopped process group {key[0]} of job {groups[key].job}, left "
                     "running by a runner that was killed")
    session.forget_left_running(jobs)
    events = policy.recover(orphans, seen.cards)
    for event in events:
        session.append(event)
        console.err(f"recovered {event.job} attempt {event.attempt}: {event.reason} -> "
                    f"{event.to}")
    return len(events)


def status_warnings(queue: Queue, now: datetime, stale_seconds: float) -> Iterator[str]:
    """What `status` says about running jobs whose runner is gone."""
    orphans, _ = policy.classify_running(queue, observe(queue, now, stale_seconds))
    for orphan in orphans:
        yield (f"{describe_orphan(orphan)}; `journalq run --resume` or `journalq recover` "
               "settles it")


def refuse_orphans(orphans: Sequence[policy.Orphan], path: str) -> None:
    """Without --resume, `run` stops and says exactly what to do about orphaned jobs."""
    listed = "; ".join(describe_orphan(orphan) for orphan in orphans)
    raise DecisionNeeded(f"{len(orphans)} job(s) in {path} were left running by a runner that "
                         f"is gone: {listed}. Rerun with --resume to recover them by the retry "
                         "policy (or run `journalq recover` first)")
