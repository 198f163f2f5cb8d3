"""The queue as a read-only command sees it: the journal folded the one way every command
folds it (`checkpoint.replay`), with the sync folder's copies merged in memory when there
is one. Nothing here writes."""

from __future__ import annotations

from collections.abc import Callable

from journalq import checkpoint, reader
from journalq import events as ev
from journalq.errors import JournalError, UsageError
from journalq.fold import Fold
from journalq.opened import Opened
from journalq.state import Queue


def read_fold(opened: Opened, *, missing_ok: bool = False) -> Fold:
    """Fold the journal without writing; warns about a torn tail left for the next writer."""
    path = opened.path
    try:
        fold, report = checkpoint.replay(path, opened.fs)
    except FileNotFoundError:
        if missing_ok:
            return Fold()
        raise UsageError(f"{path}: no journal here yet; create it with `journalq init "
                         "--config <file>` (or `journalq run`)") from None
    except OSError as exc:
        raise JournalError(f"cannot read {path}: {exc.strerror}") from None
    warning = reader.tail_warning(report)
    if warning:
        from journalq import lock  # only here: `status` on a sound journal starts without it

        # A running writer's half-written line is not a torn tail; it will be whole soon.
        if not lock.writer_active(path):
            opened.console.warn(warning)
    return fold


def read_queue(opened: Opened) -> Queue:
    """The queue as the journal shows it."""
    return read_fold(opened).queue()


def read_with_copies(opened: Opened) -> Queue:
    """The queue as the journal and the sync folder's copies show it together."""
    if opened.sync is None:
        return read_queue(opened)
    fold = read_fold(opened, missing_ok=True)
    from journalq.copyreader import CopyReader, merged_queue

    copies = CopyReader(opened.sync.folder, queue_name(opened, fold), opened.console.warn,
                        opened.fs)
    return merged_queue(fold, copies, rereader(opened))


def queue_name(opened: Opened, fold: Fold) -> str:
    """The queue whose copies to read in the sync folder: the config's, else the journal's."""
    name = opened.config.queue if opened.config else fold.queue().name
    if name is None:
        raise UsageError(f"{opened.path}: no journal here to name the queue; pass --config so "
                         "journalq knows which copies in the sync folder to read")
    return name


def rereader(opened: Opened) -> Callable[[], list[ev.Event]]:
    """Reads the local journal's events again, in file order (a merge that sorts older
    events in folds everything anew)."""

    def events() -> list[ev.Event]:
        if not opened.fs.exists(opened.path):
            return []
        return list(reader.Reader(opened.path, opened.fs).events())

    return events
