"""The subcommands that read and change a queue: read -> replay -> decide -> append -> act.

`run` lives in `journalq.batch` and `recover` in `journalq.recovery`; this module holds the
rest and the steps they share.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs

from journalq import defaults, journal, render
from journalq import events as ev
from journalq.errors import (
    EXIT_OK,
    ConfigError,
    JournalError,
    JournalqError,
    UsageError,
)
from journalq.state import Job, Queue, Status

# Imported where used: `status` must start fast, and needs neither YAML, cattrs, TOML
# writing, nor the sync and session machinery.
if TYPE_CHECKING:
    from journalq import policy
    from journalq.config import Config
    from journalq.session import Session
    from journalq.sync import Mirror


@attrs.frozen
class Console:
    """Where a command's words go: results to `out`, warnings and progress to `err`."""

    out: Callable[[str], None]
    err: Callable[[str], None]
    echo: Callable[[bytes], None]
    write: Callable[[str], None] = print  # output text as is, no newline added

    def warn(self, message: str) -> None:
        """A warning line, prefixed so it is never mistaken for output."""
        self.err(f"journalq: warning: {message}")


# ---- shared steps ----------------------------------------------------------------------------

def load_config(path: str) -> Config:
    """Read and check a config file."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file; check the path (configs live in "
                          "configs/experiments/)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    from journalq import config

    return config.parse(data, path)


def default_state(cfg: Config) -> str:
    """Where a queue's journal lives unless --state says otherwise."""
    return posixpath.join("runtime_state", f"{cfg.queue}.jsonl")


def resolve(state: str | None, config_path: str | None) -> tuple[str, Config | None]:
    """The journal path and, if given, the config: from --state, else from --config."""
    cfg = load_config(config_path) if config_path else None
    if state:
        return state, cfg
    if cfg is not None:
        return default_state(cfg), cfg
    raise UsageError("say which queue: --state runtime_state/<queue>.jsonl or --config <file>")


def read_queue(path: str, console: Console) -> Queue:
    """Replay a journal without writing; warns about a torn tail left for the next writer."""
    if not os.path.exists(path):
        raise UsageError(f"{path}: no journal here yet; create it with `journalq init "
                         "--config <file>` (or `journalq run`)")
    try:
        if os.path.exists(path + ".fold"):  # a long journal: fold only what came after it
            from journalq import checkpoint

            folder, report = checkpoint.replay(path)
        else:
            folder, report = journal.replay(path)
    except OSError as exc:
        raise JournalError(f"cannot read {path}: {exc.strerror}") from None
    warning = journal.tail_warning(report)
    # A running writer's half-written line is not a torn tail; it will be whole in a moment.
    if warning and not journal.writer_active(path):
        console.warn(warning)
    return folder.queue()


@contextmanager
def writing(path: str, command: str, console: Console,
            mirror: Mirror | None = None) -> Iterator[Session]:
    """A session on the journal that records how the command ended.

    With a mirror, copies in the sync folder are merged in first, and the journal is
    copied back out at the end, whatever happened in between.
    """
    from journalq.session import Session

    session = Session.open(path, command, console.warn)
    try:
        if mirror is not None:
            merged = mirror.pull(session)
            if merged:
                console.err(f"merged {merged} event(s) from {mirror.sync_dir}")
        yield session
    except JournalqError as exc:
        session.abort(exc.exit_code)
        raise
    except BaseException:
        session.abort(1)
        raise
    else:
        session.end(session.exit_code, session.exit_reason)
    finally:
        # A session that only merged has nothing the folder lacks: no copy, no clutter.
        if mirror is not None and session.started:
            mirror.push(session, boundary=True)
            mirror.compact(session)


def mirror_for(sync_dir: str | None, cfg: Config | None, queue: str | None,
               console: Console) -> Mirror | None:
    """The sync mirror the command line (which wins) or the config asks for, if any."""
    folder = sync_dir or (cfg.sync_dir if cfg else None)
    name = cfg.queue if cfg else queue
    if not folder:
        return None
    if name is None:
        raise UsageError("--sync-dir needs the queue's name: pass --config too")
    from journalq.sync import Mirror

    every = cfg.sync_seconds if cfg else defaults.DEFAULT_SYNC_SECONDS
    return Mirror(folder, name, every, console.warn)


def queue_name(path: str) -> str | None:
    """The queue a journal belongs to, from its first `queue_created` line (cheap)."""
    try:
        with open(path, "rb") as handle:
            for line in handle:
                if b'"queue_created"' in line:
                    name = json.loads(line).get("queue")
                    return name if isinstance(name, str) else None
    except (OSError, ValueError):
        return None
    return None


def utc_now() -> datetime:
    """The wall clock, for ages shown to people and for staleness."""
    return datetime.now(UTC)


def add_config_jobs(session: Session, cfg: Config) -> list[policy.Drift]:
    """Make sure the journal knows the queue and every job of the config; returns the jobs
    whose recorded spec differs from the config's (nothing is decided about those here)."""
    queue = session.queue()
    if queue.name is not None and queue.name != cfg.queue:
        raise UsageError(f"{session.writer.path} is the journal of queue {queue.name!r}, but "
                         f"{cfg.source} is queue {cfg.queue!r}; pass the matching --state")
    if queue.name is None:
        session.append(ev.QueueCreated(queue=cfg.queue, config=cfg.source,
                                       config_sha256=cfg.sha256))
    from journalq import policy

    added, drifted = policy.reconcile(queue, cfg.jobs)
    session.append_many(list(added))
    return drifted


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
    threshold = stale_seconds or (cfg.stale_seconds if cfg else defaults.DEFAULT_STALE_SECONDS)
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


def read_with_copies(path: str, cfg: Config | None, sync_dir: str | None,
                      console: Console) -> Queue:
    folder = sync_dir or (cfg.sync_dir if cfg else None)
    if not folder:
        return read_queue(path, console)
    name = cfg.queue if cfg else queue_name(path)
    if name is None:
        raise UsageError(f"{path}: no journal here to name the queue; pass --config so "
                         "journalq knows which copies in the sync folder to read")
    from journalq.sync import merged_queue

    return merged_queue(path, folder, name, console.warn)


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
