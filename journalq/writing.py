"""A command wrapped in a writing session: the sync folder's copies merged in first, the
journal copied back out at the end, and how the command ended recorded, whatever happened
in between."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from journalq.errors import JournalqError, UsageError, interrupt_code
from journalq.opened import Opened
from journalq.session import Session

if TYPE_CHECKING:
    from journalq.sync import Mirror


@contextlib.contextmanager
def writing(opened: Opened, command: str) -> Iterator[Session]:
    """A session on the journal that records how the command ended.

    With a sync folder, its copies are merged in first, and the journal is copied back out
    at the end, whatever happened in between.
    """
    if opened.sync is not None:
        from journalq.copyreader import check_folder

        check_folder(opened.sync.folder, opened.fs)  # before the journal is touched
    session = Session.open(opened.path, command, fs=opened.fs, clock=opened.clock.micros,
                           warn=opened.console.warn)
    mirror = None
    try:
        if opened.sync is not None:
            mirror = session.mirror = _mirror(opened, session)
            mirror.create_folder()
            merged = session.merge()
            if merged:
                opened.console.err(f"merged {merged} event(s) from {mirror.sync_dir}")
        yield session
        if session.started:
            # Our copy then holds what the others finished too.
            session.merge(when_due=True, lenient=True)
    except JournalqError as exc:
        session.abort(exc.exit_code)
        raise
    except KeyboardInterrupt as exc:  # Ctrl-C or a hangup: the operator's call, no error
        session.abort(interrupt_code(exc), "interrupted")
        raise
    except BaseException:
        session.abort(1)
        raise
    else:
        session.end(session.exit_code, session.exit_reason)
    finally:
        # A session that only merged has nothing the folder lacks: no copy, no clutter.
        if mirror is not None and session.started:
            session.push(final=True)
            mirror.compact(session.queue())


def _mirror(opened: Opened, session: Session) -> Mirror:
    """The session's mirror, for the queue the config or the journal names."""
    from journalq.sync import Mirror

    assert opened.sync is not None
    name = opened.config.queue if opened.config else session.queue().name
    if name is None:
        raise UsageError(f"{session.path} names no queue yet; pass --config so journalq "
                         "knows which copies in the sync folder are this queue's")
    return Mirror(opened.sync.folder, name, session.id, opened.sync.every_seconds,
                  opened.console.warn, opened.fs, opened.clock.monotonic)
