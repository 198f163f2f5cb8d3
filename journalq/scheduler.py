"""N slots and the one loop that keeps time for all of them.

One `run` process, one journal writer, up to N children. The loop waits on every child's
output, the signal wake-up pipe and the earliest timer (a heartbeat, a timeout, the end of
a kill grace, a deferred sync push) together, so none of them waits on another; it never
busy-waits, and never blocks on the terminal (`echo.Terminal` queues what it shows).

The scheduler decides nothing about the queue: `Hooks` (the batch) says which job a free
slot takes, records what happens, and says when to stop starting jobs.
"""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable
from typing import Protocol

from journalq.attempt import Running
from journalq.runner import Exit, Interrupts
from journalq.slots import Slot


class Hooks(Protocol):
    """What the scheduler asks of the batch."""

    def start(self, slot: Slot) -> Running | None:
        """Record and spawn the next job in `slot`; None when there is none to start."""
        ...

    def heartbeat(self, running: list[Running]) -> None:
        """Record that these attempts' runner is alive."""
        ...

    def finished(self, running: Running, result: Exit) -> None:
        """Record how an attempt ended."""
        ...

    def may_start(self) -> bool:
        """Whether new jobs may start (not after a halt, or once we yielded)."""
        ...

    def abandoned(self, running: Running) -> None:
        """This attempt was stopped because the run cannot go on recording."""
        ...

    def tick(self) -> None:
        """Do what is due outside the attempts (a deferred sync push)."""
        ...

    def tick_at(self) -> float | None:
        """When `tick` is next due (monotonic), if ever."""
        ...


class Scheduler:
    """Runs jobs in `slots` until none is left to start and none runs."""

    def __init__(self, slots: list[Slot], hooks: Hooks, interrupts: Interrupts,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.slots = slots
        self.hooks = hooks
        self.interrupts = interrupts
        self._clock = clock
        self.running: dict[int, Running] = {}  # slot index -> its attempt
        self._exhausted = False  # the batch had nothing more to start

    def run(self) -> None:
        """The loop. Returns when nothing runs and nothing more may start."""
        self.interrupts.arm()
        with selectors.DefaultSelector() as selector:
            selector.register(self.interrupts.wakeup_fd, selectors.EVENT_READ)
            try:
                self._loop(selector)
            except BaseException:
                # We cannot go on recording (the journal refused a line, say): a job nobody
                # records is wasted work, and one left running an orphan. Stop them now.
                for running in self.running.values():
                    running.abandon()
                    self.hooks.abandoned(running)
                self.running.clear()
                raise

    def _loop(self, selector: selectors.BaseSelector) -> None:
        while True:
            self._fill(selector)
            if not self.running:
                return
            now = self._clock()
            self._enforce(now)
            self._beat(now)
            freed = self._reap(selector)
            if self.hooks.tick_at() is not None and now >= (self.hooks.tick_at() or 0):
                self.hooks.tick()
            if freed or not self.running:
                continue  # a freed slot takes its next job now, not at the next wake-up
            wake = [running.wake_at() for running in self.running.values()]
            due = self.hooks.tick_at()
            if due is not None:
                wake.append(due)
            if self.interrupts.poll_seconds is not None:
                wake.append(self._clock() + self.interrupts.poll_seconds)
            timeout = max(0.0, min(wake) - self._clock())
            for key, _ in selector.select(timeout):
                if key.fd == self.interrupts.wakeup_fd:
                    self.interrupts.drain()  # a signal (SIGCHLD too): look at everything
                    continue
                running = key.data
                running.pump()
                if running.eof:
                    selector.unregister(running.read_fd)

    def _fill(self, selector: selectors.BaseSelector) -> None:
        """Give every free slot the next job, while starting is allowed."""
        for slot in self.slots:
            while slot.index not in self.running:
                if (self._exhausted or self.interrupts.received is not None
                        or not self.hooks.may_start()):
                    return
                running = self.hooks.start(slot)
                if running is None:
                    self._exhausted = True
                    return
                if running.child is not None:  # else it could not start (recorded)
                    self.running[slot.index] = running
                    selector.register(running.read_fd, selectors.EVENT_READ, running)

    def _enforce(self, now: float) -> None:
        """Timeouts, the operator's stop, and the kill after each grace period."""
        stopping = self.interrupts.received is not None
        hurry = self.interrupts.count >= 2  # a second Ctrl-C means now
        for running in self.running.values():
            if stopping:
                running.stop("interrupted", now)
            elif running.deadline is not None and now >= running.deadline:
                running.stop("timeout", now)
            if running.term_sent is not None and (
                    hurry or now >= running.term_sent + running.timing.grace_seconds):
                running.kill_now()

    def _beat(self, now: float) -> None:
        """One heartbeat for every attempt whose time has come (one append for all)."""
        due = [r for r in self.running.values() if now >= r.next_beat]
        if due:
            self.hooks.heartbeat(due)
            for running in due:
                running.next_beat = now + running.timing.heartbeat_seconds

    def _reap(self, selector: selectors.BaseSelector) -> bool:
        """Settle every attempt whose leader exited, freeing its slot; whether any was."""
        leaders = {running.pid for running in self.running.values()}
        freed = False
        for index, running in list(self.running.items()):
            if not running.has_exited():
                continue
            if not running.eof:
                selector.unregister(running.read_fd)
            result = running.finish(self.interrupts.received, leaders)
            del self.running[index]
            freed = True
            # A failure with attempts left makes its job pending again: the batch that had
            # nothing more for a free slot may have something now.
            self._exhausted = False
            try:
                self.hooks.finished(running, result)
            except BaseException:
                # Its end could not be recorded (a full disk): like the attempts still
                # running, it was stopped by us, not failed by itself; the next runner
                # settles it uncharged rather than as abandoned.
                self.hooks.abandoned(running)
                raise
        return freed
