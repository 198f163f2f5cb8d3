"""A writing session: one journalq process appending to one journal.

It holds the journal's writer, stamps what it appends, and announces itself with
`session_started` just before its first event (so a command that changes nothing writes
nothing) and `session_ended` when it stops. `writing` wraps a command in one: the sync
folder's copies are merged in first and the journal is copied back out at the end.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import secrets
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from journalq import checkpoint, host
from journalq import events as ev
from journalq.errors import JournalError, UsageError
from journalq.journal import Writer
from journalq.lock import LeftRunning
from journalq.reader import tail_warning
from journalq.state import Queue
from journalq.version import VERSION

if TYPE_CHECKING:
    from journalq import policy
    from journalq.config import Config
    from journalq.fold import Fold
    from journalq.fs import FileSystem
    from journalq.sync import Mirror


def new_session_id() -> str:
    """48 random bits: unique across every runtime that will ever touch a queue."""
    return secrets.token_hex(6)


class Session:
    """Appends events on behalf of one command run; starts and ends itself in the journal."""

    def __init__(self, writer: Writer, command: str) -> None:
        self._writer = writer
        self.command = command
        self.started = False
        self.id = writer.session
        self.mirror: Mirror | None = None
        self._described: dict[str, Any] = {}
        # How the command ended, recorded by `session_ended`; commands may change it.
        self.exit_code = 0
        self.exit_reason = "completed"

    @classmethod
    def open(cls, path: str, command: str, *, fs: FileSystem, clock: Callable[[], int],
             warn: Callable[[str], None]) -> Session:
        """Lock and read the journal; warn about a torn tail that was moved aside."""
        writer = Writer.open(path, session=new_session_id(), command=command, fs=fs,
                             clock=clock,
                             replay=functools.partial(checkpoint.replay, digest=True))
        warning = tail_warning(writer.report)
        if warning and writer.tail_moved_to:
            warn(f"{warning.split('; most likely')[0]}; moved them to {writer.tail_moved_to}")
        return cls(writer, command)

    @property
    def path(self) -> str:
        """The journal's path."""
        return self._writer.path

    @property
    def fs(self) -> FileSystem:
        """The file-system seam the journal is written through."""
        return self._writer.fs

    @property
    def fold(self) -> Fold:
        """The live fold: every event read and appended so far."""
        return self._writer.fold

    def queue(self) -> Queue:
        """The state after everything read and appended so far."""
        return self._writer.fold.queue()

    def append(self, event: ev.Event) -> ev.Event:
        """Append one event (after `session_started`, the first time)."""
        self.announce()
        return self._writer.append(event)

    def append_many(self, events: list[ev.Event]) -> list[ev.Event]:
        """Append several events with one fsync (nothing at all for none)."""
        if not events:
            return []
        self.announce()
        return self._writer.append_many(events)

    def describe(self, **fields: Any) -> None:
        """More for `session_started` to say (what a `run` selected, its Slurm task);
        before anything is appended."""
        self._described.update(fields)

    def announce(self) -> None:
        """Write `session_started` unless it is written already.

        The session counts as started only once that line is in the journal: an announce
        that failed (a full disk) must not be followed by a `session_ended` of its own. The
        command line is recorded as text: a word that is not UTF-8 (say, the path journalq
        was started by) is kept with its odd bytes escaped, `\\xe9`, not refused.
        """
        if not self.started:
            before = self._writer.size
            try:
                self._writer.append(ev.SessionStarted(
                    command=self.command, host=host.hostname(), boot_id=host.boot_id(),
                    pid=os.getpid(), pid_start=host.process_start(os.getpid()) or 0,
                    argv=tuple(os.fsencode(word).decode(errors="backslashreplace")
                               for word in sys.argv),
                    journalq_version=VERSION, python_version=platform.python_version(),
                    **self._described,
                ))
            except BaseException:
                # Interrupted (Ctrl-C) after its line reached the file: it is started, and
                # its end must be recorded; a line that never got there: it is not.
                self.started = self._writer.written_since(before)
                raise
            self.started = True

    @property
    def left_running(self) -> tuple[LeftRunning, ...]:
        """Job process groups a killed runner left running on this machine."""
        return self._writer.lock.left_running

    @property
    def stopped_before(self) -> frozenset[tuple[str, int, str]]:
        """Attempts (job, number, session) the previous holder stopped itself."""
        return self._writer.lock.stopped_before

    def forget_left_running(self, jobs: set[str]) -> None:
        """The groups left running for these jobs have been dealt with."""
        self._writer.lock.forget_left_running(jobs)

    def record_children(self, children: list[tuple[str, int, int]]) -> None:
        """Note in the lock file which process groups run now (`LockFile.record_children`)."""
        self._writer.lock.record_children(children)

    def note_stopped(self, job: str, attempt: int) -> None:
        """Note that this runner stopped an attempt it could not record (`note_stopped`)."""
        self._writer.lock.note_stopped(job, attempt)

    def merge(self, *, when_due: bool = False, lenient: bool = False) -> int:
        """Append what the sync folder's copies hold that the journal lacks (with
        `when_due`, only if the last look was a while ago); returns how many events.
        `lenient`: a folder that cannot be read now is warned about, not an error (the
        work goes on from the local journal, which is authoritative)."""
        if self.mirror is None:
            return 0
        try:
            fresh = self.mirror.pull(self._writer.fold.coverage(), when_due=when_due)
        except JournalError as exc:
            if not lenient:
                raise
            self.mirror.warn_once(f"{exc.message}; going on with the local journal")
            return 0
        self._writer.append_foreign(fresh)
        return len(fresh)

    def push(self, *, boundary: bool = False, final: bool = False) -> None:
        """Bring this session's copy in the sync folder up to date (see `Mirror.push`)."""
        if self.mirror is not None:
            writer = self._writer
            self.mirror.push(writer.path, writer.size, boundary=boundary, final=final)

    def add_config(self, cfg: Config) -> list[policy.Drift]:
        """Make sure the journal knows the queue and every job of the config; returns the
        jobs whose recorded spec differs from the config's (nothing is decided about them)."""
        queue = self.queue()
        if queue.name is not None and queue.name != cfg.queue:
            raise UsageError(f"{self.path} is the journal of queue {queue.name!r}, but "
                             f"{cfg.source} is queue {cfg.queue!r}; pass the matching --state")
        if queue.name is None:
            self.append(ev.QueueCreated(queue=cfg.queue, config=cfg.source,
                                        config_sha256=cfg.sha256))
        from journalq import policy

        added, drifted = policy.reconcile(queue, cfg.jobs)
        self.append_many(list(added))
        return drifted

    def end(self, exit_code: int, reason: str) -> None:
        """Record how the session ended (if it wrote anything) and release the journal."""
        writer = self._writer
        try:
            if self.started:
                writer.append(ev.SessionEnded(exit_code=exit_code, reason=reason))
            size, lines, newest = writer.folded
            if size != writer.report.checkpoint_offset:  # else it is up to date
                checkpoint.save(writer.path, writer.fold, size, lines, newest, writer.fs,
                                writer.folded_digest)
        finally:
            writer.close()

    def abort(self, exit_code: int, reason: str = "error") -> None:
        """End after an error (or an interruption): try to record it, but never hide the
        error with another."""
        with contextlib.suppress(JournalError):
            self.end(exit_code, reason)
