"""Which jobs a reading command shows: by status (`--status failed,running`) and by id
(`--job 'gpt2-*'`, shell-style globs). Pure: a value built from the flags, and the jobs of a
queue that it keeps.

Filters choose the rows a command prints, never what it knows: `status` still counts the
whole queue, so a filtered view cannot be mistaken for the queue's state.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

import attrs

from journalq.errors import UsageError
from journalq.state import Job, Queue, Status

STATUS_WORDS = tuple(status.value for status in Status)


@attrs.frozen
class JobFilter:
    """The statuses and id globs a job must match (an empty set matches everything)."""

    statuses: frozenset[Status] = frozenset()
    globs: tuple[str, ...] = ()

    @classmethod
    def build(cls, *, statuses: Iterable[str] = (), globs: Iterable[str] = ()) -> JobFilter:
        """A filter from the flags' words: each of `statuses` may be a comma list; an
        unknown status is a usage error that names the valid ones."""
        chosen: set[Status] = set()
        for text in statuses:
            for word in text.split(","):
                word = word.strip()
                if not word:
                    continue
                try:
                    chosen.add(Status(word))
                except ValueError:
                    raise UsageError(f"--status {word!r} is not a status; use one or more of "
                                     f"{', '.join(STATUS_WORDS)}, comma-separated") from None
        return cls(frozenset(chosen), tuple(globs))

    @property
    def active(self) -> bool:
        """Whether it leaves anything out."""
        return bool(self.statuses or self.globs)

    def matches(self, job: Job) -> bool:
        """Whether `job` is shown: its status is one asked for, its id matches a glob."""
        if self.statuses and job.status not in self.statuses:
            return False
        return self.matches_id(job.id)

    def matches_id(self, job_id: str) -> bool:
        """Whether `job_id` matches one of the globs (any id, when there is none)."""
        return not self.globs or any(fnmatch.fnmatchcase(job_id, glob) for glob in self.globs)

    def jobs(self, queue: Queue) -> list[Job]:
        """The queue's jobs this filter keeps, in queue order."""
        if not self.active:
            return list(queue.jobs.values())
        return [job for job in queue.jobs.values() if self.matches(job)]


def is_glob(text: str) -> bool:
    """Whether a job argument is a pattern (`gpt2-*`) rather than one id."""
    return any(char in text for char in "*?[")


def unmatched(globs: Iterable[str], job_ids: Iterable[str]) -> list[str]:
    """The globs that match none of `job_ids` (most likely a typo)."""
    ids = list(job_ids)
    return [glob for glob in globs if not any(fnmatch.fnmatchcase(i, glob) for i in ids)]
