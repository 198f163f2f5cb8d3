"""The progress lines `run` prints to stderr as attempts start and end."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from journalq import render
from journalq.fold import Fold
from journalq.render import Console
from journalq.slots import Slot
from journalq.state import Job, Status


class Progress:
    """`[3/12] done  job  rc=0  1m02s  (eta 9m)`: counted over the jobs the run selected
    (from the fold's O(1) counts when it selected every job); the estimate is the work left
    (pending jobs, and what the running ones still need) over the slots."""

    def __init__(self, fold: Callable[[], Fold], console: Console, *, slots: int = 1,
                 selected: Collection[str] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._fold = fold
        self._console = console
        self._slots = slots
        self._monotonic = monotonic
        self._running: dict[str, float] = {}  # job id -> when its attempt started
        self._durations: list[float] = []
        self._selected = selected
        self._settled = 0
        self._cancelled = 0  # selected, but skipped: not counted, as without a selection
        if selected is not None:
            current = fold()
            statuses = [job.status for job_id in selected if (job := current.job(job_id))]
            self._settled = sum(s in (Status.DONE, Status.FAILED) for s in statuses)
            self._cancelled = statuses.count(Status.CANCELLED)

    def _position(self) -> tuple[int, int, int]:
        """(settled, total, pending) of the jobs counted."""
        if self._selected is None:
            counts = self._fold().counts()
            total = sum(counts.values()) - counts[Status.CANCELLED]
            return counts[Status.DONE] + counts[Status.FAILED], total, counts[Status.PENDING]
        total = len(self._selected) - self._cancelled
        running = self._fold().counts()[Status.RUNNING]
        return self._settled, total, max(0, total - self._settled - running)

    def started(self, job: Job, slot: Slot | None = None) -> None:
        """The line for an attempt that just started."""
        settled, total, _ = self._position()
        self._running[job.id] = self._monotonic()
        attempt = job.last.number if job.last else 0
        where = f"{slot.describe()}, " if slot is not None and (
            self._slots > 1 or slot.devices) else ""
        self._console.err(render.progress(settled + 1, total, "start", job,
                                          f"{where}attempt {attempt}, try {render.tries(job)}"))

    def finished(self, job: Job, duration: float) -> None:
        """The line for an attempt that just ended, with an estimate of the time left."""
        self._durations.append(duration)
        self._running.pop(job.id, None)
        if self._selected is not None and job.status in (Status.DONE, Status.FAILED):
            self._settled += 1
        settled, total, left = self._position()
        word = job.status.value if job.status is not Status.PENDING else "retry"
        assert job.last is not None
        self._console.err(render.progress(max(settled, 1), total, word, job,
                                          render.finish_detail(job.last), self._eta(left)))

    def _eta(self, pending: int) -> float | None:
        """The time left if every job takes the mean so far: the work left spread over the
        slots, but never less than the running job that needs the longest."""
        if not pending and not self._running:
            return None
        mean = sum(self._durations) / len(self._durations)
        now = self._monotonic()
        still = [max(0.0, mean - (now - started)) for started in self._running.values()]
        return max(max(still, default=0.0), (pending * mean + sum(still)) / self._slots)
