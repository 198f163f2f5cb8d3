"""Which code ran: the git commit of a job's working folder, and whether it had changes.

A Colab cell that `git pull`s on every new runtime makes a batch span several commits; the
journal and the run cards say which commit produced each result. Asking git is bounded in
time, and a folder outside a work tree, or a machine without git, is simply no answer.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import attrs

GIT_SECONDS = 5.0


@attrs.frozen
class Revision:
    """A work tree's HEAD commit and whether tracked or untracked files differ from it."""

    commit: str
    dirty: bool


@functools.cache
def revision_of(folder: str) -> Revision | None:
    """The revision of the work tree `folder` is in (once per folder and process)."""
    if shutil.which("git") is None:
        return None
    head = _git(folder, "rev-parse", "--verify", "HEAD")
    if head is None:
        return None
    changes = _git(folder, "status", "--porcelain", "--untracked-files=normal")
    return Revision(commit=head.strip(), dirty=bool(changes and changes.strip()))


def _git(folder: str, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", os.path.abspath(folder), *args],
                              capture_output=True, text=True, timeout=GIT_SECONDS,
                              check=False, stdin=subprocess.DEVNULL,
                              env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None
