"""The batch: run pending jobs one at a time until none is left or the operator stops us.

Write-ahead: `job_started` is durable before the child exists, and the run card is on disk
before `job_finished` is appended, so a crash at any point leaves enough to decide later
whether the attempt finished.
"""

from __future__ import annotations

import os
import signal

from journalq import __version__, host, policy, render
from journalq import events as ev
from journalq.card import card_path, read_card, write_card
from journalq.clock import Clock
from journalq.config import Config
from journalq.errors import (
    EXIT_DECISION,
    EXIT_JOBS_FAILED,
    EXIT_OK,
    EXIT_SIGHUP,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    BusyError,
    JournalError,
)
from journalq.failpoint import failpoint
from journalq.fold import Fold
from journalq.jobfiles import JobFiles
from journalq.progress import Progress
from journalq.reaper import TAG_VARIABLE, attempt_tag
from journalq.recovery import observe
from journalq.render import Console
from journalq.runner import Exit, Interrupts, LineEcho, Watch, child_env, log_text, opened_log
from journalq.runner import run_attempt as spawn_and_watch
from journalq.session import Session
from journalq.state import Job, Status

_SIGNAL_EXIT: dict[int, int] = {
    signal.SIGINT: EXIT_SIGINT, signal.SIGTERM: EXIT_SIGTERM, signal.SIGHUP: EXIT_SIGHUP,
}


class Batch:
    """One `run`: the jobs it may run, and how each attempt is recorded."""

    def __init__(self, cfg: Config, session: Session, console: Console,
                 interrupts: Interrupts, *, quiet: bool, runnable: set[str],
                 clock: Clock, stale_seconds: float,
                 declared_dead: frozenset[str] = frozenset()) -> None:
        self.cfg = cfg
        self.stale_seconds = stale_seconds
        self.clock = clock
        self.declared_dead = declared_dead  # runner sessions --force said are gone
        self.session = session
        self.console = console
        self.interrupts = interrupts
        self.quiet = quiet
        self.runnable = runnable
        self.ran_elsewhere: list[str] = []
        self.base = os.getcwd()
        self.files = JobFiles(cfg, session.path, session.id)
        self.progress = Progress(lambda: session.fold, console)

    @property
    def fold(self) -> Fold:
        """The live fold (a merge that sorts in older events replaces it: never keep it)."""
        return self.session.fold

    def sync(self, *, boundary: bool) -> None:
        """Copy the journal to the sync folder: at a boundary, or when it is due."""
        self.session.push(boundary=boundary)

    def run_pending(self) -> None:
        """Run pending jobs in queue order until none is left or we are interrupted.

        One pass over the queue: a job that fails with attempts left is pending again and
        runs again at once, so nothing earlier in the queue can become pending meanwhile.
        """
        for job_id in self.fold.job_ids():
            while job_id in self.runnable and self.interrupts.received is None:
                if self._yields():
                    return
                job = self.fold.job(job_id)
                if job is None or job.status is not Status.PENDING or self._ran_elsewhere(job):
                    break
                self.run_one(job)
                self.sync(boundary=True)
            if self.interrupts.received is not None:
                return

    def _push_due(self) -> float | None:
        mirror = self.session.mirror
        return None if mirror is None else mirror.due()

    def _yields(self) -> bool:
        """Pull what is new in the sync folder, and whether another live runner of this
        queue started before us: then we start nothing more (the check at start-up cannot
        see a runner whose copy was still on its way through a lagging folder)."""
        if self.session.mirror is None:
            return False
        self.session.merge(when_due=True, lenient=True)
        queue = self.session.queue()
        seen = observe(queue, self.clock.utc_now(), self.stale_seconds)
        here = frozenset(
            info.id for info in queue.sessions.values()
            if info.boot_id == seen.boot_id and info.id != self.session.id
            and info.ended is None and host.is_alive(info.pid, info.pid_start))
        self.yielded_to = policy.runner_to_yield_to(queue, self.session.id, seen, here,
                                                    ignore=self.declared_dead)
        return self.yielded_to is not None

    yielded_to: policy.RemoteRunner | None = None

    def _ran_elsewhere(self, job: Job) -> bool:
        """Whether the job's out_dir holds a run card of an attempt this journal never saw:
        another runtime ran it and its journal never arrived (Drive lost its copies). Rather
        than run it twice and overwrite its card, journalq leaves it for the operator."""
        card = read_card(job.spec.out_dir, self.session.fs)
        if card is None or card.job != job.id:
            return False
        if any((a.session, a.number) == (card.session, card.attempt) for a in job.attempts):
            return False
        self.runnable.discard(job.id)
        self.ran_elsewhere.append(job.id)
        self.console.warn(
            f"not running {job.id}: {card_path(job.spec.out_dir)} records attempt "
            f"{card.attempt} of session {card.session} ({card.outcome}), which this journal "
            "does not know: another runtime ran it. Put that runtime's journal copy in the "
            "sync folder, or delete the card to run the job again"
        )
        return True

    def run_one(self, job: Job) -> None:
        """One attempt: write-ahead, spawn, watch, card, finish."""
        # Past every number used: after two runtimes' histories merge, numbers can have gaps.
        number = max((attempt.number for attempt in job.attempts), default=0) + 1
        spec = job.spec
        out_dir = self.files.out_dir(job)
        log_path = self.files.log_path(job.id, number)
        with opened_log(log_path) as log_fd:
            started = self.session.append(ev.JobStarted(
                job=job.id, attempt=number, host=host.hostname(), boot_id=host.boot_id(),
                pid=os.getpid(), log=log_path, spec_sha256=spec.sha256,
            ))
            running = self.fold.job(job.id)
            if (running is None or running.status is not Status.RUNNING or running.last is None
                    or (running.last.number, running.last.session) != (number, self.session.id)):
                # Never spawn what the journal did not record as running: its finish would
                # be thrown away, and the job run again and again.
                raise JournalError(f"the journal did not take attempt {number} of job {job.id} "
                                   "(see the anomalies in `journalq status`); not starting it")
            self.sync(boundary=True)
            self.progress.started(running)
            log_text(log_fd, f"# journalq: job {job.id} attempt {number}\n"
                             f"# command: {render.command_text(job)}\n# cwd: {spec.cwd}\n"
                             f"# started: {started.ts}\n")
            child: list[int] = []
            failpoint("before-spawn", job.id)
            result = spawn_and_watch(
                spec, cwd=os.path.join(self.base, spec.cwd),
                env=child_env(spec, {"JOURNALQ_JOB": job.id, "JOURNALQ_ATTEMPT": str(number),
                                     "JOURNALQ_OUT_DIR": out_dir,
                                     "JOURNALQ_QUEUE": self.cfg.queue,
                                     TAG_VARIABLE: attempt_tag(self.session.id, job.id,
                                                               number)}),
                log_fd=log_fd,
                watch=Watch(self.cfg.heartbeat_seconds, spec.timeout, self.cfg.grace_seconds,
                            due=self._push_due, on_due=lambda: self.sync(boundary=True)),
                interrupts=self.interrupts,
                on_spawn=lambda pid: self._spawned(job.id, pid, child),
                on_heartbeat=lambda: self._heartbeat(job.id, number, child),
                echo=None if self.quiet else LineEcho(f"{job.id} | ", self.console.echo),
            )
            log_text(log_fd, f"# exit: {_exit_text(result)} after "
                             f"{render.duration(result.duration)}\n")
        # The lock file still names this job's (now finished) process group: harmless, as a
        # later runner stops a group only if it still has members, and this one has none.
        failpoint("after-exit", job.id)
        self._record(job, number, result, out_dir, started.ts)
        failpoint("after-finish", job.id)

    def _spawned(self, job_id: str, pid: int, child: list[int]) -> None:
        child.append(pid)
        self.session.record_child(job_id, pid, host.process_start(pid))

    def _heartbeat(self, job_id: str, attempt: int, child: list[int]) -> None:
        self.session.append(ev.Heartbeat(job=job_id, attempt=attempt,
                                         child_pid=child[0] if child else None))
        self.sync(boundary=False)

    def _record(self, job: Job, number: int, result: Exit, out_dir: str,
                started_ts: str) -> None:
        if result.reason == "interrupted":
            signum = result.interrupted_by or signal.SIGTERM
            self.session.append(ev.JobInterrupted(job=job.id, attempt=number, signal=signum))
            self.console.err(f"interrupted {job.id} (attempt {number}); it is pending again")
            return
        outcome = ev.DONE if result.succeeded else ev.FAILED
        try:
            write_card(out_dir, {
                "job": job.id, "attempt": number, "session": self.session.id,
                "queue": self.cfg.queue, "command": list(job.spec.argv),
                "shell": job.spec.shell, "outcome": outcome, "reason": result.reason,
                "return_code": result.return_code, "signal": result.signal,
                "started": started_ts, "finished": self.clock.stamp(),
                "duration": round(result.duration, 6), "host": host.hostname(),
                "journalq_version": __version__, "spec_sha256": job.spec.sha256,
            }, self.session.fs, self.files.card_must_be_durable(out_dir))
        except OSError as exc:
            # The card is only a hint for recovery; the journal is the record. A job that
            # removed its own out_dir, or a full disk, must not cost the attempt's outcome.
            self.console.warn(f"cannot write the run card in {out_dir} "
                              f"({exc.strerror or exc}); job {job.id} is journaled anyway")
        failpoint("after-card", job.id)
        self.session.append(ev.JobFinished(
            job=job.id, attempt=number, return_code=result.return_code, signal=result.signal,
            outcome=outcome, reason=result.reason, duration=round(result.duration, 6),
        ))
        after = self.fold.job(job.id)
        assert after is not None
        self.progress.finished(after, result.duration)

    def finish(self) -> int:
        """Print the summary; the exit code says whether everything is done."""
        queue = self.session.queue()
        self.console.err(render.summary(queue))
        left_out = [j.id for j in queue.by_status(Status.PENDING) if j.id not in self.runnable]
        if left_out:
            self.console.warn(f"{len(left_out)} pending job(s) are not in {self.cfg.source} "
                              f"and were not run ({', '.join(left_out[:5])}); cancel them, "
                              "or run them with --trust journal")
        if self.yielded_to is not None:
            other = self.yielded_to
            raise BusyError(
                f"another runner of queue {queue.name} started before this one: session "
                f"{other.session} on {other.host}, last heard from "
                f"{render.duration(max(other.age, 0))} ago; this runner started no more jobs. "
                "Let that one finish (or stop it), then rerun"
            )
        code = EXIT_JOBS_FAILED if queue.by_status(Status.FAILED) else EXIT_OK
        if self.ran_elsewhere:
            code = EXIT_DECISION
        if self.interrupts.received is not None:
            code = _SIGNAL_EXIT.get(self.interrupts.received, EXIT_SIGINT)
            self.session.exit_reason = "interrupted"
        self.session.exit_code = code
        return code


def _exit_text(result: Exit) -> str:
    if result.return_code is not None:
        return f"rc={result.return_code} ({result.reason})"
    return f"signal {result.signal} ({result.reason})"

