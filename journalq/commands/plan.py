"""`journalq run --dry-run` and `journalq init --dry-run`: what the command would do, from the
journal (and the sync folder's copies) as they are, writing nothing: no journal line, no
lock, no copy, no out_dir."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from journalq import policy, render
from journalq.errors import EXIT_OK, UsageError
from journalq.jobfilter import unmatched
from journalq.opened import Opened
from journalq.reading import read_with_copies
from journalq.recovery import observe
from journalq.selection import Selection, selected
from journalq.slots import Slot
from journalq.state import Status

EVERY_JOB = Selection()
ONE_SLOT = (Slot(0),)


def dry_run(opened: Opened, *, command: str, resume: bool = False,
            stale_seconds: float | None = None, force: bool = False,
            trust: str | None = None, selection: Selection = EVERY_JOB,
            slots: Sequence[Slot] = ONE_SLOT) -> int:
    """Print the plan; exit 0 (the plan says where the real command would stop)."""
    cfg = opened.require_config()
    out = opened.console.out
    queue = read_with_copies(opened) if opened.fs.exists(opened.path) or opened.sync else None
    known = queue.jobs if queue is not None else {}
    # The real run refuses an unknown id (exit 2) before anything else: so does its plan,
    # rather than plan to run nothing and exit 0.
    unknown = [job for job in selection.jobs or () if job not in known and job not in cfg.jobs]
    if unknown:
        raise UsageError(f"no such job: {', '.join(unknown)}; `journalq status` lists the ids")
    ids = [*known, *cfg.jobs]
    stray = unmatched(selection.only or (), ids)
    if stray:
        raise UsageError(f"--only {stray[0]!r} matches no job of {opened.path}; "
                         "`journalq status` lists the ids")
    added = [job for job in cfg.jobs if job not in known]
    drifted = [job for job, spec in cfg.jobs.items()
               if job in known and known[job].spec.sha256 != spec.sha256]
    out(f"{opened.path}: queue {cfg.queue}" + ("" if queue is not None else " (new journal)"))
    if queue is not None and queue.unknown_types:
        # Every writer refuses such a journal before it does anything else.
        out(render.safe(f"would stop (exit 4): the journal holds events this journalq does "
                        f"not know ({', '.join(sorted(queue.unknown_types))}): a newer "
                        "journalq wrote it; upgrade journalq"))
        out("would run nothing\n(dry run: nothing written)")
        return EXIT_OK
    out(f"would add {len(added)} job(s)" + (f": {_names(added)}" if added else ""))
    order = [*known, *added]
    # As the real run: only the selected jobs' specs and orphans can stop it.
    chosen = set(selected(order, selection))
    stopped = False  # the real command would stop before running anything
    if drifted:
        undone = [job for job in drifted if job in chosen
                  and known[job].status not in (Status.DONE, Status.CANCELLED)]
        if command == "init" or trust == "config":
            out(f"would record the config's new spec of {len(drifted)} job(s): "
                f"{_names(drifted)}")
        elif undone and trust != "journal":
            out(f"would stop (exit 6): the journal records other specs for {_names(undone)}; "
                "`journalq init` or --trust decides")
            stopped = True
    if command != "run":
        out("(dry run: nothing written)")
        return EXIT_OK
    if queue is not None and not stopped:
        seen = observe(queue, opened.clock.utc_now(), opened.stale_seconds(stale_seconds),
                       force)
        orphans, alive = policy.classify_running(queue, seen)
        for event in policy.recover([o for o in orphans if o.job.id in chosen], seen.cards):
            asks = not resume and event.reason not in policy.NEEDS_NO_RESUME
            how = "needs --resume:" if asks else "would recover"
            out(render.safe(f"{how} {event.job} attempt {event.attempt}: {event.reason} -> "
                            f"{event.to}"))
            stopped = stopped or asks
        if stopped:
            out("would stop (exit 6): jobs left running by a dead runner; add --resume")
        for runner in alive:
            out(render.safe(f"{runner.job.id} is running on {runner.host}; left alone"))
    if stopped:
        out("would run nothing\n(dry run: nothing written)")
        return EXIT_OK
    pending = [job for job in selected(order, selection)
               if job in cfg.jobs and (job not in known or known[job].status is Status.PENDING)]
    where = (f" in {len(slots)} slots" if len(slots) > 1 else "") + (
        " (" + ", ".join(slot.describe() for slot in slots if slot.devices) + ")"
        if any(slot.devices for slot in slots) else "")
    out(f"would run {len(pending)} job(s){where}, in this order:")
    for job in pending:
        spec = cfg.jobs[job]
        command_line = spec.argv[0] if spec.shell else shlex.join(spec.argv)
        shown = command_line if len(command_line) <= 160 else command_line[:157] + "..."
        out(render.safe(f"  {job}: {shown}"))
    out("(dry run: nothing written)")
    return EXIT_OK


def _names(jobs: Sequence[str]) -> str:
    shown = ", ".join(jobs[:10])
    return render.safe(shown + (f" and {len(jobs) - 10} more" if len(jobs) > 10 else ""))
