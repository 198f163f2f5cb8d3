"""A runner SIGKILLed at any step of an attempt loses nothing: `run --resume` never reruns a
done job, settles the interrupted attempt by the retry policy (or from its run card), stops
the job's processes the dead runner left behind, and leaves a consistent queue.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_run_support import SmallQueue, counts, is_running, wait_until

from journalq import host
from journalq.runner import kill_orphan

JOBS = ["a", "b", "c"]


def crash_at(queue: SmallQueue, point: str) -> None:
    """Run the queue with the runner set to SIGKILL itself at `point` of job b."""
    crashed = queue.run("--quiet", JOURNALQ_FAILPOINT=f"{point}@b")
    assert -signal.SIGKILL == crashed.returncode, crashed.stderr
    assert "running" == queue.job("b")["status"]


@pytest.mark.parametrize("point", ["before-spawn", "after-exit"])
def test_resume_reruns_an_unfinished_attempt_once(project: Path, point: str) -> None:
    """A crash before the child starts, or after it exits but before anything recorded its
    end: the attempt counts as abandoned, and with a spare attempt the job runs once more;
    the job done before the crash is not rerun."""
    with SmallQueue(project, JOBS, max_attempts=2) as queue:
        crash_at(queue, point)
        before = queue.runs()

        resumed = queue.run("--resume", "--quiet")

        assert 0 == resumed.returncode, resumed.stderr
        ran_before_crash = [("a", 1)] + ([("b", 1)] if point == "after-exit" else [])
        assert ran_before_crash == before
        assert [*ran_before_crash, ("b", 2), ("c", 1)] == queue.runs()
        recovered = queue.events("job_recovered")
        assert [("b", 1, "abandoned", "pending")] == [
            (e["job"], e["attempt"], e["reason"], e["to"]) for e in recovered]
        assert {"done": 3} == counts(queue.status())
        b = queue.job("b")
        assert [1, 2] == [attempt["attempt"] for attempt in b["attempts"]]
        assert ["failed", "done"] == [attempt["outcome"] for attempt in b["attempts"]]
        assert "recovered b attempt 1: abandoned -> pending" in resumed.stderr


@pytest.mark.parametrize("point", ["before-spawn", "after-exit"])
def test_resume_fails_an_unfinished_attempt_without_budget(project: Path, point: str) -> None:
    """With max_attempts 1 the abandoned attempt was the job's only one: it ends failed with
    reason `abandoned`, is not rerun, and `run` exits 1 while finishing the others."""
    with SmallQueue(project, JOBS, max_attempts=1) as queue:
        crash_at(queue, point)
        before = queue.runs()

        resumed = queue.run("--resume", "--quiet")

        assert 1 == resumed.returncode, resumed.stderr
        assert [*before, ("c", 1)] == queue.runs()
        b = queue.job("b")
        assert ("failed", "abandoned") == (b["status"], b["reason"])
        assert {"done": 2, "failed": 1} == counts(queue.status())


def test_resume_settles_from_the_run_card(project: Path) -> None:
    """A crash after the run card was written but before `job_finished`: the card records
    that this very attempt finished, so resume settles the job from it (reason `card`)
    instead of running it again."""
    with SmallQueue(project, JOBS, max_attempts=2) as queue:
        crash_at(queue, "after-card")
        assert (queue.out_dir("b") / "journalq-run.toml").exists()

        resumed = queue.run("--resume", "--quiet")

        assert 0 == resumed.returncode, resumed.stderr
        assert [("a", 1), ("b", 1), ("c", 1)] == queue.runs()
        recovered = queue.events("job_recovered")
        assert [("b", 1, "card", "done", 0)] == [
            (e["job"], e["attempt"], e["reason"], e["to"], e["return_code"]) for e in recovered]
        assert {"done": 3} == counts(queue.status())
        assert 1 == queue.job("b")["attempt"]


def test_crash_after_finish_needs_no_recovery(project: Path) -> None:
    """A crash right after `job_finished` leaves nothing running: the next plain `run` (no
    --resume needed) goes on with the next job and reruns nothing."""
    with SmallQueue(project, JOBS, max_attempts=2) as queue:
        crashed = queue.run("--quiet", JOURNALQ_FAILPOINT="after-finish@b")
        assert -signal.SIGKILL == crashed.returncode

        again = queue.run("--quiet")

        assert 0 == again.returncode, again.stderr
        assert [("a", 1), ("b", 1), ("c", 1)] == queue.runs()
        assert [] == queue.events("job_recovered")


def test_runner_killed_mid_job_leaves_no_process_behind(project: Path) -> None:
    """`kill -9` of the runner while its job runs: a plain `run` refuses (exit 6) naming the
    job and --resume, writing nothing; `run --resume` stops the job's orphaned process group
    (worker and grandchild), reruns the job once and never reruns the done one."""
    with SmallQueue(project, JOBS, max_attempts=2, grace_seconds=1) as queue:
        runner = queue.start("--quiet", WORKER_SLEEP="30", WORKER_SLEEP_MATCH="b",
                             WORKER_GRANDCHILD="1")
        queue.wait_busy("b")
        worker, grandchild = queue.worker_pids()[-1], queue.grandchild("b")
        runner.send_signal(signal.SIGKILL)
        runner.communicate(timeout=10)
        assert is_running(worker)
        assert is_running(grandchild)
        written = queue.journal.read_bytes()

        refused = queue.run("--quiet")

        assert 6 == refused.returncode
        assert "b (attempt 1)" in refused.stderr
        assert "--resume" in refused.stderr
        assert written == queue.journal.read_bytes()
        assert is_running(worker)  # refusing decides nothing, so it stops nothing either

        resumed = queue.run("--resume", "--quiet")

        assert 0 == resumed.returncode, resumed.stderr
        assert not is_running(worker)
        assert not is_running(grandchild)
        assert f"stopped process group {worker} of job b" in resumed.stderr
        assert [("a", 1), ("b", 1), ("b", 2), ("c", 1)] == queue.runs()
        assert {"done": 3} == counts(queue.status())
        b = queue.job("b")
        assert [("failed", "abandoned"), ("done", "exit")] == [
            (attempt["outcome"], attempt["reason"]) for attempt in b["attempts"]]


def test_recover_stops_the_orphaned_job_too(project: Path) -> None:
    """`journalq recover` on its own, like `run --resume`, stops the process group a killed
    runner left behind before it settles the job; the next `run` reruns it once."""
    with SmallQueue(project, ["a", "b"], max_attempts=2) as queue:
        runner = queue.start("--quiet", WORKER_SLEEP="30", WORKER_SLEEP_MATCH="b",
                             WORKER_GRANDCHILD="1")
        queue.wait_busy("b")
        worker, grandchild = queue.worker_pids()[-1], queue.grandchild("b")
        runner.send_signal(signal.SIGKILL)
        runner.communicate(timeout=10)

        recovered = queue.command("recover")

        assert 0 == recovered.returncode, recovered.stderr
        assert "recovered 1 job(s)" in recovered.stdout
        assert not is_running(worker)
        assert not is_running(grandchild)
        assert "pending" == queue.job("b")["status"]
        again = queue.run("--quiet")
        assert 0 == again.returncode, again.stderr
        assert [("a", 1), ("b", 1), ("b", 2)] == queue.runs()


def test_orphan_that_ignores_sigterm_is_killed_on_resume(project: Path) -> None:
    """A job left running by a killed runner that ignores SIGTERM is SIGKILLed after the
    config's grace period when the next runner recovers it."""
    with SmallQueue(project, ["only"], max_attempts=1, grace_seconds=0.5) as queue:
        runner = queue.start("--quiet", WORKER_SLEEP="30", WORKER_IGNORE_TERM="1")
        queue.wait_busy("only")
        worker = queue.worker_pids()[-1]
        runner.send_signal(signal.SIGKILL)
        runner.communicate(timeout=10)

        resumed = queue.run("--resume", "--quiet")

        assert 1 == resumed.returncode, resumed.stderr
        wait_until(lambda: not is_running(worker), "the orphan to be gone", timeout=2)
        only = queue.job("only")
        assert ("failed", "abandoned") == (only["status"], only["reason"])


def test_kill_orphan_stops_survivors_of_a_dead_worker(project: Path) -> None:
    """When the worker of a left-running job has exited but its grandchild lives on in the
    job's process group, stopping the orphan stops the grandchild; a process that only
    shares the recorded pid (another start time) is never signalled."""
    out_dir = project / "out"
    worker = subprocess.Popen(
        [sys.executable, "scripts/run_sweep.py", "--model", "m", "--layers", "1",
         "--alphas", "1", "--output-dir", str(out_dir), "--summary-path", str(out_dir / "s")],
        process_group=0, stdout=subprocess.DEVNULL,
        env={**os.environ, "WORKER_SLEEP": "30", "WORKER_GRANDCHILD": "1"},
    )
    grandchild = None
    try:
        pid_file = out_dir / "grandchild.pid"
        wait_until(lambda: pid_file.exists() and pid_file.read_text(), "the grandchild")
        grandchild = int(pid_file.read_text())
        start = host.process_start(worker.pid)
        assert start is not None
        assert False is kill_orphan(worker.pid, start + 1, grace_seconds=0.5)
        assert is_running(worker.pid)  # another start time: not ours, never signalled
        worker.kill()
        worker.wait()

        assert True is kill_orphan(worker.pid, start, grace_seconds=0.5)

        wait_until(lambda: not is_running(grandchild), "the grandchild to be gone", timeout=2)
    finally:
        worker.kill()
        worker.wait()
        if grandchild is not None and is_running(grandchild):
            os.kill(grandchild, signal.SIGKILL)


def test_resume_stops_a_grandchild_that_outlived_its_worker(project: Path) -> None:
    """The runner is SIGKILLed mid-job, then the worker dies too, but its grandchild lives
    on: `run --resume` stops the grandchild (no child is ever left orphaned)."""
    with SmallQueue(project, ["job"], max_attempts=2) as queue:
        runner = queue.start("--quiet", WORKER_SLEEP="30", WORKER_GRANDCHILD="1")
        queue.wait_busy("job")
        worker, grandchild = queue.worker_pids()[-1], queue.grandchild("job")
        runner.send_signal(signal.SIGKILL)
        runner.communicate(timeout=10)
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: not is_running(worker), "the worker to die")

        resumed = queue.run("--resume", "--quiet")

        assert 0 == resumed.returncode, resumed.stderr
        assert not is_running(grandchild)


def test_runner_that_cannot_journal_takes_its_job_down_with_it(project: Path) -> None:
    """When the journal refuses an append mid-job (here: past the runner's file size limit),
    the runner exits 4 and stops the job's whole group first: a job nobody can record is
    never left running. The next `run --resume` settles and reruns it."""
    with SmallQueue(project, ["big"], max_attempts=2, heartbeat_seconds=0.05) as queue:
        assert 0 == queue.command("init", "--config", queue.config).returncode
        # Room for session_started and job_started, and a few heartbeats after them.
        limit = queue.journal.stat().st_size + 1500

        def limit_file_size() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        runner = subprocess.Popen(
            [sys.executable, "-m", "journalq", "run", "--config", queue.config, "--quiet"],
            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **queue.env(WORKER_SLEEP="30", WORKER_GRANDCHILD="1")},
            preexec_fn=limit_file_size)
        queue.runners.append(runner)
        _, err = runner.communicate(timeout=20)

        assert 4 == runner.returncode, err
        assert "cannot append to" in err
        worker, grandchild = queue.worker_pids()[-1], queue.grandchild("big")
        assert not is_running(worker)
        assert not is_running(grandchild)

        resumed = queue.run("--resume", "--quiet")

        assert 0 == resumed.returncode, resumed.stderr
        assert [("big", 1), ("big", 2)] == queue.runs()
        assert "done" == queue.job("big")["status"]
