"""The queue as a read-only command sees it: the journal folded the one way every command
folds it (`checkpoint.replay`), with the sync folder's copies merged in memory when there
is one. Nothing here writes."""

from __future__ import annotations

import json

from journalq import checkpoint, lock, reader
from journalq.errors import JournalError, UsageError
from journalq.opened import Opened
from journalq.state import Queue


def read_queue(opened: Opened) -> Queue:
    """Replay the journal without writing; warns about a torn tail left for the next writer."""
    path = opened.path
    try:
        folder, report = checkpoint.replay(path, opened.fs)
    except FileNotFoundError:
        raise UsageError(f"{path}: no journal here yet; create it with `journalq init "
                         "--config <file>` (or `journalq run`)") from None
    except OSError as exc:
        raise JournalError(f"cannot read {path}: {exc.strerror}") from None
    warning = reader.tail_warning(report)
    # A running writer's half-written line is not a torn tail; it will be whole in a moment.
    if warning and not lock.writer_active(path):
        opened.console.warn(warning)
    return folder.queue()


def read_with_copies(opened: Opened) -> Queue:
    """The queue as the journal and the sync folder's copies show it together."""
    if opened.sync is None:
        return read_queue(opened)
    name = opened.config.queue if opened.config else queue_name(opened.path)
    if name is None:
        raise UsageError(f"{opened.path}: no journal here to name the queue; pass --config so "
                         "journalq knows which copies in the sync folder to read")
    from journalq.sync import merged_queue

    return merged_queue(opened.path, opened.sync.folder, name, opened.console.warn, opened.fs)


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
