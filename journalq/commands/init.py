"""`journalq init`: create the journal, or bring it up to date with the config."""

from __future__ import annotations

from journalq import policy, render
from journalq.errors import EXIT_OK
from journalq.opened import Opened
from journalq.writing import writing


def init(opened: Opened) -> int:
    """New jobs are added and changed specs recorded (a done job stays done; status flags
    it). Running it twice appends nothing the second time."""
    cfg = opened.require_config()
    with writing(opened, "init") as session:
        drifted = session.add_config(cfg)
        session.append_many([policy.changed_event(drift) for drift in drifted])
        queue = session.queue()
    changed = f", {len(drifted)} changed" if drifted else ""
    opened.console.out(f"{opened.path}: queue {cfg.queue}, {len(queue.jobs)} jobs{changed}; "
                       f"{render.counts_line(queue)}")
    return EXIT_OK
