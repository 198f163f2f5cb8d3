"""The closed sets of words the journal uses for how things ended.

Each is a `StrEnum`: a member *is* its string (`Outcome.DONE == "done"`), so it is written
to JSON as the very text older journals hold, and compares equal to the plain strings read
back from them. Event fields keep the type `str` on purpose: a newer journalq may add a
word, and an older reader must carry on (it shows the word rather than refuse the line).
"""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    """How one attempt ended (`JobFinished.outcome`, `Attempt.outcome`)."""

    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the operator stopped it; not charged
    SUPERSEDED = "superseded"  # another runtime's start closed it without seeing it


class FinishReason(enum.StrEnum):
    """Why an attempt's process ended (`JobFinished.reason`, `Attempt.reason`)."""

    EXIT = "exit"  # it exited by itself
    SIGNAL = "signal"  # a signal we did not send killed it
    TIMEOUT = "timeout"  # we killed it after its `timeout`
    INTERRUPTED = "interrupted"  # the operator stopped the runner
    SUPERSEDED = "superseded"  # the fold's own word: another start closed it


class RecoveryReason(enum.StrEnum):
    """Why a `running` attempt whose runner vanished was settled (`JobRecovered.reason`)."""

    ABANDONED = "abandoned"  # its runner died on this host
    STALE = "stale"  # no heartbeat for stale_seconds
    FORCED = "forced"  # the operator said its runner is gone
    CARD = "card"  # its run card recorded how it finished
    REQUEUED = "requeued"  # Slurm stopped and requeued the task that ran it
    STOPPED = "stopped"  # journalq stopped it when it could no longer record it; not charged


class EndReason(enum.StrEnum):
    """Why a session stopped writing (`SessionEnded.reason`)."""

    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    ERROR = "error"
