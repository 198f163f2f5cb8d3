"""Which code ran and which attempt a run card tells of, through real runs: the card
records the commit and whether the tree was dirty, a machine without `git` or with one
that hangs still runs its jobs (14.5), and a deliberate retry is the one way a later
attempt rewrites a card (9.5).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from slots_support import marked
from test_gaps_ops import fake_command
from test_run_support import SmallQueue

GIT_SECONDS = 5.0  # journalq.gitinfo's bound on one git question (its own value is not
# imported: a test that reads the bound from the code under test cannot catch it growing)


# ---- 14.5: which code ran, and a git that is missing or hangs ------------------------------

def git(folder: Path, *args: str) -> str:
    """Real git in `folder`, with an identity of its own; its stdout."""
    done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                          check=True, timeout=30,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
                               "HOME": str(folder)})
    return done.stdout.strip()


def committed(project: Path) -> str:
    """Make the project a git work tree with everything but runtime_state committed: HEAD."""
    git(project, "init", "-q")
    (project / ".gitignore").write_text("runtime_state/\nworker-runs.log\n")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "one")
    return git(project, "rev-parse", "HEAD")


def card_of(queue: SmallQueue, job_id: str) -> dict[str, object]:
    """The job's run card, parsed."""
    return tomllib.loads((queue.out_dir(job_id) / "journalq-run.toml").read_text())


def test_the_run_card_records_the_commit_and_whether_the_tree_was_dirty(
        project: Path) -> None:
    """In a git work tree, the run card of a job run from a clean tree says `dirty = false`
    with HEAD's commit; after a tracked file changes, the retried job's card says
    `dirty = true` (and job_started agrees with each card)."""
    with SmallQueue(project, ["a"]) as queue:
        head = committed(project)
        assert 0 == queue.run("--quiet").returncode
        clean = card_of(queue, "a")
        worker = project / "scripts" / "run_sweep.py"
        worker.write_text(worker.read_text() + "\n# edited\n")
        assert 0 == queue.command("retry", "a").returncode

        assert 0 == queue.run("--quiet").returncode

        edited = card_of(queue, "a")
        assert (1, head, False) == (clean["attempt"], clean["commit"], clean["dirty"])
        assert (2, head, True) == (edited["attempt"], edited["commit"], edited["dirty"])
        assert [(head, False), (head, True)] == [
            (e["commit"], e["dirty"]) for e in queue.events("job_started")]


def bare_path(tmp_path: Path) -> str:
    """A PATH holding `python` (the interpreter running the tests) and nothing else: no git."""
    folder = tmp_path / "bare-bin"
    fake_command(folder, "python", f'exec {sys.executable} "$@"\n')
    return str(folder)


def test_without_git_a_job_in_a_work_tree_runs_and_records_no_commit(
        project: Path, tmp_path: Path) -> None:
    """A machine without git: a job whose folder is a git work tree runs as usual, no
    warning or error, and neither job_started nor the run card names a commit."""
    with SmallQueue(project, ["a"]) as queue:
        committed(project)

        done = queue.run("--quiet", PATH=bare_path(tmp_path))

        assert 0 == done.returncode, done.stderr
        assert "journalq: " not in done.stderr, done.stderr
        assert [("a", 1)] == queue.runs()
        (started,) = queue.events("job_started")
        assert "commit" not in started and "dirty" not in started
        card = card_of(queue, "a")
        assert "done" == card["outcome"]
        assert "commit" not in card and "dirty" not in card


# A git that never answers: `status` only (its commit is known, its dirtiness not), or any
# command (nothing is known). It forks a sleeper, as a real git's children would be.
HANGING_GIT = {
    "status": 'for word in "$@"; do\n'
              '    if [ "$word" = status ]; then sleep 120; exit 0; fi\n'
              'done\n'
              'exec {git} "$@"\n',
    "everything": "sleep 120\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("hangs", ["status", "everything"])
def test_a_git_that_hangs_is_given_up_on_in_time_and_the_run_goes_on(
        project: Path, tmp_path: Path, hangs: str) -> None:
    """A git on PATH that hangs (a wedged network file system, a prompt nobody answers)
    costs the run at most GIT_SECONDS per question, once per folder: both jobs run and
    finish; a `git status` that never answered leaves `dirty` unknown, never "clean", and a
    `git rev-parse` that never answered records no commit."""
    real_git = subprocess.run(["sh", "-c", "command -v git"], capture_output=True,
                              text=True, check=True).stdout.strip()
    tools = tmp_path / "hanging-git"
    fake_command(tools, "git", HANGING_GIT[hangs].format(git=real_git))
    marker = f"GAPS_GIT_MARKER={os.getpid()}-{hangs}"
    with SmallQueue(project, ["a", "b"]) as queue:
        head = committed(project)
        try:
            began = time.monotonic()
            done = queue.run("--quiet", PATH=f"{tools}{os.pathsep}{os.environ['PATH']}",
                             GAPS_GIT_MARKER=marker.split("=", 1)[1])
            took = time.monotonic() - began
        finally:
            for pid in marked(marker):  # the sleepers the fake git left
                os.kill(pid, 9)

        assert 0 == done.returncode, done.stderr
        assert [("a", 1), ("b", 1)] == queue.runs()
        assert took < GIT_SECONDS + 8, f"the run took {took:.1f}s"
        started = queue.events("job_started")
        card = card_of(queue, "a")
        if hangs == "status":
            assert [head, head] == [e["commit"] for e in started]
            assert all(e.get("dirty") is None for e in started)
            assert head == card["commit"] and "dirty" not in card
        else:
            assert all("commit" not in e for e in started)
            assert "commit" not in card


# ---- 9.5: a run card is overwritten only after a deliberate retry --------------------------
# (That a later attempt never overwrites it otherwise is test_promise_run.py's
# test_a_card_that_arrives_after_recovery_settles_the_job and test_run_policy.py's
# test_a_card_from_an_attempt_the_journal_never_saw_stops_a_rerun.)

@pytest.mark.parametrize("first", ["done", "failed"])
def test_after_a_deliberate_retry_the_next_attempt_writes_its_own_card(
        project: Path, first: str) -> None:
    """A job done (or failed), then `journalq retry` it and `run` again: it runs once more,
    as attempt 2, and its card now names attempt 2 and the session that ran it."""
    with SmallQueue(project, ["a", "b"]) as queue:
        knobs = {"WORKER_FAIL_MATCH": "a"} if first == "failed" else {}
        queue.run("--quiet", **knobs)
        before = card_of(queue, "a")
        assert (1, first) == (before["attempt"], before["outcome"])
        retried = queue.command("retry", "a")
        assert 0 == retried.returncode, retried.stderr

        again = queue.run("--quiet")

        assert 0 == again.returncode, again.stderr
        assert [("a", 1), ("b", 1), ("a", 2)] == queue.runs()
        after = card_of(queue, "a")
        second = [e for e in queue.events("job_started") if e["job"] == "a"][-1]
        assert (2, "done", second["session"]) == (
            after["attempt"], after["outcome"], after["session"])
        assert before["session"] != after["session"]
        assert 1 == card_of(queue, "b")["attempt"]
