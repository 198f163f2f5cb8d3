"""Queue configs (YAML or TOML) -> the checked `Config` the commands run.

Pure: `parse(data, source)` takes the file's bytes and its name and either returns a
`Config` or raises one `ConfigError` line naming the file and the field
(`configs/x.yaml: $.jobs[3].alphas: expected a list of numbers`). The steps have a module
each: `configfile` (bytes -> data, safely), `schema` (data -> the file as written),
`expand` (the file as written -> job specs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import attrs

from journalq import configfile, expand, schema
from journalq.errors import ConfigError
from journalq.expand import (
    Problem,
    check_attempts,
    check_name,
    check_positive,
    fill_placeholders,
    folder_path,
    is_safe_name,
)
from journalq.schema import SUMMARY_FILE, Gpus, QueueConfig
from journalq.state import JobSpec

__all__ = ["SUMMARY_FILE", "Config", "fill_placeholders", "is_safe_name", "parse"]


@attrs.frozen
class Config:
    """A checked config: queue settings and every job's spec, in run order."""

    source: str
    sha256: str
    queue: str
    out_root: str
    stale_seconds: float
    heartbeat_seconds: float
    sync_dir: str | None
    sync_seconds: float
    grace_seconds: float
    jobs: Mapping[str, JobSpec]
    slots: int | None = None  # None: one, today's sequential run
    gpus: Gpus | None = None
    jobs_per_gpu: int = 1
    halt_after_failures: int | None = None


def parse(data: bytes, source: str) -> Config:
    """The config in `data` (YAML, or TOML when `source` ends in .toml), checked whole."""
    raw = configfile.load(data, source)
    try:
        written = schema.structure(raw, QueueConfig)
    except schema.Unstructurable as exc:
        raise ConfigError(f"{source}: {exc.line}") from None
    try:
        return _check(written, source, hashlib.sha256(data).hexdigest())
    except Problem as problem:
        raise ConfigError(f"{source}: {problem.path}: {problem.message}") from None


def _check(written: QueueConfig, source: str, sha256: str) -> Config:
    """The queue-wide checks, then every job's spec."""
    check_name(written.queue, "$.queue", "queue name")
    check_positive(written.stale_seconds, "$.stale_seconds")
    check_positive(written.heartbeat_seconds, "$.heartbeat_seconds")
    check_positive(written.sync_seconds, "$.sync_seconds")
    check_positive(written.grace_seconds, "$.grace_seconds")
    defaults = written.defaults
    check_attempts(defaults.max_attempts, "$.defaults.max_attempts")
    if defaults.timeout is not None:
        check_positive(defaults.timeout, "$.defaults.timeout")
    _check_slots(written)
    worker = expand.words(written.worker, "$.worker")
    out_root = folder_path(written.out_root or f"runtime_state/outputs/{written.queue}",
                           "$.out_root")
    if written.sync_dir is not None:
        folder_path(written.sync_dir, "$.sync_dir")  # checked (no NUL, not empty), kept as written
    return Config(
        source=source, sha256=sha256, queue=written.queue, out_root=out_root,
        stale_seconds=written.stale_seconds, heartbeat_seconds=written.heartbeat_seconds,
        sync_dir=written.sync_dir, sync_seconds=written.sync_seconds,
        grace_seconds=written.grace_seconds,
        jobs=expand.job_specs(written, worker, out_root),
        slots=written.slots, gpus=written.gpus, jobs_per_gpu=written.jobs_per_gpu,
        halt_after_failures=written.halt_after_failures,
    )


MAX_SLOTS = 256


def _check_slots(written: QueueConfig) -> None:
    """Slots come from `slots:` or from `gpus:` (times `jobs_per_gpu:`), not both."""
    if written.slots is not None and not 1 <= written.slots <= MAX_SLOTS:
        raise Problem("$.slots", f"expected a whole number from 1 to {MAX_SLOTS}, got "
                      f"{written.slots}")
    if written.slots is not None and written.gpus is not None:
        raise Problem("$.slots", "give `slots:` or `gpus:` (one slot per device, times "
                      "`jobs_per_gpu:`), not both")
    if not 1 <= written.jobs_per_gpu <= MAX_SLOTS:
        raise Problem("$.jobs_per_gpu", f"expected a whole number from 1 to {MAX_SLOTS}, "
                      f"got {written.jobs_per_gpu}")
    if written.halt_after_failures is not None and written.halt_after_failures < 1:
        raise Problem("$.halt_after_failures", "expected a whole number of failed attempts "
                      f"(1 or more), got {written.halt_after_failures}")
