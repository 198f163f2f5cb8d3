"""`journalq recover`: settle `running` jobs whose runner is gone; idempotent."""

from __future__ import annotations

from collections.abc import Sequence

from journalq import policy, render
from journalq.errors import EXIT_OK
from journalq.opened import Opened
from journalq.reading import read_with_copies
from journalq.recovery import observe, recover_orphans
from journalq.render import Console
from journalq.writing import writing


def recover(opened: Opened, *, stale_seconds: float | None, dry_run: bool,
            force: bool) -> int:
    """Settle orphaned attempts by the retry policy; a second call appends nothing."""
    threshold = opened.stale_seconds(stale_seconds)
    console = opened.console
    if dry_run:
        queue = read_with_copies(opened)
        seen = observe(queue, opened.clock.utc_now(), threshold, force)
        orphans, alive = policy.classify_running(queue, seen)
        for event in policy.recover(orphans, seen.cards):
            console.out(f"would recover {event.job} attempt {event.attempt}: {event.reason} -> "
                        f"{event.to}")
        report_alive(alive, console)
        if not orphans:
            console.out("nothing to recover")
        return EXIT_OK
    with writing(opened, "recover") as session:
        queue = session.queue()
        seen = observe(queue, opened.clock.utc_now(), threshold, force)
        orphans, alive = policy.classify_running(queue, seen)
        count = recover_orphans(session, orphans, seen, console, opened.grace_seconds)
    report_alive(alive, console)
    console.out(f"recovered {count} job(s)" if count else "nothing to recover")
    return EXIT_OK


def report_alive(alive: Sequence[policy.LiveRunner], console: Console) -> None:
    """Jobs whose runner may still be alive are left alone, and the operator told so."""
    for runner in alive:
        console.out(render.safe(f"{runner.job.id} is still running on {runner.host} (last "
                                f"heartbeat {render.duration(runner.age)} ago); left alone"))
