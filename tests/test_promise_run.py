"""Issue 9, what `run` does with its jobs: a run card that shows up late still settles its job
(5), no daemon a job starts outlives it (6), a full disk is said and never charged (8), a job
held back by a foreign card is described as that (10), and the card keeps one time format
(also).

Each test states the rule after the fix; it is marked xfail(strict) until the fix lands.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tomllib
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from promise_support import TS, Project, processes_with, spawn, wait_until, write

# ---- 5: a run card that arrives after recovery -----------------------------------------------


def test_a_card_that_arrives_after_recovery_settles_the_job(tmp_path: Path) -> None:
    """Runtime A finishes job b and writes its card, then dies before journaling the finish;
    the card reaches Drive late, after runtime B's `recover --force` sent the attempt back
    to pending. B's next `run` settles b from the card (done) instead of running it again,
    and never overwrites the card of attempt 1."""
    with Project(tmp_path, ["a", "b", "c"], max_attempts=2, boot="machine-a") as a:
        crashed = a.run(JOURNALQ_FAILPOINT="after-card@b")
        assert -signal.SIGKILL == crashed.returncode, crashed.stderr
        card = a.card("b").read_bytes()
        a.card("b").unlink()  # not on this runtime's view of Drive yet
        b = Project(tmp_path, ["a", "b", "c"], max_attempts=2, boot="machine-b")
        recovered = b.command("recover", "--config", b.config, "--force")
        assert 0 == recovered.returncode, recovered.stderr
        assert "pending" == b.job("b")["status"]
        b.card("b").write_bytes(card)  # ... and now it is

        resumed = b.run("--force")

        assert 0 == resumed.returncode, resumed.stderr
        assert [("a", 1), ("b", 1), ("c", 1)] == b.runs()
        assert "done" == b.job("b")["status"]
        assert card == b.card("b").read_bytes()


# ---- 6: a daemon started by a job ------------------------------------------------------------

DAEMON = """\
import os, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(300)
"""


def daemon_job(root: Path, marker: str, then: str) -> str:
    """A config whose one job starts a `setsid` daemon (a new session: outside the job's
    process group) carrying `marker` in its argv, waits until it runs, then does `then`."""
    pid_file = root / "daemon.pid"
    write(root / "daemon.py", DAEMON)
    command = (f"setsid {sys.executable} {root / 'daemon.py'} {pid_file} {marker} "
               f"</dev/null >/dev/null 2>&1 & "
               f"while [ ! -s {pid_file} ]; do sleep 0.02; done; echo daemon up; {then}")
    write(root / "configs" / "d.yaml", "\n".join([
        "queue: d", "heartbeat_seconds: 0.2", "grace_seconds: 1", "jobs:",
        "  - id: daemonizer", "    shell: true", f"    command: {json.dumps(command)}", ""]))
    return "configs/d.yaml"


@pytest.mark.parametrize("ending", ["job-exits", "runner-interrupted"])
def test_no_daemon_started_by_a_job_outlives_it(tmp_path: Path, ending: str) -> None:
    """A job that starts a daemon in a session of its own (`setsid cmd &`, out of the job's
    process group) leaves no process behind once its attempt ends, whether the job exits by
    itself or the runner is stopped with Ctrl-C (on Linux: the runner reaps and kills every
    descendant it inherits)."""
    marker = f"jq-daemon-{uuid.uuid4().hex}"
    config = daemon_job(tmp_path, marker, "exit 0" if ending == "job-exits" else "sleep 30")
    runner = spawn("run", "--config", config, "--quiet", cwd=tmp_path)
    try:
        if ending == "runner-interrupted":
            pid_file = tmp_path / "daemon.pid"
            wait_until(lambda: pid_file.exists() and pid_file.read_text(), "the daemon")
            runner.send_signal(signal.SIGINT)
        _, err = runner.communicate(timeout=30)
        assert {"job-exits": 0, "runner-interrupted": 130}[ending] == runner.returncode, err
        assert (tmp_path / "daemon.pid").exists(), err

        survivors = processes_with(marker)

        assert [] == survivors
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)


# ---- 8: a full disk --------------------------------------------------------------------------

def limited_run(root: Path, config: str, limit: int, *args: str,
                **env: str) -> subprocess.CompletedProcess[str]:
    """`journalq run` with every file it writes limited to `limit` bytes (RLIMIT_FSIZE):
    past it, a write fails with EFBIG, as on a full disk."""
    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "journalq", "run", "--config", config,
                           "--quiet", *args], cwd=root, capture_output=True, text=True,
                          timeout=60, preexec_fn=limit_file_size,
                          env={**os.environ, **env})


def test_a_log_that_cannot_be_written_is_warned_of_once(tmp_path: Path) -> None:
    """When a job's log cannot take its output (disk full; here a file size limit the
    journal stays under), the job still runs and is journaled done, and one warning line
    names the log."""
    printer = "for i in range(4000): print('x' * 99)"
    write(tmp_path / "configs" / "chatty.yaml", "\n".join([
        "queue: chatty", "heartbeat_seconds: 0.2", "jobs:", "  - id: talk",
        f"    command: [python, -c, \"{printer}\"]", ""]))

    done = limited_run(tmp_path, "configs/chatty.yaml", 100_000)

    assert 0 == done.returncode, done.stderr
    log = "runtime_state/logs/chatty/talk/attempt-1.log"
    warnings = [line for line in done.stderr.splitlines()
                if line.startswith("journalq: warning:") and log in line]
    assert 1 == len(warnings), done.stderr


def test_an_attempt_stopped_for_a_full_disk_is_not_charged(tmp_path: Path) -> None:
    """A runner that cannot append a heartbeat (disk full) stops its job and exits 4. That
    attempt was stopped by journalq, not lost by the job: the next `run --resume` does not
    charge it, so even with max_attempts 1 the job runs again and ends done."""
    with Project(tmp_path, ["big"], max_attempts=1, heartbeat_seconds=0.05) as project:
        assert 0 == project.command("init", "--config", project.config).returncode
        limit = project.journal.stat().st_size + 1500  # session_started, job_started, a few beats

        stopped = limited_run(tmp_path, project.config, limit, **project.env(
            WORKER_SLEEP="30"))

        assert 4 == stopped.returncode, stopped.stderr
        resumed = project.run("--resume")
        assert 0 == resumed.returncode, resumed.stderr
        assert "-> failed" not in resumed.stderr
        assert [("big", 1), ("big", 2)] == project.runs()
        big = project.job("big")
        assert "done" == big["status"]
        assert [False, True] == [t["charged"] for t in big["attempts"]]


# ---- 10: a job held back by a foreign card ---------------------------------------------------

def test_a_job_held_back_by_a_foreign_card_is_not_called_missing_from_the_config(
        tmp_path: Path) -> None:
    """A job whose out_dir holds the card of an attempt this journal never saw is settled
    from that card (not run again) and said to be so, naming the card; nothing claims it
    is not in the config or suggests --trust journal for it."""
    with Project(tmp_path, ["a", "b"]) as project:
        other = project.command("run", "--config", project.config, "--quiet", "--state",
                                "runtime_state/lost.jsonl")  # a runtime whose journal is lost
        assert 0 == other.returncode, other.stderr
        project.card("a").unlink()  # only b's card is foreign

        done = project.run()

        assert 0 == done.returncode, done.stderr
        assert [("a", 1), ("b", 1), ("a", 1)] == project.runs()
        assert "runtime_state/outputs/q/b/journalq-run.toml" in done.stderr  # why b is done
        assert "not in configs/q.yaml" not in done.stderr
        assert "--trust journal" not in done.stderr


# ---- also: the run card's times --------------------------------------------------------------

def test_the_run_card_keeps_one_time_format(tmp_path: Path) -> None:
    """The run card's `started` and `finished` are both the journal's time format (RFC 3339
    UTC with microseconds), and finished is never before started + duration."""
    with Project(tmp_path, ["a"]) as project:
        assert 0 == project.run(WORKER_SLEEP="0.3").returncode

        card = tomllib.loads(project.card("a").read_text())

        assert TS.match(card["started"]), card["started"]
        assert TS.match(card["finished"]), card["finished"]
        started, finished = (datetime.fromisoformat(card[key].replace("Z", "+00:00"))
                             for key in ("started", "finished"))
        assert (finished - started).total_seconds() >= card["duration"]
