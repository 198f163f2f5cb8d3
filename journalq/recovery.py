"""Settling jobs whose runner is gone: what the process table and run cards say, and the
`recover` command. `run --resume` does the same before it runs anything."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from journalq import defaults, host, policy, render
from journalq.card import read_card
from journalq.errors import EXIT_OK, DecisionNeeded
from journalq.state import Queue, Status
from journalq.workspace import (
    Console,
    mirror_for,
    queue_name,
    read_with_copies,
    resolve,
    stale_threshold,
    utc_now,
    writing,
)

if TYPE_CHECKING:
    from journalq.session import Session


def observe(queue: Queue, stale_seconds: float, force: bool = False) -> policy.Observations:
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
        now=utc_now(), boot_id=host.boot_id(), stale_seconds=stale_seconds,
        live_sessions=frozenset(live), cards=cards, force=force,
    )


def describe_orphan(orphan: policy.Orphan) -> str:
    """`gpt2-L4-8 (attempt 2): its runner died on this host` and the like."""
    attempt = orphan.job.last
    number = attempt.number if attempt else 0
    why = {
        policy.ABANDONED: "its runner on this host is gone",
        policy.STALE: f"no heartbeat for {render.duration(orphan.age)}",
        policy.FORCED: f"forced (last heartbeat {render.duration(orphan.age)} ago)",
    }[orphan.reason]
    return render.safe(f"{orphan.job.id} (attempt {number}): {why}")


def recover_orphans(session: Session, orphans: Sequence[policy.Orphan],
                    seen: policy.Observations, console: Console,
                    grace_seconds: float = defaults.DEFAULT_GRACE_SECONDS) -> int:
    """Settle jobs whose runner is gone; first stop a job it left running on this host."""
    left = session.writer.left_running
    if left is not None and left.job in {orphan.job.id for orphan in orphans}:
        from journalq.runner import kill_orphan

        if kill_orphan(left.pid, left.start, grace_seconds):
            console.warn(f"stopped process group {left.pid} of job {left.job}, left running "
                         "by a runner that was killed")
        session.writer.forget_left_running()
    events = policy.recover(orphans, seen.cards)
    for event in events:
        session.append(event)
        console.err(f"recovered {event.job} attempt {event.attempt}: {event.reason} -> "
                    f"{event.to}")
    return len(events)


def status_warnings(queue: Queue, stale_seconds: float) -> Iterator[str]:
    """What `status` says about running jobs whose runner is gone."""
    orphans, _ = policy.classify_running(queue, observe(queue, stale_seconds))
    for orphan in orphans:
        yield (f"{describe_orphan(orphan)}; `journalq run --resume` or `journalq recover` "
               "settles it")


def recover(state: str | None, config_path: str | None, stale_seconds: float | None,
            dry_run: bool, force: bool, console: Console, sync_dir: str | None = None) -> int:
    """Settle `running` jobs whose runner is gone; a second call appends nothing."""
    path, cfg = resolve(state, config_path)
    threshold = stale_threshold(stale_seconds, cfg)
    if dry_run:
        queue = read_with_copies(path, cfg, sync_dir, console)
        seen = observe(queue, threshold, force)
        orphans, alive = policy.classify_running(queue, seen)
        for event in policy.recover(orphans, seen.cards):
            console.out(f"would recover {event.job} attempt {event.attempt}: {event.reason} -> "
                        f"{event.to}")
        report_alive(alive, console)
        if not orphans:
            console.out("nothing to recover")
        return EXIT_OK
    mirror = mirror_for(sync_dir, cfg, queue_name(path), console)
    with writing(path, "recover", console, mirror) as session:
        queue = session.queue()
        seen = observe(queue, threshold, force)
        orphans, alive = policy.classify_running(queue, seen)
        grace = cfg.grace_seconds if cfg else defaults.DEFAULT_GRACE_SECONDS
        count = recover_orphans(session, orphans, seen, console, grace)
    report_alive(alive, console)
    console.out(f"recovered {count} job(s)" if count else "nothing to recover")
    return EXIT_OK


def report_alive(alive: Sequence[policy.LiveRunner], console: Console) -> None:
    for runner in alive:
        console.out(render.safe(f"{runner.job.id} is still running on {runner.host} (last "
                                f"heartbeat {render.duration(runner.age)} ago); left alone"))


def refuse_orphans(orphans: Sequence[policy.Orphan], path: str) -> None:
    """Without --resume, `run` stops and says exactly what to do about orphaned jobs."""
    listed = "; ".join(describe_orphan(orphan) for orphan in orphans)
    raise DecisionNeeded(f"{len(orphans)} job(s) in {path} were left running by a runner that "
                         f"is gone: {listed}. Rerun with --resume to recover them by the retry "
                         "policy (or run `journalq recover` first)")
