"""`journalq sync`: merge the sync folder's copies into the journal, then copy it back."""

from __future__ import annotations

from journalq import render
from journalq.errors import EXIT_OK, UsageError
from journalq.opened import Opened
from journalq.writing import writing


def sync(opened: Opened) -> int:
    """A sync always leaves a copy, so it is a session of record even when nothing merged."""
    if opened.sync is None:
        raise UsageError("say where to sync: --sync-dir DIR (or sync_dir: in the config)")
    with writing(opened, "sync") as session:
        session.announce()
        queue = session.queue()
    opened.console.out(f"{opened.path}: {render.counts_line(queue)}; copy in "
                       f"{opened.sync.folder}")
    return EXIT_OK
