"""Interruptions and odd command lines are never errors and never leave a lie in the journal
(issue 9, items 11 and 12):

- Ctrl-C at any moment of start-up prints no traceback: exit 130 and one line.
- Ctrl-C inside a writing command records `session_ended` with 130 / `interrupted`.
- Closing the terminal during `run` (SIGHUP, or writes to it failing with EIO) is an
  interruption: exit 129, `session_ended` 129 / `interrupted`, never `error`.
- A command-line word that is not UTF-8 is refused in one line (exit 2) before anything is
  written, and a `session_started` that could not be appended is never followed by a
  `session_ended` of its own.
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import resource
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest
import reliability
from test_run_support import SmallQueue, wait_until

from conftest import events, journalq, write

CONFIG = """\
queue: q
heartbeat_seconds: 0.2
grace_seconds: 1
jobs:
  - id: a
    command: [python, -c, "print('a')"]
  - id: b
    command: [python, -c, "import sys; sys.exit(3)"]
"""

# A frame of journalq's own code in a traceback (not the console script `bin/journalq`).
OWN_FRAME = re.compile(r'File "[^"]*/journalq/[a-z_/]+\.py"')


def paired(journal: Path) -> list[tuple[Any, Any]]:
    """The (exit_code, reason) of every session_ended; each must follow its session's
    session_started."""
    started: set[str] = set()
    ended = []
    for event in events(journal) if journal.exists() else []:
        if event["type"] == "session_started":
            started.add(str(event["session"]))
        elif event["type"] == "session_ended":
            assert event["session"] in started, f"a session_ended without its start: {event}"
            ended.append((event["exit_code"], event["reason"]))
    return ended


def entry_points() -> dict[str, list[str]]:
    """`python -m journalq`, and the console script when it is installed beside python."""
    points = {"python -m": [sys.executable, "-m", "journalq"]}
    script = Path(sys.executable).parent / "journalq"
    if script.exists():
        points["script"] = [str(script)]
    return points


@pytest.fixture
def orphaned(project: Path) -> Path:
    """A journal whose job `b` was left running by a runner killed with SIGKILL, so that
    `recover` has something to write."""
    with SmallQueue(project, ["a", "b"], max_attempts=2) as queue:
        runner = queue.start("--quiet", WORKER_SLEEP="30", WORKER_SLEEP_MATCH="b")
        queue.wait_busy("b")
        runner.send_signal(signal.SIGKILL)
        runner.communicate(timeout=10)
        queue.kill_everything()
        saved = project / "orphaned.jsonl"
        saved.write_bytes(queue.journal.read_bytes())
    return saved


def interrupt_at(argv: list[str], delay: float, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Start journalq, SIGINT it after `delay` seconds, and collect how it ended."""
    child = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    time.sleep(delay)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    return subprocess.CompletedProcess(argv, child.returncode, out, err)


# What CPython says when Ctrl-C comes while the interpreter itself is still starting (its
# `site` import, the editable install's .pth, runpy, the console script's own lines).
PYTHON_STARTING = ("Fatal Python error", "Could not import runpy module",
                   "Error processing line", "Failed checking if argv[0]")


def python_starting(stderr: str) -> bool:
    """Whether stderr is CPython's own word on a Ctrl-C while it was still starting: one of
    its start-up complaints, or a Ctrl-C it could not raise in its import machinery
    ("Exception ignored", every frame frozen: before journalq's entry module ran, as from
    then on Ctrl-C is only noted until `entry` handles it)."""
    frames = re.findall(r'File "([^"]+)"', stderr)
    return any(words in stderr for words in PYTHON_STARTING) or (
        "Exception ignored in" in stderr and all(f.startswith("<frozen") for f in frames))


def check_interrupted(done: subprocess.CompletedProcess[str], journal: Path) -> str:
    """How one interrupted start-up ended; fails on a traceback from journalq's code, on
    an exit status other than 0/130, and on a journal that lies.

    Returns "finished" (0), "interrupted" (130 and one line), or "python" when the signal
    came while CPython itself was starting, before any line of journalq ran: killed by the
    signal, or CPython's own complaint, which no program can catch."""
    for code, reason in paired(journal):
        assert (code, reason) in ((0, "completed"), (130, "interrupted")), (code, reason)
    assert not OWN_FRAME.search(done.stderr), done.stderr  # never through journalq's code
    if done.returncode in (1, -signal.SIGINT) or python_starting(done.stderr):
        assert "journalq: interrupted" not in done.stderr, done.stderr
        return "python"
    assert "Traceback" not in done.stderr, done.stderr
    if done.returncode == 0:
        return "finished"
    assert 130 == done.returncode, done.stderr
    assert "journalq: interrupted" == done.stderr.splitlines()[-1], done.stderr
    return "interrupted"


def ctrl_c_during_start_up(project: Path, orphaned: Path, delays: list[float]) -> dict[str, int]:
    write(project / "configs" / "q.yaml", CONFIG)
    seen: dict[str, int] = {}
    for name, argv in entry_points().items():
        for command in ("init", "recover"):
            for number, delay in enumerate(delays):
                journal = project / f"{command}-{name[0]}-{number}.jsonl"
                if command == "recover":
                    journal.write_bytes(orphaned.read_bytes())
                    words = ["recover", "--state", journal.name]
                else:
                    words = ["init", "--config", "configs/q.yaml", "--state", journal.name]
                done = interrupt_at([*argv, *words], delay, project)
                outcome = check_interrupted(done, journal)
                seen[outcome] = seen.get(outcome, 0) + 1
    for outcome, count in seen.items():
        reliability.count(f"start-up Ctrl-C: {outcome}", count)
    return seen


def test_ctrl_c_while_journalq_imports_prints_no_traceback(project: Path,
                                                           orphaned: Path) -> None:
    """Ctrl-C while the command line is still being imported and parsed (the first ~0.15 s):
    exit 130 and `journalq: interrupted`, never a traceback (it printed one 7 times in 25)."""
    seen = ctrl_c_during_start_up(project, orphaned, [0.04, 0.06, 0.08, 0.1, 0.12])
    assert seen.get("interrupted", 0) >= 1, seen  # (a fast machine may finish first)


@pytest.mark.slow
def test_ctrl_c_at_random_moments_of_start_up(project: Path, orphaned: Path) -> None:
    """25 random moments in the first 200 ms, for `init` and `recover`, through both entry
    points: no traceback from journalq, exit 0 or 130, and the journal never holds a
    session_ended without its session_started (or one that says `error`)."""
    rng = random.Random(9012)
    seen = ctrl_c_during_start_up(project, orphaned,
                                  [rng.uniform(0, 0.2) for _ in range(25)])
    assert seen.get("interrupted", 0) >= 10, seen


BIG = f"""\
queue: big
matrix:
  id: "j-{{a}}-{{b}}"
  axes:
    a: [{", ".join(map(str, range(200)))}]
    b: [{", ".join(map(str, range(100)))}]
  command: [python, -c, "print({{a}}, {{b}})"]
"""


def test_ctrl_c_inside_a_writing_command_is_an_interruption_not_an_error(
        project: Path) -> None:
    """`init` of 20,000 jobs has announced itself and is adding them when Ctrl-C comes: the
    session ends `interrupted` with 130, not `error` with 1, and nothing else is written."""
    write(project / "configs" / "big.yaml", BIG)
    journal = project / "runtime_state" / "big.jsonl"
    child = subprocess.Popen([sys.executable, "-m", "journalq", "init", "--config",
                              "configs/big.yaml"], cwd=project, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    wait_until(lambda: journal.exists() and b"session_started" in journal.read_bytes(),
               "init to announce itself", timeout=30)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)

    assert 130 == child.returncode, err
    assert "Traceback" not in err and err.endswith("journalq: interrupted\n"), err
    assert [(130, "interrupted")] == paired(journal)
    kinds = [e["type"] for e in events(journal)]
    assert ("session_started", "session_ended") == (kinds[0], kinds[-1])
    assert "job_added" not in kinds, kinds  # stopped before the jobs were added


# ---- closing the terminal --------------------------------------------------------------

LOOP = """\
queue: t
heartbeat_seconds: 0.2
grace_seconds: 1
jobs:
  - id: chatty
    command: [python, -c, "import time\\nfor i in range(600):\\n    print('tick', i,
      flush=True)\\n    time.sleep(0.05)"]
  - id: next
    command: [python, -c, "print('next')"]
"""


def run_on_a_pty(project: Path, controlling: bool) -> tuple[subprocess.Popen[bytes], int]:
    """`journalq run` with a pty as stdin, stdout and stderr; with `controlling`, the pty is
    its controlling terminal (it leads a session of its own), as in a terminal window."""
    write(project / "configs" / "t.yaml", LOOP)
    master, slave = os.openpty()

    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    runner = subprocess.Popen(
        [sys.executable, "-m", "journalq", "run", "--config", "configs/t.yaml"], cwd=project,
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=take_terminal if controlling else None)
    os.close(slave)
    return runner, master


def close_the_terminal_mid_run(project: Path, controlling: bool) -> None:
    runner, master = run_on_a_pty(project, controlling)
    journal = project / "runtime_state" / "t.jsonl"
    seen = b""
    try:
        while b"chatty | tick 3" not in seen:  # the job runs and its output is echoed
            seen += os.read(master, 4096)
        os.close(master)
        code = runner.wait(timeout=30)

        assert 129 == code, seen.decode(errors="replace")
        assert [(129, "interrupted")] == paired(journal)
        kinds = [e["type"] for e in events(journal)]
        assert "job_interrupted" in kinds and "job_finished" not in kinds
    finally:
        runner.kill()
        runner.wait()


def test_closing_the_terminal_during_run_is_a_hangup(project: Path) -> None:
    """The terminal window closes: the kernel sends SIGHUP, and every later write to the
    terminal fails with EIO. The job is interrupted (uncharged), the session ends 129 /
    interrupted; it used to end 1 / error, because writing the last lines raised."""
    close_the_terminal_mid_run(project, controlling=True)


def test_a_terminal_that_vanishes_without_sighup_is_a_hangup_too(project: Path) -> None:
    """The pty is only journalq's output, not its controlling terminal, so no SIGHUP comes:
    the first echo that fails with EIO counts as the hangup."""
    close_the_terminal_mid_run(project, controlling=False)


# ---- command lines that are not UTF-8 ------------------------------------------------------

def run_bytes(project: Path, *words: bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable.encode(), b"-m", b"journalq", *words], cwd=project,
                          capture_output=True, text=True, timeout=60)


def test_a_path_that_is_not_utf8_is_refused_before_anything_is_written(project: Path) -> None:
    """`--state st\\xe9.jsonl` used to exit 70 (UnicodeEncodeError) after writing, and each
    try left a `session_ended` with no `session_started`. Now: exit 2, one line naming the
    argument, and the journal (or the folder, for a new one) is exactly as it was."""
    write(project / "configs" / "q.yaml", CONFIG)
    name = b"st\xe9.jsonl"
    assert 0 == journalq("init", "--config", "configs/q.yaml", "--state", "ok.jsonl",
                         cwd=project).returncode
    os.rename(project / "ok.jsonl", project / os.fsdecode(name))
    os.remove(project / "ok.jsonl.lock")
    before = sorted(os.listdir(project))
    data = (project / os.fsdecode(name)).read_bytes()

    for _ in range(3):
        done = run_bytes(project, b"cancel", b"--state", name, b"a")
        assert 2 == done.returncode, done.stderr
        assert 1 == len(done.stderr.splitlines()), done.stderr
        assert "--state" in done.stderr and "UTF-8" in done.stderr
    fresh = run_bytes(project, b"init", b"--config", b"configs/q.yaml", b"--state",
                      b"n\xe9w.jsonl")
    config = run_bytes(project, b"init", b"--config", b"c\xe9.yaml")

    assert (2, 2) == (fresh.returncode, config.returncode), fresh.stderr + config.stderr
    assert "--config" in config.stderr
    assert data == (project / os.fsdecode(name)).read_bytes()
    assert before == sorted(os.listdir(project))


def test_a_session_that_could_not_announce_itself_never_ends_in_the_journal(
        project: Path) -> None:
    """When `session_started` cannot be appended (here: the file size limit lets the shorter
    `session_ended` through but not it), the journal gets neither: before, the session
    counted itself started first, and its end was appended alone."""
    write(project / "configs" / "q.yaml", CONFIG)
    ran = journalq("run", "--config", "configs/q.yaml", "--quiet", cwd=project)
    assert 1 == ran.returncode, ran.stderr  # job b failed: retrying it has something to write
    journal = project / "runtime_state" / "q.jsonl"
    data = journal.read_bytes()
    limit = len(data) + 250  # session_started is longer than that, session_ended shorter

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run([sys.executable, "-m", "journalq", "retry", "--state", str(journal),
                           "b"], cwd=project, capture_output=True, text=True, timeout=60,
                          preexec_fn=small_files)

    assert 4 == done.returncode, done.stderr
    assert data == journal.read_bytes()


def test_journalq_started_by_a_path_that_is_not_utf8_still_records_its_session(
        project: Path) -> None:
    """The program's own path (argv[0]) is no argument to refuse: a console script reached
    through a name that is not UTF-8 works, and `session_started` keeps that word with its
    odd byte escaped. It used to exit 70 and leave a `session_ended` alone."""
    script = Path(sys.executable).parent / "journalq"
    if not script.exists():
        pytest.skip("no console script beside this python")
    write(project / "configs" / "q.yaml", CONFIG)
    link = os.path.join(os.fsencode(project), b"jq\xe9")
    os.symlink(os.fsencode(script), link)

    done = subprocess.run([link, b"init", b"--config", b"configs/q.yaml"], cwd=project,
                          capture_output=True, text=True, timeout=60)

    assert 0 == done.returncode, done.stderr
    journal = project / "runtime_state" / "q.jsonl"
    assert [(0, "completed")] == paired(journal)
    [started] = [e for e in events(journal) if e["type"] == "session_started"]
    assert started["argv"][0].endswith("jq\\xe9")


def test_a_ctrl_c_python_cannot_raise_is_raised_again_not_printed() -> None:
    """A Ctrl-C that lands in a weakref callback (Python 3.13 runs import-lock callbacks
    during start-up) is "unraisable": Python would print it with a traceback and carry on as
    if nothing was pressed. journalq's entry point raises it again a moment later, where the
    program can handle it, and prints nothing."""
    code = "\n".join([
        "import sys, time, weakref",
        "import journalq.__main__ as entry",
        "sys.unraisablehook = entry._unraisable  # as entry() installs it",
        "class Thing: pass",
        "def callback(ref): raise KeyboardInterrupt",
        "thing = Thing(); ref = weakref.ref(thing, callback)",
        "try:",
        "    del thing",
        "    time.sleep(2)",
        "    print('lost')",
        "except KeyboardInterrupt:",
        "    print('raised again')",
    ])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30)
    assert ("raised again\n", "") == (done.stdout, done.stderr)
