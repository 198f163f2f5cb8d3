"""Which jobs a runner may start: all of them, or the ones its command line selects.

Runners on several machines split a queue before they start, never by claiming jobs as
they go (no lock server, no shared-file locking): each records its selection in
`session_started`, and any two runners can compute which jobs both selected. A shard is a
job's position in the queue's order (the order jobs entered the journal, which never
changes) modulo N, so shards stay put when the config grows.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

import attrs

_SHARD = re.compile(r"([0-9]{1,6})/([1-9][0-9]{0,5})")


@attrs.frozen
class Selection:
    """Explicit job ids, globs and a shard `K/N`; a job is selected when it passes each
    that is set. Nothing set selects every job."""

    jobs: tuple[str, ...] | None = None
    only: tuple[str, ...] | None = None
    shard: str | None = None

    @property
    def everything(self) -> bool:
        """Whether nothing narrows it."""
        return self.jobs is None and self.only is None and self.shard is None

    def describe(self) -> str:
        """`jobs a,b; only gpt2-*; shard 0/2`, or `all jobs`."""
        parts = []
        if self.jobs is not None:
            parts.append(f"jobs {','.join(self.jobs)}")
        if self.only is not None:
            parts.append(f"only {','.join(self.only)}")
        if self.shard is not None:
            parts.append(f"shard {self.shard}")
        return "; ".join(parts) or "all jobs"


def parse_shard(text: str) -> tuple[int, int] | None:
    """(K, N) of `K/N` with 0 <= K < N, else None."""
    found = _SHARD.fullmatch(text)
    if found is None:
        return None
    k, n = int(found.group(1)), int(found.group(2))
    return (k, n) if k < n else None


def selected(order: Sequence[str], selection: Selection) -> list[str]:
    """The job ids of `order` (the queue's order) that `selection` picks, in that order."""
    shard = parse_shard(selection.shard) if selection.shard is not None else None
    wanted = set(selection.jobs) if selection.jobs is not None else None
    picked = []
    for position, job in enumerate(order):
        if wanted is not None and job not in wanted:
            continue
        if selection.only is not None and not any(
                fnmatch.fnmatchcase(job, pattern) for pattern in selection.only):
            continue
        if shard is not None and position % shard[1] != shard[0]:
            continue
        picked.append(job)
    return picked
