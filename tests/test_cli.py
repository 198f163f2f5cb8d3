"""The command line through `main([...])`: each kind of failure has its exit code and one
line on stderr starting with `journalq: error:`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_journal import held_elsewhere

from conftest import write
from journalq import __version__, checkpoint, host
from journalq import events as ev
from journalq.checkpoint import replay_anew as replay
from journalq.cli import main
from journalq.journal import Writer

JOURNAL = "runtime_state/lab.jsonl"


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (the current directory) whose queue `lab` has been initialised."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "lab.yaml", "queue: lab\njobs:\n  - {id: a, command: [python, -c, pass]}\n"
          "  - {id: b, command: [python, -c, pass]}\n")
    assert 0 == main(["init", "--config", "lab.yaml"])
    return tmp_path


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line on stderr (and nothing on stdout), without its prefix."""
    out, err = capsys.readouterr()
    assert "" == out
    assert 1 == err.count("\n") and err.endswith("\n"), err
    assert err.startswith("journalq: error: ")
    return err.removeprefix("journalq: error: ").rstrip("\n")


def test_success_is_0(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A command that does what was asked returns 0."""
    capsys.readouterr()

    assert 0 == main(["status", "--state", JOURNAL])
    assert 0 == main(["cancel", "--state", JOURNAL, "b"])
    assert "" == capsys.readouterr().err


@pytest.mark.parametrize(("argv", "problem"), [
    ([], "the following arguments are required: COMMAND"),
    (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
    (["status", "--colour"], "unrecognized arguments: --colour"),
    (["init"], "the following arguments are required: --config"),
    (["run", "--config", "x.yaml", "--stale-seconds", "soon"], "--stale-seconds"),
], ids=["no-command", "unknown-command", "unknown-flag", "missing-config", "bad-number"])
def test_bad_command_line_is_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                               problem: str) -> None:
    """A command line argparse cannot parse exits 2 with its usage and the problem."""
    with pytest.raises(SystemExit) as caught:
        main(argv)

    err = capsys.readouterr().err
    assert 2 == caught.value.code
    assert problem in err.splitlines()[-1]
    assert err.splitlines()[-1].startswith("journalq")


def test_unknown_job_is_2(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Naming a job the queue does not have exits 2."""
    capsys.readouterr()

    assert 2 == main(["retry", "--state", JOURNAL, "ghost"])
    assert "no such job: ghost; `journalq status` lists the ids" == error_line(capsys)


def test_no_queue_named_is_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    """A command that needs a queue and gets neither --state nor --config exits 2."""
    monkeypatch.chdir(tmp_path)

    assert 2 == main(["status"])
    assert error_line(capsys).startswith("say which queue: --state")


def test_missing_journal_is_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    """`status` of a journal that does not exist says how to create it, and exits 2."""
    monkeypatch.chdir(tmp_path)

    assert 2 == main(["status", "--state", "nowhere.jsonl"])
    assert error_line(capsys).startswith("nowhere.jsonl: no journal here yet; create it with")
    assert not Path("nowhere.jsonl").exists()


def test_bad_config_is_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid config exits 3 with file, path and problem."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "bad.yaml", "queue: lab\njobs:\n  - {id: a, command: [x], timeout: 0}\n")

    assert 3 == main(["init", "--config", "bad.yaml"])
    assert ("bad.yaml: $.jobs[0].timeout: expected a positive number of seconds, got 0.0"
            == error_line(capsys))


@pytest.mark.parametrize("argv", [
    ["status", "--state", JOURNAL], ["init", "--config", "lab.yaml"],
    ["cancel", "--state", JOURNAL, "a"],
], ids=["status", "init", "cancel"])
def test_corrupt_journal_is_4(lab: Path, capsys: pytest.CaptureFixture[str],
                              argv: list[str]) -> None:
    """A journal with a bad line before good ones exits 4 naming line and byte; it is left
    as it was."""
    journal = lab / JOURNAL
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[1] = b'{"type": "queue_cre\n'
    journal.write_bytes(b"".join(lines))
    capsys.readouterr()

    assert 4 == main(argv)
    assert error_line(capsys).startswith(f"{JOURNAL}:2 (byte {len(lines[0])}): corrupt line")
    assert b"".join(lines) == journal.read_bytes()


def test_journal_of_a_newer_journalq_is_4_for_writers_only(
        lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Events of an unknown type make writers exit 4; `status` still shows the queue."""
    journal = lab / JOURNAL
    with journal.open("ab") as handle:
        handle.write(b'{"type":"job_paused","v":7,"id":"f:1","ts":"2099-01-01T00:00:00.000000Z"'
                     b',"session":"f","job":"a"}\n')
    capsys.readouterr()

    assert 4 == main(["retry", "--state", JOURNAL, "a"])
    assert "a newer journalq wrote it" in error_line(capsys)
    assert 0 == main(["status", "--state", JOURNAL])
    assert "job_paused (format v7)" in capsys.readouterr().out


def test_busy_journal_is_5(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """While another process holds the journal, a writing command exits 5 naming it."""
    capsys.readouterr()

    with held_elsewhere(lab / JOURNAL) as holder:
        code = main(["cancel", "--state", JOURNAL, "a"])

    assert 5 == code
    assert error_line(capsys).startswith(f"{JOURNAL} is in use by pid {holder.pid} on "
                                         f"{host.hostname()} since ")


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_orphaned_running_job_without_resume_is_6(lab: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A job left `running` by a runner of this boot that is gone makes `run` stop with 6
    and say to use --resume; nothing is written and nothing runs."""
    pid = dead_pid()
    spec = replay(JOURNAL)[0].queue().jobs["a"].spec
    with Writer.open(JOURNAL, session="deadbeef0001", command="run",
                     replay=checkpoint.replay) as writer:
        writer.append(ev.SessionStarted(command="run", host=host.hostname(),
                                        boot_id=host.boot_id(), pid=pid, pid_start=1,
                                        argv=("journalq", "run"), journalq_version=__version__,
                                        python_version="3"))
        writer.append(ev.JobStarted(job="a", attempt=1, host=host.hostname(),
                                    boot_id=host.boot_id(), pid=pid, log="logs/a-1.log",
                                    spec_sha256=spec.sha256))
    before = (lab / JOURNAL).read_bytes()
    capsys.readouterr()

    code = main(["run", "--config", "lab.yaml", "--quiet"])

    message = error_line(capsys)
    assert 6 == code
    assert message.startswith(f"1 job(s) in {JOURNAL} were left running by a runner that is "
                              "gone: a (attempt 1)")
    assert "--resume" in message
    assert before == (lab / JOURNAL).read_bytes()


def test_help_lists_the_exit_codes() -> None:
    """`python -m journalq --help` documents every exit code."""
    done = subprocess.run([sys.executable, "-m", "journalq", "--help"], capture_output=True,
                          text=True, timeout=60)

    assert 0 == done.returncode
    section = done.stdout[done.stdout.index("exit codes:"):]
    codes = [line.split()[0] for line in section.splitlines()[1:] if line.strip()]
    assert {"0", "1", "2", "3", "4", "5", "6"} <= set(codes)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`--version` prints journalq's version and exits 0."""
    with pytest.raises(SystemExit) as caught:
        main(["--version"])

    assert (0, f"journalq {__version__}\n") == (caught.value.code, capsys.readouterr().out)


@pytest.mark.parametrize("argv", [["init"], ["frobnicate"]], ids=["missing-flag", "unknown"])
def test_usage_errors_are_one_line_too(capsys: pytest.CaptureFixture[str],
                                       argv: list[str]) -> None:
    """A command line that cannot be parsed is also one `journalq: error:` line, exit 2."""
    with pytest.raises(SystemExit) as caught:
        main(argv)

    assert 2 == caught.value.code
    error_line(capsys)
