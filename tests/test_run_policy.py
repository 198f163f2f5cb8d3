"""What `run` does with each attempt and what it tells the operator: timeouts, heartbeats,
retry and cancel, exit codes, and the live output and progress lines.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_run_support import SmallQueue, counts, finish

from conftest import journalq, status_json, write


@pytest.mark.slow  # waits on signals and timers
def test_timeout_kills_the_job_and_fails_it(project: Path) -> None:
    """A job past its `timeout` is killed, journaled with reason `timeout`, and (with no
    attempt left) failed; its log has the header and the trailer; `run` exits 1."""
    with SmallQueue(project, ["sleepy"], timeouts={"sleepy": 1}) as queue:
        done = queue.run("--quiet", WORKER_SLEEP="30")

        assert 1 == done.returncode, done.stderr
        finished = queue.events("job_finished")
        assert [("sleepy", 1, "failed", "timeout", None, signal.SIGTERM)] == [
            (e["job"], e["attempt"], e["outcome"], e["reason"], e["return_code"], e["signal"])
            for e in finished]
        assert 1 <= finished[0]["duration"] < 5
        sleepy = queue.job("sleepy")
        assert ("failed", "timeout") == (sleepy["status"], sleepy["reason"])
        log = queue.log("sleepy", 1).read_text().splitlines()
        assert "# journalq: job sleepy attempt 1" == log[0]
        assert log[1].startswith("# command: python scripts/run_sweep.py --model gpt2")
        assert "# cwd: ." == log[2]
        assert log[3].startswith("# started: 20")
        assert re.fullmatch(r"# exit: signal 15 \(timeout\) after 1\.\ds", log[-1])


@pytest.mark.slow  # waits on signals and timers
def test_heartbeats_while_a_job_runs(project: Path) -> None:
    """Every heartbeat_seconds while the child runs, a heartbeat names the job, the attempt
    and the child's pid."""
    with SmallQueue(project, ["beating"], heartbeat_seconds=0.2) as queue:
        done = queue.run("--quiet", WORKER_SLEEP="1.5")

        assert 0 == done.returncode, done.stderr
        beats = queue.events("heartbeat")
        assert len(beats) >= 4
        worker = queue.worker_pids()[0]
        assert {("beating", 1, worker)} == {(b["job"], b["attempt"], b["child_pid"])
                                            for b in beats}
        kinds = [e["type"] for e in queue.events()]
        first, last = kinds.index("heartbeat"), len(kinds) - 1 - kinds[::-1].index("heartbeat")
        assert kinds.index("job_started") < first
        assert last < kinds.index("job_finished")


def test_retry_failed_reruns_with_a_new_attempt(project: Path) -> None:
    """A failed job goes back to pending with `retry --failed` and the next `run` finishes
    it as attempt 2, in a new log; the first attempt's log is left as it was."""
    with SmallQueue(project, ["ok", "flaky"]) as queue:
        failed = queue.run("--quiet", WORKER_FAIL_MATCH="flaky")
        assert 1 == failed.returncode
        first_log = queue.log("flaky", 1).read_bytes()
        assert b"failing on purpose (flaky)" in first_log

        retried = queue.command("retry", "--failed")

        assert 0 == retried.returncode, retried.stderr
        assert "1 job(s) pending again: flaky" in retried.stdout
        assert "pending" == queue.job("flaky")["status"]

        again = queue.run("--quiet")

        assert 0 == again.returncode, again.stderr
        assert [("ok", 1), ("flaky", 1), ("flaky", 2)] == queue.runs()
        assert first_log == queue.log("flaky", 1).read_bytes()
        assert queue.log("flaky", 2).exists()
        flaky = queue.job("flaky")
        assert ("done", 2, str(queue.log("flaky", 2).relative_to(project))) == (
            flaky["status"], flaky["attempt"], flaky["log"])


def test_cancelled_job_is_skipped(project: Path) -> None:
    """`cancel` of a pending job makes `run` skip it; the rest is done and `run` exits 0."""
    with SmallQueue(project, ["keep", "drop", "also"]) as queue:
        assert 0 == queue.command("init", "--config", queue.config).returncode

        cancelled = queue.command("cancel", "drop")

        assert 0 == cancelled.returncode, cancelled.stderr
        done = queue.run("--quiet")
        assert 0 == done.returncode, done.stderr
        assert [("keep", 1), ("also", 1)] == queue.runs()
        assert {"done": 2, "cancelled": 1} == counts(queue.status())


def test_unknown_job_ids_change_nothing(project: Path) -> None:
    """`retry` and `cancel` of a job that does not exist exit 2 with a one-line error naming
    it, and write nothing, even when other named jobs exist."""
    with SmallQueue(project, ["real"]) as queue:
        assert 0 == queue.command("init", "--config", queue.config).returncode
        written = queue.journal.read_bytes()

        for command in ("retry", "cancel"):
            refused = queue.command(command, "real", "ghost")

            assert 2 == refused.returncode, command
            assert ["journalq: error: no such job: ghost; `journalq status` lists the ids"] \
                == refused.stderr.splitlines()
            assert written == queue.journal.read_bytes()


def test_exit_code_zero_when_every_job_is_done(project: Path) -> None:
    """Exit 0 and a summary of counts when every job is done."""
    with SmallQueue(project, ["a", "b"]) as queue:
        done = queue.run("--quiet")

        assert 0 == done.returncode, done.stderr
        assert "q: 2 jobs: 0 pending, 0 running, 2 done, 0 failed, 0 cancelled" \
            in done.stderr.splitlines()


def test_exit_code_one_lists_each_failed_job(project: Path) -> None:
    """Exit 1 when a job failed; the summary names it with its return code and log."""
    with SmallQueue(project, ["good", "bad"]) as queue:
        done = queue.run("--quiet", WORKER_FAIL_MATCH="bad")

        assert 1 == done.returncode
        assert ("  failed bad  rc=3  reason=exit  log=runtime_state/logs/q/bad/attempt-1.log"
                in done.stderr.splitlines())
        assert {"done": 1, "failed": 1} == counts(queue.status())


def test_exit_code_five_while_another_run_holds_the_journal(project: Path) -> None:
    """A second `run` on a journal another live `run` is writing exits 5, says who holds
    it, and writes nothing."""
    with SmallQueue(project, ["long"]) as queue:
        first = queue.start("--quiet", WORKER_SLEEP="30")
        queue.wait_busy("long")
        written = queue.journal.read_bytes()

        second = queue.run("--quiet", "--resume")

        assert 5 == second.returncode
        assert f"is in use by pid {first.pid}" in second.stderr
        assert 1 == len(second.stderr.splitlines())
        assert written == queue.journal.read_bytes()[:len(written)]
        assert [] == [e for e in queue.events()[len(written.splitlines()):]
                      if e["type"] != "heartbeat"]
        first.send_signal(signal.SIGINT)
        assert 130 == finish(first)[0]


def test_live_output_and_progress(project: Path) -> None:
    """Without --quiet, each child line is echoed on stdout after `<job> | `, and stderr has
    a start and a finish line per job; --quiet keeps stdout empty."""
    with SmallQueue(project, ["first", "second"]) as queue:
        loud = queue.run()

        assert 0 == loud.returncode, loud.stderr
        assert ["first | steering gpt2 layers=[1, 2] alphas=[0.5, 1.0]",
                "first | wrote 4 results",
                "second | steering gpt2 layers=[2, 3] alphas=[0.5, 1.0]",
                "second | wrote 4 results"] == loud.stdout.splitlines()
        progress = [line for line in loud.stderr.splitlines() if line.startswith("[")]
        assert 4 == len(progress)
        assert re.match(r"\[1/2\] start +first  attempt 1, try 1/1$", progress[0])
        assert re.match(r"\[1/2\] done +first  rc=0  \d+\.\ds", progress[1])
        assert re.match(r"\[2/2\] start +second  attempt 1", progress[2])
        assert re.match(r"\[2/2\] done +second  rc=0  \d+\.\ds$", progress[3])

    with SmallQueue(project, ["third"], name="quiet") as queue:
        quiet = queue.run("--quiet")

        assert 0 == quiet.returncode, quiet.stderr
        assert "" == quiet.stdout
        assert 2 == len([line for line in quiet.stderr.splitlines() if line.startswith("[")])


def test_job_that_removes_its_out_dir_is_still_journaled(project: Path) -> None:
    """The run card is a hint, the journal the record: when the card cannot be written (the
    job removed its own out_dir), the runner warns, journals the outcome, and goes on."""
    write(project / "configs" / "rm.yaml", "\n".join([
        "queue: rm",
        "jobs:",
        "  - id: tidy",
        "    command: [python, -c, 'import shutil, sys; shutil.rmtree(sys.argv[1])', "
        "'{out_dir}']",
        "  - id: next",
        "    command: [python, -c, 'print(1)']",
    ]) + "\n")

    done = journalq("run", "--config", "configs/rm.yaml", "--quiet", cwd=project)

    assert 0 == done.returncode, done.stderr
    assert ("journalq: warning: cannot write the run card in runtime_state/outputs/rm/tidy "
            "(No such file or directory); job tidy is journaled anyway") in done.stderr
    state = status_json(project / "runtime_state" / "rm.jsonl", cwd=project)
    assert {"done": 2} == counts(state)


def test_closed_stdout_does_not_stop_the_batch(project: Path) -> None:
    """When the terminal goes away (`journalq run | head`), echoing stops but the jobs go on:
    every job is done, its output is in its log, and `run` exits 0."""
    with SmallQueue(project, ["a", "b"]) as queue:
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "journalq", "run", "--config", queue.config],
                cwd=project, stdout=write_end, stderr=subprocess.PIPE, text=True,
                env={**os.environ, **queue.env()}, timeout=60)
        finally:
            os.close(write_end)

        assert 0 == done.returncode, done.stderr
        assert [("a", 1), ("b", 1)] == queue.runs()
        assert {"done": 2} == counts(queue.status())
        assert "wrote 4 results" in queue.log("b", 1).read_text()


def test_a_card_from_an_attempt_the_journal_never_saw_stops_a_rerun(project: Path) -> None:
    """A job whose out_dir holds a run card of an attempt this journal does not know (another
    runtime ran it; its journal copy was lost) is not run again: `run` settles it from the
    card (done), says why and where the card is, runs the other jobs, and leaves the card
    as it was."""
    with SmallQueue(project, ["a", "b"]) as queue:
        assert 0 == queue.run("--quiet").returncode
        card = queue.out_dir("a") / "journalq-run.toml"
        saved = card.read_bytes()
        queue.journal.unlink()  # the journal is lost; the outputs and the card survive
        card.write_bytes(saved)
        (queue.out_dir("b") / "journalq-run.toml").unlink()

        again = queue.run("--quiet")

        assert 0 == again.returncode, again.stderr
        assert [("a", 1), ("b", 1), ("b", 1)] == queue.runs()
        assert "settled done from the card, not run" in again.stderr
        assert str(card.relative_to(project)) in again.stderr
        assert ("done", "card") == (queue.job("a")["status"],
                                    queue.job("a")["attempts"][-1]["reason"])
        assert saved == card.read_bytes()


def test_retry_failed_with_nothing_failed_says_so(project: Path) -> None:
    """`retry --failed` when no job failed printed "0 job(s) pending again: -"."""
    with SmallQueue(project, ["a"]) as queue:
        finish(queue.start("--quiet"))
        retried = journalq("retry", "--failed", "--state", str(queue.journal), cwd=project)

        assert 0 == retried.returncode, retried.stderr
        assert "nothing to retry: no job has failed" == retried.stdout.strip()
