"""What every command works with: its console, its config and journal path, its writing
session (with the sync folder merged in first and copied back after), and the queue as the
journal (and its copies) show it."""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs

from journalq import checkpoint, defaults, lock, reader
from journalq import events as ev
from journalq.errors import (
    ConfigError,
    JournalError,
    JournalqError,
    UsageError,
)
from journalq.state import Queue

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
        folder, report = checkpoint.replay(path)
    except OSError as exc:
        raise JournalError(f"cannot read {path}: {exc.strerror}") from None
    warning = reader.tail_warning(report)
    # A running writer's half-written line is not a torn tail; it will be whole in a moment.
    if warning and not lock.writer_active(path):
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


def stale_threshold(stale_seconds: float | None, cfg: Config | None) -> float:
    """Silence after which a remote runner is stale: --stale-seconds, else the config's."""
    if stale_seconds:
        return stale_seconds
    return cfg.stale_seconds if cfg else defaults.DEFAULT_STALE_SECONDS


def sync_folder(sync_dir: str | None, cfg: Config | None) -> str | None:
    """The sync folder: --sync-dir wins over the config's `sync_dir`."""
    return sync_dir or (cfg.sync_dir if cfg else None)


def mirror_for(sync_dir: str | None, cfg: Config | None, queue: str | None,
               console: Console) -> Mirror | None:
    """The sync mirror the command line (which wins) or the config asks for, if any."""
    folder = sync_folder(sync_dir, cfg)
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


def read_with_copies(path: str, cfg: Config | None, sync_dir: str | None,
                      console: Console) -> Queue:
    folder = sync_folder(sync_dir, cfg)
    if not folder:
        return read_queue(path, console)
    name = cfg.queue if cfg else queue_name(path)
    if name is None:
        raise UsageError(f"{path}: no journal here to name the queue; pass --config so "
                         "journalq knows which copies in the sync folder to read")
    from journalq.sync import merged_queue

    return merged_queue(path, folder, name, console.warn)
