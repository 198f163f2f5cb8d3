"""The batch: which job a free slot takes next, and how each attempt is recorded.

Write-ahead: `job_started` is durable before the child exists, and the run card is on disk
before `job_finished` is appended, so a crash at any point leaves enough to decide later
whether the attempt finished. The scheduler (`journalq.scheduler`) keeps the time; the
batch decides and records, through the journal's one writer.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from journalq import events as ev
from journalq import host, policy, reaper, render, statusview
from journalq.attempt import Running, Timing
from journalq.batchplan import Plan
from journalq.card import write_card
from journalq.chooser import Chooser
from journalq.clock import Clock
from journalq.config import Config
from journalq.echo import Echo
from journalq.errors import JournalError
from journalq.failpoint import failpoint
from journalq.fold import Fold
from journalq.gitinfo import Revision
from journalq.jobfiles import JobFiles
from journalq.outcomes import FinishReason, Outcome
from journalq.progress import Progress
from journalq.render import Console
from journalq.runner import Exit, Interrupts, child_env, log_text, open_log
from journalq.session import Session
from journalq.slots import Slot
from journalq.state import Job, Status
from journalq.version import VERSION


class Batch:
    """One `run`: the hooks the scheduler calls (see `scheduler.Hooks`)."""

    def __init__(self, cfg: Config, session: Session, console: Console, plan: Plan, *,
                 interrupts: Interrupts, clock: Clock,
                 revision: Callable[[str], Revision | None] | None = None,
                 echo: Echo | None = None) -> None:
        self.cfg = cfg
        self.session = session
        self.console = console
        self.plan = plan
        self.interrupts = interrupts
        self.clock = clock
        self.revision = revision
        self.echo = echo
        self.base = os.getcwd()
        self.files = JobFiles(cfg, session.path, session.id)
        everything = plan.selection.everything
        self.progress = Progress(lambda: session.fold, console, slots=len(plan.slots),
                                 selected=None if everything else plan.runnable,
                                 monotonic=clock.monotonic)
        self.failures = 0  # failed attempts in this run, for halt_after_failures
        self.halted = False
        self.chooser = Chooser(session, console, plan, clock)
        self._logs: dict[tuple[str, int], int] = {}
        self._live: dict[tuple[str, int], Running] = {}  # spawned, not yet finished
        self._carded: set[tuple[str, int]] = set()  # attempts whose run card was written

    @property
    def fold(self) -> Fold:
        """The live fold (a merge that sorts in older events replaces it: never keep it)."""
        return self.session.fold

    # ---- choosing -----------------------------------------------------------------------

    def may_start(self) -> bool:
        """Not after a halt; and only after a look at the sync folder for other runners."""
        if self.halted:
            return False
        self.chooser.look_around()
        return True

    # ---- one attempt ----------------------------------------------------------------------

    def start(self, slot: Slot) -> Running | None:
        """Record, then spawn, the next job in `slot`; None when none is left to start."""
        job = self.chooser.next_job()
        if job is None:
            return None
        number = policy.next_attempt_number(job)
        spec = job.spec
        out_dir = self.files.out_dir(job)
        log_path = self.files.log_path(job.id, number)
        log_fd = open_log(log_path)
        several = len(self.plan.slots) > 1 or bool(slot.devices)
        revision = self.revision(spec.cwd) if self.revision else None
        try:
            started = self.session.append(ev.JobStarted(
                job=job.id, attempt=number, host=host.hostname(), boot_id=host.boot_id(),
                pid=os.getpid(), log=log_path, spec_sha256=spec.sha256,
                slot=slot.index if several else None, devices=slot.devices or None,
                commit=revision.commit if revision else None,
                dirty=revision.dirty if revision else None,
            ))
            self._check_recorded(job.id, number)
        except BaseException:
            os.close(log_fd)
            raise
        self._logs[(job.id, number)] = log_fd
        self.session.push(boundary=True)
        running = self.fold.job(job.id)
        assert running is not None
        self.progress.started(running, slot)
        log_text(log_fd, f"# journalq: job {job.id} attempt {number}\n"
                         f"# command: {_header_text(render.command_text(job))}\n"
                         f"# cwd: {_header_text(spec.cwd)}\n"
                         f"# started: {started.ts}\n")
        failpoint("before-spawn", job.id)
        attempt = Running(job=job.id, number=number, slot=slot.index, log_path=log_path,
                          timing=Timing(self.cfg.heartbeat_seconds, spec.timeout,
                                        self.cfg.grace_seconds),
                          log_fd=log_fd, warn=self.console.warn,
                          echo=self.echo.for_job(job.id) if self.echo else None)
        env = {"JOURNALQ_JOB": job.id, "JOURNALQ_ATTEMPT": str(number),
               "JOURNALQ_OUT_DIR": out_dir, "JOURNALQ_QUEUE": self.cfg.queue,
               "JOURNALQ_SLOT": str(slot.index),
               reaper.TAG_VARIABLE: reaper.attempt_tag(self.session.id, job.id, number)}
        if slot.devices:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(slot.devices)
        failed = attempt.spawn(spec, cwd=os.path.join(self.base, spec.cwd),
                               env=child_env(spec, env))
        if failed is not None:
            self.finished(attempt, failed)
            return attempt
        self._live[(job.id, number)] = attempt
        self._note_children()
        return attempt

    def _check_recorded(self, job_id: str, number: int) -> None:
        """Never spawn what the journal did not record as running: its finish would be
        thrown away, and the job run again and again."""
        running = self.fold.job(job_id)
        if (running is None or running.status is not Status.RUNNING or running.last is None
                or (running.last.number, running.last.session) != (number, self.session.id)):
            raise JournalError(f"the journal did not take attempt {number} of job {job_id} "
                               "(see the anomalies in `journalq status`); not starting it")

    def _note_children(self) -> None:
        """The lock file names every process group this runner runs, so that the next
        writer can stop them if this runner is killed (the kernel stops no child then)."""
        self.session.record_children([
            (running.job, running.pid, host.process_start(running.pid) or 0)
            for running in self._live.values()])


    def heartbeat(self, running: list[Running]) -> None:
        """One line per attempt, one append (and fsync) for all of them."""
        self.session.append_many([
            ev.Heartbeat(job=r.job, attempt=r.number, child_pid=r.pid) for r in running])
        self.session.push()

    def finished(self, running: Running, result: Exit) -> None:
        """Record how an attempt ended: run card, then `job_finished` (or, when the operator
        stopped it, `job_interrupted`, which charges nothing)."""
        self._live.pop((running.job, running.number), None)
        log_fd = self._logs.pop((running.job, running.number), running.log_fd)
        log_text(log_fd, f"{running.line_break()}# exit: {_exit_text(result)} after "
                         f"{render.duration(result.duration)}\n")
        os.close(log_fd)
        if self.echo:
            self.echo.end(running.job)
        failpoint("after-exit", running.job)
        job = self.fold.job(running.job)
        assert job is not None
        if result.reason == FinishReason.INTERRUPTED:
            self.session.append(ev.JobInterrupted(job=job.id, attempt=running.number,
                                                  signal=result.interrupted_by or 15))
            self.console.err(f"interrupted {job.id} (attempt {running.number}); it is "
                             "pending again")
        else:
            self._finish(job, running, result)
        self._note_children()
        self.session.push(boundary=True)

    def _finish(self, job: Job, running: Running, result: Exit) -> None:
        outcome = Outcome.DONE if result.succeeded else Outcome.FAILED
        out_dir = job.spec.out_dir
        last = job.last
        started = last.started if last else ""
        revision = self.revision(job.spec.cwd) if self.revision else None
        try:
            write_card(out_dir, {
                "job": job.id, "attempt": running.number, "session": self.session.id,
                "queue": self.cfg.queue, "command": list(job.spec.argv),
                "shell": job.spec.shell, "outcome": outcome, "reason": result.reason,
                "return_code": result.return_code, "signal": result.signal,
                "started": started, "finished": self.clock.stamp(),
                "duration": round(result.duration, 6), "host": host.hostname(),
                "journalq_version": VERSION, "spec_sha256": job.spec.sha256,
                "commit": revision.commit if revision else None,
                "dirty": revision.dirty if revision else None,
            }, self.session.fs, self.files.card_must_be_durable(out_dir))
            self._carded.add((job.id, running.number))
        except OSError as exc:
            # The card is only a hint for recovery; the journal is the record. A job that
            # removed its own out_dir, or a full disk, must not cost the attempt's outcome.
            self.console.warn(f"cannot write the run card in {out_dir} "
                              f"({exc.strerror or exc}); job {job.id} is journaled anyway")
        failpoint("after-card", job.id)
        self.session.append(ev.JobFinished(
            job=job.id, attempt=running.number, return_code=result.return_code,
            signal=result.signal, outcome=outcome, reason=result.reason,
            duration=round(result.duration, 6)))
        failpoint("after-finish", job.id)
        after = self.fold.job(job.id)
        assert after is not None
        self.progress.finished(after, result.duration)
        if outcome == Outcome.FAILED:
            self.failures += 1
            if after.status is Status.PENDING:
                self.chooser.again(job.id)  # its next attempt goes first
            halt = self.plan.halt_after
            if halt is not None and self.failures >= halt and not self.halted:
                self.halted = True
                self.console.warn(f"{self.failures} failed attempt(s) in this run "
                                  f"(halt_after_failures: {halt}): starting no new job; "
                                  "the running ones finish")

    def abandoned(self, running: Running) -> None:
        """The run stopped this attempt because it could not record it (a full disk): the
        lock file says so, and the next holder settles it without charging it. An attempt
        that ended and whose run card was written is left to the card, which says how it
        ended (noted as stopped, it would be run again)."""
        if (running.job, running.number) not in self._carded:
            self.session.note_stopped(running.job, running.number)
        log_fd = self._logs.pop((running.job, running.number), None)
        if log_fd is not None:
            log_text(log_fd, f"{running.line_break()}# journalq: stopped: the journal could "
                             "not record this attempt any more\n")
            os.close(log_fd)

    # ---- timers outside the attempts ----------------------------------------------------

    def tick(self) -> None:
        """A boundary push that waited for its gap."""
        self.session.push(boundary=True)

    def tick_at(self) -> float | None:
        """When that push is due (monotonic)."""
        mirror = self.session.mirror
        return None if mirror is None else mirror.due()

    # ---- the end ------------------------------------------------------------------------

    def finish(self) -> int:
        """Print the summary and what is left and why; the exit code says how it went."""
        queue = self.session.queue()
        self.console.err(render.summary(queue, self.plan.runnable))
        pending = [j for j in self.plan.runnable
                   if j in queue.jobs and queue.jobs[j].status is Status.PENDING]
        if self.halted:
            # A job that failed with attempts left is pending too, but it was started.
            again = [j for j in pending if (last := queue.jobs[j].last) is not None
                     and last.session == self.session.id]
            retry = f", {len(again)} to retry" if again else ""
            self.console.err(f"halted after {self.failures} failed attempt(s) "
                             f"(halt_after_failures: {self.plan.halt_after}); "
                             f"{len(pending) - len(again)} job(s) not started{retry}")
        commits = statusview.done_commits(queue.jobs.values())
        if len(commits) > 1:
            spread = ", ".join(f"{c[:12]}{'+dirty' if c.endswith('+dirty') else ''} "
                               f"({len(ids)} job(s))" for c, ids in commits.items())
            self.console.warn(f"the done jobs of this queue ran {len(commits)} versions of "
                              f"the code: {spread}; `journalq status` lists them")
        if self.echo and self.echo.dropped():
            self.console.warn(f"the terminal did not keep up: {self.echo.dropped()} bytes of "
                              "job output were not echoed (the logs have every byte)")
        code = policy.run_exit_code(queue, self.plan.runnable, yielded=bool(self.chooser.yielded),
                                    interrupted_by=self.interrupts.received,
                                    halted=self.halted)
        if self.chooser.yielded:
            others = "; ".join(other.describe() for other in self.chooser.yielded.values())
            self.console.err(render.safe(
                f"journalq: error: another runner looks alive ({others}) and started "
                f"before this one; this runner left it the {len(self.chooser.left)} job(s) both "
                "selected. Let it finish; if that runtime is gone, rerun with --force (or "
                "wait stale_seconds)"))
        if self.interrupts.received is not None:
            self.session.exit_reason = "interrupted"
        self.session.exit_code = code
        return code


def _exit_text(result: Exit) -> str:
    if result.return_code is not None:
        return f"rc={result.return_code} ({result.reason})"
    return f"signal {result.signal} ({result.reason})"


def _header_text(text: str) -> str:
    """A value in the log's header, every line of it marked (a `python -c` script spans
    lines, which must not read as the job's first output)."""
    return text.replace("\r", "\\r").replace("\n", "\n#   ")
