"""`journalq run`: bring the journal up to date with the config, settle what a dead runner
left behind, then hand the pending jobs to the batch until none is left or the operator
stops us."""

from __future__ import annotations

from journalq import policy, render
from journalq.batch import Batch
from journalq.config import Config
from journalq.errors import BusyError, DecisionNeeded
from journalq.opened import Opened
from journalq.outcomes import RecoveryReason
from journalq.recovery import observe, recover_orphans, refuse_orphans
from journalq.runner import Interrupts
from journalq.session import Session, writing
from journalq.state import Status

TRUST_CONFIG = "config"
TRUST_JOURNAL = "journal"


def run(opened: Opened, *, resume: bool = False, stale_seconds: float | None = None,
        force: bool = False, trust: str | None = None, quiet: bool = False) -> int:
    """Run every pending job of the queue; returns 0 when all are done, 1 if any failed."""
    cfg = opened.require_config()
    with Interrupts() as interrupts, writing(opened, "run") as session:
        stale = opened.stale_seconds(stale_seconds)
        runnable = _prepare(opened, session, cfg, resume=resume, force=force, trust=trust,
                            stale_seconds=stale)
        # --force declared every runner known now gone; one heard of later is news.
        known = frozenset(session.queue().sessions) if force else frozenset()
        batch = Batch(cfg, session, opened.console, interrupts, quiet=quiet,
                      runnable=runnable, clock=opened.clock, stale_seconds=stale,
                      declared_dead=known)
        batch.run_pending()
        return batch.finish()


def _prepare(opened: Opened, session: Session, cfg: Config, *, resume: bool, force: bool,
             trust: str | None, stale_seconds: float) -> set[str]:
    """Add the config's new jobs, check specs, and recover what a dead runner left; returns
    the ids of the jobs this run may start."""
    drifted = session.add_config(cfg)
    _settle_drift(opened, session, drifted, trust)
    queue = session.queue()
    seen = observe(queue, opened.clock.utc_now(), stale_seconds, force)
    elsewhere = [] if force else policy.runners_elsewhere(queue, seen)
    _refuse_live_runners([f"session {r.session} on {r.host}, last heard from "
                          f"{render.duration(r.age)} ago" for r in elsewhere])
    orphans, alive = policy.classify_running(queue, seen)
    _refuse_live_runners([f"{r.job.id} on {r.host}, last heartbeat "
                          f"{render.duration(r.age)} ago" for r in alive])
    # --force already declared those runners dead (the busy error above told the operator
    # to pass it); asking for --resume on top would refuse the very command we suggested.
    undecided = [o for o in orphans if o.reason != RecoveryReason.FORCED]
    if undecided and not resume:
        refuse_orphans(undecided, session.path)
    recover_orphans(session, orphans, seen, opened.console, cfg.grace_seconds)
    return set(queue.jobs) if trust == TRUST_JOURNAL else set(cfg.jobs)


def _settle_drift(opened: Opened, session: Session, drifted: list[policy.Drift],
                  trust: str | None) -> None:
    cfg = opened.require_config()
    waiting = [d for d in drifted if d.job.status not in (Status.DONE, Status.CANCELLED)]
    for drift in drifted:
        if drift.job.status is Status.DONE:
            opened.console.warn(f"{cfg.source} changed job {drift.job.id} after it was done; "
                                "it is not rerun unless you `journalq retry` it")
    if not waiting:
        return
    if trust == TRUST_CONFIG:
        session.append_many([policy.changed_event(drift) for drift in waiting])
    elif trust != TRUST_JOURNAL:
        names = ", ".join(d.job.id for d in waiting)
        raise DecisionNeeded(
            f"the journal {session.path} records other specs than {cfg.source} for "
            f"{len(waiting)} job(s) ({names}); run `journalq init --config ...` to record "
            "the config's, or pass --trust config / --trust journal"
        )


def _refuse_live_runners(described: list[str]) -> None:
    """A second runner never starts beside one that may still be alive."""
    if described:
        raise BusyError(f"another runner looks alive ({'; '.join(described)}); if that "
                        "runtime is gone, rerun with --force (or wait stale_seconds)")
