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
from typing import TYPE_CHECKING, TextIO

from journalq import grammar
from journalq.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_JOURNAL,
    EXIT_OK,
    EXIT_USAGE,
    JournalqError,
    UsageError,
    interrupt_code,
)
from journalq.render import Console

if TYPE_CHECKING:  # commands are imported when dispatched, to keep start-up fast
    from journalq.opened import Opened

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


def main(argv: Sequence[str] | None = None) -> int:
    """Run journalq with `argv` (default: the process's) and return its exit code."""
    words = sys.argv[1:] if argv is None else list(argv)
    console = _console()
    odd = _not_utf8(words)
    if odd is not None:  # before anything reads a path, let alone writes one to the journal
        console.err(f"journalq: error: {odd}")
        return EXIT_USAGE
    args = grammar.parser().parse_args(words)
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
    if command in grammar.READERS or command == "status":
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

    return Console(out=out, err=err, echo=echo, write=write, on_gone=_gone, descriptors=True)


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
