"""Defects a hostile tester found in running jobs (round 2), each with real processes: the
commit a notebook's later run records, a git that cannot say whether the tree is dirty, a
dry run of an unknown job, the API's message for a halted run, `nohup journalq run`, and
more below. Each test failed before its fix."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import events, journalq, write


def git(folder: Path, *args: str) -> str:
    """Run git in `folder` (a throwaway repository with its own identity)."""
    return subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=folder,
        check=True, capture_output=True, text=True).stdout


def repo(folder: Path, config: str) -> Path:
    """A git work tree with `config` as q.yaml committed (runtime_state ignored)."""
    folder.mkdir(parents=True, exist_ok=True)
    git(folder, "init", "-q")
    write(folder / ".gitignore", "runtime_state/\n*.py\n")
    write(folder / "q.yaml", textwrap.dedent(config))
    git(folder, "add", ".")
    git(folder, "commit", "-qm", "one")
    return folder


def python(folder: Path, code: str, env: dict[str, str] | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a Python program (a notebook's cells, say) in `folder` as its own process."""
    script = write(folder / "cells.py", textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], cwd=folder, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def started(journal: Path) -> dict[str, dict[str, object]]:
    """Each job's last `job_started` event."""
    return {str(e["job"]): e for e in events(journal) if e["type"] == "job_started"}


TWO_JOBS = """\
    queue: q
    jobs:
      - id: a
        command: [sh, -c, "echo a"]
      - id: b
        command: [sh, -c, "echo b"]
    """


def test_a_notebooks_second_run_records_the_commit_it_ran(tmp_path: Path) -> None:
    """`journalq.run` twice in one kernel with a commit in between (a cell that `git pull`s):
    the second run's job records the new HEAD, not the first run's (it was cached for the
    life of the process, so every later result claimed the old code)."""
    folder = repo(tmp_path / "proj", TWO_JOBS)

    done = python(folder, """
        import subprocess, journalq
        journalq.run("q.yaml", jobs=["a"], quiet=True)
        subprocess.run("echo x > f && git add -f f && git -c user.email=t@e -c user.name=t "
                       "commit -qm two", shell=True, check=True)
        journalq.run("q.yaml", jobs=["b"], quiet=True)
        print(journalq.status(state="runtime_state/q.jsonl")["jobs"][0]["id"])
    """)

    assert 0 == done.returncode, done.stderr
    head = git(folder, "rev-parse", "HEAD").strip()
    first = git(folder, "rev-parse", "HEAD~1").strip()
    jobs = started(folder / "runtime_state" / "q.jsonl")
    assert (first, head) == (jobs["a"]["commit"], jobs["b"]["commit"])


def test_a_run_after_cd_records_the_other_trees_commit(tmp_path: Path) -> None:
    """A kernel that `%cd`s from one project to another: each run records its own tree's
    commit (the cache was keyed by the relative folder "." and answered for the first)."""
    one = repo(tmp_path / "one", TWO_JOBS)
    other = repo(tmp_path / "other", TWO_JOBS.replace("queue: q", "queue: r"))
    git(other, "commit", "-q", "--allow-empty", "-m", "two")

    done = python(one, f"""
        import os, journalq
        journalq.run("q.yaml", quiet=True)
        os.chdir({str(other)!r})
        journalq.run("q.yaml", quiet=True)
    """)

    assert 0 == done.returncode, done.stderr
    assert git(one, "rev-parse", "HEAD").strip() == started(
        one / "runtime_state" / "q.jsonl")["a"]["commit"]
    assert git(other, "rev-parse", "HEAD").strip() == started(
        other / "runtime_state" / "r.jsonl")["a"]["commit"]


def test_a_git_status_that_fails_records_dirty_as_unknown(tmp_path: Path) -> None:
    """HEAD resolves but `git status` fails (here a damaged index; a huge tree on a slow
    disk times out the same way): the tree's state is unknown, and neither the journal nor
    the run card may call it clean."""
    folder = repo(tmp_path / "proj", TWO_JOBS)
    write(folder / "untracked.txt", "changes nobody committed\n")
    (folder / ".git" / "index").write_bytes(b"DIRC\x00\x00\x00\x02garbage")
    assert subprocess.run(["git", "status", "--porcelain"], cwd=folder,
                          capture_output=True).returncode != 0

    done = journalq("run", "--config", "q.yaml", "--quiet", cwd=folder)

    assert 0 == done.returncode, done.stderr
    job = started(folder / "runtime_state" / "q.jsonl")["a"]
    assert job["commit"] == git(folder, "rev-parse", "HEAD").strip()
    assert job.get("dirty") is None
    card = (folder / "runtime_state" / "outputs" / "q" / "a" / "journalq-run.toml").read_text()
    assert "dirty = false" not in card


def test_dry_run_of_an_unknown_job_is_a_usage_error(tmp_path: Path) -> None:
    """`run --dry-run nosuch` planned to run 0 jobs and exited 0, while the real run refuses
    the id (exit 2): a plan must say where the command would stop."""
    write(tmp_path / "q.yaml", textwrap.dedent(TWO_JOBS))

    dry = journalq("run", "--config", "q.yaml", "--dry-run", "a", "nosuch", cwd=tmp_path)
    real = journalq("run", "--config", "q.yaml", "nosuch", cwd=tmp_path)

    assert (2, 2) == (dry.returncode, real.returncode), dry.stdout
    assert "no such job: nosuch" in dry.stderr


def test_the_api_says_a_run_halted_rather_than_that_0_jobs_failed(tmp_path: Path) -> None:
    """`journalq.run(..., halt=1)` with a failure that has attempts left: the Error said
    "run: 0 job(s) failed ()" ; it names the halt and the job."""
    write(tmp_path / "q.yaml", textwrap.dedent("""\
        queue: q
        defaults: {max_attempts: 2}
        jobs:
          - id: flaky
            command: [sh, -c, "exit 3"]
          - id: b
            command: [sh, -c, "echo b"]
        """))

    done = python(tmp_path, """
        import journalq
        try:
            journalq.run("q.yaml", quiet=True, halt=1)
        except journalq.Error as error:
            print(error.exit_code, error.message)
    """)

    assert 0 == done.returncode, done.stderr
    code, _, message = done.stdout.strip().partition(" ")
    assert "1" == code
    assert "0 job(s) failed" not in message
    assert "halt" in message and "flaky" in message
    # The command line's summary said "2 job(s) not started": flaky was started.
    assert "1 job(s) not started, 1 to retry" in done.stderr


NOHUP_QUEUE = """\
    queue: q
    heartbeat_seconds: 0.5
    grace_seconds: 1
    jobs:
      - id: slow
        command: [sh, -c, "sleep 1.5; echo slept"]
      - id: next
        command: [sh, -c, "echo next"]
    """


def _ignoring(signum: int) -> None:
    signal.signal(signum, signal.SIG_IGN)


@pytest.mark.slow  # waits on signals and timers
def test_nohup_run_survives_a_hangup(tmp_path: Path) -> None:
    """`nohup journalq run ... &` then closing the terminal: nohup ignores SIGHUP so that the
    batch goes on, but the runner put its own handler over it and stopped the batch (129).
    A stop signal ignored when journalq starts stays ignored."""
    write(tmp_path / "q.yaml", textwrap.dedent(NOHUP_QUEUE))
    runner = subprocess.Popen(
        [sys.executable, "-m", "journalq", "run", "--config", "q.yaml", "--quiet"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: _ignoring(signal.SIGHUP))
    journal = tmp_path / "runtime_state" / "q.jsonl"
    deadline = time.monotonic() + 10
    while "slow" not in (journal.read_text() if journal.exists() else ""):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    runner.send_signal(signal.SIGHUP)
    _, err = runner.communicate(timeout=30)

    assert 0 == runner.returncode, err
    assert [] == [e for e in events(journal) if e["type"] == "job_interrupted"]
    assert ["done", "done"] == [j["status"] for j in json.loads(journalq(
        "status", "--state", str(journal), "--json").stdout)["jobs"]]


@pytest.mark.slow  # waits on signals and timers
def test_a_background_run_ignores_ctrl_c(tmp_path: Path) -> None:
    """A shell script's background job (`journalq run ... &`) has SIGINT ignored, so a
    Ctrl-C meant for the foreground command does not stop it."""
    write(tmp_path / "q.yaml", textwrap.dedent(NOHUP_QUEUE))
    runner = subprocess.Popen(
        [sys.executable, "-m", "journalq", "run", "--config", "q.yaml", "--quiet"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: _ignoring(signal.SIGINT))
    journal = tmp_path / "runtime_state" / "q.jsonl"
    deadline = time.monotonic() + 10
    while "slow" not in (journal.read_text() if journal.exists() else ""):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    runner.send_signal(signal.SIGINT)
    _, err = runner.communicate(timeout=30)

    assert 0 == runner.returncode, err


def test_a_missing_cwd_is_named_not_the_program(tmp_path: Path) -> None:
    """A job whose `cwd:` does not exist said "cannot start sh -c ...: No such file or
    directory", as if `sh` were missing; the message names the folder."""
    write(tmp_path / "q.yaml", textwrap.dedent("""\
        queue: q
        jobs:
          - id: a
            command: [sh, -c, "echo hi"]
            cwd: /nonexistent/journalq-dir
        """))

    done = journalq("run", "--config", "q.yaml", cwd=tmp_path)

    assert 1 == done.returncode, done.stderr
    log = (tmp_path / "runtime_state" / "logs" / "q" / "a" / "attempt-1.log").read_text()
    assert "its cwd /nonexistent/journalq-dir: No such file or directory" in log
    assert "its cwd /nonexistent/journalq-dir" in done.stdout


def test_an_only_glob_that_matches_nothing_is_refused(tmp_path: Path) -> None:
    """`run --only 'tyop*'` ran nothing and exited 0 (every selected job "done"), so a
    notebook or script sailed on; `wait` already refuses such a glob. So do `run` and its
    dry run (exit 2, naming the glob); a glob that matches runs as before."""
    write(tmp_path / "q.yaml", textwrap.dedent(TWO_JOBS))

    typo = journalq("run", "--config", "q.yaml", "--only", "tyop*", cwd=tmp_path)
    dry = journalq("run", "--config", "q.yaml", "--only", "tyop*", "--dry-run", cwd=tmp_path)
    fine = journalq("run", "--config", "q.yaml", "--only", "a*", "--only", "zz*",
                    cwd=tmp_path)

    assert (2, 2) == (typo.returncode, dry.returncode), typo.stderr
    assert "--only 'tyop*' matches no job" in typo.stderr
    assert "--only 'tyop*' matches no job" in dry.stderr
    assert 2 == fine.returncode and "'zz*'" in fine.stderr
    assert [] == [e for e in events(tmp_path / "runtime_state" / "q.jsonl")
                  if e["type"] == "job_started"]
    again = journalq("run", "--config", "q.yaml", "--only", "a*", cwd=tmp_path)
    assert 0 == again.returncode, again.stderr


def test_a_nul_byte_in_a_config_is_refused_naming_the_field(tmp_path: Path) -> None:
    """A NUL in a job's env or argv (YAML's "\\0") cannot be given to any program: the
    config is refused at load (exit 3, the field named), not run into attempts that fail."""
    for field, job in [("$.jobs[0].env.X", 'command: [sh, -c, "echo a"]\n    env: {X: "a\\0b"}'),
                       ("$.jobs[0].command", 'command: [echo, "x\\0y"]')]:
        write(tmp_path / "q.yaml", f"queue: q\njobs:\n  - id: a\n    {job}\n")

        refused = journalq("run", "--config", "q.yaml", cwd=tmp_path)

        assert 3 == refused.returncode
        assert f"q.yaml: {field}: contains a NUL byte" in refused.stderr
        assert len(refused.stderr.splitlines()) == 1, refused.stderr
    assert not (tmp_path / "runtime_state" / "q.jsonl").exists()


def test_a_nul_byte_in_a_journals_spec_fails_that_job_not_the_runner(tmp_path: Path) -> None:
    """A NUL in a spec the journal holds (an edited journal, an older journalq's) made Popen
    raise ValueError: exit 70 ("internal error"), the job left `running`, so the next run
    asked for --resume and charged the attempt. It is a job that could not start (127), and
    the batch goes on."""
    write(tmp_path / "q.yaml", textwrap.dedent("""\
        queue: q
        jobs:
          - id: env
            command: [sh, -c, "echo a"]
            env: {X: "ab"}
          - id: argv
            command: [echo, "xy"]
          - id: fine
            command: [sh, -c, "echo fine"]
        """))
    assert 0 == journalq("init", "--config", "q.yaml", cwd=tmp_path).returncode
    journal = tmp_path / "runtime_state" / "q.jsonl"
    text = journal.read_text()
    journal.write_text(text.replace('"X":"ab"', '"X":"a\\u0000b"')
                       .replace('"xy"', '"x\\u0000y"'))

    done = journalq("run", "--config", "q.yaml", "--trust", "journal", cwd=tmp_path)

    assert 1 == done.returncode, done.stderr
    assert "internal error" not in done.stderr
    finished = {e["job"]: (e["outcome"], e["return_code"]) for e in events(journal)
                if e["type"] == "job_finished"}
    assert {"env": ("failed", 127), "argv": ("failed", 127), "fine": ("done", 0)} == finished
    log = (tmp_path / "runtime_state" / "logs" / "q" / "env" / "attempt-1.log").read_text()
    assert "embedded null byte in its command or environment" in log


def test_the_logs_exit_trailer_is_a_line_of_its_own(tmp_path: Path) -> None:
    """A job whose last output has no newline (a progress bar, `printf`) got its log's
    trailer glued on: `progress 50%# exit: rc=0 ...`; `grep '^# exit'` missed it."""
    write(tmp_path / "q.yaml", textwrap.dedent("""\
        queue: q
        jobs:
          - id: bar
            command: [sh, -c, "printf 'progress 50%%\\rprogress 100%%'"]
        """))

    done = journalq("run", "--config", "q.yaml", "--quiet", cwd=tmp_path)

    assert 0 == done.returncode, done.stderr
    log = (tmp_path / "runtime_state" / "logs" / "q" / "bar" / "attempt-1.log").read_bytes()
    assert re.search(rb"progress 50%\rprogress 100%\n# exit: rc=0 \(exit\) after \S+\n\Z",
                     log), log


def test_the_api_from_a_thread_refuses_when_sigchld_is_ignored(tmp_path: Path) -> None:
    """A process that ignores SIGCHLD (inherited through exec, or set by a host program)
    lets the kernel reap every child: `journalq.run` from a worker thread, which cannot set
    a handler over it, recorded a job that exited 3 as done with rc=0. It refuses (exit 2)
    before writing anything; from the main thread it runs, and records the real status."""
    write(tmp_path / "q.yaml", textwrap.dedent("""\
        queue: q
        jobs:
          - id: three
            command: [sh, -c, "sleep 0.3; exit 3"]
        """))

    done = python(tmp_path, """
        import signal, threading, journalq
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        def go():
            try:
                journalq.run("q.yaml", quiet=True)
            except journalq.Error as error:
                print("thread", error.exit_code)
        worker = threading.Thread(target=go)
        worker.start()
        worker.join()
        try:
            journalq.run("q.yaml", quiet=True)
        except journalq.Error as error:
            print("main", error.exit_code)
    """)

    assert 0 == done.returncode, done.stderr
    assert ["thread 2", "main 1"] == done.stdout.splitlines(), done.stdout
    finished = [(e["return_code"], e["outcome"]) for e in events(
        tmp_path / "runtime_state" / "q.jsonl") if e["type"] == "job_finished"]
    assert [(3, "failed")] == finished


def test_a_dry_run_says_where_the_real_run_would_stop(tmp_path: Path) -> None:
    """The dry run planned "would run 1 job(s)" (exit 0) where the real run stops at once:
    a runner killed mid-job (exit 6 without --resume) or a journal a newer journalq wrote
    (exit 4). It says "would stop" and plans no job; with --resume it plans the recovery."""
    write(tmp_path / "q.yaml", textwrap.dedent(TWO_JOBS))
    killed = journalq("run", "--config", "q.yaml", "--quiet", cwd=tmp_path,
                      env={"JOURNALQ_FAILPOINT": "before-spawn@a"})
    assert -signal.SIGKILL == killed.returncode

    dry = journalq("run", "--config", "q.yaml", "--dry-run", cwd=tmp_path)
    resume = journalq("run", "--config", "q.yaml", "--dry-run", "--resume", cwd=tmp_path)
    real = journalq("run", "--config", "q.yaml", cwd=tmp_path)

    assert 6 == real.returncode, real.stderr
    assert "would stop (exit 6)" in dry.stdout and "would run nothing" in dry.stdout
    assert "would recover a attempt 1" in resume.stdout and "would run" in resume.stdout

    journal = tmp_path / "runtime_state" / "q.jsonl"
    last = json.loads(journal.read_text().splitlines()[-1])
    newer = {**last, "type": "job_teleported", "id": f"{last['session']}:999"}
    with journal.open("a") as handle:
        handle.write(json.dumps(newer, separators=(",", ":")) + "\n")

    dry = journalq("run", "--config", "q.yaml", "--dry-run", "--resume", cwd=tmp_path)
    real = journalq("run", "--config", "q.yaml", "--resume", cwd=tmp_path)

    assert 4 == real.returncode, real.stderr
    assert 0 == dry.returncode, dry.stderr
    assert "would stop (exit 4)" in dry.stdout and "would run nothing" in dry.stdout


def _file_size_limit(limit: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("card", ["lost", "written"])
def test_an_attempt_whose_finish_cannot_be_journaled_is_not_charged(tmp_path: Path,
                                                                      card: str) -> None:
    """The journal fills up (here RLIMIT_FSIZE; a full disk alike) exactly when a job's
    `job_finished` is appended, and its run card could not be written either (a full disk
    takes both; here the job removed its out_dir): the run stops (exit 4), and the attempt
    it could not record was settled `abandoned -> failed` by the next run, charged, a job
    that had succeeded. An attempt journalq could not record is `stopped`: pending again,
    uncharged, and run again. With its card written, the card settles it (done, no rerun)."""
    remove = "[ -e done-once ] || " if card == "lost" else "false && "
    write(tmp_path / "q.yaml", textwrap.dedent(f"""\
        queue: q
        heartbeat_seconds: 3600
        jobs:
          - id: a
            command: 'echo a; {remove}rm -r "$JOURNALQ_OUT_DIR"; touch done-once'
            shell: true
        """))
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "q.yaml").write_text((tmp_path / "q.yaml").read_text())
    assert 0 == journalq("run", "--config", "q.yaml", "--quiet", cwd=probe).returncode
    lines = (probe / "runtime_state" / "q.jsonl").read_bytes().splitlines(keepends=True)
    upto = sum(len(line) for line in lines[:[json.loads(line)["type"] for line in lines]
                                             .index("job_finished")])
    runner = subprocess.run(
        [sys.executable, "-m", "journalq", "run", "--config", "q.yaml", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        preexec_fn=lambda: _file_size_limit(upto + 40))
    assert 4 == runner.returncode, runner.stderr
    journal = tmp_path / "runtime_state" / "q.jsonl"
    assert "job_finished" not in journal.read_text()

    again = journalq("run", "--config", "q.yaml", "--quiet", "--resume", cwd=tmp_path)

    assert 0 == again.returncode, again.stderr
    recovered = [(e["job"], e["reason"], e["to"]) for e in events(journal)
                 if e["type"] == "job_recovered"]
    state = json.loads(journalq("status", "--state", str(journal), "--json").stdout)
    charged = [(job["status"], [a["charged"] for a in job["attempts"]])
               for job in state["jobs"]]
    if card == "lost":
        assert [("a", "stopped", "pending")] == recovered
        assert [("done", [False, True])] == charged
    else:
        assert [("a", "card", "done")] == recovered
        assert [("done", [True])] == charged


def test_a_multi_line_command_stays_inside_the_logs_header(tmp_path: Path) -> None:
    """The example's `python -c` script spans lines: its header printed them bare, so the
    log (and `journalq logs`) began with lines that read as the job's output. Every header
    line starts with '#'; the job's output follows untouched."""
    write(tmp_path / "q.yaml", textwrap.dedent("""\
        queue: q
        jobs:
          - id: a
            command:
              - python
              - -c
              - |
                print("from the job")
                x = 1
        """))

    done = journalq("run", "--config", "q.yaml", "--quiet", cwd=tmp_path)

    assert 0 == done.returncode, done.stderr
    lines = (tmp_path / "runtime_state" / "logs" / "q" / "a" / "attempt-1.log"
             ).read_text().splitlines()
    assert [line for line in lines if not line.startswith("#")] == ["from the job"]


def test_the_api_checks_slots_and_halt_as_the_command_line_does(tmp_path: Path) -> None:
    """`journalq.run(..., slots=-1)` made no slot at all: nothing ran and it returned as if
    every job were done; `slots=2.5` raised a bare TypeError; `halt=0` was taken. Each is
    refused as `--slots 0` is on the command line (exit 2), before anything is written."""
    write(tmp_path / "q.yaml", textwrap.dedent(TWO_JOBS))

    done = python(tmp_path, """
        import journalq
        for keywords in [dict(slots=-1), dict(slots=0), dict(slots=2.5), dict(halt=0),
                         dict(slots=True), dict(stale_seconds=-5)]:
            try:
                journalq.run("q.yaml", quiet=True, **keywords)
                print("ran")
            except journalq.Error as error:
                print(error.exit_code)
    """)

    assert 0 == done.returncode, done.stderr
    assert ["2"] * 6 == done.stdout.split(), done.stdout
    journal = tmp_path / "runtime_state" / "q.jsonl"
    assert not journal.exists() or [] == [
        e for e in events(journal) if e["type"] == "job_started"]


@pytest.mark.parametrize("closed", ["1", "2", "0", "1,2"])
def test_a_run_with_a_closed_standard_descriptor_ends_as_usual(tmp_path: Path,
                                                               closed: str) -> None:
    """`journalq run >&-` (a cron line, a supervisor) ended in a traceback; with `2>&-` the
    next file opened took descriptor 2, where error messages would be written into it.
    A closed standard descriptor is /dev/null for the whole run."""
    write(tmp_path / "q.yaml", textwrap.dedent("""\
        queue: q
        jobs:
          - id: a
            command: [sh, -c, "echo a; exit 3"]
          - id: b
            command: [sh, -c, "readlink /proc/$PPID/fd/2 > runners_stderr.txt"]
        """))
    closing = " ".join(f"{fd}>&-" for fd in closed.split(","))
    run = subprocess.run(
        ["sh", "-c", f'exec "$@" {closing}', "sh", sys.executable, "-m", "journalq",
         "run", "--config", "q.yaml"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)

    assert "Traceback" not in run.stderr
    assert run.returncode == 1  # job a failed: the usual exit, not a crash's
    outcomes = {e["job"]: e["outcome"] for e in events(tmp_path / "runtime_state" / "q.jsonl")
                if e["type"] == "job_finished"}
    assert outcomes == {"a": "failed", "b": "done"}
    if "2" in closed:
        assert (tmp_path / "runners_stderr.txt").read_text().strip() == "/dev/null"


def test_python_in_a_shell_command_is_journalqs_interpreter_too(tmp_path: Path) -> None:
    """"`python` as the first word means the interpreter journalq runs under": a `shell:
    true` command (the README's `python eval.py | tee ...`) found `python` on PATH instead,
    a system one without the venv's packages, or none (exit 127) when the venv was not
    activated. The shell now finds journalq's interpreter first, unless the job sets PATH."""
    write(tmp_path / "q.yaml", textwrap.dedent("""\
        queue: q
        jobs:
          - id: piped
            shell: true
            command: "python -c 'import sys; print(sys.executable)' | cat > which.txt"
          - id: own-path
            shell: true
            command: "echo $PATH > path.txt"
            env: {PATH: /usr/bin:/bin}
        """))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # a venv not activated

    done = subprocess.run([sys.executable, "-m", "journalq", "run", "--config", "q.yaml",
                           "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)

    assert 0 == done.returncode, done.stderr
    found = Path((tmp_path / "which.txt").read_text().strip())
    assert found.parent == Path(sys.executable).parent
    assert (tmp_path / "path.txt").read_text().strip() == "/usr/bin:/bin"


def test_outside_a_venv_a_shell_commands_path_is_left_alone(tmp_path: Path) -> None:
    """journalq run by an interpreter outside any venv (/usr/bin/python3, Colab's kernel):
    putting its folder first on PATH would put all of /usr/bin before /usr/local/bin."""
    base = Path(sys.base_prefix) / "bin" / "python3"
    if sys.prefix == sys.base_prefix or not base.exists():
        pytest.skip("needs the tests to run in a venv, with its base interpreter at hand")
    write(tmp_path / "q.yaml", textwrap.dedent("""\
        queue: q
        jobs:
          - id: path
            shell: true
            command: "echo $PATH > path.txt"
        """))
    packages = [p for p in sys.path if p.endswith("site-packages")]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *packages])}

    done = subprocess.run([str(base), "-m", "journalq", "run", "--config", "q.yaml",
                           "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)

    assert 0 == done.returncode, done.stderr
    assert (tmp_path / "path.txt").read_text().strip() == "/usr/local/bin:/usr/bin:/bin"


def test_a_card_that_leaves_a_job_pending_numbers_the_next_attempt_past_it(
        tmp_path: Path) -> None:
    """A journal started over (deleted, or a new --state) beside outputs whose run card
    records a failed attempt 2: the card settles the job pending (budget left), and the
    next attempt was numbered 1 from the job as it was before the card: the journal refused
    it and `run` stopped with exit 4 ("did not take attempt 1"). It is attempt 3."""
    write(tmp_path / "q.yaml", textwrap.dedent("""\
        queue: q
        defaults: {max_attempts: 2}
        jobs:
          - id: a
            command: [sh, -c, "exit 2"]
        """))
    assert 1 == journalq("run", "--config", "q.yaml", "--quiet", cwd=tmp_path).returncode
    journal = tmp_path / "runtime_state" / "q.jsonl"
    for path in journal.parent.glob("q.jsonl*"):
        path.unlink()

    again = journalq("run", "--config", "q.yaml", "--quiet", cwd=tmp_path)

    assert 1 == again.returncode, again.stderr
    assert "recorded from the card, and the job runs again" in again.stderr
    assert [3] == [e["attempt"] for e in events(journal) if e["type"] == "job_started"]
    shown = json.loads(journalq("status", "--config", "q.yaml", "--json",
                                cwd=tmp_path).stdout)
    assert [] == shown["anomalies"]
    assert "failed" == shown["jobs"][0]["status"]


@pytest.mark.parametrize("slots", [2, 3])
def test_with_several_slots_a_failure_with_budget_left_is_run_again(tmp_path: Path,
                                                                    slots: int) -> None:
    """A slot that found nothing to start marked the batch exhausted for good, so a job
    that failed with attempts left (pending again) was never started again: `run` ended
    with it pending, and exit 0 when it was the only job. It is retried, as with one slot."""
    write(tmp_path / "q.yaml", textwrap.dedent(f"""\
        queue: q
        slots: {slots}
        jobs:
          - id: flaky
            max_attempts: 3
            command: [sh, -c, "n=$(cat tries 2>/dev/null || echo 0); echo $((n+1)) > tries; \\
              [ $n -ge 1 ]"]
          - id: hopeless
            max_attempts: 2
            command: [sh, -c, "sleep 0.3; exit 1"]
        """))

    done = journalq("run", "--config", "q.yaml", "--quiet", cwd=tmp_path)

    assert 1 == done.returncode, done.stderr
    journal = tmp_path / "runtime_state" / "q.jsonl"
    ends = [(e["job"], e["attempt"], e["outcome"]) for e in events(journal)
            if e["type"] == "job_finished"]
    assert sorted(ends) == [("flaky", 1, "failed"), ("flaky", 2, "done"),
                            ("hopeless", 1, "failed"), ("hopeless", 2, "failed")]


INTERRUPT_AFTER_WRITE = """\
import os, signal, sys
import journalq.fs
real_write, done = journalq.fs.REAL.write, []
def write(fd, data):
    written = real_write(fd, data)
    if b'"job_added"' in data and not done:  # Ctrl-C the moment the kernel took the line
        done.append(1)
        os.kill(os.getpid(), signal.SIGINT)
    return written
journalq.fs.REAL.write = write
sys.argv = ["journalq", *sys.argv[1:]]
from journalq.__main__ import entry
entry()
"""


def test_a_ctrl_c_as_a_line_is_written_leaves_the_sync_copy_whole(tmp_path: Path) -> None:
    """Ctrl-C before the first job stops `run` at once; landing right after the kernel took
    a line but before the writer counted it, it left the line in the journal and not in
    the writer's size, and the final push cut the sync copy mid-line: another runtime saw
    an incomplete copy and this session as a live runner (exit 5 for two hours). A line is
    written and counted with the stop signals held."""
    write(tmp_path / "q.yaml", textwrap.dedent("""\
        queue: q
        sync_dir: sync
        jobs:
          - id: a
            command: [echo, a]
          - id: b
            command: [echo, b]
        """))
    stopped = subprocess.run([sys.executable, "-c", INTERRUPT_AFTER_WRITE, "run", "--config",
                              "q.yaml"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=60)
    assert 130 == stopped.returncode, stopped.stderr
    journal = (tmp_path / "runtime_state" / "q.jsonl").read_bytes()
    copies = list((tmp_path / "sync").glob("q.*.jsonl"))
    assert 1 == len(copies) and copies[0].read_bytes() == journal
    assert [json.loads(line)["type"] for line in journal.splitlines()][-1] == "session_ended"

    elsewhere = subprocess.run(
        [sys.executable, "-m", "journalq", "run", "--config", "q.yaml", "--state",
         "other/q.jsonl", "--quiet"], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, env={**os.environ, "JOURNALQ_BOOT_ID": "another-machine"})
    assert 0 == elsewhere.returncode, elsewhere.stderr


INTERRUPT_AT_RENAME = """\
import os, signal, sys
import journalq.fs
real_replace = journalq.fs.REAL.replace
def replace(source, target):
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the copy is about to be renamed in
    real_replace(source, target)
journalq.fs.REAL.replace = replace
sys.argv = ["journalq", *sys.argv[1:]]
from journalq.__main__ import entry
entry()
"""


def test_a_push_stopped_by_ctrl_c_leaves_no_temp_file(tmp_path: Path) -> None:
    """A push writes a temp file in the sync folder and renames it over the copy; a Ctrl-C
    between the two left the temp file behind (only an OSError cleaned it up), clutter
    that Drive uploads. Any interruption removes it."""
    write(tmp_path / "q.yaml",
          'queue: q\nsync_dir: sync\njobs:\n  - {id: a, command: ["true"]}\n')

    stopped = subprocess.run([sys.executable, "-c", INTERRUPT_AT_RENAME, "init", "--config",
                              "q.yaml"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=60)

    assert 130 == stopped.returncode, stopped.stderr
    assert [] == [p.name for p in (tmp_path / "sync").iterdir() if ".tmp-" in p.name]


def test_the_api_raises_error_130_for_a_ctrl_c_before_the_first_job(tmp_path: Path) -> None:
    """From a notebook, a Ctrl-C before `run`'s loop starts (its merge, the checks) raised
    a bare KeyboardInterrupt (or an internal `Terminated`), where one a moment later raised
    `journalq.Error` 130: the README promises `journalq.Error` with the command line's
    exit code for every non-zero outcome."""
    write(tmp_path / "q.yaml", textwrap.dedent("""\
        queue: q
        jobs:
          - id: a
            command: [echo, a]
        """))
    done = python(tmp_path, """\
        import os, signal
        import journalq, journalq.fs
        real_write = journalq.fs.REAL.write
        def write(fd, data):
            written = real_write(fd, data)
            if b'"job_added"' in data:
                os.kill(os.getpid(), signal.SIGINT)
            return written
        journalq.fs.REAL.write = write
        try:
            journalq.run("q.yaml", quiet=True)
        except journalq.Error as exc:
            print("Error", exc.exit_code)
        except BaseException as exc:
            print("other", type(exc).__name__)
        """)

    assert "Error 130" == done.stdout.strip(), done.stdout + done.stderr


@pytest.mark.parametrize("bad", ['return_code = "boom"', "return_code = 1.5",
                                 "return_code = true", "attempt = -5\nreturn_code = 0",
                                 'return_code = 0\nsession = "not a session"'])
def test_a_card_with_fields_journalq_never_writes_is_no_card(tmp_path: Path, bad: str) -> None:
    """A run card is a hint: one whose fields journalq never writes (a return code that is
    text, a negative attempt) was copied into a `job_recovered` line that every later read
    refused as corrupt (exit 4 until `repair`). It is ignored, as an unreadable card is."""
    write(tmp_path / "q.yaml", "queue: q\njobs:\n  - {id: j, command: [echo, j]}\n")
    fields = {"job": '"j"', "attempt": "1", "session": '"abcdef012345"', "outcome": '"done"'}
    for line in bad.splitlines():
        key, value = line.split(" = ")
        fields[key] = value
    card = tmp_path / "runtime_state" / "outputs" / "q" / "j" / "journalq-run.toml"
    write(card, "".join(f"{key} = {value}\n" for key, value in fields.items()))

    done = journalq("run", "--config", "q.yaml", "--quiet", cwd=tmp_path)

    assert 0 == done.returncode, done.stderr
    journal = tmp_path / "runtime_state" / "q.jsonl"
    assert [] == [e for e in events(journal) if e["type"] == "job_recovered"]
    assert 0 == journalq("status", "--config", "q.yaml", cwd=tmp_path).returncode


def test_a_nul_byte_in_a_folder_or_worker_or_path_is_one_line(tmp_path: Path) -> None:
    """A NUL in `sync_dir` ended in "internal error" (exit 70), in `worker` it was blamed
    on the job's args, and in a path given to the API it raised a bare ValueError."""
    for text, field in [('sync_dir: "s\\0x"\n', "$.sync_dir"),
                        ('worker: [python, "s\\0.py"]\n', "$.worker")]:
        write(tmp_path / "q.yaml", f"queue: q\n{text}jobs:\n"
              "  - {id: a, args: {model: m, layers: '1', alphas: [1]}}\n")
        refused = journalq("status", "--config", "q.yaml", cwd=tmp_path)
        assert 3 == refused.returncode and f"q.yaml: {field}: " in refused.stderr
        assert 1 == len(refused.stderr.splitlines()), refused.stderr
    done = python(tmp_path, """\
        import journalq
        for where in ("state", "sync_dir"):
            try:
                journalq.status("q.yaml" if where == "sync_dir" else None,
                                **{where: "/tmp/a\\0b"})
            except journalq.Error as exc:
                print(where, exc.exit_code)
        """)
    assert "state 2\nsync_dir 2" == done.stdout.strip(), done.stdout + done.stderr


def test_progress_of_a_selection_leaves_its_cancelled_jobs_out(tmp_path: Path) -> None:
    """A run of `a b c` with b cancelled ended at `[2/3]`: the selection's total counted
    the cancelled job, which never settles; without a selection it was left out."""
    write(tmp_path / "q.yaml", textwrap.dedent("""\
        queue: q
        jobs:
          - {id: a, command: ["true"]}
          - {id: b, command: ["true"]}
          - {id: c, command: ["true"]}
        """))
    assert 0 == journalq("init", "--config", "q.yaml", cwd=tmp_path).returncode
    assert 0 == journalq("cancel", "--config", "q.yaml", "b", cwd=tmp_path).returncode

    done = journalq("run", "--config", "q.yaml", "a", "b", "c", cwd=tmp_path)

    assert 0 == done.returncode, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert lines[-1].startswith("[2/2] done   c"), lines
