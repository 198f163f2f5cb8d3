"""`journalq slurm`: write (and with --submit, submit) a Slurm job array that runs what is
pending in the queue: one array task per pending job, or N tasks each running one shard.

The journal is brought up to date with the config first (as `init` does) and with the
shared folder's copies, so "pending" means what every runtime's copy says together; a job
that a lost copy ran is settled from its run card instead of being submitted again. What
each task runs is frozen in a manifest beside the script, in a folder of its own per
submission under `runtime_state/slurm/<queue>/`: a later submission never rewrites what a
running array reads, and the project folder (which the tasks `cd` into, to find the config,
the workers and the out_dirs) is on storage every node sees whenever the jobs can run at all.
The sync folder holds only journal copies, by its exact name grammar.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
import sys
from collections.abc import Sequence

from journalq import __version__, policy, render, slurmscript
from journalq.card import read_card
from journalq.errors import EXIT_OK, EXIT_USAGE, JournalqError, UsageError
from journalq.opened import Opened
from journalq.selection import Selection, selected
from journalq.session import Session
from journalq.state import Queue, Status
from journalq.writing import writing

# Slurm's default MaxArraySize is 1001 (task ids 0-1000); sites may raise or lower it.
DEFAULT_MAX_ARRAY = 1001


class SubmitError(JournalqError):
    """sbatch is missing or refused the script (it was written; the message says where)."""

    exit_code = EXIT_USAGE


def slurm(opened: Opened, *, tasks: int | None = None, array_limit: int | None = None,
          gpus_per_task: int | None = None, submit: bool = False,
          sbatch_options: Sequence[str] = ()) -> int:
    """Write the array script for what is pending (and submit it); 0 also when nothing is."""
    cfg = opened.require_config()
    if opened.sync is None:
        raise UsageError("journalq slurm needs --sync-dir SHARED (or sync_dir in the config): "
                         "a folder every node can read and write, where each task keeps its "
                         "journal copy")
    options = _options(sbatch_options)
    with writing(opened, "slurm") as session:
        drifted = session.add_config(cfg)  # as `init` does
        session.append_many([policy.changed_event(drift) for drift in drifted])
        _settle_from_cards(session, opened)
        queue = session.queue()
    console = opened.console
    order = list(queue.jobs)
    pending = [job for job in order if queue.jobs[job].status is Status.PENDING
               and job in cfg.jobs]
    console.err(f"{opened.path}: queue {cfg.queue}, {render.counts_line(queue)}")
    _say_running(queue, opened)
    if not pending:
        console.err(f"nothing pending in queue {cfg.queue}: no script written")
        return EXIT_OK
    stamp = opened.clock.stamp()
    folder = posixpath.join("runtime_state", "slurm", cfg.queue,
                            f"{stamp[:19].replace('-', '').replace(':', '')}Z-{session.id}")
    indices, selections = _tasks(order, pending, tasks)
    plan = slurmscript.ArrayPlan(
        queue=cfg.queue, project=os.getcwd(), python=sys.executable,
        config=os.path.abspath(cfg.source), sync_dir=os.path.abspath(opened.sync.folder),
        folder=os.path.abspath(folder), submission=session.id, selections=selections,
        indices=indices, shards=tasks is not None, array_limit=array_limit,
        gpus_per_task=gpus_per_task, sbatch_options=options, written=stamp,
        version=__version__)
    _write(plan)
    _say_written(plan, len(pending), tasks, opened)
    console.out(_relative(plan.script))
    if submit:
        console.out(_submit(plan))
    return EXIT_OK


def _options(words: Sequence[str]) -> tuple[str, ...]:
    """The sbatch options after `--` (argparse keeps the `--`), checked for #SBATCH."""
    if words and words[0] != "--":
        raise UsageError(f"unexpected {words[0]!r}: sbatch options go after --, as in "
                         "`journalq slurm --config C --sync-dir D -- -p gpu`")
    options = tuple(words[1:])
    why = slurmscript.bad_option(options)
    if why:
        raise UsageError(f"sbatch option {why}")
    return options


def _say_written(plan: slurmscript.ArrayPlan, pending: int, tasks: int | None,
                 opened: Opened) -> None:
    """What the array holds, on stderr (stdout is the script's path, for scripts)."""
    count = len(plan.indices)
    shape = (f"{count} shard task(s) of {tasks}" if tasks is not None
             else f"{count} array task(s), one per job")
    limit = f", at most {plan.array_limit} at once" if plan.array_limit else ""
    opened.console.err(f"{pending} pending job(s) in {shape}{limit}; manifest "
                       f"{_relative(plan.manifest)}")
    if max(plan.indices) >= DEFAULT_MAX_ARRAY:
        opened.console.warn(f"array task ids reach {max(plan.indices)}; Slurm's default "
                            "MaxArraySize allows 0-1000 (`scontrol show config | grep "
                            "MaxArraySize`); use --tasks N to run them as N shards")


def _tasks(order: list[str], pending: list[str],
           tasks: int | None) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The array's task ids and what each runs: task i runs pending job i; or, with
    `tasks` N, task K runs shard K/N, for each shard that holds a pending job (a shard with
    nothing to do is not submitted)."""
    if tasks is None:
        return tuple(range(len(pending))), tuple(pending)
    wanted = set(pending)
    indices = tuple(k for k in range(tasks) if any(
        job in wanted for job in selected(order, Selection(shard=f"{k}/{tasks}"))))
    return indices, tuple(f"{k}/{tasks}" for k in indices)


def _settle_from_cards(session: Session, opened: Opened) -> None:
    """A pending job whose run card tells of an attempt the journal never saw finish ran
    on a runtime whose journal copy was lost: settle it from the card, do not submit it."""
    for job in session.queue().by_status(Status.PENDING):
        event = policy.settle_from_card(job, read_card(job.spec.out_dir, opened.fs))
        if event is not None:
            session.append(event)
            opened.console.warn(render.safe(
                f"not submitting {job.id}: its run card records attempt {event.attempt} of "
                f"session {event.attempt_session}, which no journal copy shows finished; "
                f"settled {event.to} from the card"))


def _say_running(queue: Queue, opened: Opened) -> None:
    """Running jobs are not submitted again; say how to settle them if their runner died."""
    running = queue.by_status(Status.RUNNING)
    if not running:
        return
    names = ", ".join(job.id for job in running[:10]) + (" ..." if len(running) > 10 else "")
    opened.console.err(render.safe(
        f"{len(running)} job(s) still running are not submitted: {names}. If their tasks "
        "are gone (squeue), `journalq recover --config ... --sync-dir ... --force` settles "
        "them (by run card, else by budget), then `journalq slurm` again"))


def _write(plan: slurmscript.ArrayPlan) -> None:
    """The manifest, then the script (each written whole, then renamed into place)."""
    os.makedirs(plan.folder, exist_ok=True)
    for path, text, mode in ((plan.manifest, slurmscript.manifest_text(plan), 0o644),
                             (plan.script, slurmscript.script_text(plan), 0o755)):
        temp = f"{path}.tmp-{os.getpid()}"
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)


def _relative(path: str) -> str:
    """`path` relative to the current folder when it is inside it (shorter to read)."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _submit(plan: slurmscript.ArrayPlan) -> str:
    """`sbatch --parsable SCRIPT`; the Slurm job id it printed."""
    where = f"the script is {_relative(plan.script)}"
    try:
        done = subprocess.run(["sbatch", "--parsable", plan.script], capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise SubmitError(f"sbatch not found on PATH; {where}: submit it with sbatch on a "
                          "machine where Slurm is installed") from None
    except subprocess.TimeoutExpired:
        raise SubmitError(f"sbatch did not answer in 120 s; {where}: check `squeue --me` "
                          "before submitting it again") from None
    said = "; ".join(line.strip() for line in done.stderr.splitlines() if line.strip())
    job = done.stdout.strip().split(";")[0]
    if done.returncode != 0 or not job.isdigit():
        raise SubmitError(render.safe(f"sbatch refused the script (exit {done.returncode}: "
                                      f"{said or done.stdout.strip()}); {where}: fix the "
                                      "options after -- and run journalq slurm again"))
    return job
