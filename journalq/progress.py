"""The progress lines `run` prints to stderr as attempts start and end."""

from __future__ import annotations

from collections.abc import Callable

from journalq import render
from journalq.fold import Fold
from journalq.render import Console
from journalq.state import Job, Status


class Progress:
    """The `[3/12] done  job  rc=0  1m02s  (eta 9m)` lines, from the folder's counts."""

    def __init__(self, fold: Callable[[], Fold], console: Console) -> None:
        self._fold = fold
        self._console = console
        self._durations: list[float] = []

    def _position(self) -> tuple[int, int]:
        counts = self._fold().counts()
        total = sum(counts.values()) - counts[Status.CANCELLED]
        return counts[Status.DONE] + counts[Status.FAILED], total

    def started(self, job: Job) -> None:
        """The line for an attempt that just started."""
        settled, total = self._position()
        attempt = job.last.number if job.last else 0
        self._console.err(render.progress(settled + 1, total, "start", job,
                                          f"attempt {attempt}, try {render.tries(job)}"))

    def finished(self, job: Job, duration: float) -> None:
        """The line for an attempt that just ended, with an estimate of the time left."""
        self._durations.append(duration)
        settled, total = self._position()
        left = self._fold().counts()[Status.PENDING]
        eta = sum(self._durations) / len(self._durations) * left if left else None
        word = job.status.value if job.status is not Status.PENDING else "retry"
        assert job.last is not None
        self._console.err(render.progress(max(settled, 1), total, word, job,
                                          render.finish_detail(job.last), eta))
