"""The command line: parse, dispatch to one function per subcommand, and turn errors into
one-line messages and exit codes. This is the only place that does either."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from journalq import __version__
from journalq.errors import (
    EXIT_JOURNAL,
    EXIT_SIGINT,
    EXIT_USAGE,
    JournalqError,
    UsageError,
)

EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in journalq, not in the input
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a reader that went away

if TYPE_CHECKING:  # commands are imported when dispatched, to keep start-up fast
    from journalq.workspace import Console

EXIT_CODES = """\
exit codes:
  0    success (run: every job is done)
  1    run: at least one job failed (see the summary and its log)
  2    usage error: bad flags, unknown job id, missing --state/--config
  3    config error: the file, line or field is named
  4    journal error: corrupt, unwritable, fsync failed, or written by a newer journalq
  5    busy: another journalq holds the journal, or another runner looks alive
  6    decision needed: orphaned jobs (use --resume) or changed specs (use --trust)
  70   internal error (a bug: rerun with JOURNALQ_DEBUG=1 and report it)
  129/130/143  run was stopped by SIGHUP / SIGINT (Ctrl-C) / SIGTERM
"""


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


def _run_args(sub: argparse.ArgumentParser) -> None:
    _state_args(sub, config_required=True)
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


def _status_args(sub: argparse.ArgumentParser) -> None:
    _state_args(sub)
    sub.add_argument("--json", action="store_true", help="print JSON (schema in README)")
    sub.add_argument("--stale-seconds", type=_seconds, metavar="N")


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


_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "init": ("create the journal, or add the config's new jobs to it", _init_args),
    "run": ("run the queue's pending jobs one at a time", _run_args),
    "status": ("show the queue (never writes)", _status_args),
    "recover": ("settle running jobs whose runner is gone", _recover_args),
    "retry": ("give failed or cancelled jobs a fresh attempt budget", _retry_args),
    "cancel": ("cancel pending jobs so that run skips them", _cancel_args),
    "sync": ("merge the sync folder's copies into the journal and copy it back", _state_args),
    "repair": ("drop a journal's corrupt lines after keeping a backup", _repair_args),
}


def _parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The command line's grammar. Only the subcommand named in `argv` gets its arguments:
    building all of them costs `journalq status` a tenth of its start-up."""
    parser = _Parser(
        prog="journalq",
        description="A crash-safe experiment queue: every transition is an fsync'd line in "
                    "an append-only journal, and the queue's state is a fold over it.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"journalq {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)
    wanted = next((word for word in argv if not word.startswith("-")), None)
    for name, (help_text, add_arguments) in _COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text,
                                  epilog=EXIT_CODES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        if wanted in (name, None) or wanted not in _COMMANDS:
            add_arguments(sub)
    return parser


def _seconds(text: str) -> float:
    """A positive number of seconds, for argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number of seconds")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run journalq with `argv` (default: the process's) and return its exit code."""
    words = sys.argv[1:] if argv is None else list(argv)
    args = _parser(words).parse_args(words)
    console = _console()
    try:
        return _dispatch(args, console)
    except JournalqError as exc:
        console.err(f"journalq: error: {exc.message}")
        return exc.exit_code
    except KeyboardInterrupt:
        console.err("journalq: interrupted")
        return EXIT_SIGINT
    except BrokenPipeError:
        # `journalq status | head`: the reader left; not an error worth a message.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        # Files journalq does not own (an out_dir, a log folder) can fail in many ways; the
        # journal itself was left consistent by the code that writes it.
        where = f": {exc.filename}" if exc.filename else ""
        console.err(f"journalq: error: {exc.strerror or exc}{where}; check that path's "
                    "permissions and free space")
        return EXIT_JOURNAL
    except Exception as exc:
        if os.environ.get("JOURNALQ_DEBUG"):
            raise
        console.err(f"journalq: error: internal error ({type(exc).__name__}: {exc}); rerun "
                    "with JOURNALQ_DEBUG=1 for a traceback and report it")
        return EXIT_INTERNAL


def _dispatch(args: argparse.Namespace, console: Console) -> int:
    from journalq import commands

    if args.command == "init":
        return commands.init(args.config, args.state, console, args.sync_dir)
    if args.command == "status":
        return commands.status(args.state, args.config, args.json, args.stale_seconds, console,
                               args.sync_dir)
    if args.command == "recover":
        from journalq import recovery

        return recovery.recover(args.state, args.config, args.stale_seconds, args.dry_run,
                                args.force, console, args.sync_dir)
    if args.command == "retry":
        if args.failed and args.jobs:
            raise UsageError("give --failed or job ids, not both")
        return commands.retry(args.state, args.config, args.jobs, args.failed, console,
                              args.sync_dir)
    if args.command == "cancel":
        return commands.cancel(args.state, args.config, args.jobs, console, args.sync_dir)
    if args.command == "sync":
        return commands.sync(args.state, args.config, args.sync_dir, console)
    if args.command == "repair":
        from journalq import repair
        from journalq.workspace import resolve

        path, _ = resolve(args.state, args.config)
        return repair.repair(path, salvage=args.salvage, dry_run=args.dry_run, say=console.out)
    if args.command == "run":
        from journalq import batch

        return batch.run(args.config, args.state, resume=args.resume,
                         stale_seconds=args.stale_seconds, force=args.force, trust=args.trust,
                         quiet=args.quiet, console=console, sync_dir=args.sync_dir)
    raise UsageError(f"unknown command {args.command}")


def _console() -> Console:
    from journalq.workspace import Console

    def out(text: str) -> None:
        print(text, flush=True)

    def err(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def echo(data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    def write(text: str) -> None:
        sys.stdout.write(text)

    return Console(out=out, err=err, echo=echo, write=write)

