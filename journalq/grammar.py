"""The command line's grammar: every subcommand's arguments, and the help with its one
exit-code table. `cli` parses with it and dispatches; nothing here runs anything."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn, TypeVar

from journalq.errors import EXIT_TABLE, EXIT_USAGE
from journalq.version import VERSION

T = TypeVar("T", int, float)

EXIT_CODES = "exit codes:\n" + "".join(f"  {row.codes:<12} {row.meaning}\n"
                                       for row in EXIT_TABLE)


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one `journalq: error:` line like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"journalq: error: {message}; see `{self.prog} --help`\n")


def _state_args(sub: argparse.ArgumentParser, config_required: bool = False,
                sync: bool = True) -> None:
    sub.add_argument("--config", required=config_required, metavar="FILE",
                     help="the queue's config (YAML or TOML)")
    sub.add_argument("--state", metavar="JOURNAL",
                     help="the journal file (default: runtime_state/<queue>.jsonl)")
    if not sync:
        return
    sub.add_argument("--sync-dir", metavar="DIR",
                     help="a folder (e.g. on Google Drive) holding copies of the journal to "
                          "merge from and push to")


def _init_args(sub: argparse.ArgumentParser) -> None:
    _state_args(sub, config_required=True)
    sub.add_argument("--dry-run", action="store_true",
                     help="say which jobs would be added or changed; write nothing")


def _run_args(sub: argparse.ArgumentParser) -> None:
    _state_args(sub, config_required=True)
    sub.add_argument("--dry-run", action="store_true",
                     help="say what would be added, recovered and run, in order; write "
                          "nothing")
    sub.add_argument("--resume", action="store_true",
                     help="first recover jobs a dead runner left running")
    sub.add_argument("--stale-seconds", type=_seconds, metavar="N",
                     help="heartbeat silence after which a running job is stale "
                          "(default: the config's stale_seconds, 7200)")
    sub.add_argument("--force", action="store_true",
                     help="treat runners that look alive elsewhere as dead")
    sub.add_argument("--trust", choices=("config", "journal"),
                     help="when the journal's spec of a job differs from the config's, which "
                          "one to run")
    sub.add_argument("--quiet", action="store_true", help="do not echo the jobs' output")
    sub.add_argument("jobs", nargs="*", metavar="JOB",
                     help="run only these jobs (still in queue order)")
    sub.add_argument("--only", action="append", default=[], metavar="GLOB",
                     help="run only jobs whose id matches GLOB (repeatable)")
    sub.add_argument("--shard", metavar="K/N",
                     help="run only the jobs at positions K, K+N, K+2N... of the queue's order")
    sub.add_argument("--slots", type=_count, metavar="N",
                     help="run up to N jobs at once (default: the config's slots, 1)")
    sub.add_argument("--gpus", metavar="IDS",
                     help="one slot per GPU, e.g. 0,1 or auto (each job sees its own as "
                          "CUDA_VISIBLE_DEVICES)")
    sub.add_argument("--halt", type=_count, metavar="N",
                     help="after N failed attempts start no new job (default: the config's "
                          "halt_after_failures, never)")


def _recover_args(sub: argparse.ArgumentParser) -> None:
    _state_args(sub)
    sub.add_argument("--stale-seconds", type=_seconds, metavar="N")
    sub.add_argument("--dry-run", action="store_true", help="say what would be done")
    sub.add_argument("--force", action="store_true",
                     help="treat runners that look alive elsewhere as dead")


def _retry_args(sub: argparse.ArgumentParser) -> None:
    _state_args(sub)
    sub.add_argument("--failed", action="store_true", help="every failed job")
    sub.add_argument("jobs", nargs="*", metavar="JOB")


def _cancel_args(sub: argparse.ArgumentParser) -> None:
    _state_args(sub)
    sub.add_argument("jobs", nargs="+", metavar="JOB")


def _repair_args(sub: argparse.ArgumentParser) -> None:
    _state_args(sub, sync=False)  # a repair is of this journal only, never of the copies
    sub.add_argument("--salvage", action="store_true",
                     help="drop only the bad lines and keep every valid line after them "
                          "(default: cut the journal at the first bad line)")
    sub.add_argument("--dry-run", action="store_true", help="report, write nothing")


def _slurm_args(sub: argparse.ArgumentParser) -> None:
    _state_args(sub, config_required=True)
    sub.add_argument("--tasks", type=_count, metavar="N",
                     help="N array tasks, task K running shard K/N (default: one per job)")
    sub.add_argument("--array-limit", type=_count, metavar="K",
                     help="at most K tasks at once (--array=...%%K)")
    sub.add_argument("--gpus-per-task", type=_count, metavar="G", help="--gres=gpu:G")
    sub.add_argument("--submit", action="store_true",
                     help="submit the script with sbatch and print the Slurm job id")
    sub.add_argument("sbatch_options", nargs=argparse.REMAINDER, metavar="-- SBATCH_OPTION",
                     help="options for the script's #SBATCH lines (-p gpu, --time=1:00:00)")


# ---- reading commands (issue 14): status's filters and formats, logs, wait, collect ----
# They never take the writer lock; each builds its queue here and calls its command.


def _status_args(sub: argparse.ArgumentParser) -> None:
    _state_args(sub)
    sub.add_argument("--status", action="append", default=[], metavar="S[,S...]",
                     dest="statuses", help="only jobs in these statuses (pending, running, "
                     "done, failed, cancelled); the counts stay the whole queue's")
    sub.add_argument("--job", action="append", default=[], metavar="GLOB", dest="globs",
                     help="only jobs whose id matches this shell pattern (repeatable)")
    sub.add_argument("--format", choices=("table", "json", "tsv"), default="table",
                     help="table (default), json (schema in README) or tsv (a header row, "
                          "then one row per job)")
    sub.add_argument("--json", action="store_const", const="json", dest="format",
                     help="the same as --format json")
    sub.add_argument("--stale-seconds", type=_seconds, metavar="N")


def _logs_args(sub: argparse.ArgumentParser) -> None:
    _state_args(sub)
    sub.add_argument("job", metavar="JOB")
    sub.add_argument("--attempt", type=int, metavar="N", help="that attempt (default: latest)")
    sub.add_argument("--follow", action="store_true",
                     help="stream the log until the attempt settles, then exit with the "
                          "job's own exit status (128+n after signal n)")


def _wait_args(sub: argparse.ArgumentParser) -> None:
    _state_args(sub)
    sub.add_argument("jobs", nargs="*", metavar="JOB", help="job ids or globs (default: all)")
    sub.add_argument("--timeout", type=_seconds, metavar="S",
                     help="give up after S seconds (exit 124)")


def _collect_args(sub: argparse.ArgumentParser) -> None:
    _state_args(sub)
    sub.add_argument("--file", metavar="NAME",
                     help="the result file in each job's out_dir (.tsv, .csv, .jsonl or "
                          ".json; default: the job's --summary-path)")
    sub.add_argument("--format", choices=("tsv", "csv", "jsonl"),
                     help="output format (default: --out's extension, else tsv)")
    sub.add_argument("--out", metavar="PATH", help="write the table there (atomically)")
    sub.add_argument("--done-only", action="store_true", help="only jobs that are done")


READERS = {
    "logs": ("print an attempt's log, or follow it while it runs", _logs_args),
    "wait": ("block until the jobs are settled: exit 0 all done, 1 any failed, 124 timeout",
             _wait_args),
    "collect": ("one table of every job and the rows of its result file", _collect_args),
}


_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "init": ("create the journal, or add the config's new jobs to it", _init_args),
    "run": ("run the queue's pending jobs one at a time", _run_args),
    "status": ("show the queue (never writes)", _status_args),
    "recover": ("settle running jobs whose runner is gone", _recover_args),
    "retry": ("give failed or cancelled jobs a fresh attempt budget", _retry_args),
    "cancel": ("cancel pending jobs so that run skips them", _cancel_args),
    "sync": ("merge the sync folder's copies into the journal and copy it back", _state_args),
    "repair": ("drop a journal's corrupt lines after keeping a backup", _repair_args),
    "slurm": ("write (and submit) a Slurm job array running the pending jobs", _slurm_args),
    **READERS,
}


def parser() -> argparse.ArgumentParser:
    """The command line's grammar."""
    parser = _Parser(
        prog="journalq",
        description="A crash-safe experiment queue: every transition is an fsync'd line in "
                    "an append-only journal, and the queue's state is a fold over it.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"journalq {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)
    for name, (help_text, add_arguments) in _COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text,
                                  epilog=EXIT_CODES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(sub)
    return parser


def _positive(kind: Callable[[str], T], what: str, most: float) -> Callable[[str], T]:
    """An argparse type: a `kind` number above 0 and at most `most`, else one line."""
    def convert(text: str) -> T:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not 0 < float(value) <= most:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {what} above 0")
        return value

    return convert


_count = _positive(int, "a whole number", 10_000)
_seconds = _positive(float, "a number of seconds", 1e12)
