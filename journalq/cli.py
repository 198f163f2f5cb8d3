"""The command line: parse, dispatch to one function per subcommand, and turn errors into
one-line messages and exit codes. This is the only place that does either."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn, TextIO

from journalq.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_JOURNAL,
    EXIT_OK,
    EXIT_TABLE,
    EXIT_USAGE,
    JournalqError,
    UsageError,
    interrupt_code,
)
from journalq.render import Console
from journalq.version import VERSION as __version__

if TYPE_CHECKING:  # commands are imported when dispatched, to keep start-up fast
    from journalq.opened import Opened

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


_READERS = {
    "logs": ("print an attempt's log, or follow it while it runs", _logs_args),
    "wait": ("block until the jobs are settled: exit 0 all done, 1 any failed, 124 timeout",
             _wait_args),
    "collect": ("one table of every job and the rows of its result file", _collect_args),
}


def _read(args: argparse.Namespace, console: Console) -> int:
    """Dispatch a reading command; `wait` may start before the journal exists when it has
    the config (the jobs of a run about to start)."""
    from journalq.opened import open_queue

    opened = open_queue(console=console, state=args.state, config=args.config,
                        sync_dir=args.sync_dir, must_exist=args.command != "wait")
    from journalq.reader import check_journal

    check_journal(opened.path, opened.fs)  # a FIFO would hang the read; a config is no journal
    if args.command == "status":
        from journalq.commands.status import status

        return status(opened, fmt=args.format, statuses=args.statuses, globs=args.globs,
                      stale_seconds=args.stale_seconds)
    if args.command == "logs":
        from journalq.commands.logs import logs

        return logs(opened, job_id=args.job, attempt=args.attempt, follow=args.follow)
    if args.command == "wait":
        from journalq.commands.wait import wait

        return wait(opened, job_ids=args.jobs, timeout=args.timeout)
    from journalq.commands.collect import collect

    return collect(opened, file=args.file, fmt=args.format, out=args.out,
                   done_only=args.done_only)


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
    **_READERS,
}


def _parser() -> argparse.ArgumentParser:
    """The command line's grammar."""
    parser = _Parser(
        prog="journalq",
        description="A crash-safe experiment queue: every transition is an fsync'd line in "
                    "an append-only journal, and the queue's state is a fold over it.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"journalq {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)
    for name, (help_text, add_arguments) in _COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text,
                                  epilog=EXIT_CODES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(sub)
    return parser


def _count(text: str) -> int:
    """A whole number from 1, for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number from 1")
    return value


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
    console = _console()
    odd = _not_utf8(words)
    if odd is not None:  # before anything reads a path, let alone writes one to the journal
        console.err(f"journalq: error: {odd}")
        return EXIT_USAGE
    args = _parser().parse_args(words)
    try:
        code = _dispatch(args, console)
    except JournalqError as exc:
        console.err(f"journalq: error: {exc.message}")
        return exc.exit_code
    except KeyboardInterrupt as exc:
        console.err("journalq: interrupted")
        return interrupt_code(exc)
    except BrokenPipeError:
        # `journalq status | head`: the reader left; not an error worth a message.
        _to_devnull(sys.stdout)
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
    console.write("")  # flush what `write` streamed, so a reader that left is noticed here
    if code == EXIT_OK and console.lost & {"out", "write"}:
        return EXIT_BROKEN_PIPE  # the result never reached its reader, as SIGPIPE would say
    return code


def _not_utf8(words: Sequence[str]) -> str | None:
    """Why a command-line word cannot be used, if one is not UTF-8 (Python hands such bytes
    over as lone surrogates): paths and the argv are written into the journal, which is
    UTF-8 JSON, so such a word is refused before anything is written."""
    for number, word in enumerate(words):
        try:
            word.encode()
        except UnicodeEncodeError:
            name, equals, _ = word.partition("=")
            if equals and name.startswith("--"):
                what = name
            elif number and words[number - 1].startswith("--"):
                what = words[number - 1]
            else:
                what = f"argument {number + 1}"
            return (f"{what} {os.fsencode(word)!r} is not UTF-8; journalq keeps paths in a "
                    "UTF-8 journal. Rename it (or pick a UTF-8 name) and rerun")
    return None


def _dispatch(args: argparse.Namespace, console: Console) -> int:
    from journalq.reader import check_journal

    command = args.command
    if command == "repair":
        from journalq import repair
        from journalq.opened import open_queue

        opened = open_queue(console=console, state=args.state, config=args.config)
        check_journal(opened.path, opened.fs)
        return repair.repair(opened.path, salvage=args.salvage, dry_run=args.dry_run,
                             say=console.out)
    if command in _READERS or command == "status":
        return _read(args, console)
    opened = _opened(args, console)
    if command in ("init", "run") and args.dry_run:
        return _dry_run(args, opened)
    if command == "init":
        from journalq.commands.init import init

        return init(opened)
    if command == "recover":
        from journalq.commands.recover import recover

        return recover(opened, stale_seconds=args.stale_seconds, dry_run=args.dry_run,
                       force=args.force)
    if command == "retry":
        from journalq.commands.edit import retry

        return retry(opened, job_ids=args.jobs, failed=args.failed)
    if command == "cancel":
        from journalq.commands.edit import cancel

        return cancel(opened, job_ids=args.jobs)
    if command == "sync":
        from journalq.commands.sync import sync

        return sync(opened)
    if command == "slurm":
        from journalq.commands.slurm import slurm

        return slurm(opened, tasks=args.tasks, array_limit=args.array_limit,
                     gpus_per_task=args.gpus_per_task, submit=args.submit,
                     sbatch_options=args.sbatch_options)
    if command == "run":
        from journalq.commands.run import run

        return run(opened, resume=args.resume, stale_seconds=args.stale_seconds,
                   force=args.force, trust=args.trust, quiet=args.quiet, jobs=args.jobs,
                   only=args.only, shard=args.shard, slot_count=args.slots, gpus=args.gpus,
                   halt=args.halt)
    raise UsageError(f"unknown command {command}")


def _dry_run(args: argparse.Namespace, opened: Opened) -> int:
    from journalq.commands import plan

    if args.command == "init":
        return plan.dry_run(opened, command="init")
    from journalq.commands.run import plan_selection, plan_slots

    return plan.dry_run(opened, command="run", resume=args.resume,
                        stale_seconds=args.stale_seconds, force=args.force, trust=args.trust,
                        selection=plan_selection(args.jobs, args.only, args.shard),
                        slots=plan_slots(opened.require_config(), args.slots, args.gpus))


def _opened(args: argparse.Namespace, console: Console) -> Opened:
    """The queue the command line names, built once for the command."""
    from journalq.opened import open_queue

    return open_queue(console=console, state=args.state, config=args.config,
                      sync_dir=args.sync_dir,
                      must_exist=args.command not in ("init", "run", "sync", "slurm"))


def _console() -> Console:
    """The terminal (or pipes) as a Console: a stream that fails is pointed at /dev/null,
    and a terminal that hung up (EIO) is a hangup, as if SIGHUP had come."""

    def out(text: str) -> None:
        _guarded(sys.stdout, lambda: print(text, flush=True))

    def err(text: str) -> None:
        _guarded(sys.stderr, lambda: print(text, file=sys.stderr, flush=True))

    def echo(data: bytes) -> None:
        def send() -> None:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

        _guarded(sys.stdout, send)

    def write(text: str) -> None:
        _guarded(sys.stdout, lambda: sys.stdout.write(text) if text else sys.stdout.flush())

    return Console(out=out, err=err, echo=echo, write=write, on_gone=_gone)


def _guarded(stream: TextIO, action: Callable[[], object]) -> None:
    """Do `action`; if the stream has gone away, point it at /dev/null before saying so, so
    that Python's own flush at exit neither fails (exit 120) nor complains."""
    try:
        action()
    except OSError:
        _to_devnull(stream)
        raise


def _to_devnull(stream: TextIO) -> None:
    with contextlib.suppress(OSError, ValueError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)


def _gone(exc: OSError) -> None:
    """A write to the terminal failed. EIO (or ENXIO) means it hung up: the same as SIGHUP,
    so it is delivered as one to whoever handles SIGHUP (`run` stops its job as interrupted,
    the entry point turns it into an interruption). A reader that left a pipe (EPIPE) only
    silences that output (`run | head` goes on; `status | head` exits 141)."""
    if exc.errno in (errno.EIO, errno.ENXIO) and callable(signal.getsignal(signal.SIGHUP)):
        signal.raise_signal(signal.SIGHUP)
