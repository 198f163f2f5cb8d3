"""The journal's vocabulary: one frozen, flat, past-tense class per fact.

Every line of a journal is one of these, encoded by `journalq.codec` as
`{"type": ..., "v": 1, "id": ..., "ts": ..., "session": ..., <fields>}`. Field names are a
public interface (users run `jq` on them): add fields, never rename or retype them.

The envelope (`id`, `ts`, `session`) is stamped by the writing session when the event is
appended; the pure core builds events with the envelope left empty.

Events live for a moment (read, folded, dropped), so they skip `__slots__` and share one
hand-written `__eq__`: attrs would generate both per class at import, and every command,
even `status`, pays for fourteen classes.
"""

from __future__ import annotations

from typing import Any

import attrs

FORMAT_VERSION = 1
# Fields added after the first release are written only when set: a journal that uses no
# newer feature reads exactly as it did, and older readers ignore what they do not know.
UNSET_OMITTED = {"omit_unset": True}


def later() -> Any:
    """A field added after the first release: optional (None), and left out of a line when
    unset."""
    return attrs.field(default=None, metadata=UNSET_OMITTED)



@attrs.frozen(kw_only=True, slots=False, eq=False)
class Event:
    """The envelope every event carries: a unique id, a UTC timestamp and its session."""

    id: str = ""
    ts: str = ""
    session: str = ""
    # The writer's own clock, when `ts` had to be raised above it to sort after an event
    # stamped by a clock that runs ahead: liveness is judged by it, so a skewed clock's
    # timestamps never make a later runner look alive longer than it was.
    clock: str | None = later()

    def __eq__(self, other: object) -> bool:
        """Events are equal when they are the same fact: same type, same fields."""
        if type(self) is not type(other):
            return NotImplemented
        return attrs.astuple(self, recurse=False) == attrs.astuple(other, recurse=False)

    __hash__ = None  # type: ignore[assignment]  # like attrs' own eq: equal but mutable dicts


@attrs.frozen(kw_only=True, slots=False, eq=False)
class QueueCreated(Event):
    """The journal was started for a queue, from a config file."""

    queue: str
    config: str
    config_sha256: str


@attrs.frozen(kw_only=True, slots=False, eq=False)
class JobSpecEvent(Event):
    """The full spec of one job, as `JobAdded` and `JobChanged` record it."""

    job: str
    argv: tuple[str, ...]
    shell: bool
    cwd: str
    env: dict[str, str]
    out_dir: str
    max_attempts: int
    timeout: float | None
    spec_sha256: str


@attrs.frozen(kw_only=True, slots=False, eq=False)
class JobAdded(JobSpecEvent):
    """A job entered the queue with its full spec; it is pending."""


@attrs.frozen(kw_only=True, slots=False, eq=False)
class JobChanged(JobSpecEvent):
    """The config now gives this job another spec; later attempts run the new one."""


@attrs.frozen(kw_only=True, slots=False, eq=False)
class SessionStarted(Event):
    """A journalq process began writing; enough facts to tell later if it is still alive."""

    command: str
    host: str
    boot_id: str
    pid: int
    pid_start: int
    argv: tuple[str, ...]
    journalq_version: str
    python_version: str
    # What a `run` session may start (issue "many runtimes"): explicit job ids, globs, and
    # a shard `K/N`; a job is selected when it passes every one that is set.
    jobs: tuple[str, ...] | None = later()
    only: tuple[str, ...] | None = later()
    shard: str | None = later()
    slurm_task: str | None = later()  # `<array job>_<task>`


@attrs.frozen(kw_only=True, slots=False, eq=False)
class SessionEnded(Event):
    """A journalq process stopped writing, with the exit code it returned; `reason` is an
    `EndReason`."""

    exit_code: int
    reason: str


@attrs.frozen(kw_only=True, slots=False, eq=False)
class JobStarted(Event):
    """An attempt is about to spawn; durable before the child exists (write-ahead)."""

    job: str
    attempt: int
    host: str
    boot_id: str
    pid: int
    log: str
    spec_sha256: str
    slot: int | None = later()  # set when run uses slots
    devices: tuple[str, ...] | None = later()  # CUDA devices
    commit: str | None = later()  # git HEAD of the job's cwd
    dirty: bool | None = later()  # its work tree had changes


@attrs.frozen(kw_only=True, slots=False, eq=False)
class Heartbeat(Event):
    """The attempt's runner was alive at `ts`; `child_pid` is the job's process group."""

    job: str
    attempt: int
    child_pid: int | None = None


@attrs.frozen(kw_only=True, slots=False, eq=False)
class JobFinished(Event):
    """The attempt's process exited: `done` on return code 0, `failed` otherwise.

    `outcome` is an `Outcome`; `reason` a `FinishReason`: `exit` (it exited by itself),
    `signal` (killed by a signal we did not send) or `timeout` (we killed it after
    `timeout` seconds).
    """

    job: str
    attempt: int
    return_code: int | None
    signal: int | None
    outcome: str
    reason: str
    duration: float


@attrs.frozen(kw_only=True, slots=False, eq=False)
class JobInterrupted(Event):
    """The operator stopped the runner; the attempt is not charged and the job is pending."""

    job: str
    attempt: int
    signal: int


@attrs.frozen(kw_only=True, slots=False, eq=False)
class JobRecovered(Event):
    """An attempt whose runner vanished was settled: `to` is pending, failed or done.

    `reason` (a `RecoveryReason`) is `abandoned` (its runner died on this host), `stale`
    (no heartbeat for stale_seconds), `forced` (the operator said its runner is gone) or
    `card` (its run card recorded how it finished), `requeued` (Slurm requeued the task
    that ran it, having stopped it first) or `stopped` (journalq stopped it itself when it
    could no longer record it: not charged). `attempt_session` is the session that started
    the attempt.
    """

    job: str
    attempt: int
    to: str
    reason: str
    return_code: int | None = None
    attempt_session: str = ""


@attrs.frozen(kw_only=True, slots=False, eq=False)
class JobRetried(Event):
    """The operator asked for a rerun: the job is pending with a fresh attempt budget."""

    job: str


@attrs.frozen(kw_only=True, slots=False, eq=False)
class JobCancelled(Event):
    """The operator cancelled the job; `run` skips it until it is retried."""

    job: str


@attrs.frozen(kw_only=True)
class UnknownEvent(Event):
    """A line of a type or format version this journalq does not know: a newer one wrote it."""

    type: str
    v: int


# The one tag table: each event type's name in the journal's `type` field.
TYPES: dict[str, type[Event]] = {
    "queue_created": QueueCreated,
    "job_added": JobAdded,
    "job_changed": JobChanged,
    "session_started": SessionStarted,
    "session_ended": SessionEnded,
    "job_started": JobStarted,
    "heartbeat": Heartbeat,
    "job_finished": JobFinished,
    "job_interrupted": JobInterrupted,
    "job_recovered": JobRecovered,
    "job_retried": JobRetried,
    "job_cancelled": JobCancelled,
}
TAGS: dict[type[Event], str] = {cls: tag for tag, cls in TYPES.items()}
