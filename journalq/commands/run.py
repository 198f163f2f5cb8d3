"""`journalq run`: bring the journal up to date with the config, settle what a dead runner
left behind, then run the selected pending jobs in the run's slots until none is left or
the operator stops us."""

from __future__ import annotations

import os
from collections.abc import Sequence

import attrs

from journalq import gitinfo, policy, slots
from journalq.batch import Batch
from journalq.batchplan import Plan
from journalq.config import Config
from journalq.echo import Echo, console_on, terminal_for
from journalq.errors import DecisionNeeded, UsageError
from journalq.jobfilter import unmatched
from journalq.opened import Opened
from journalq.recovery import observe, recover_orphans, refuse_orphans
from journalq.render import Console
from journalq.runner import Interrupts
from journalq.scheduler import Scheduler
from journalq.selection import Selection, parse_shard, selected
from journalq.session import Session
from journalq.state import Status
from journalq.writing import writing

TRUST_CONFIG = "config"
TRUST_JOURNAL = "journal"


def run(opened: Opened, *, resume: bool = False, stale_seconds: float | None = None,
        force: bool = False, trust: str | None = None, quiet: bool = False,
        jobs: Sequence[str] = (), only: Sequence[str] = (), shard: str | None = None,
        slot_count: int | None = None, gpus: str | None = None,
        halt: int | None = None) -> int:
    """Run the selected pending jobs; returns 0 when they are all done, 1 if one failed."""
    cfg = opened.require_config()
    _check_numbers(slot_count=slot_count, halt=halt, stale_seconds=stale_seconds)
    selection = plan_selection(jobs, only, shard)
    run_slots = plan_slots(cfg, slot_count, gpus)
    stale = opened.stale_seconds(stale_seconds)
    terminal = terminal_for(opened.console)
    echo = None if quiet else Echo(terminal)
    console = console_on(terminal, echo)
    opened = _with_console(opened, console)
    try:
        with Interrupts() as interrupts, writing(opened, "run") as session:
            session.describe(jobs=selection.jobs, only=selection.only, shard=selection.shard,
                             slurm_task=_slurm_task())
            runnable = _prepare(opened, session, cfg, selection, resume=resume, force=force,
                                trust=trust, stale_seconds=stale)
            plan = Plan(
                runnable=frozenset(runnable), selection=selection, slots=tuple(run_slots),
                halt_after=halt if halt is not None else cfg.halt_after_failures,
                stale_seconds=stale, quiet=quiet,
                # --force declared every runner known now gone; one heard of later is news.
                declared_dead=frozenset(session.queue().sessions) if force else frozenset(),
            )
            batch = Batch(cfg, session, console, plan, interrupts=interrupts,
                          clock=opened.clock, revision=gitinfo.Revisions(),
                          echo=echo)
            Scheduler(run_slots, batch, interrupts, opened.clock.monotonic).run()
            return batch.finish()
    finally:
        terminal.close()


def _check_numbers(*, slot_count: object, halt: object, stale_seconds: object) -> None:
    """What argparse checks on the command line, checked for `journalq.run(...)` too: there
    `slots=-1` made no slot at all, so the run ran nothing and returned as if all were done,
    and `slots=2.5` raised a TypeError."""
    for flag, value in (("--slots", slot_count), ("--halt", halt)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 1 <= value <= 10_000):
            raise UsageError(f"{flag} {value!r}: expected a whole number above 0")
    if stale_seconds is not None and (
            isinstance(stale_seconds, bool) or not isinstance(stale_seconds, (int, float))
            or not stale_seconds > 0):
        raise UsageError(f"--stale-seconds {stale_seconds!r}: expected a number of seconds "
                         "above 0")


def _with_console(opened: Opened, console: Console) -> Opened:
    return attrs.evolve(opened, console=console)


def plan_selection(jobs: Sequence[str], only: Sequence[str], shard: str | None) -> Selection:
    if shard is not None and parse_shard(shard) is None:
        raise UsageError(f"--shard {shard!r}: expected K/N with 0 <= K < N, like 0/4")
    return Selection(jobs=tuple(dict.fromkeys(jobs)) or None, only=tuple(only) or None,
                     shard=shard)


def plan_slots(cfg: Config, count: int | None, gpus: str | None) -> list[slots.Slot]:
    """The run's slots: the command line's choice, else the config's (default one)."""
    if count is not None and gpus is not None:
        raise UsageError("give --slots or --gpus, not both")
    if count is not None:
        return slots.plan(count, None, 1)
    devices = slots.parse_gpus_flag(gpus) if gpus is not None else cfg.gpus
    if devices == "auto":
        devices = slots.find_gpus()
    return slots.plan(cfg.slots, devices if devices else None, cfg.jobs_per_gpu)


def _slurm_task() -> str | None:
    """This Slurm task's identity (`<array job>_<task>`, or the job id), if under Slurm."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def _requeued(session: Session) -> frozenset[str]:
    """Earlier instances of this Slurm task, when Slurm requeued it (it stops a task before
    it requeues it, so their attempts are over whatever their heartbeats say)."""
    task = _slurm_task()
    if task is None or int(os.environ.get("SLURM_RESTART_COUNT") or 0) < 1:
        return frozenset()
    return frozenset(info.id for info in session.queue().sessions.values()
                     if info.slurm_task == task and info.id != session.id and not info.ended)


def _prepare(opened: Opened, session: Session, cfg: Config, selection: Selection, *,
             resume: bool, force: bool, trust: str | None, stale_seconds: float) -> list[str]:
    """Add the config's new jobs, check specs, and recover what a dead runner left; returns
    the ids of the jobs this run may start, in queue order."""
    drifted = session.add_config(cfg)
    queue = session.queue()
    unknown = [job for job in selection.jobs or () if job not in queue.jobs]
    if unknown:
        raise UsageError(f"no such job: {', '.join(unknown)}; `journalq status` lists the ids")
    # A glob that matches no job at all is a typo (as `wait` says too): running nothing and
    # exiting 0, "every selected job done", would let a notebook or a script sail on.
    stray = unmatched(selection.only or (), queue.jobs)
    if stray:
        raise UsageError(f"--only {stray[0]!r} matches no job of {session.path}; "
                         "`journalq status` lists the ids")
    # Only the selected jobs' specs matter to this run: another shard's are its own business.
    # (Settling specs and orphans below changes no job's place in the queue: chosen once.)
    order = selected(list(queue.jobs), selection)
    chosen = set(order)
    _settle_drift(opened, session, [d for d in drifted if d.job.id in chosen], trust)
    queue = session.queue()
    seen = observe(queue, opened.clock.utc_now(), stale_seconds, force,
                   requeued=_requeued(session), stopped=session.stopped_before)
    orphans, _ = policy.classify_running(queue, seen)
    # Runners that split a queue settle only their own jobs' orphans: a job array's task
    # must not race the requeued rerun of another task (which settles it as `requeued`),
    # nor be stopped for want of --resume by a job it never selected.
    orphans = [orphan for orphan in orphans if orphan.job.id in chosen]
    # --force declared those runners dead; asking for --resume on top would refuse the very
    # command the busy message suggested. A requeue or a stop is no guess either.
    undecided = [o for o in orphans if o.reason not in policy.NEEDS_NO_RESUME]
    if undecided and not resume:
        refuse_orphans(undecided, session.path)
    recover_orphans(session, orphans, seen, opened.console, cfg.grace_seconds)
    allowed = set(queue.jobs) if trust == TRUST_JOURNAL else set(cfg.jobs)
    return [job for job in order if job in allowed]


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
