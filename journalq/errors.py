"""One exception family; each kind carries the exit code the CLI returns for it.

Messages are complete one-line sentences for people: what is wrong, where, and what to do.
The CLI prints `journalq: <message>` and exits with `exit_code`; nothing else turns errors
into exit codes.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_JOBS_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_JOURNAL = 4
EXIT_BUSY = 5
EXIT_DECISION = 6
EXIT_SIGHUP = 129
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class JournalqError(Exception):
    """Base of every error journalq reports to a person instead of a traceback."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


class DecisionNeeded(JournalqError):
    """journalq will not guess: stale jobs need --resume, a changed spec needs --trust."""

    exit_code = EXIT_DECISION
