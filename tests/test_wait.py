"""`journalq wait` blocks until the jobs it waits on are settled, while another process (or
another runtime, through the sync folder) runs them: exit 0 if all are done (a cancelled
job counts as settled), 1 if one failed, 124 when its timeout passes first. It only reads."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from ops_support import FAIL, OK, command_config, processes, sleeper
from test_run_support import wait_until

from conftest import REPO, journalq
from journalq import api
from journalq.opened import open_queue
from journalq.reading import read_queue
from journalq.watch import QueueWatch

JOURNAL = Path("runtime_state/wq.jsonl")


def test_wait_returns_when_a_runner_in_another_process_finishes(project: Path) -> None:
    """Started right after `run` (before its journal exists: the config names the jobs),
    `wait` blocks until the runner has finished them all, then exits 0, saying so."""
    config = command_config(project, "wq", {"a": sleeper(0.5), "b": sleeper(0.5)})
    with processes(project) as started:
        runner = started.start("run", "--config", config, "--quiet")

        waited = journalq("wait", "--config", config, timeout=30)

        finished_first = runner.poll() is not None or _all_done(project)
        assert 0 == waited.returncode, waited.stderr
        assert finished_first
        assert "wait: 2/2 settled (2 done, 0 failed), 0 running, 0 pending" in waited.stderr
        assert 0 == runner.wait(timeout=30)


def test_wait_exits_1_when_a_job_failed_and_names_it(project: Path) -> None:
    """A failed job: exit 1, and a line with its return code and log."""
    config = command_config(project, "wq", {"a": OK, "bad": FAIL})
    with processes(project) as started:
        started.start("run", "--config", config, "--quiet")

        waited = journalq("wait", "--config", config, timeout=30)

    assert 1 == waited.returncode, waited.stderr
    assert re.search(r"failed bad  rc=3  reason=exit  log=\S+attempt-1.log", waited.stderr)


def test_wait_times_out_with_124(project: Path) -> None:
    """A job that outlasts --timeout: exit 124 and one line naming what is not settled;
    waiting on the job that did finish is 0 meanwhile."""
    config = command_config(project, "wq", {"quick": OK, "slow": sleeper(30)})
    with processes(project) as started:
        runner = started.start("run", "--config", config, "--quiet")
        wait_until(lambda: (project / "runtime_state/logs/wq/slow/attempt-1.log").exists(),
                   "the slow job to start")

        timed_out = journalq("wait", "--state", str(JOURNAL), "--timeout", "0.5")
        quick = journalq("wait", "--state", str(JOURNAL), "quick", "--timeout", "5")

        runner.send_signal(signal.SIGTERM)
        assert 143 == runner.wait(timeout=30)
    assert 124 == timed_out.returncode
    assert ("journalq: error: wait: 0.5s passed with 1 of 2 job(s) not settled (slow)"
            in timed_out.stderr)
    assert 0 == quick.returncode, quick.stderr


def test_a_cancelled_job_counts_as_settled_not_failed(project: Path) -> None:
    """Done and cancelled: exit 0 at once."""
    config = command_config(project, "wq", {"a": OK, "b": OK})
    journalq("init", "--config", config)
    journalq("cancel", "--state", str(JOURNAL), "b")
    journalq("run", "--config", config, "--quiet")

    waited = journalq("wait", "--state", str(JOURNAL), "--timeout", "5")

    assert 0 == waited.returncode, waited.stderr
    assert "(1 done, 0 failed, 1 cancelled)" in waited.stderr


def test_unknown_jobs_and_globs_that_match_nothing_are_usage_errors(project: Path) -> None:
    """A job id the queue does not hold, or a glob that matches none: exit 2, at once."""
    config = command_config(project, "wq", {"a": OK})
    journalq("init", "--config", config)

    unknown = journalq("wait", "--state", str(JOURNAL), "nope", "--timeout", "5")
    typo = journalq("wait", "--state", str(JOURNAL), "x*", "--timeout", "5")
    glob = journalq("wait", "--state", str(JOURNAL), "a*", "--timeout", "0.2")

    assert 2 == unknown.returncode and "no job 'nope'" in unknown.stderr
    assert 2 == typo.returncode and "no job matches 'x*'" in typo.stderr
    assert 124 == glob.returncode  # `a` matched: pending, and nothing runs it


def test_wait_on_another_runtime_through_the_sync_folder(project: Path) -> None:
    """A runner on another runtime (another boot id and journal) pushes copies to the
    sync folder; `wait --sync-dir` on this one, with no journal of its own, returns when
    the copies say the jobs are done, and writes nothing here."""
    config = command_config(project, "wq", {"a": sleeper(0.3), "b": sleeper(0.3)})
    with processes(project) as started:
        remote = started.start("run", "--config", config, "--state",
                               "runtime_state/remote/wq.jsonl", "--sync-dir", "drive",
                               "--quiet", env={"JOURNALQ_BOOT_ID": "other-vm"})

        waited = journalq("wait", "--config", config, "--sync-dir", "drive", timeout=30)

        assert 0 == waited.returncode, waited.stderr
        assert "2/2 settled (2 done" in waited.stderr
        assert not (project / JOURNAL).exists()
        assert 0 == remote.wait(timeout=30)


def test_wait_never_takes_the_lock(project: Path) -> None:
    """While `wait` waits, a writer can take the journal's lock: `cancel` works beside it
    (and the cancelled job settles the wait)."""
    config = command_config(project, "wq", {"a": OK})
    journalq("init", "--config", config)
    with processes(project) as started:
        waiter = started.start("wait", "--state", str(JOURNAL), "--timeout", "20")

        cancelled = journalq("cancel", "--state", str(JOURNAL), "a")
        _, err = waiter.communicate(timeout=30)

    assert 0 == cancelled.returncode, cancelled.stderr
    assert 0 == waiter.returncode, err


def test_exit_124_is_documented_in_the_help_and_the_readme() -> None:
    """`journalq --help` and the README's exit-code table both list 124."""
    helped = subprocess.run([sys.executable, "-m", "journalq", "--help"], capture_output=True,
                            text=True, check=True)
    readme = (REPO / "README.md").read_text()

    assert re.search(r"^\s+124\s+wait:", helped.stdout, flags=re.M)
    assert re.search(r"^\| 124 \| `wait`", readme, flags=re.M)


def _all_done(project: Path) -> bool:
    done = journalq("status", "--state", str(project / JOURNAL), "--status", "done",
                    "--format", "tsv")
    return len(done.stdout.splitlines()) == 3


def test_the_polled_fold_equals_a_full_read_through_appends_torn_lines_and_merges(
        project: Path) -> None:
    """What `wait` and `logs --follow` poll (the journal folded once, then only what was
    appended) equals a full read at every step: after plain appends, while the last line
    is half written, and after a merge appended events older than the newest."""
    config = command_config(project, "wq", {"a": OK, "b": FAIL})
    cli_run = journalq("run", "--config", config, "--quiet")
    assert 1 == cli_run.returncode
    lines = (project / JOURNAL).read_bytes().splitlines(keepends=True)
    (project / JOURNAL).write_bytes(b"".join(lines[:5]))
    opened = open_queue(console=api.stream_console(), state=str(JOURNAL), config=None)
    watch = QueueWatch(opened)

    def appended(data: bytes) -> None:
        with (project / JOURNAL).open("ab") as journal:
            journal.write(data)
        assert read_queue(opened) == watch.queue()

    assert read_queue(opened) == watch.queue()
    for line in lines[5:-1]:
        appended(line)
    appended(lines[-1][:10])  # torn: a writer half-way through its append
    appended(lines[-1][10:])
    older = json.loads(lines[0])  # a session_started, from a session merged in late
    assert "session_started" == older["type"]
    older.update(id="abcdefabcdef:1", session="abcdefabcdef")
    appended(json.dumps(older).encode() + b"\n")  # sorts before the newest: a full replay
    assert "abcdefabcdef" in watch.queue().sessions
