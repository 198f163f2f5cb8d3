"""`journalq run`: bring the journal up to date with the config, settle what a dead runner
left behind, then run pending jobs one at a time until none is left or the operator stops us.

Write-ahead: `job_started` is durable before the child exists, and the run card is on disk
before `job_finished` is appended, so a crash at any point leaves enough to decide later
whether the attempt finished.
"""

from __future__ import annotations

import os
import posixpath
import signal
import stat
import time
from collections.abc import Callable

from journalq import __version__, host, policy, render
from journalq import events as ev
from journalq.card import card_path, read_card, write_card
from journalq.config import Config, is_safe_name
from journalq.errors import (
    EXIT_DECISION,
    EXIT_JOBS_FAILED,
    EXIT_OK,
    EXIT_SIGHUP,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    BusyError,
    ConfigError,
    DecisionNeeded,
    JournalError,
)
from journalq.fold import Folder
from journalq.recovery import observe, recover_orphans, refuse_orphans
from journalq.runner import Exit, Interrupts, LineEcho, Watch, child_env, log_text, opened_log
from journalq.runner import run_attempt as spawn_and_watch
from journalq.session import Session
from journalq.state import Job, Status
from journalq.workspace import (
    Console,
    add_config_jobs,
    default_state,
    load_config,
    mirror_for,
    writing,
)

# Crash tests (and only they) set JOURNALQ_FAILPOINT=<point>[@<job>] to SIGKILL the runner at
# an exact step of an attempt: before-spawn, after-exit, after-card or after-finish.
_FAILPOINT = os.environ.get("JOURNALQ_FAILPOINT", "")

TRUST_CONFIG = "config"
TRUST_JOURNAL = "journal"
_SIGNAL_EXIT: dict[int, int] = {
    signal.SIGINT: EXIT_SIGINT, signal.SIGTERM: EXIT_SIGTERM, signal.SIGHUP: EXIT_SIGHUP,
}


def run(config_path: str, state: str | None, *, resume: bool, stale_seconds: float | None,
        force: bool, trust: str | None, quiet: bool, console: Console,
        sync_dir: str | None = None) -> int:
    """Run every pending job of the queue; returns 0 when all are done, 1 if any failed."""
    cfg = load_config(config_path)
    path = state or default_state(cfg)
    mirror = mirror_for(sync_dir, cfg, None, console)
    with Interrupts() as interrupts, writing(path, "run", console, mirror) as session:
        batch = Batch(cfg, session, console, interrupts, quiet, mirror.push if mirror else None)
        batch.prepare(resume=resume, force=force, trust=trust,
                      stale_seconds=stale_seconds or cfg.stale_seconds)
        batch.run_pending()
        return batch.finish()


class JobFiles:
    """Where a queue's jobs write: each job's out_dir under out_root, each attempt's log
    under `<journal folder>/logs/<queue>/<job>/`. Nothing is created before it is checked:
    a symlink (or a job id from an edited journal) must not lead a job outside."""

    def __init__(self, cfg: Config, journal_path: str, session_id: str) -> None:
        self.source = cfg.source
        self.out_root = cfg.out_root
        self.logs = posixpath.join(posixpath.dirname(journal_path) or ".", "logs", cfg.queue)
        self.session_id = session_id
        os.makedirs(self.logs, exist_ok=True)
        self._real_logs = os.path.realpath(self.logs)
        self._real_out_root: str | None = None  # out_root may not exist before the first job
        self._journal_device = os.stat(posixpath.dirname(journal_path) or ".").st_dev

    def out_dir(self, job: Job) -> str:
        """The job's out_dir, created, and refused if a symlink leads it out of out_root."""
        if self._real_out_root is None:
            os.makedirs(self.out_root, exist_ok=True)
            self._real_out_root = os.path.realpath(self.out_root)
        out_dir = job.spec.out_dir
        if not self._make_inside(self.out_root, self._real_out_root, out_dir):
            raise ConfigError(f"{self.source}: job {job.id}: its out_dir {out_dir} leads "
                              f"outside out_root ({os.path.realpath(out_dir)}); remove the "
                              "symlink")
        return out_dir

    def card_must_be_durable(self, out_dir: str) -> bool:
        """Whether the run card lives on another disk than the journal (see `write_card`)."""
        return os.stat(out_dir).st_dev != self._journal_device

    def log_path(self, job_id: str, number: int) -> str:
        """A new log file's path for this attempt (never one that exists)."""
        folder = posixpath.join(self.logs, job_id)
        if not self._make_inside(self.logs, self._real_logs, folder):
            raise ConfigError(f"log folder {folder} leads outside {self.logs}; remove the "
                              "symlink")
        path = posixpath.join(folder, f"attempt-{number}.log")
        if os.path.exists(path):  # left by a journal that was deleted and started again
            path = posixpath.join(folder, f"attempt-{number}.{self.session_id}.log")
        return path

    @staticmethod
    def _make_inside(root: str, real_root: str, path: str) -> bool:
        """Create folder `path` if it is inside `root` (whose real path is `real_root`);
        False, creating nothing, if it (or a link on the way) leads outside.

        The usual case, `<root>/<plain name>`, takes one lstat: only that last name can be a
        link. Anything else (a spec from an edited journal) is resolved in full first, as
        makedirs would follow a dangling link, or a '..', out of root.
        """
        if posixpath.dirname(path) == root and is_safe_name(posixpath.basename(path)):
            try:
                if not stat.S_ISLNK(os.lstat(path).st_mode):
                    return True
            except FileNotFoundError:
                os.mkdir(path)  # a plain name, no link: it lands inside root
                return True
        if not (os.path.realpath(path) + os.sep).startswith(real_root + os.sep):
            return False
        os.makedirs(path, exist_ok=True)
        return True


class Progress:
    """The `[3/12] done  job  rc=0  1m02s  (eta 9m)` lines, from the folder's counts."""

    def __init__(self, folder: Folder, console: Console) -> None:
        self._folder = folder
        self._console = console
        self._durations: list[float] = []

    def _position(self) -> tuple[int, int]:
        counts = self._folder.counts()
        total = sum(counts.values()) - counts[Status.CANCELLED]
        return counts[Status.DONE] + counts[Status.FAILED], total

    def started(self, job: Job) -> None:
        """The line for an attempt that just started."""
        settled, total = self._position()
        attempt = job.last.number if job.last else 0
        self._console.err(render.progress(settled + 1, total, "start", job,
                                          f"attempt {attempt}, try {render.tries(job)}"))

    def finished(self, job: Job, duration: float) -> None:
        """The line for an attempt that just ended, with an estimate of the time left."""
        self._durations.append(duration)
        settled, total = self._position()
        left = self._folder.counts()[Status.PENDING]
        eta = sum(self._durations) / len(self._durations) * left if left else None
        word = job.status.value if job.status is not Status.PENDING else "retry"
        assert job.last is not None
        self._console.err(render.progress(max(settled, 1), total, word, job,
                                          render.finish_detail(job.last), eta))


class Batch:
    """One `run`: the jobs it may run, and how each attempt is recorded."""

    def __init__(self, cfg: Config, session: Session, console: Console,
                 interrupts: Interrupts, quiet: bool,
                 sync: Callable[[Session, bool], None] | None) -> None:
        self.cfg = cfg
        self.session = session
        self.folder = session.writer.folder
        self.console = console
        self.interrupts = interrupts
        self.quiet = quiet
        self.sync = sync
        self.runnable: set[str] = set(cfg.jobs)
        self.ran_elsewhere: list[str] = []
        self.base = os.getcwd()
        self.files = JobFiles(cfg, session.writer.path, session.id)
        self.progress = Progress(self.folder, console)

    def prepare(self, *, resume: bool, force: bool, trust: str | None,
                stale_seconds: float) -> None:
        """Add the config's new jobs, check specs, and recover what a dead runner left."""
        drifted = add_config_jobs(self.session, self.cfg)
        self._settle_drift(drifted, trust)
        queue = self.session.queue()
        seen = observe(queue, stale_seconds, force)
        elsewhere = [] if force else policy.runners_elsewhere(queue, seen)
        _refuse_live_runners([f"session {r.session} on {r.host}, last heard from "
                              f"{render.duration(r.age)} ago" for r in elsewhere])
        orphans, alive = policy.classify_running(queue, seen)
        _refuse_live_runners([f"{r.job.id} on {r.host}, last heartbeat "
                              f"{render.duration(r.age)} ago" for r in alive])
        # --force already declared those runners dead (the busy error above told the operator
        # to pass it); asking for --resume on top would refuse the very command we suggested.
        undecided = [o for o in orphans if o.reason != policy.FORCED]
        if undecided and not resume:
            refuse_orphans(undecided, self.session.writer.path)
        recover_orphans(self.session, orphans, seen, self.console, self.cfg.grace_seconds)
        if trust == TRUST_JOURNAL:
            self.runnable = set(queue.jobs)

    def _settle_drift(self, drifted: list[policy.Drift], trust: str | None) -> None:
        waiting = [d for d in drifted if d.job.status not in (Status.DONE, Status.CANCELLED)]
        for drift in drifted:
            if drift.job.status is Status.DONE:
                self.console.warn(f"{self.cfg.source} changed job {drift.job.id} after it was "
                                  "done; it is not rerun unless you `journalq retry` it")
        if not waiting:
            return
        if trust == TRUST_CONFIG:
            for drift in waiting:
                self.session.append(policy.changed_event(drift))
        elif trust != TRUST_JOURNAL:
            names = ", ".join(d.job.id for d in waiting)
            raise DecisionNeeded(
                f"the journal {self.session.writer.path} records other specs than "
                f"{self.cfg.source} for {len(waiting)} job(s) ({names}); run "
                "`journalq init --config ...` to record the config's, or pass "
                "--trust config / --trust journal"
            )

    def run_pending(self) -> None:
        """Run pending jobs in queue order until none is left or we are interrupted.

        One pass over the queue: a job that fails with attempts left is pending again and
        runs again at once, so nothing earlier in the queue can become pending meanwhile.
        """
        for job_id in self.folder.job_ids():
            while job_id in self.runnable and self.interrupts.received is None:
                job = self.folder.job(job_id)
                if job is None or job.status is not Status.PENDING or self._ran_elsewhere(job):
                    break
                self.run_one(job)
                if self.sync:
                    self.sync(self.session, True)
            if self.interrupts.received is not None:
                return

    def _ran_elsewhere(self, job: Job) -> bool:
        """Whether the job's out_dir holds a run card of an attempt this journal never saw:
        another runtime ran it and its journal never arrived (Drive lost its copies). Rather
        than run it twice and overwrite its card, journalq leaves it for the operator."""
        card = read_card(job.spec.out_dir, self.session.writer.fs)
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
            running = self.folder.job(job.id)
            if (running is None or running.status is not Status.RUNNING or running.last is None
                    or (running.last.number, running.last.session) != (number, self.session.id)):
                # Never spawn what the journal did not record as running: its finish would
                # be thrown away, and the job run again and again.
                raise JournalError(f"the journal did not take attempt {number} of job {job.id} "
                                   "(see the anomalies in `journalq status`); not starting it")
            if self.sync:
                self.sync(self.session, True)
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
                                     "JOURNALQ_QUEUE": self.cfg.queue}),
                log_fd=log_fd,
                watch=Watch(self.cfg.heartbeat_seconds, spec.timeout, self.cfg.grace_seconds),
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
        self.session.writer.record_child(job_id, pid, host.process_start(pid))

    def _heartbeat(self, job_id: str, attempt: int, child: list[int]) -> None:
        self.session.append(ev.Heartbeat(job=job_id, attempt=attempt,
                                         child_pid=child[0] if child else None))
        if self.sync:
            self.sync(self.session, False)

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
                "started": started_ts, "finished": _iso_now(),
                "duration": round(result.duration, 6), "host": host.hostname(),
                "journalq_version": __version__, "spec_sha256": job.spec.sha256,
            }, self.session.writer.fs, self.files.card_must_be_durable(out_dir))
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
        after = self.folder.job(job.id)
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
        code = EXIT_JOBS_FAILED if queue.by_status(Status.FAILED) else EXIT_OK
        if self.ran_elsewhere:
            code = EXIT_DECISION
        if self.interrupts.received is not None:
            code = _SIGNAL_EXIT.get(self.interrupts.received, EXIT_SIGINT)
            self.session.exit_reason = "interrupted"
        self.session.exit_code = code
        return code


def _refuse_live_runners(described: list[str]) -> None:
    """A second runner never starts beside one that may still be alive."""
    if described:
        raise BusyError(f"another runner looks alive ({'; '.join(described)}); if that "
                        "runtime is gone, rerun with --force (or wait stale_seconds)")


def failpoint(point: str, job_id: str) -> None:
    """Die by SIGKILL here if a crash test asked for it (see _FAILPOINT)."""
    if _FAILPOINT and _FAILPOINT in (point, f"{point}@{job_id}"):
        os.kill(os.getpid(), signal.SIGKILL)


def _exit_text(result: Exit) -> str:
    if result.return_code is not None:
        return f"rc={result.return_code} ({result.reason})"
    return f"signal {result.signal} ({result.reason})"


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


__all__ = ["TRUST_CONFIG", "TRUST_JOURNAL", "Batch", "run"]
