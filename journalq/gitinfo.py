"""Which code ran: the git commit of a job's working folder, and whether it had changes.

A Colab cell that `git pull`s on every new runtime makes a batch span several commits; the
journal and the run cards say which commit produced each result. Asking git is bounded in
time, and a folder outside a work tree, or a machine without git, is simply no answer; a
`git status` that does not answer in time leaves `dirty` unknown (None), never "clean".

A run asks once per folder (`Revisions`), not once per process: `journalq.run` in a notebook
lives as long as the kernel, across `git pull`s and `%cd`s, and must record the commit of
each run's own tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import attrs

GIT_SECONDS = 5.0


@attrs.frozen
class Revision:
    """A work tree's HEAD commit and whether tracked or untracked files differ from it."""

    commit: str
    dirty: bool | None  # None: git did not say in time


def revision_of(folder: str) -> Revision | None:
    """The revision of the work tree `folder` is in, as it is now."""
    if shutil.which("git") is None:
        return None
    head = _git(folder, "rev-parse", "--verify", "HEAD")
    if head is None:
        return None
    changes = _git(folder, "status", "--porcelain", "--untracked-files=normal")
    return Revision(commit=head.strip(),
                    dirty=None if changes is None else bool(changes.strip()))


class Revisions:
    """One run's memo of `revision_of`, by absolute folder: git is asked once per folder and
    run (a job start must not cost two git calls), and never answers for another run."""

    def __init__(self) -> None:
        self._known: dict[str, Revision | None] = {}

    def __call__(self, folder: str) -> Revision | None:
        where = os.path.abspath(folder)
        if where not in self._known:
            self._known[where] = revision_of(where)
        return self._known[where]


def _git(folder: str, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", os.path.abspath(folder), *args],
                              capture_output=True, text=True, timeout=GIT_SECONDS,
                              check=False, stdin=subprocess.DEVNULL,
                              env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None
