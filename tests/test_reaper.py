"""No process a job started outlives its attempt, even one that left the job's process group
(issue 9, item 6): on Linux the runner is a child subreaper, every attempt's processes carry
`JOURNALQ_ATTEMPT_ID=<session>/<job>/<attempt>` in their environment, and when the attempt
ends every descendant with that tag is killed and every adopted zombie reaped.

The daemon in these tests is the classic one: fork, `setsid`, fork again, the middle process
exits; the daemon is in a session and process group of its own, so killing the job's group
never reaches it (and it forks a child of its own, to show the whole tree goes).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import reliability
from test_run_support import finish, is_running, wait_until

from conftest import events, journalq, spawn, write

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the subreaper and /proc are Linux's")

DAEMON = textwrap.dedent("""\
    '''Leave a daemon behind: fork, setsid, fork; the daemon forks a child of its own and
    writes "<daemon> <its child>" to argv[1]. Then sleep JOB_SLEEP and exit JOB_EXIT.'''
    import os, sys, time
    out = sys.argv[1]
    with open(out + ".job", "w") as handle:
        handle.write(str(os.getpid()))
    keep_pipe = os.environ.get("DAEMON_KEEPS_STDOUT") == "1"
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() == 0:
            if not keep_pipe:
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
            child = os.fork()
            if child == 0:
                time.sleep(300)
                os._exit(0)
            with open(out + ".tmp", "w") as handle:
                handle.write(f"{os.getpid()} {child}")
            os.rename(out + ".tmp", out)
            time.sleep(300)
            os._exit(0)
        os._exit(0)
    os.waitpid(middle, 0)
    while not os.path.exists(out):
        time.sleep(0.01)
    print("left a daemon behind", flush=True)
    time.sleep(float(os.environ.get("JOB_SLEEP", "0")))
    sys.exit(int(os.environ.get("JOB_EXIT", "0")))
""")

CONFIG = """\
queue: d
heartbeat_seconds: 0.2
grace_seconds: 1
defaults:
  max_attempts: 1
jobs:
  - id: daemonizer
    command: [python, scripts/daemon.py, "{out_dir}/daemon.pids"]
  - id: after
    command: [python, -c, "print('next job')"]
"""


def daemon_pids(project: Path) -> list[int]:
    """The daemon the job left and the daemon's own child."""
    path = project / "runtime_state" / "outputs" / "d" / "daemonizer" / "daemon.pids"
    wait_until(path.exists, "the daemon's pid file")
    return [int(word) for word in path.read_text().split()]


def job_pid(project: Path) -> list[int]:
    """The job's own process (to clean up after a failed test)."""
    path = project / "runtime_state" / "outputs" / "d" / "daemonizer" / "daemon.pids.job"
    return [int(path.read_text())] if path.exists() else []


def environ_of(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")


@pytest.fixture
def daemon_project(project: Path) -> Path:
    write(project / "scripts" / "daemon.py", DAEMON)
    write(project / "configs" / "d.yaml", CONFIG)
    return project


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("keeps_stdout", [False, True], ids=["closes-stdio", "keeps-pipe"])
@pytest.mark.parametrize("exit_code", [0, 3])
def test_a_daemon_a_job_leaves_behind_dies_with_its_attempt(daemon_project: Path,
                                                            keeps_stdout: bool,
                                                            exit_code: int) -> None:
    """A job that starts a setsid daemon and exits (done or failed): when its attempt ends,
    the daemon and the daemon's child are gone, the next job runs, and the attempt's log
    says what was killed. Before, the daemon outlived the job (and the runner)."""
    env = {"JOB_EXIT": str(exit_code), "DAEMON_KEEPS_STDOUT": "1" if keeps_stdout else "0"}
    pids: list[int] = []
    try:
        done = journalq("run", "--config", "configs/d.yaml", "--quiet", cwd=daemon_project,
                        env=env, timeout=60)
        pids = daemon_pids(daemon_project)

        assert (1 if exit_code else 0) == done.returncode, done.stderr
        assert [] == [pid for pid in pids if is_running(pid)]
        log = (daemon_project / "runtime_state" / "logs" / "d" / "daemonizer" /
               "attempt-1.log").read_text()
        assert "left behind" in log and str(pids[0]) in log, log
        finished = [e["job"] for e in events(daemon_project / "runtime_state" / "d.jsonl")
                    if e["type"] == "job_finished"]
        assert ["daemonizer", "after"] == finished
    finally:
        kill_all(pids)


def test_the_attempt_tag_is_in_every_process_of_the_attempt(daemon_project: Path) -> None:
    """The child (and so its daemon) inherits JOURNALQ_ATTEMPT_ID=<session>/<job>/<attempt>,
    the name recovery finds survivors by; Ctrl-C to the runner kills the daemon too."""
    pids: list[int] = []
    runner = spawn("run", "--config", "configs/d.yaml", "--quiet", cwd=daemon_project,
                   env={"JOB_SLEEP": "30"})
    try:
        pids = daemon_pids(daemon_project)
        started = next(e for e in events(daemon_project / "runtime_state" / "d.jsonl")
                       if e["type"] == "job_started")
        tag = f"JOURNALQ_ATTEMPT_ID={started['session']}/daemonizer/1"
        assert tag in environ_of(pids[0]) and tag in environ_of(pids[1])

        runner.send_signal(signal.SIGINT)
        code, _, err = finish(runner)

        assert 130 == code, err
        assert [] == [pid for pid in pids if is_running(pid)]
    finally:
        runner.kill()
        runner.communicate()
        kill_all(pids + job_pid(daemon_project))


def test_recovery_stops_what_a_killed_runner_left_on_this_machine(
        daemon_project: Path) -> None:
    """A runner SIGKILLed mid-job cannot clean up: its daemon lives on, re-parented to init.
    `journalq recover` on the same boot finds every process by the attempt's tag in /proc
    (`reaper.find_tagged`) and stops it with the job's group (SIGTERM, then SIGKILL)."""
    pids: list[int] = []
    runner = spawn("run", "--config", "configs/d.yaml", "--quiet", cwd=daemon_project,
                   env={"JOB_SLEEP": "30"})
    try:
        pids = daemon_pids(daemon_project)
        runner.send_signal(signal.SIGKILL)
        runner.communicate(timeout=10)
        assert all(is_running(pid) for pid in pids)

        done = journalq("recover", "--state", "runtime_state/d.jsonl", cwd=daemon_project)

        assert 0 == done.returncode, done.stderr
        wait_until(lambda: not any(is_running(pid) for pid in pids), "the survivors to die",
                   timeout=5)
    finally:
        runner.kill()
        runner.communicate()
        kill_all(pids + job_pid(daemon_project))


API_SCRIPT = textwrap.dedent("""\
    '''Drive the reaper's API as a scheduler would: two attempts at once, one of which left a
    daemon; an orphan that exited by itself; the other attempt's leader must be untouched
    (still running, and still Popen's to wait for). Prints what it saw as JSON.'''
    import json, os, subprocess, sys, time
    from journalq import reaper
    if os.environ.get("SCAN_PROC") == "1":  # as on a kernel without children lists
        reaper._have_children_lists = lambda: False
    subreaper = reaper.become_subreaper()
    def tagged(tag):
        return {**os.environ, reaper.TAG_VARIABLE: tag}
    other = subprocess.Popen(["sh", "-c", "sleep 3; exit 7"], env=tagged("s/other/1"),
                             process_group=0)
    job = subprocess.Popen([sys.executable, "scripts/daemon.py", "pids"],
                           env=tagged("s/job/1"), process_group=0, stdout=subprocess.DEVNULL)
    job.wait()
    # An orphan of another attempt that exits on its own: a zombie of ours to reap.
    quick = subprocess.Popen([sys.executable, "-c",
                              "import os, time\\nif os.fork() == 0:\\n    time.sleep(0.2)\\n"
                              "    os._exit(0)"], env=tagged("s/quick/1"))
    quick.wait()
    time.sleep(0.5)
    daemon, child = (int(word) for word in open("pids").read().split())
    killed = reaper.kill_leftovers("s/job/1", leaders=[other.pid])
    def state(pid):
        try:
            text = open(f"/proc/{pid}/stat").read()
        except FileNotFoundError:
            return "gone"
        return text[text.rindex(")") + 2]
    children = open(f"/proc/self/task/{os.getpid()}/children").read().split()
    left = {pid: state(int(pid)) for pid in children}
    # The common case, at every job's end: nothing adopted, nothing to do.
    other_code = other.wait()
    import timeit
    runs = 2000
    micros = timeit.timeit(lambda: reaper.kill_leftovers("s/none/1"), number=runs) / runs * 1e6
    print(json.dumps({"subreaper": subreaper, "killed": sorted(killed),
                      "daemon": [daemon, child], "states": [state(daemon), state(child)],
                      "left": left, "other": other.pid, "other_code": other_code,
                      "micros": micros}))
""")


@pytest.mark.parametrize("scan", [False, True], ids=["children-lists", "proc-scan"])
def test_the_reaper_kills_one_attempts_leftovers_and_reaps_without_stealing(
        daemon_project: Path, scan: bool) -> None:
    """`kill_leftovers(tag, leaders=...)` kills exactly the processes with that attempt's
    tag (a daemon and its child), reaps the zombies the runner adopted (the ones it killed,
    and an orphan that exited by itself), and leaves another attempt's leader running and
    waitable by its Popen (its exit status is still 7). The check that runs at every job's
    end costs a few microseconds when nothing was adopted."""
    write(daemon_project / "api.py", API_SCRIPT)
    done = subprocess.run([sys.executable, "api.py"], cwd=daemon_project, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "SCAN_PROC": str(int(scan))})
    assert 0 == done.returncode, done.stderr
    seen = json.loads(done.stdout)
    try:
        assert seen["subreaper"] is True
        assert set(seen["daemon"]) <= set(seen["killed"])
        assert ["gone", "gone"] == seen["states"]
        assert {str(seen["other"]): "S"} == seen["left"]  # no zombie left, the leader alive
        assert 7 == seen["other_code"]
        if not scan:  # the per-job overhead budget is ~2 ms; a scan costs what /proc holds
            assert seen["micros"] < 2000
            reliability.count("leftover check per job end, microseconds",
                              round(seen["micros"]))
    finally:
        kill_all(seen["daemon"])


def test_a_plain_background_child_still_dies_with_the_group(daemon_project: Path) -> None:
    """The process group kill of before still holds: a `nohup ... &` child in the job's group
    is gone when the attempt ends (no tag needed)."""
    write(daemon_project / "configs" / "bg.yaml", textwrap.dedent("""\
        queue: bg
        jobs:
          - id: bg
            shell: true
            command: "nohup sleep 300 >/dev/null 2>&1 & echo $! > {out_dir}/bg.pid"
    """))
    pid_file = daemon_project / "runtime_state" / "outputs" / "bg" / "bg" / "bg.pid"
    done = journalq("run", "--config", "configs/bg.yaml", "--quiet", cwd=daemon_project)
    pid = int(pid_file.read_text())
    try:
        assert 0 == done.returncode, done.stderr
        assert not is_running(pid)
    finally:
        kill_all([pid])
