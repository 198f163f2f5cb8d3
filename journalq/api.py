"""journalq from Python, for notebooks: `journalq.run`, `status`, `wait`, `collect`, `logs`.

`!journalq run ...` in a notebook cell never raises: IPython drops the exit code of `!`
commands (ipython #12264), so "Run all" sails past a failed or refused run. These functions
call the very command functions the command line calls, with the same flags by keyword,
and turn any non-zero outcome into `journalq.Error` (its `exit_code` is the one the command
line would return, its `message` the one line it would print), so a failed run stops the
notebook. Output streams into the cell as on a terminal: the console writes to whatever
`sys.stdout` and `sys.stderr` are when it writes, which is where IPython captures a cell.
"""

from __future__ import annotations

import codecs
import json
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from journalq.errors import EXIT_JOURNAL, EXIT_OK, EXIT_TABLE, Error, interrupt_code
from journalq.opened import Opened, open_queue
from journalq.render import Console

PathLike = str | os.PathLike[str]


def run(config: PathLike, *, state: PathLike | None = None,
        sync_dir: PathLike | None = None, resume: bool = False,
        stale_seconds: float | None = None, force: bool = False, trust: str | None = None,
        quiet: bool = False, jobs: str | Iterable[str] = (), only: str | Iterable[str] = (),
        shard: str | None = None, slots: int | None = None, gpus: str | None = None,
        halt: int | None = None) -> None:
    """`journalq run`: run the config's pending jobs (or those `jobs`, `only` globs and
    `shard` "K/N" select) in `slots` (or one per GPU of `gpus`, e.g. "0,1" or "auto");
    returns when they are all done (or cancelled), raises `journalq.Error` otherwise
    (exit_code 1: a job failed; 6: a decision is needed, e.g. `resume=True`; 5: another
    runner has the jobs; 130: interrupted)."""
    from journalq.commands.run import run as run_command

    opened = _open(config=config, state=state, sync_dir=sync_dir, must_exist=False)
    _settle("run", opened, lambda: run_command(
        opened, resume=resume, stale_seconds=stale_seconds, force=force, trust=trust,
        quiet=quiet, jobs=_words(jobs), only=_words(only), shard=shard, slot_count=slots,
        gpus=gpus, halt=halt))


def status(config: PathLike | None = None, *, state: PathLike | None = None,
           sync_dir: PathLike | None = None, statuses: str | Iterable[str] = (),
           jobs: str | Iterable[str] = (), stale_seconds: float | None = None) -> dict[str, Any]:
    """`journalq status --json` as plain data (the document the README describes): the
    jobs `statuses` and `jobs` (id globs) pick, and the whole queue's counts."""
    from journalq.commands.status import status as status_command

    pieces: list[str] = []
    opened = _open(config=config, state=state, sync_dir=sync_dir, write=pieces.append)
    _settle("status", opened, lambda: status_command(
        opened, fmt="json", statuses=_words(statuses), globs=_words(jobs),
        stale_seconds=stale_seconds))
    document: dict[str, Any] = json.loads("".join(pieces))
    return document


def wait(jobs: str | Iterable[str] = (), *, config: PathLike | None = None,
         state: PathLike | None = None, sync_dir: PathLike | None = None,
         timeout: float | None = None) -> None:
    """`journalq wait`: block until the jobs (ids or globs; default all) are settled;
    raises `journalq.Error` with exit_code 1 if one failed, 124 when `timeout` passed."""
    from journalq.commands.wait import wait as wait_command

    opened = _open(config=config, state=state, sync_dir=sync_dir, must_exist=False)
    _settle("wait", opened, lambda: wait_command(opened, job_ids=_words(jobs),
                                                 timeout=timeout))


def collect(config: PathLike | None = None, *, state: PathLike | None = None,
            sync_dir: PathLike | None = None, file: str | None = None,
            done_only: bool = False) -> list[dict[str, Any]]:
    """`journalq collect` as a list of rows (dicts with every column, None where empty):
    `pandas.DataFrame(journalq.collect(...))` is the sweep's table."""
    from journalq.commands.collect import collect as collect_command

    pieces: list[str] = []
    opened = _open(config=config, state=state, sync_dir=sync_dir, write=pieces.append)
    _settle("collect", opened, lambda: collect_command(opened, file=file, fmt="jsonl",
                                                       done_only=done_only))
    return [json.loads(line) for line in "".join(pieces).splitlines()]


def logs(job: str, *, config: PathLike | None = None, state: PathLike | None = None,
         sync_dir: PathLike | None = None, attempt: int | None = None,
         follow: bool = False) -> None:
    """`journalq logs`: print the attempt's log into the cell; with `follow`, until it
    settles, raising `journalq.Error` with its exit status if that is not 0."""
    from journalq.commands.logs import logs as logs_command

    opened = _open(config=config, state=state, sync_dir=sync_dir)
    _settle("logs", opened, lambda: logs_command(opened, job_id=job, attempt=attempt,
                                                 follow=follow))


# ---- the shared steps ----------------------------------------------------------------------


def _open(*, config: PathLike | None, state: PathLike | None, sync_dir: PathLike | None,
          must_exist: bool = True, write: Callable[[str], None] | None = None) -> Opened:
    """The queue, opened as the command line opens it, with a console on this process's
    streams (or, for data returned rather than shown, `write` collecting it)."""
    console = stream_console()
    if write is not None:
        console = Console(out=console.out, err=console.err, echo=console.echo, write=write)
    try:
        return open_queue(console=console, state=_text(state), config=_text(config),
                          sync_dir=_text(sync_dir), must_exist=must_exist)
    except OSError as exc:
        raise _os_error(exc) from exc


def _settle(command: str, opened: Opened, call: Callable[[], int]) -> None:
    """Run a command function; a non-zero outcome raises `Error` with its exit code."""
    try:
        code = call()
    except OSError as exc:  # the command line's last resort, the same words
        raise _os_error(exc) from exc
    except KeyboardInterrupt as exc:  # stopped before `run`'s loop (a merge), or mid-read
        code = interrupt_code(exc)
    if code != EXIT_OK:
        raise Error(_outcome(command, code, opened), exit_code=code)


def _outcome(command: str, code: int, opened: Opened) -> str:
    """The one-line message for a command that returned `code` rather than raising."""
    if code == 1 and command in ("run", "wait"):
        from journalq.reading import read_with_copies
        from journalq.state import Status

        queue = read_with_copies(opened)
        failed = [job.id for job in queue.by_status(Status.FAILED)]
        if not failed and command == "run":
            # halt_after_failures stopped the run: the jobs that failed had attempts left.
            retrying = [job.id for job in queue.by_status(Status.PENDING)
                        if job.last is not None and job.last.outcome == "failed"]
            return (f"run: halted after failed attempt(s) (halt_after_failures) of "
                    f"{', '.join(retrying[:5]) or 'its jobs'}"
                    f"{f' and {len(retrying) - 5} more' if len(retrying) > 5 else ''}; "
                    "the rest are pending: `journalq.run(...)` again goes on")
        listed = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more"
                                          if len(failed) > 5 else "")
        return (f"{command}: {len(failed)} job(s) failed ({listed}); "
                "`journalq.logs(JOB, ...)` shows why, `journalq retry --failed` reruns them")
    if command == "logs":
        return f"logs: the attempt ended with exit status {code}"
    meaning = next((row.meaning for row in EXIT_TABLE if str(code) in row.codes.split("/")),
                   "see the exit codes in the README")
    return f"{command} ended with exit code {code}: {meaning}"


def _os_error(exc: OSError) -> Error:
    where = f": {exc.filename}" if exc.filename else ""
    return Error(f"{exc.strerror or exc}{where}; check that path's permissions and free space",
                 exit_code=EXIT_JOURNAL)


def _text(path: PathLike | None) -> str | None:
    return None if path is None else os.fspath(path)


def _words(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def stream_console() -> Console:
    """A console on `sys.stdout` / `sys.stderr` as they are at each write (a notebook
    swaps them per cell); a job's bytes are decoded incrementally where a stream takes
    only text (IPython's has no `.buffer`), so a character split across reads survives."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def out(text: str) -> None:
        print(text, file=sys.stdout, flush=True)

    def err(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def echo(data: bytes) -> None:
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None:
            sys.stdout.flush()
            buffer.write(data)
            buffer.flush()
        else:
            sys.stdout.write(decoder.decode(data))
            sys.stdout.flush()

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    return Console(out=out, err=err, echo=echo, write=write)
