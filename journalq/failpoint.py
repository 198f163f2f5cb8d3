"""Crash tests (and only they) set JOURNALQ_FAILPOINT=<point>[@<job>] to SIGKILL the runner
at an exact step of an attempt: before-spawn, after-exit, after-card or after-finish."""

from __future__ import annotations

import os
import signal

_FAILPOINT = os.environ.get("JOURNALQ_FAILPOINT", "")


def failpoint(point: str, job_id: str) -> None:
    """Die by SIGKILL here if a crash test asked for it."""
    if _FAILPOINT and _FAILPOINT in (point, f"{point}@{job_id}"):
        os.kill(os.getpid(), signal.SIGKILL)
