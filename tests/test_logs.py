"""`journalq logs` prints an attempt's log; `--follow` streams it from another process while
`run` runs the job, and exits with the job's own exit status when the journal says the
attempt settled. Real runners, real journals, real logs."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from ops_support import FAIL, OK, TICKER, command_config, journal_types, processes, sleeper
from test_run_support import wait_until

from conftest import journalq

JOURNAL = Path("runtime_state/lq.jsonl")


def log_of(project: Path, job: str, attempt: int = 1, queue: str = "lq") -> Path:
    return project / "runtime_state" / "logs" / queue / job / f"attempt-{attempt}.log"


def test_follow_streams_a_running_job_and_exits_with_its_return_code(project: Path) -> None:
    """While `run` runs a job that prints for two seconds then exits 3, `logs --follow`
    in another process prints its lines as they come (before the job ends) and exits 3."""
    config = command_config(project, "lq", {"ticker": TICKER})
    with processes(project) as started:
        runner = started.start("run", "--config", config, "--quiet")
        wait_until(lambda: "tick 0" in _text(log_of(project, "ticker")), "the first tick")
        follow = started.start("logs", "--config", config, "ticker", "--follow")
        assert follow.stdout is not None
        seen = []
        while "tick 2" not in seen:
            seen.append(follow.stdout.readline().strip())
        still_running = "job_finished" not in journal_types(project / JOURNAL)
        out, err = follow.communicate(timeout=30)

        assert still_running  # the lines arrived while the job ran: streamed, not dumped
        assert 3 == follow.returncode, err
        lines = [*seen, *out.splitlines()]
        assert [f"tick {i}" for i in range(8)] == [line for line in lines
                                                   if line.startswith("tick")]
        assert "logs: ticker attempt 1 failed, rc=3" in err
        assert 1 == runner.wait(timeout=30)


def test_follow_of_a_settled_attempt_prints_it_and_exits_with_its_status(
        project: Path) -> None:
    """An attempt that already ended: the whole log, then its exit status; a signal that
    killed the job reads as 128+n, as a shell reports it."""
    config = command_config(project, "lq", {
        "ok": OK, "killed": "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"})
    assert 1 == journalq("run", "--config", config, "--quiet").returncode

    ok = journalq("logs", "--state", str(JOURNAL), "ok", "--follow")
    killed = journalq("logs", "--state", str(JOURNAL), "killed", "--follow")

    assert (0, True) == (ok.returncode, "\nok\n" in ok.stdout)
    assert 128 + signal.SIGTERM == killed.returncode, killed.stderr


def test_logs_prints_the_attempt_asked_for(project: Path) -> None:
    """Without --attempt, the latest attempt's log; with it, that attempt's (each attempt
    keeps its own log); the log's header names the attempt."""
    config = command_config(project, "lq", {"a": FAIL})
    journalq("run", "--config", config, "--quiet")
    assert 0 == journalq("retry", "--state", str(JOURNAL), "a").returncode
    journalq("run", "--config", config, "--quiet")

    latest = journalq("logs", "--state", str(JOURNAL), "a")
    first = journalq("logs", "--state", str(JOURNAL), "a", "--attempt", "1")

    assert (0, 0) == (latest.returncode, first.returncode)
    assert "attempt 2" in latest.stdout.splitlines()[0]
    assert "attempt 1" in first.stdout.splitlines()[0]
    assert "failing" in first.stdout
    assert _text(log_of(project, "a", 2)) == latest.stdout


def test_no_such_job_or_attempt_is_a_usage_error(project: Path) -> None:
    """An unknown job, a job that never started, and an attempt it never had: exit 2 with
    one line saying which."""
    config = command_config(project, "lq", {"a": OK, "b": OK})
    assert 0 == journalq("init", "--config", config).returncode
    journalq("cancel", "--state", str(JOURNAL), "b")
    journalq("run", "--config", config, "--quiet")

    unknown = journalq("logs", "--state", str(JOURNAL), "zzz")
    never = journalq("logs", "--state", str(JOURNAL), "b")
    beyond = journalq("logs", "--state", str(JOURNAL), "a", "--attempt", "2")

    assert 2 == unknown.returncode and "no job 'zzz'" in unknown.stderr
    assert 2 == never.returncode
    assert "job b has no attempt yet (it is cancelled)" in never.stderr
    assert 2 == beyond.returncode and "has no attempt 2" in beyond.stderr


def test_a_deleted_log_is_reported_missing(project: Path) -> None:
    """A log that was deleted: one line saying so, exit 4, never a traceback."""
    config = command_config(project, "lq", {"a": OK})
    journalq("run", "--config", config, "--quiet")
    log_of(project, "a").unlink()

    done = journalq("logs", "--state", str(JOURNAL), "a")

    assert 4 == done.returncode
    assert done.stderr.startswith("journalq: error: the log of job a attempt 1 (")
    assert "is missing" in done.stderr


def test_a_log_from_another_machine_that_is_not_here_says_where_it_was(
        project: Path) -> None:
    """An attempt another machine ran (another boot id), whose log is not reachable from
    here: one line naming that host and path, exit 4."""
    config = command_config(project, "lq", {"a": OK})
    journalq("run", "--config", config, "--quiet", env={"JOURNALQ_BOOT_ID": "other-vm"})
    log_of(project, "a").unlink()

    done = journalq("logs", "--state", str(JOURNAL), "a", "--follow")

    assert 4 == done.returncode
    assert "was written on" in done.stderr
    assert "runtime_state/logs/lq/a/attempt-1.log, which is not reachable here" in done.stderr


def test_follow_through_the_sync_folder_reads_a_log_on_shared_storage(
        project: Path) -> None:
    """A job running on another runtime (another boot id, another journal) whose log is
    on storage both see: `logs --follow --sync-dir` learns of the attempt from that
    runtime's journal copies, streams the log, and ends with the job's code when the
    copies say it settled."""
    config = command_config(project, "lq", {"ticker": TICKER})
    remote = "runtime_state/remote/lq.jsonl"
    with processes(project) as started:
        started.start("run", "--config", config, "--state", remote, "--sync-dir", "drive",
                      "--quiet", env={"JOURNALQ_BOOT_ID": "other-vm"})
        log = project / "runtime_state" / "remote" / "logs" / "lq" / "ticker" / "attempt-1.log"
        wait_until(lambda: "tick 0" in _text(log), "the first tick")

        follow = journalq("logs", "--config", config, "--sync-dir", "drive", "ticker",
                          "--follow", timeout=60)

        assert 3 == follow.returncode, follow.stderr
        assert [f"tick {i}" for i in range(8)] == [
            line for line in follow.stdout.splitlines() if line.startswith("tick")]
        assert not (project / JOURNAL).exists()  # read-only: nothing written here


def test_follow_of_an_orphaned_attempt_says_so_and_ends_when_it_is_recovered(
        project: Path) -> None:
    """The runner was SIGKILLed mid-job: `--follow` warns that the attempt stays running
    until it is recovered, and when `recover` settles it (no exit status: abandoned),
    exits 1."""
    config = command_config(project, "lq", {"slow": sleeper(30)})
    with processes(project) as started:
        runner = started.start("run", "--config", config, "--quiet")
        wait_until(lambda: "started" in _text(log_of(project, "slow")), "the job to start")
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
        follow = started.start("logs", "--state", str(JOURNAL), "slow", "--follow")
        time.sleep(0.5)

        recovered = journalq("recover", "--state", str(JOURNAL))
        _, err = follow.communicate(timeout=30)

        assert 0 == recovered.returncode, recovered.stderr
        assert 1 == follow.returncode, err
        assert "its runner on this host is gone" in err
        assert "abandoned" in err


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""
