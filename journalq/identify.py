"""Telling a journal from whatever else is at its path, before anything touches it.

A file whose first line is not an event is not a journal (a config passed as `--state`, a
journal pretty-printed by `jq .`): it is refused, said what it looks like, and never
touched; nor is anything opened at the path that is not a regular file (opening a FIFO to
read it would hang). Writers check before they take the lock, so not even a lock file
appears beside such a file.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat

from journalq.codec import decode_line
from journalq.errors import JournalError
from journalq.fs import REAL, FileSystem


class NotAJournal(JournalError):
    """The file's first line is not a journal event: whatever it is, nobody touches it."""



EVENT_START = b'{"type":"'  # how `codec.encode` begins every line it writes
_SAMPLE = 4096  # enough of a file's head to say what it looks like


def check_journal(path: str, fs: FileSystem = REAL) -> None:
    """Refuse, before anything opens it for writing or locks it, a path that holds something
    other than a journal: a FIFO, socket, device or directory (opening a FIFO to read it
    would hang), or a file whose first line is not an event. A missing or empty file is
    fine (a journal yet to be written), and so is a torn first line that could be ours."""
    try:
        mode = os.stat(path).st_mode  # follows a symlink: a link to a journal is one
    except FileNotFoundError:
        return
    except OSError as exc:
        raise JournalError(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise JournalError(f"{path} is a {_kind(mode)}, not a journal file; nothing was "
                           "touched. Pass the path of a regular file with --state")
    try:
        line, complete = first_line(path, fs)
    except OSError as exc:
        raise JournalError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not (plausible_start(line) if not complete else
            not isinstance(decode_line(line), str)):
        raise not_a_journal(path, fs)


def first_line(path: str, fs: FileSystem = REAL) -> tuple[bytes, bool]:
    """The file's first line (without its newline) and whether it had one; reading stops as
    soon as the bytes cannot begin an event line, so a large file of anything costs one
    chunk."""
    head = b""
    for chunk in fs.read(path, chunk=_SAMPLE):  # a generator: leaving the loop closes it
        end = chunk.find(b"\n")
        if end >= 0:
            return head + chunk[:end], True
        head += chunk
        if not plausible_start(head):
            break
    return head, False


def plausible_start(data: bytes) -> bool:
    """Whether `data`, with no newline, can be the start of a journal: empty, NUL bytes (a
    power loss), or a prefix of a line as journalq writes it."""
    return (data[: len(EVENT_START)] == EVENT_START[: len(data)]
            or not data.strip(b"\0"))


def not_a_journal(path: str, fs: FileSystem = REAL) -> NotAJournal:
    """The one-line refusal of a file that is not a journal, saying what it looks like."""
    sample = b""
    with contextlib.suppress(OSError):
        sample = next(iter(fs.read(path)), b"")[:_SAMPLE]
    looks, advice = _looks_like(path, sample)
    return NotAJournal(f"{path} is not a journal ({looks}); nothing was changed. {advice}")


_BINARY = re.compile("[\x00-\x08\x0e-\x1f\x7f]")  # control characters text does not hold
_CHECK = "Check --state (a journal holds one JSON event per line)"


def _looks_like(path: str, sample: bytes) -> tuple[str, str]:
    """What a file's head looks like, and what to do about it."""
    try:
        text = sample.decode()
    except UnicodeDecodeError as exc:
        text = sample[: exc.start].decode() if exc.start >= len(sample) - 3 else ""
        if not text:
            return "it looks like binary data", _CHECK
    if _BINARY.search(text):
        return "it looks like binary data", _CHECK
    lines = [line.strip() for line in text.splitlines()]
    meaningful = [line for line in lines if line and not line.startswith("#")]
    head = meaningful[0] if meaningful else ""
    config = "Pass a config with --config, and a journal with --state"
    if path.endswith((".yaml", ".yml")) or re.match(r"(---|- |[\w.-]+:(\s|$))", head):
        return "it looks like a YAML config", config
    if path.endswith(".toml") or re.match(r"(\[[\w.-]+\]$|[\w.-]+\s*=)", head):
        return "it looks like a TOML config", config
    if lines and lines[0] in ("{", "["):
        return ("it looks like pretty-printed JSON, but a journal holds one event per line",
                f"If it is a journal reformatted by `jq .`, get one event per line back with "
                f"`jq -c . {path} > {path}.fixed` and pass that")
    reason = decode_line(sample.split(b"\n", 1)[0])
    if lines and lines[0].startswith("{") and isinstance(reason, str):
        return (f"its first line is not a journal event: {reason}",
                "If it is a journal whose first line was damaged, remove that line by hand "
                f"(keep a copy); else {_CHECK[0].lower()}{_CHECK[1:]}")
    return "its first line is text, not a journal event", _CHECK


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, in a word or two."""
    for test, word in ((stat.S_ISFIFO, "fifo (named pipe)"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return word
    return "special file"
