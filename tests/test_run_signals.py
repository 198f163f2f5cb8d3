"""SIGINT or SIGTERM to the runner stops the job's whole process group (SIGTERM, then SIGKILL
after grace_seconds, at once on a second Ctrl-C), journals the attempt as interrupted
without charging it, ends the session, and exits 128 + the signal. No process survives.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from test_run_support import SmallQueue, finish, is_running


@pytest.mark.parametrize(("signum", "code"),
                         [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_stopping_the_runner_interrupts_the_job(project: Path, signum: int,
                                                code: int) -> None:
    """The running job goes back to pending with its attempt uncharged, the next job is not
    started, the session ends with the exit code, and the child got SIGTERM."""
    with SmallQueue(project, ["slow", "next"], max_attempts=1) as queue:
        runner = queue.start("--quiet", WORKER_SLEEP="30")
        queue.wait_busy("slow")
        worker = queue.worker_pids()[-1]

        runner.send_signal(signum)
        returncode, _, err = finish(runner)

        assert code == returncode, err
        assert not is_running(worker)
        interrupted = queue.events("job_interrupted")
        assert [("slow", 1, signum)] == [(e["job"], e["attempt"], e["signal"])
                                         for e in interrupted]
        assert [code] == [e["exit_code"] for e in queue.events("session_ended")]
        assert "session_ended" == queue.events()[-1]["type"]
        slow = queue.job("slow")
        assert ("pending", 1, 1) == (slow["status"], slow["attempt"], slow["attempts_left"])
        assert [False] == [attempt["charged"] for attempt in slow["attempts"]]
        assert [("slow", 1)] == queue.runs()
        assert "# exit: signal 15 (interrupted)" in queue.log("slow", 1).read_text()
        assert "interrupted slow (attempt 1); it is pending again" in err


def test_interrupted_job_runs_again_with_its_budget(project: Path) -> None:
    """An interrupted attempt is free: with max_attempts 1 the job still runs (and succeeds)
    on the next `run`, as attempt 2, with no --resume needed."""
    with SmallQueue(project, ["slow"], max_attempts=1) as queue:
        runner = queue.start("--quiet", WORKER_SLEEP="30")
        queue.wait_busy("slow")
        runner.send_signal(signal.SIGINT)
        assert 130 == finish(runner)[0]

        again = queue.run("--quiet")

        assert 0 == again.returncode, again.stderr
        assert [("slow", 1), ("slow", 2)] == queue.runs()
        assert "done" == queue.job("slow")["status"]


def test_child_ignoring_sigterm_is_killed_after_grace(project: Path) -> None:
    """A child that ignores SIGTERM is SIGKILLed once grace_seconds have passed, not
    before, and the runner still records the interruption and exits 130."""
    grace = 1.0
    with SmallQueue(project, ["stubborn"], grace_seconds=grace) as queue:
        runner = queue.start("--quiet", WORKER_SLEEP="30", WORKER_IGNORE_TERM="1")
        queue.wait_busy("stubborn")
        worker = queue.worker_pids()[-1]

        sent = time.monotonic()
        runner.send_signal(signal.SIGINT)
        returncode, _, err = finish(runner)
        took = time.monotonic() - sent

        assert 130 == returncode, err
        assert grace <= took < grace + 4
        assert not is_running(worker)
        assert "# exit: signal 9 (interrupted)" in queue.log("stubborn", 1).read_text()
        assert "pending" == queue.job("stubborn")["status"]


def test_second_ctrl_c_kills_at_once(project: Path) -> None:
    """A second SIGINT does not wait out the grace period: the group is SIGKILLed now."""
    grace = 8.0
    with SmallQueue(project, ["stubborn"], grace_seconds=grace) as queue:
        runner = queue.start("--quiet", WORKER_SLEEP="30", WORKER_IGNORE_TERM="1")
        queue.wait_busy("stubborn")
        worker = queue.worker_pids()[-1]

        sent = time.monotonic()
        runner.send_signal(signal.SIGINT)
        # Two signals sent back to back can merge into one pending signal; a person's two
        # Ctrl-C presses are never that close.
        time.sleep(0.2)
        runner.send_signal(signal.SIGINT)
        returncode, _, err = finish(runner)
        took = time.monotonic() - sent

        assert 130 == returncode, err
        assert took < grace / 2
        assert not is_running(worker)
        assert "# exit: signal 9 (interrupted)" in queue.log("stubborn", 1).read_text()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_no_grandchild_outlives_an_interrupted_job(project: Path, signum: int) -> None:
    """A grandchild the job spawned is in the job's process group and is stopped with it."""
    with SmallQueue(project, ["parent"]) as queue:
        runner = queue.start("--quiet", WORKER_SLEEP="30", WORKER_GRANDCHILD="1")
        queue.wait_busy("parent")
        worker, grandchild = queue.worker_pids()[-1], queue.grandchild("parent")
        assert is_running(grandchild)

        runner.send_signal(signum)
        returncode, _, err = finish(runner)

        assert 128 + signum == returncode, err
        assert not is_running(worker)
        assert not is_running(grandchild)


def test_grandchild_ignoring_sigterm_is_killed_too(project: Path) -> None:
    """Even when the whole group ignores SIGTERM (the grandchild inherits SIG_IGN), it is
    SIGKILLed after the grace period: nothing is left orphaned."""
    with SmallQueue(project, ["parent"], grace_seconds=0.5) as queue:
        runner = queue.start("--quiet", WORKER_SLEEP="30", WORKER_GRANDCHILD="1",
                             WORKER_IGNORE_TERM="1")
        queue.wait_busy("parent")
        worker, grandchild = queue.worker_pids()[-1], queue.grandchild("parent")

        runner.send_signal(signal.SIGINT)
        returncode, _, err = finish(runner)

        assert 130 == returncode, err
        assert not is_running(worker)
        assert not is_running(grandchild)
