"""One exception family; each kind carries the exit code the CLI returns for it.

Messages are complete one-line sentences for people: what is wrong, where, and what to do.
The CLI prints `journalq: <message>` and exits with `exit_code`; nothing else turns errors
into exit codes.
"""

from __future__ import annotations

import attrs

EXIT_OK = 0
EXIT_JOBS_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_JOURNAL = 4
EXIT_BUSY = 5
EXIT_DECISION = 6
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in journalq, not in the input
EXIT_TIMEOUT = 124  # as timeout(1) reports a command it stopped
EXIT_SIGHUP = 129
EXIT_SIGINT = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a reader that went away
EXIT_SIGTERM = 143


@attrs.frozen
class ExitCode:
    """One documented exit status: `journalq --help` prints the table, the README holds the
    same rows (a test compares them), and commands return these constants only."""

    codes: str
    meaning: str


EXIT_TABLE = (
    ExitCode("0", "success (run: every selected job is done, or cancelled)"),
    ExitCode("1", "run, wait: at least one job failed (see the summary and its log)"),
    ExitCode("2", "usage error: bad flags, unknown job id, missing --state/--config"),
    ExitCode("3", "config error: the file, line or field is named"),
    ExitCode("4", "journal error: corrupt, not a journal, unwritable, fsync failed, disk "
                  "full, written by a newer journalq, unreadable sync folder; logs: the "
                  "attempt's log is missing or on another machine"),
    ExitCode("5", "busy: another journalq holds the journal, or a live runner that started "
                  "earlier selected the same jobs (this one ran only the others)"),
    ExitCode("6", "decision needed: orphaned jobs (use --resume) or changed specs (use "
                  "init or --trust)"),
    ExitCode("70", "internal error (a bug: rerun with JOURNALQ_DEBUG=1 and report it)"),
    ExitCode("124", "wait: the timeout passed before the jobs settled"),
    ExitCode("129/130/143", "stopped by SIGHUP (or a closed terminal) / SIGINT (Ctrl-C) / "
                            "SIGTERM"),
    ExitCode("141", "the reader of journalq's output went away (`journalq status | head`)"),
)


class Error(Exception):
    """journalq's one public exception (`journalq.Error`): a non-zero outcome, with the exit
    code the command line would return and its one-line message. A notebook cell that
    calls `journalq.run(...)` raises it, so "Run all" stops where a shell would have."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code


class JournalqError(Error):
    """Base of every error journalq reports to a person instead of a traceback."""


class UsageError(JournalqError):
    """The command line asks for something that cannot be done (unknown job, missing flag)."""

    exit_code = EXIT_USAGE


class ConfigError(JournalqError):
    """A config file is missing, unparsable or invalid; the message names file and field."""

    exit_code = EXIT_CONFIG


class JournalError(JournalqError):
    """The journal cannot be read or written safely (corrupt line, I/O error, newer format)."""

    exit_code = EXIT_JOURNAL


class BusyError(JournalqError):
    """Another writer holds the journal, or another runner is alive elsewhere."""

    exit_code = EXIT_BUSY


class Hangup(KeyboardInterrupt):
    """SIGHUP, or the terminal went away: like Ctrl-C, the operator's session stopped us.

    A KeyboardInterrupt, so that whatever handles an interruption handles this one too."""

    exit_code = EXIT_SIGHUP


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a scheduler's stop) where journalq stops as if by Ctrl-C."""

    exit_code = EXIT_SIGTERM


def interrupt_code(exc: KeyboardInterrupt) -> int:
    """The exit status of an interruption: 129 for a hangup, 143 for SIGTERM, 130 for
    Ctrl-C."""
    return exc.exit_code if isinstance(exc, (Hangup, Terminated)) else EXIT_SIGINT


class DecisionNeeded(JournalqError):
    """journalq will not guess: stale jobs need --resume, a changed spec needs --trust."""

    exit_code = EXIT_DECISION


class TimedOut(JournalqError):
    """`wait` gave up: its timeout passed before the jobs it waits on settled."""

    exit_code = EXIT_TIMEOUT
