"""The values the fold returns: a queue of jobs, each with its attempts, and what did not fit.

Nothing here is ever stored: a `Queue` is always recomputed from the journal.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping

import attrs


def hex_sha256(data: bytes) -> str:
    """The SHA-256 of `data`, in hex."""
    import hashlib  # 2 ms of OpenSSL at start-up that `status` on a short journal never needs

    return hashlib.sha256(data).hexdigest()


class Status(enum.Enum):
    """Where a job stands; `run` only ever starts `pending` jobs."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@attrs.frozen
class JobSpec:
    """Everything needed to run a job, as recorded in the journal; `sha256` identifies it."""

    argv: tuple[str, ...]
    shell: bool
    cwd: str
    env: Mapping[str, str]
    out_dir: str
    max_attempts: int
    timeout: float | None
    sha256: str

    @classmethod
    def build(
        cls,
        *,
        argv: tuple[str, ...],
        shell: bool,
        cwd: str,
        env: Mapping[str, str],
        out_dir: str,
        max_attempts: int,
        timeout: float | None,
    ) -> JobSpec:
        """A spec with its sha256 computed over a canonical JSON form of the other fields."""
        body = {
            "argv": list(argv),
            "shell": shell,
            "cwd": cwd,
            "env": dict(sorted(env.items())),
            "out_dir": out_dir,
            "max_attempts": max_attempts,
            "timeout": timeout,
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        sha = hex_sha256(canonical.encode())
        return cls(argv, shell, cwd, dict(env), out_dir, max_attempts, timeout, sha)


@attrs.frozen
class Attempt:
    """One try at a job, from `job_started` to whatever settled it."""

    number: int
    session: str
    host: str
    boot_id: str
    pid: int
    started: str
    log: str
    spec_sha256: str
    heartbeat: str | None = None
    child_pid: int | None = None
    finished: str | None = None
    outcome: str | None = None
    reason: str | None = None
    return_code: int | None = None
    signal: int | None = None
    duration: float | None = None
    charged: bool = True
    commit: str | None = None  # the git HEAD of the job's folder when it started, if any
    dirty: bool | None = None  # whether that work tree had changes


@attrs.frozen
class Job:
    """One job's current state; `attempts` is its whole history, oldest first."""

    id: str
    spec: JobSpec
    added: str
    status: Status = Status.PENDING
    attempts: tuple[Attempt, ...] = ()
    charged: int = 0
    reason: str | None = None
    changed_after_done: bool = False

    @property
    def attempt(self) -> int:
        """The number of the latest attempt (0 before the first start)."""
        return len(self.attempts)

    @property
    def last(self) -> Attempt | None:
        """The latest attempt, if any."""
        return self.attempts[-1] if self.attempts else None

    @property
    def attempts_left(self) -> int:
        """Attempts the budget still allows before the job counts as failed."""
        return max(0, self.spec.max_attempts - self.charged)


def status_after_failure(job: Job) -> Status:
    """The retry budget's rule: a charged failure leaves the job pending while attempts
    remain, else failed (an explicit `retry` is then the only way back)."""
    return Status.PENDING if job.charged < job.spec.max_attempts else Status.FAILED


def _words_or_none(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(str(word) for word in value)


@attrs.frozen
class SessionInfo:
    """What a session said about itself in `session_started`, and how it ended."""

    id: str
    command: str
    host: str
    boot_id: str
    pid: int
    pid_start: int
    started: str
    ended: str | None = None
    exit_code: int | None = None
    last_seen: str = ""
    # What a `run` selected (see `selection`); a checkpoint gives lists back: made tuples.
    jobs: tuple[str, ...] | None = attrs.field(default=None, converter=_words_or_none)
    only: tuple[str, ...] | None = attrs.field(default=None, converter=_words_or_none)
    shard: str | None = None
    slurm_task: str | None = None


@attrs.frozen
class Anomaly:
    """An event that did not fit the state it arrived in, kept rather than crashed on."""

    event_id: str
    ts: str
    job: str | None
    message: str
    count: int = 1


@attrs.frozen
class Queue:
    """The folded journal: jobs in the order they were added, plus what did not fit."""

    name: str | None = None
    config: str | None = None
    jobs: Mapping[str, Job] = attrs.Factory(dict)
    sessions: Mapping[str, SessionInfo] = attrs.Factory(dict)
    anomalies: tuple[Anomaly, ...] = ()
    unknown_types: frozenset[str] = frozenset()
    events: int = 0
    last_ts: str = ""

    def counts(self) -> dict[Status, int]:
        """How many jobs are in each status, every status present."""
        counts = dict.fromkeys(Status, 0)
        for job in self.jobs.values():
            counts[job.status] += 1
        return counts

    def by_status(self, *statuses: Status) -> list[Job]:
        """The jobs in any of `statuses`, in queue order."""
        return [job for job in self.jobs.values() if job.status in statuses]
