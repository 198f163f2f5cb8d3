"""A writing session: one journalq process appending to one journal.

It holds the journal's writer, stamps what it appends, and announces itself with
`session_started` just before its first event (so a command that changes nothing writes
nothing) and `session_ended` when it stops.
"""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import sys
from collections.abc import Callable

from journalq import __version__, checkpoint, host
from journalq import events as ev
from journalq.errors import JournalError
from journalq.fs import REAL, FileSystem
from journalq.journal import Writer
from journalq.reader import tail_warning
from journalq.state import Queue


def new_session_id() -> str:
    """48 random bits: unique across every runtime that will ever touch a queue."""
    return secrets.token_hex(6)


class Session:
    """Appends events on behalf of one command run; starts and ends itself in the journal."""

    def __init__(self, writer: Writer, command: str) -> None:
        self.writer = writer
        self.command = command
        self.started = False
        self.id = writer.session
        # How the command ended, recorded by `session_ended`; commands may change it.
        self.exit_code = 0
        self.exit_reason = "completed"

    @classmethod
    def open(cls, path: str, command: str, warn: Callable[[str], None],
             fs: FileSystem = REAL) -> Session:
        """Lock and read the journal; warn about a torn tail that was moved aside."""
        writer = Writer.open(path, session=new_session_id(), command=command, fs=fs)
        warning = tail_warning(writer.report)
        if warning and writer.tail_moved_to:
            warn(f"{warning.split('; most likely')[0]}; moved them to {writer.tail_moved_to}")
        return cls(writer, command)

    def queue(self) -> Queue:
        """The state after everything read and appended so far."""
        return self.writer.folder.queue()

    def append(self, event: ev.Event) -> ev.Event:
        """Append one event (after `session_started`, the first time)."""
        self.announce()
        return self.writer.append(event)

    def append_many(self, events: list[ev.Event]) -> list[ev.Event]:
        """Append several events with one fsync (nothing at all for none)."""
        if not events:
            return []
        self.announce()
        return self.writer.append_many(events)

    def announce(self) -> None:
        """Write `session_started` unless it is written already."""
        if not self.started:
            self.started = True
            self.writer.append(ev.SessionStarted(
                command=self.command, host=host.hostname(), boot_id=host.boot_id(),
                pid=os.getpid(), pid_start=host.process_start(os.getpid()) or 0,
                argv=tuple(sys.argv), journalq_version=__version__,
                python_version=platform.python_version(),
            ))

    def end(self, exit_code: int, reason: str) -> None:
        """Record how the session ended (if it wrote anything) and release the journal."""
        try:
            if self.started:
                self.writer.append(ev.SessionEnded(exit_code=exit_code, reason=reason))
            writer = self.writer
            if writer.size != writer.report.checkpoint_offset:  # else it is up to date
                checkpoint.save(writer.path, writer.folder, writer.size, writer.lines,
                                writer.newest, writer.fs)
        finally:
            self.writer.close()

    def abort(self, exit_code: int) -> None:
        """End after an error: try to record it, but never hide the error with another."""
        with contextlib.suppress(JournalError):
            self.end(exit_code, "error")
