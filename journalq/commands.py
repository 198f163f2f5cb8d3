"""The subcommands that read and change a queue: read -> replay -> decide -> append -> act.

`run` lives in `journalq.batch` and `recover` in `journalq.recovery`; the steps they all
share in `journalq.workspace`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from journalq import events as ev
from journalq import render
from journalq.errors import (
    EXIT_OK,
    UsageError,
)
from journalq.state import Job, Queue, Status
from journalq.workspace import (
    Console,
    add_config_jobs,
    default_state,
    load_config,
    mirror_for,
    queue_name,
    read_with_copies,
    resolve,
    stale_threshold,
    utc_now,
    writing,
)

# Imported where used: `status` must start fast, and needs neither YAML, cattrs, TOML
# writing, nor the sync and session machinery.
if TYPE_CHECKING:
    pass


# ---- init, status ----------------------------------------------------------------------------

def init(config_path: str, state: str | None, console: Console,
         sync_dir: str | None = None) -> int:
    """Create the journal, or bring it up to date with the config: new jobs are added, and
    changed specs recorded (a done job stays done; status flags it)."""
    cfg = load_config(config_path)
    path = state or default_state(cfg)
    with writing(path, "init", console, mirror_for(sync_dir, cfg, None, console)) as session:
        drifted = add_config_jobs(session, cfg)
        from journalq import policy

        for drift in drifted:
            session.append(policy.changed_event(drift))
        queue = session.queue()
    changed = f", {len(drifted)} changed" if drifted else ""
    console.out(f"{path}: queue {cfg.queue}, {len(queue.jobs)} jobs{changed}; "
                f"{render.counts_line(queue)}")
    return EXIT_OK


def status(state: str | None, config_path: str | None, as_json: bool,
           stale_seconds: float | None, console: Console, sync_dir: str | None = None) -> int:
    """Show the queue; never writes (with a sync folder, copies are merged in memory)."""
    path, cfg = resolve(state, config_path)
    queue = read_with_copies(path, cfg, sync_dir, console)
    threshold = stale_threshold(stale_seconds, cfg)
    warnings: list[str] = []
    if queue.by_status(Status.RUNNING):  # only then is there anything to check
        from journalq.recovery import status_warnings

        warnings = list(status_warnings(queue, threshold))
    if as_json:
        for piece in render.status_json(queue, path, warnings):
            console.write(piece)
    else:
        console.out(render.status_table(queue, utc_now()))
        for warning in warnings:
            console.warn(warning)
    return EXIT_OK


# ---- retry, cancel, sync ---------------------------------------------------------------------

def retry(state: str | None, config_path: str | None, job_ids: Sequence[str], failed: bool,
          console: Console, sync_dir: str | None = None) -> int:
    """Give failed, cancelled (or, when named, done) jobs a fresh attempt budget."""
    path, cfg = resolve(state, config_path)
    mirror = mirror_for(sync_dir, cfg, queue_name(path), console)
    with writing(path, "retry", console, mirror) as session:
        queue = session.queue()
        if failed:
            chosen = queue.by_status(Status.FAILED)
        else:
            chosen = _named(queue, job_ids)
            for job in chosen:
                if job.status in (Status.PENDING, Status.RUNNING):
                    raise UsageError(f"job {job.id} is {job.status.value}; only failed, "
                                     "cancelled or done jobs can be retried")
        for job in chosen:
            session.append(ev.JobRetried(job=job.id))
    console.out(f"{len(chosen)} job(s) pending again: {', '.join(j.id for j in chosen) or '-'}")
    return EXIT_OK


def cancel(state: str | None, config_path: str | None, job_ids: Sequence[str],
           console: Console, sync_dir: str | None = None) -> int:
    """Mark pending (or failed) jobs cancelled, so `run` skips them."""
    path, cfg = resolve(state, config_path)
    mirror = mirror_for(sync_dir, cfg, queue_name(path), console)
    with writing(path, "cancel", console, mirror) as session:
        chosen = _named(session.queue(), job_ids)
        for job in chosen:
            if job.status is Status.RUNNING:
                raise UsageError(f"job {job.id} is running; stop its runner first (Ctrl-C), "
                                 "then cancel it")
            if job.status in (Status.DONE, Status.CANCELLED):
                raise UsageError(f"job {job.id} is already {job.status.value}")
        for job in chosen:
            session.append(ev.JobCancelled(job=job.id))
    console.out(f"{len(chosen)} job(s) cancelled: {', '.join(j.id for j in chosen)}")
    return EXIT_OK


def _named(queue: Queue, job_ids: Sequence[str]) -> list[Job]:
    if not job_ids:
        raise UsageError("name the jobs (or use --failed)")
    unknown = [job_id for job_id in job_ids if job_id not in queue.jobs]
    if unknown:
        raise UsageError(f"no such job: {', '.join(unknown)}; `journalq status` lists the ids")
    return [queue.jobs[job_id] for job_id in dict.fromkeys(job_ids)]


def sync(state: str | None, config_path: str | None, sync_dir: str | None,
         console: Console) -> int:
    """Merge the sync folder's copies into the local journal, then copy it back out."""
    path, cfg = resolve(state, config_path)
    mirror = mirror_for(sync_dir, cfg, queue_name(path), console)
    if mirror is None:
        raise UsageError("say where to sync: --sync-dir DIR (or sync_dir: in the config)")
    with writing(path, "sync", console, mirror) as session:
        session.announce()  # a sync always leaves a copy, so it is a session of record
        queue = session.queue()
    console.out(f"{path}: {render.counts_line(queue)}; copy in {mirror.sync_dir}")
    return EXIT_OK
