"""`import journalq` from a notebook: `run`, `status`, `wait`, `collect` and `logs` call the
command functions the command line calls, and a non-zero outcome raises `journalq.Error`
with the command line's exit code, so "Run all" stops where a shell script would."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from ops_support import FAIL, OK, command_config, processes
from test_run_support import wait_until

import journalq
from conftest import journalq as cli

JOURNAL = "runtime_state/aq.jsonl"


def test_a_failed_job_raises_error_with_exit_code_1(project: Path) -> None:
    """The run goes on past the failed job (as on the command line), then raises
    `journalq.Error`: exit_code 1, a message naming the job."""
    config = command_config(project, "aq", {"bad": FAIL, "good": OK})

    with pytest.raises(journalq.Error) as raised:
        journalq.run(config)

    assert 1 == raised.value.exit_code
    assert raised.value.message.startswith("run: 1 job(s) failed (bad);")
    assert "done" == _status_of("good")


# Until then, `run` writes to file descriptors 1 and 2, which are not the cell (IPython
# captures `sys.stdout` and `sys.stderr`; Colab's kernel does not forward descriptor 1).


def test_a_runs_output_reaches_sys_stdout_and_stderr(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The jobs' output reaches `sys.stdout` and the summary `sys.stderr`, where a
    notebook cell shows them."""
    config = command_config(project, "aq", {"bad": FAIL, "good": OK})

    with pytest.raises(journalq.Error):
        journalq.run(config)

    out, err = capsys.readouterr()
    assert "failing" in out and "ok" in out
    assert "failed bad  rc=3" in err


def test_a_refused_run_raises_exit_code_6_and_resume_recovers(project: Path) -> None:
    """A job left running by a SIGKILLed runner: `journalq.run(config)` raises with
    exit_code 6 (decision needed) and writes nothing; `resume=True` settles it and runs it
    again (one spare attempt), returning normally."""
    # Sleeps as long as SLEEP says: 30 s under the runner killed here, 0 s when resumed.
    slow = ("import os, time; print('started', flush=True); "
            "time.sleep(float(os.environ.get('SLEEP', '0')))")
    config = command_config(project, "aq", {"slow": slow}, max_attempts=2)
    log = project / "runtime_state/logs/aq/slow/attempt-1.log"
    with processes(project) as started:
        runner = started.start("run", "--config", config, "--quiet", env={"SLEEP": "30"})
        wait_until(lambda: log.exists() and "started" in log.read_text(), "the job to start")
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
        before = (project / JOURNAL).read_bytes()

        with pytest.raises(journalq.Error) as raised:
            journalq.run(config, quiet=True)

        assert 6 == raised.value.exit_code
        assert "--resume" in raised.value.message
        assert before == (project / JOURNAL).read_bytes()
        journalq.run(config, resume=True, quiet=True)
    assert "done" == _status_of("slow")


def test_status_returns_the_json_document(project: Path) -> None:
    """`journalq.status()` is `status --json` as dicts and lists, filters included."""
    config = command_config(project, "aq", {"a": OK, "b": FAIL})
    cli("run", "--config", config, "--quiet")

    document = journalq.status(state=JOURNAL)
    failed = journalq.status(config, statuses="failed")

    assert json.loads(cli("status", "--state", JOURNAL, "--json").stdout) == document
    assert ["a", "b"] == [job["id"] for job in document["jobs"]]
    assert ["b"] == [job["id"] for job in failed["jobs"]]
    assert {"done": 1, "failed": 1} == {k: v for k, v in failed["counts"].items() if v}


def test_collect_returns_the_rows(project: Path) -> None:
    """`journalq.collect()` is `collect --format jsonl` as a list of dicts."""
    config = command_config(project, "aq", {"a": "print(1)"})
    cli("run", "--config", config, "--quiet")

    rows = journalq.collect(config)

    expected = [json.loads(line) for line in cli("collect", "--config", config, "--format",
                                                 "jsonl").stdout.splitlines()]
    assert expected == rows
    assert [("a", "done", 0)] == [(r["id"], r["status"], r["return_code"]) for r in rows]


def test_wait_returns_when_settled_and_raises_124_on_timeout(project: Path) -> None:
    """Settled jobs: `wait` returns None; a pending job nobody runs: Error 124."""
    config = command_config(project, "aq", {"a": OK, "b": OK})
    journalq.run(config, quiet=True)
    command_config(project, "aq", {"a": OK, "b": OK, "later": OK})
    cli("init", "--config", config)

    assert journalq.wait(["a", "b"], state=JOURNAL) is None
    with pytest.raises(journalq.Error) as raised:
        journalq.wait(state=JOURNAL, timeout=0.3)
    assert 124 == raised.value.exit_code
    assert "(later)" in raised.value.message


def test_logs_and_wait_write_to_sys_stdout_and_stderr(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A log goes to `sys.stdout` and wait's progress to `sys.stderr` (the cell); a
    followed attempt that failed raises with its return code."""
    config = command_config(project, "aq", {"bad": FAIL})
    cli("run", "--config", config, "--quiet")
    capsys.readouterr()

    journalq.logs("bad", state=JOURNAL)
    with pytest.raises(journalq.Error) as followed:
        journalq.logs("bad", state=JOURNAL, follow=True)
    with pytest.raises(journalq.Error):
        journalq.wait(state=JOURNAL)

    out, err = capsys.readouterr()
    assert 2 == out.count("\nfailing\n")
    assert 3 == followed.value.exit_code
    assert "wait: 1/1 settled (0 done, 1 failed)" in err


def test_every_error_is_a_journalq_error(project: Path) -> None:
    """What the command line reports as an error line raises `journalq.Error` with that
    line's exit code: a missing journal (2), a bad config (3)."""
    write_bad = project / "configs/bad.yaml"
    write_bad.write_text("queue: bad\njobs: 3\n")

    with pytest.raises(journalq.Error) as missing:
        journalq.status(state="runtime_state/none.jsonl")
    with pytest.raises(journalq.Error) as bad:
        journalq.run(write_bad)

    assert (2, 3) == (missing.value.exit_code, bad.value.exit_code)
    assert "no journal here yet" in missing.value.message


def test_a_jobs_output_reaches_a_stream_without_a_byte_buffer(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """IPython's stdout takes text only (no `.buffer`): the jobs' output, decoded, still
    arrives there, multi-byte characters whole."""
    config = command_config(project, "aq", {"a": "print('h\\u00e9llo \\u2713')"})
    cell = io.StringIO()
    monkeypatch.setattr(sys, "stdout", cell)

    journalq.run(config)

    assert "héllo ✓" in cell.getvalue()


def test_import_journalq_loads_nothing_else() -> None:
    """`import journalq` is as cheap as the command line's start-up: no API, no YAML, no
    attrs until a function is used."""
    code = ("import sys, journalq; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('journalq', 'yaml', 'attrs', 'cattrs')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout

    assert "['journalq']\n" == loaded


def test_run_works_from_a_thread_that_is_not_the_main_one(project: Path) -> None:
    """Signal handlers can only be installed from the main thread: from another one,
    `journalq.run` runs without them rather than fail."""
    config = command_config(project, "aq", {"a": OK})
    failures: list[BaseException] = []

    def target() -> None:
        try:
            journalq.run(config, quiet=True)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=30)

    assert [] == failures
    assert "done" == _status_of("a")


def _status_of(job: str) -> str:
    jobs = journalq.status(state=JOURNAL)["jobs"]
    return str(next(j["status"] for j in jobs if j["id"] == job))
