"""Run cards: `<out_dir>/journalq-run.toml`, written after each attempt exits.

A card is how a job's outcome survives when the journal's last lines do not (a Colab
runtime dies before its journal copy reaches Drive): the next session finds the card and
settles the job from it instead of running it again. It is a hint, never the source of
truth: a card counts only for the attempt and session it names.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import tomllib
from typing import Any, TypeGuard

import tomli_w

from journalq.fs import REAL, FileSystem
from journalq.policy import RunCard

CARD_NAME = "journalq-run.toml"


def card_path(out_dir: str) -> str:
    """Where a job's run card lives."""
    return posixpath.join(out_dir, CARD_NAME)


def write_card(out_dir: str, fields: dict[str, Any], fs: FileSystem = REAL,
               durable: bool = True) -> None:
    """Write the card atomically: temp file, fsync, rename over the old card.

    `durable=False` skips both fsyncs. That is right when out_dir is on the journal's own
    disk: there the card only has to survive a crash of journalq (the page cache does), and
    `job_finished` is fsync'd a moment later. On another disk (Drive, on Colab) the card is
    what outlives the runtime, so it must be durable before `job_finished` is written.
    """
    target = card_path(out_dir)
    temp = f"{target}.tmp-{os.getpid()}"
    try:
        fs.write_file(temp, tomli_w.dumps({k: v for k, v in fields.items() if v is not None})
                      .encode(), durable)
        fs.replace(temp, target)
    except OSError:
        with contextlib.suppress(OSError):
            fs.remove(temp)  # a half-written temp file is clutter in the user's results
        raise
    if durable:  # the rename is durable only once the folder is
        fs.fsync_dir(out_dir)


def read_card(out_dir: str, fs: FileSystem = REAL) -> RunCard | None:
    """The card in `out_dir`, or None if there is none, it cannot be read, or its fields
    are not what journalq writes (a hint, never trusted: its values go into the journal,
    where a `return_code = "boom"` made every later read refuse the line)."""
    try:
        data = b"".join(fs.read(card_path(out_dir)))
        fields = tomllib.loads(data.decode())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    job, attempt, session = fields.get("job"), fields.get("attempt"), fields.get("session")
    outcome, return_code = fields.get("outcome"), fields.get("return_code")
    if not (isinstance(job, str) and isinstance(outcome, str) and isinstance(session, str)
            and _SESSION.fullmatch(session) and _whole(attempt) and 0 < attempt < 2**31
            and (return_code is None or (_whole(return_code) and abs(return_code) < 2**31))):
        return None
    return RunCard(job=job, attempt=attempt, session=session, outcome=outcome,
                   return_code=return_code)


_SESSION = re.compile(r"[0-9a-f]{12}")


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
